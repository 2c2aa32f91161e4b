"""Progress reporting for :func:`loranas.search` and :func:`loranas.finetune`.

The engine calls a C function after every step and every epoch with a JSON event::

    {"kind": "step" | "epoch", "epoch": 0-based epoch, "step": global step (1-based),
     "steps_per_epoch": n, "train_loss": x, "validation_loss": y or null}

(``validation_loss`` is the alpha step's loss in a search, and the epoch's evaluation loss on a
fine-tune's epoch events.) :class:`ProgressBridge` turns a Python callable into that C function,
keeps the exceptions it raises on the Python side, and makes Ctrl-C stop the run at the next step
(checkpointed) and raise ``KeyboardInterrupt``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any, Callable

from . import _bindings as B
from .world import is_main_process

ProgressCallable = Callable[[dict], Any]


def _tqdm_class():
    """tqdm's notebook widget in a Jupyter kernel that has ipywidgets, its text bar elsewhere (also in a kernel
    without ipywidgets, where the bar goes to the cell's stderr), or None without tqdm."""
    try:
        import tqdm
    except ImportError:
        return None
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
        try:
            from tqdm.notebook import IProgress, tqdm as notebook_tqdm
        except ImportError:
            return tqdm.tqdm
        if IProgress is not None:
            return notebook_tqdm
    return tqdm.tqdm


class _Reporter:
    """``progress=True``: a tqdm bar (a widget in notebooks) when tqdm is importable, else one line per epoch on
    stderr."""

    def __init__(self, what: str, epochs: int, max_steps: int | None):
        self.what, self.epochs, self.max_steps = what, epochs, max_steps
        self.bar = None
        self._tqdm = _tqdm_class()

    def __call__(self, event: dict) -> bool:
        if self._tqdm is not None:
            if self.bar is None:
                total = event["steps_per_epoch"] * self.epochs
                if self.max_steps is not None:
                    total = min(total, self.max_steps)
                self.bar = self._tqdm(total=total, initial=event["step"] - 1 if event["kind"] == "step" else 0,
                                      desc=self.what, unit="step")
            if event["kind"] == "step":
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{event['train_loss']:.4f}", refresh=False)
        elif event["kind"] == "epoch":
            val = event.get("validation_loss")
            val_text = "" if val is None else f", validation loss {val:.4f}"
            print(f"{self.what}: epoch {event['epoch'] + 1}/{self.epochs} done at step {event['step']}: "
                  f"train loss {event['train_loss']:.4f}{val_text}", file=sys.stderr, flush=True)
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressBridge:
    """Adapts ``progress`` (None, True/False, or a callable) to a ``loranas_progress_fn``, and
    turns Ctrl-C during the run into a clean stop followed by ``KeyboardInterrupt``.

    ``c_callback`` is always a real function pointer, even without progress, so that the engine
    comes back to Python after every step; it must be passed to the engine call made through
    :meth:`call` while this object is alive.

    - The callable returns truthy: the run stops cleanly and returns its result.
    - The callable raises: the exception is stored, the run is told to stop (the callback returns
      1, so the engine writes its checkpoint), and :meth:`raise_pending` re-raises it once the
      engine call has returned. No exception ever crosses into C.
    - Ctrl-C: while the engine computes, Python's C-level handler only records SIGINT; its
      Python-level handler runs at the next bytecode, i.e. inside this callback. :meth:`call`
      installs a SIGINT handler (main thread only; it calls the previous handler and restores it
      afterwards) that stores the KeyboardInterrupt and raises it only in the user's callable,
      never in the callback's own frame, where ctypes would print "Exception ignored" and go on.
      The callback then returns 1 (stop at this step, checkpoint), and :meth:`raise_pending`
      raises the KeyboardInterrupt: an interrupted run never returns a result.
    """

    def __init__(self, progress, *, what: str, epochs: int, max_steps: int | None):
        self.error: BaseException | None = None  # what the callable raised
        self.interrupt: BaseException | None = None  # Ctrl-C (what the SIGINT handler raised) during the run
        self.events = 0
        self._reporter: _Reporter | None = None
        self._previous_sigint: Any = None
        if progress is None or progress is False:
            self._fn: ProgressCallable | None = None
        elif progress is True and not is_main_process():
            self._fn = None  # one bar per job: rank 0 draws it
        elif progress is True:
            self._reporter = _Reporter(what, epochs, max_steps)
            self._fn = self._reporter
        elif callable(progress):
            self._fn = progress
        else:
            raise TypeError("progress must be None, True or a callable taking the event dict, "
                            f"got {type(progress).__name__}")
        self.c_callback = B.loranas_progress_fn(self._trampoline)

    def _trampoline(self, event_json: bytes | None, user_data) -> int:
        # Everything is inside the try, and the stores in the handlers are single statements: an
        # exception must not escape into ctypes (it would be printed and the run would go on).
        try:
            if self.interrupt is not None or self.error is not None:
                return 1
            if self._fn is None:
                return 0
            event = json.loads(event_json.decode("utf-8")) if event_json else {}
            self.events += 1
            stop = bool(self._fn(event))
            return 1 if stop or self.interrupt is not None else 0
        except KeyboardInterrupt as exc:  # Ctrl-C in the callable, or the callable raised it
            if self.interrupt is None:
                self.interrupt = exc
            return 1
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            return 1

    def _on_sigint(self, signum, frame) -> None:
        try:
            self._previous_sigint(signum, frame)  # default_int_handler raises KeyboardInterrupt
        except BaseException as exc:
            if self.interrupt is None:
                self.interrupt = exc
            # Raise only in user code (the callable), which the callback's try catches; in the
            # callback's own frame, or in call(), the stored exception is enough.
            if frame is None or frame.f_code not in _QUIET_CODES:
                raise

    def call(self, fn: Callable[..., int], *args) -> int:
        """``fn(*args)``: the engine call, with SIGINT routed to this run (on the main thread, when
        the SIGINT handler is a Python callable: not when it is ignored or the default action)."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            handler = signal.getsignal(signal.SIGINT)
            if callable(handler):
                self._previous_sigint = previous = handler
                signal.signal(signal.SIGINT, self._on_sigint)
        try:
            return fn(*args)
        finally:
            if previous is not None:
                # signal.signal runs a pending handler first: ours, which does not raise in this frame
                signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        """Close the progress bar, if any."""
        if self._reporter is not None:
            self._reporter.close()

    def raise_pending(self) -> None:
        """Re-raise what interrupted the run (Ctrl-C first) or what the callable raised, if anything."""
        error = self.interrupt if self.interrupt is not None else self.error
        self.interrupt = self.error = None
        if error is not None:
            raise error


# The frames in which the SIGINT handler only records the interrupt (see ProgressBridge._on_sigint).
_QUIET_CODES = frozenset({ProgressBridge._trampoline.__code__, ProgressBridge._on_sigint.__code__,
                          ProgressBridge.call.__code__})
