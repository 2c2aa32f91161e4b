"""The one place where a C status becomes a Python exception.

Every non-zero ``LORANAS_ERR_*`` status raises a :class:`LoranasError` subclass carrying the
engine's message from ``loranas_last_error()``. Each subclass also derives from the built-in
exception a Python user would expect (``ValueError``, ``OSError``, ``LookupError``, ...), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

from ._status import (
    LORANAS_ERR_BUFFER_TOO_SMALL,
    LORANAS_ERR_FORMAT,
    LORANAS_ERR_INVALID_ARGUMENT,
    LORANAS_ERR_IO,
    LORANAS_ERR_NOT_FOUND,
    LORANAS_ERR_NUMERIC,
    LORANAS_ERR_UNSUPPORTED,
    LORANAS_OK,
)


class LoranasError(Exception):
    """A call into libloranas failed.

    Attributes:
        status: the ``LORANAS_ERR_*`` code (0 when Python itself refused the call).
        message: the engine's message (``loranas_last_error()``), or Python's own.
        context: what was being done, e.g. ``"loranas_checkpoint_open('/x.safetensors')"``.
    """

    status_code: int = 0  # the status this class stands for

    def __init__(self, message: str, *, status: int | None = None, context: str = ""):
        self.status = self.status_code if status is None else status
        self.message = message
        self.context = context
        super().__init__(f"{context}: {message}" if context else message)

    def __str__(self) -> str:  # KeyError's own __str__ would quote the text
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(LoranasError, ValueError):
    """LORANAS_ERR_INVALID_ARGUMENT: a NULL pointer, a wrong size or shape, a bad value."""

    status_code = LORANAS_ERR_INVALID_ARGUMENT


class EngineIOError(LoranasError, OSError):
    """LORANAS_ERR_IO: a file could not be opened, read or written."""

    status_code = LORANAS_ERR_IO


class FormatError(LoranasError, ValueError):
    """LORANAS_ERR_FORMAT: a file's contents are malformed."""

    status_code = LORANAS_ERR_FORMAT


class NotFoundError(LoranasError, KeyError):
    """LORANAS_ERR_NOT_FOUND: no such tensor, module or key (a KeyError, as from a mapping)."""

    status_code = LORANAS_ERR_NOT_FOUND


class NumericError(LoranasError, ArithmeticError):
    """LORANAS_ERR_NUMERIC: non-finite loss or gradients."""

    status_code = LORANAS_ERR_NUMERIC


class UnsupportedError(LoranasError, NotImplementedError):
    """LORANAS_ERR_UNSUPPORTED: a valid request the engine does not support."""

    status_code = LORANAS_ERR_UNSUPPORTED


class BufferTooSmallError(LoranasError):
    """LORANAS_ERR_BUFFER_TOO_SMALL escaped a wrapper that should have retried (a bug here)."""

    status_code = LORANAS_ERR_BUFFER_TOO_SMALL


_BY_STATUS: dict[int, type[LoranasError]] = {
    cls.status_code: cls
    for cls in (
        InvalidArgumentError,
        EngineIOError,
        FormatError,
        NotFoundError,
        NumericError,
        UnsupportedError,
        BufferTooSmallError,
    )
}


def error_for_status(status: int, message: str, context: str = "") -> LoranasError:
    """The exception for ``status`` (an unknown code gives a plain LoranasError)."""
    cls = _BY_STATUS.get(status, LoranasError)
    if not message:
        message = f"status {status} with no message from the engine"
    return cls(message, status=status, context=context)


def check(status: int, context: str = "") -> None:
    """Raise the matching LoranasError if ``status`` is not LORANAS_OK.

    Must be called right after the failing call, on the same thread: the engine's message is
    per thread and is replaced by that thread's next failing call.
    """
    if status == LORANAS_OK:
        return
    from . import _bindings  # loaded by now: every caller of check() has called into the library

    raw = _bindings.loranas_last_error()
    message = raw.decode("utf-8", errors="replace") if raw else ""
    raise error_for_status(status, message, context)
