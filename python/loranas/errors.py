"""The one place where a C status becomes a Python exception.

Every non-zero ``LORANAS_ERR_*`` status raises a :class:`LoranasError` subclass carrying the
engine's message from ``loranas_last_error()``. Each subclass also derives from the built-in
exception a Python user would expect (``ValueError``, ``OSError``, ``LookupError``, ...), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

import os
import re

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
    """LORANAS_ERR_IO: a file could not be opened, read or written.

    When the engine's message names the system error, as in
    ``"cannot write /x/y: No space left on device (errno 28)"``, ``errno``, ``strerror`` and
    ``filename`` are set as on any ``OSError`` (else they are None), and the exception is also
    the matching built-in subclass: ``except FileNotFoundError`` (ENOENT), ``PermissionError``
    (EACCES, EPERM), ``IsADirectoryError``, ``NotADirectoryError``, ``FileExistsError``, ... catch
    it. ``str()`` is the engine's message as is.
    """

    status_code = LORANAS_ERR_IO

    def __init__(self, message: str, *, status: int | None = None, context: str = ""):
        super().__init__(message, status=status, context=context)
        parsed = _parse_errno_message(message)
        if parsed is not None:
            self.errno, self.strerror, self.filename = parsed


# "cannot <verb> <path>: <system error text> (errno N)"; the path may hold ": ", the error text does not.
_ERRNO_MESSAGE = re.compile(r"(?:(?:cannot|could not|failed to) \w+ (?P<filename>.+): )?"
                            r"(?P<strerror>[^:]*?) \(errno (?P<errno>\d+)\)\s*$", re.S)


def _parse_errno_message(message: str) -> tuple[int, str, str | None] | None:
    """(errno, strerror, filename or None) from an engine I/O message, or None without an errno."""
    m = _ERRNO_MESSAGE.search(message)
    if m is None:
        return None
    code = int(m.group("errno"))
    return code, m.group("strerror").strip() or os.strerror(code), m.group("filename")


# EngineIOError mixed with each built-in OSError subclass, so ``except FileNotFoundError`` catches
# the engine's ENOENT. Python's own errno -> subclass mapping picks the class (see _io_error_class).
class EngineFileNotFoundError(EngineIOError, FileNotFoundError):
    """LORANAS_ERR_IO with ENOENT."""


class EngineFileExistsError(EngineIOError, FileExistsError):
    """LORANAS_ERR_IO with EEXIST."""


class EnginePermissionError(EngineIOError, PermissionError):
    """LORANAS_ERR_IO with EACCES or EPERM."""


class EngineIsADirectoryError(EngineIOError, IsADirectoryError):
    """LORANAS_ERR_IO with EISDIR."""


class EngineNotADirectoryError(EngineIOError, NotADirectoryError):
    """LORANAS_ERR_IO with ENOTDIR."""


class EngineInterruptedError(EngineIOError, InterruptedError):
    """LORANAS_ERR_IO with EINTR."""


class EngineTimeoutError(EngineIOError, TimeoutError):
    """LORANAS_ERR_IO with ETIMEDOUT."""


_IO_SUBCLASSES: dict[type[OSError], type[EngineIOError]] = {
    cls.__bases__[1]: cls
    for cls in (EngineFileNotFoundError, EngineFileExistsError, EnginePermissionError, EngineIsADirectoryError,
                EngineNotADirectoryError, EngineInterruptedError, EngineTimeoutError)
}


def _io_error_class(message: str) -> type[EngineIOError]:
    """EngineIOError, or its mix with the built-in OSError subclass of the message's errno."""
    parsed = _parse_errno_message(message)
    if parsed is None:
        return EngineIOError
    builtin = type(OSError(parsed[0], parsed[1]))  # Python's own errno -> subclass mapping
    return _IO_SUBCLASSES.get(builtin, EngineIOError)


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
    if cls is EngineIOError:
        cls = _io_error_class(message)
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
