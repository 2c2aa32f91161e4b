"""Layer 3 plumbing: the shared ownership logic of engine handles, and the string protocol.

An :class:`OwnedHandle` frees its handle exactly once (``close()``, ``with``, or garbage
collection) and serializes Python's use of it with a lock, so that ``close()`` in one thread waits
for a call in progress in another. A long call (a search, a fine-tune) marks the handle as running
on its thread: a progress callback on that thread that tries to call into the same model again
gets a ``RuntimeError`` instead of a deadlock in the engine, and ``close()`` from the callback
is refused instead of freeing the handle under the engine's feet. A call that needs several
handles takes their locks through :func:`hold`, in one global order.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from . import _bindings as B
from .errors import check


class OwnedHandle:
    """Owns one opaque engine handle; subclasses set ``_free`` and ``_kind``."""

    _kind = "handle"  # what the handle is, for messages ("model", "dataset", "checkpoint")
    _free: Callable[[int], None]  # the loranas_*_free binding

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._handle: int | None = None
        self._running_thread: int | None = None  # the thread inside a long call, if any
        self._running_depth = 0

    def _adopt(self, handle: ctypes.c_void_p, context: str) -> None:
        """Take ownership of a handle a successful create call wrote."""
        if not handle.value:
            raise RuntimeError(f"{context} returned LORANAS_OK and a NULL handle")
        self._handle = handle.value

    def _label(self) -> str:
        return self._kind

    # ---- ownership -------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the engine handle. Safe to call more than once."""
        lock = getattr(self, "_lock", None)  # absent if __init__ failed before setting it
        if lock is None:
            return
        if self._running_thread == threading.get_ident():
            raise RuntimeError(f"cannot close the {self._label()} from inside a run that uses it "
                               "(a progress callback); return True from the callback to stop the run instead")
        with lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                type(self)._free(handle)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has freed the handle."""
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown may have torn down modules already
            pass

    # ---- use -------------------------------------------------------------------------------------

    @contextmanager
    def _use(self, *, during_run: bool = False) -> Iterator[int]:
        """Hold the lock and yield the live handle.

        ``during_run``: the call is safe while this thread is inside a long call on the handle
        (e.g. reading a dataset's size from a progress callback); otherwise it is refused.
        """
        if not during_run and self._running_thread == threading.get_ident():
            raise RuntimeError(f"the {self._label()} is in use by a search or fine-tune running on this thread; "
                               "it cannot be called from that run's progress callback")
        with self._lock:
            if self._handle is None:
                raise ValueError(f"the {self._label()} is closed")
            yield self._handle

    @contextmanager
    def _run(self) -> Iterator[int]:
        """Like ``_use``, and marks the handle as running on this thread until the block ends."""
        with self._use(during_run=self._running_thread == threading.get_ident()) as handle:
            self._running_thread = threading.get_ident()
            self._running_depth += 1
            try:
                yield handle
            finally:
                self._running_depth -= 1
                if self._running_depth == 0:
                    self._running_thread = None


@contextmanager
def hold(*owners: OwnedHandle, run: bool = False) -> Iterator[list[int]]:
    """Enter several handles' ``_use()`` (``_run()`` when ``run``) and yield their live handles in
    argument order.

    Every call that holds more than one handle lock goes through here, so the locks are always
    taken in one global order (by ``id``), whatever the argument order: ``search(m1, A, B)`` in one
    thread beside ``search(m2, B, A)`` in another cannot deadlock. An owner passed twice (train ==
    val) is entered once.
    """
    unique = sorted({id(owner): owner for owner in owners}.items())
    with ExitStack() as stack:
        live = {key: stack.enter_context(owner._run() if run else owner._use()) for key, owner in unique}
        yield [live[id(owner)] for owner in owners]


def read_string(fn, handle: int, context: str) -> str:
    """A string returned through the (buf, buf_len, out_len) protocol: size query, then copy."""
    needed = ctypes.c_int64(-1)
    status = fn(handle, None, 0, ctypes.byref(needed))
    if status != B.LORANAS_ERR_BUFFER_TOO_SMALL:
        check(status, context)
    for _ in range(2):  # the second try only if the text grew between the calls (it never should)
        size = needed.value + 1
        if size <= 0:
            raise RuntimeError(f"{context} reported length {needed.value}")
        buf = ctypes.create_string_buffer(size)
        status = fn(handle, buf, size, ctypes.byref(needed))
        if status == B.LORANAS_ERR_BUFFER_TOO_SMALL and needed.value + 1 > size:
            continue
        check(status, context)
        if not 0 <= needed.value < size:
            raise RuntimeError(f"{context} reported length {needed.value} for a buffer of {size} bytes")
        return buf.raw[: needed.value].decode("utf-8")
    raise RuntimeError(f"{context} still reports a buffer too small ({needed.value + 1} bytes needed)")
