"""The demo's outputs: the paper's Table 1 in miniature as text and Markdown, the results as JSON, and the
figures (rank heatmap, α trajectories, loss curves) as PNG."""

from __future__ import annotations

import json
from pathlib import Path

from .._files import atomic_write_text
from ..plots import plot_alpha, plot_losses, plot_ranks
from .runner import Row, TaskRun

COLUMNS = ("task", "set", "adapter", "eval ppl", "accuracy", "LoRA params", "share", "s/epoch")


def cells(row: Row) -> tuple[str, ...]:
    params = f"{row.lora_parameters:,}" if row.lora_parameters else "-"
    share = f"{row.lora_share:.2%}" if row.lora_parameters else "-"
    epoch = f"{row.seconds_per_epoch:.1f}" if row.seconds_per_epoch else "-"
    return (row.task, row.adapter_set, row.adapter, f"{row.eval_perplexity:.3f}", f"{row.accuracy:.1%}", params,
            share, epoch)


def table(rows: list[Row]) -> str:
    """A fixed-width table, one line per row."""
    body = [COLUMNS] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    left = {0, 1, 2}
    return "\n".join("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in body)


def markdown(rows: list[Row], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def figures(runs: list[TaskRun], directory: Path) -> list[Path]:
    """Per task and adapter set: the searched ranks, the α trajectories and the searched fine-tune's losses."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        for set_name, s in run.sets.items():
            stem = directory / f"{run.name}-{set_name}"
            title = f"{run.name}, {set_name}: searched ranks"
            for path, draw in ((f"{stem}-ranks.png", lambda p: plot_ranks(s.search, path=p, title=title)),
                               (f"{stem}-alpha.png", lambda p: plot_alpha(s.search, path=p)),
                               (f"{stem}-losses.png", lambda p: plot_losses(s.finetunes["searched"], path=p))):
                draw(path)
                written.append(Path(path))
    return written


def write(runs: list[TaskRun], out: Path, settings: dict, seconds: float) -> dict:
    """results.json, results.md and figures/ in ``out``; returns the JSON object as written."""
    rows = [r for run in runs for r in run.rows]
    obj = {"settings": settings, "seconds": seconds, "rows": [r.to_json() for r in rows],
           "searches": {f"{run.name}/{k}": s.search._to_obj() for run in runs for k, s in run.sets.items()}}
    text = json.dumps(obj, indent=1) + "\n"
    atomic_write_text(out / "results.json", text)
    header = (f"# loranas demo: searched vs uniform-64 vs random ranks ({settings['mode']} mode, "
              f"{seconds / 60:.1f} min)")
    atomic_write_text(out / "results.md", markdown(rows, header))
    figures(runs, out / "figures")
    return json.loads(text)
