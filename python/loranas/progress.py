"""Progress reporting for :func:`loranas.search` and :func:`loranas.finetune`.

The engine calls a C function after every step and every epoch with a JSON event::

    {"kind": "step" | "epoch", "epoch": 0-based epoch, "step": global step (1-based),
     "steps_per_epoch": n, "train_loss": x, "validation_loss": y or null}

(``validation_loss`` is the alpha step's loss in a search, and the epoch's evaluation loss on a
fine-tune's epoch events.) :class:`ProgressBridge` turns a Python callable into that C function
and keeps the exceptions it raises on the Python side.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from . import _bindings as B

ProgressCallable = Callable[[dict], Any]


class _Reporter:
    """``progress=True``: a tqdm bar when tqdm is importable, else one line per epoch on stderr."""

    def __init__(self, what: str, epochs: int, max_steps: int | None):
        self.what, self.epochs, self.max_steps = what, epochs, max_steps
        self.bar = None
        try:
            import tqdm  # noqa: F401  (optional)

            self._tqdm = tqdm.tqdm
        except ImportError:
            self._tqdm = None

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
    """Adapts ``progress`` (None, True/False, or a callable) to a ``loranas_progress_fn``.

    ``c_callback`` (a NULL function pointer for no progress) must be passed to the engine call while this object is
    alive. An exception raised by the callable is stored, the run is told to stop (return 1), and
    :meth:`raise_pending` re-raises it once the engine call has returned; the exception never
    crosses into C.
    """

    def __init__(self, progress, *, what: str, epochs: int, max_steps: int | None):
        self.error: BaseException | None = None
        self.events = 0
        self._reporter: _Reporter | None = None
        if progress is None or progress is False:
            self._fn: ProgressCallable | None = None
        elif progress is True:
            self._reporter = _Reporter(what, epochs, max_steps)
            self._fn = self._reporter
        elif callable(progress):
            self._fn = progress
        else:
            raise TypeError(f"progress must be None, True or a callable taking the event dict, got {type(progress).__name__}")
        # loranas_progress_fn() with no argument is the NULL function pointer (no progress)
        self.c_callback = B.loranas_progress_fn() if self._fn is None else B.loranas_progress_fn(self._trampoline)

    def _trampoline(self, event_json: bytes | None, user_data) -> int:
        if self.error is not None:
            return 1
        try:
            event = json.loads(event_json.decode("utf-8")) if event_json else {}
            self.events += 1
            return 1 if self._fn(event) else 0
        except BaseException as exc:  # KeyboardInterrupt too: stop cleanly, re-raise afterwards
            self.error = exc
            return 1

    def close(self) -> None:
        if self._reporter is not None:
            self._reporter.close()

    def raise_pending(self) -> None:
        """Re-raise what the callable raised during the call, if anything."""
        error, self.error = self.error, None
        if error is not None:
            raise error
