"""The demo: LangVision-LoRA-NAS end to end on the embedded pretrained base and the built-in tasks.

``python -m loranas demo OUT`` (or :func:`run`) makes the tasks, then for each task and adapter set searches
ranks with the supernet and fine-tunes the searched, uniform-64 and random-equal-budget adapters, and prints the
paper's Table 1 in miniature: eval perplexity, answer accuracy, LoRA parameters and their share of the model,
seconds per epoch. ``OUT`` receives results.json, results.md and figures/ (rank heatmaps, α trajectories,
loss curves).

The base (``base_path()``) is a 4M-parameter Mllama pretrained by ``tools/make_demo_base.py`` on captions of
the tasks' kinds of images, never on their question-answer formats.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .report import table, write
from .runner import Row, TaskRun, run_tasks
from .settings import ADAPTER_SETS, BUDGET, MODES, SPACE, DemoSettings

__all__ = ["ADAPTER_SETS", "BUDGET", "MODES", "SPACE", "DemoSettings", "Row", "TaskRun", "base_path", "run"]


def base_path() -> Path:
    """The directory of the embedded demo base (config.json, bf16 model.safetensors, tokenizer, processor)."""
    return Path(__file__).resolve().parent / "base"


def run(out: str | os.PathLike, mode: str = "quick", names=None, seed: int = 0, base=None,
        settings: DemoSettings | None = None, log: Callable[[str], None] = print) -> dict:
    """Runs the demo into ``out`` and returns the results.json object. ``mode`` is ``"quick"`` or ``"full"``
    (see :data:`MODES`), or ``settings`` gives sizes of its own; ``names`` picks tasks (default: all of
    :data:`loranas.tasks.NAMES`); ``base`` is a model directory (default: :func:`base_path`)."""
    from ..tasks import NAMES

    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    names = tuple(NAMES if names is None else names)
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ValueError(f"unknown or no task names {unknown or names}; known: {', '.join(NAMES)}")
    out = Path(out)
    settings = settings or MODES[mode]
    t0 = time.perf_counter()
    runs = run_tasks(base or base_path(), out / "tasks", names, settings, seed, log)
    seconds = time.perf_counter() - t0
    rows = [r for task in runs for r in task.rows]
    log(table(rows))
    described = {"mode": mode, "seed": seed, "space": list(SPACE), "budget": BUDGET, "tasks": list(names),
                 **{k: v for k, v in vars(settings).items()}}
    obj = write(runs, out, described, seconds)
    log(f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'figures'} in {seconds / 60:.1f} min")
    return obj
