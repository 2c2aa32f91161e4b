"""Figures of a search or fine-tune result, with matplotlib (imported when a function is called).

- :func:`plot_ranks`: the searched rank per layer and module type, vision and text side by side (the paper's
  Figure 5);
- :func:`plot_alpha`: the softmax(α) trajectories of the rank choices during the search;
- :func:`plot_losses`: the train and validation curves.

Each returns the matplotlib Figure and writes it to ``path`` when one is given.
"""

from __future__ import annotations

import io
import math
import os
import re
from typing import Any

import numpy as np

from ._files import atomic_write_bytes

__all__ = ["plot_ranks", "plot_alpha", "plot_losses", "module_grid"]

# Row order of each side's heatmap: the module types in model order.
VISION_TYPES = ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]
TEXT_TYPES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_LAYER = re.compile(r"\.layers\.(?P<index>\d+)\.")


def _pyplot():
    import matplotlib.pyplot as plt  # without a display, matplotlib picks its Agg backend itself

    return plt


def module_grid(ranks: dict[str, int]) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
    """Per side ("vision", "text"): the row labels (module types), the column labels (layers) and the rank
    matrix (NaN where a layer has no such module). Vision columns are the local layers, then the global ones
    (``g0``, ``g1``, …); text columns are decoder layers (``x`` marks cross-attention layers)."""
    cells: dict[str, dict[tuple[str, str], int]] = {"vision": {}, "text": {}}
    columns: dict[str, dict[str, tuple[int, int]]] = {"vision": {}, "text": {}}
    cross = {int(m.group("index")) for name in ranks if ".cross_attn." in name and (m := _LAYER.search(name))}
    for name, rank in ranks.items():
        side = "vision" if name.startswith("vision_model.") else "text"
        kind = name.rsplit(".", 1)[-1]
        m = _LAYER.search(name)
        if m is None:
            continue
        index = int(m.group("index"))
        if side == "vision":
            glob = "global_transformer" in name
            label, key = (f"g{index}", (1, index)) if glob else (str(index), (0, index))
        else:
            label = f"{index}x" if index in cross else str(index)
            key = (0, index)
        columns[side][label] = key
        cells[side][(kind, label)] = rank
    out = {}
    for side, types in (("vision", VISION_TYPES), ("text", TEXT_TYPES)):
        labels = sorted(columns[side], key=lambda c: columns[side][c])
        grid = np.full((len(types), len(labels)), np.nan)
        for (kind, label), rank in cells[side].items():
            if kind in types:
                grid[types.index(kind), labels.index(label)] = rank
        out[side] = (types, labels, grid)
    return out


def _save(fig, path: str | os.PathLike | None):
    """Writes the figure atomically when a path is given (the format follows its suffix)."""
    if path is not None:
        buf = io.BytesIO()
        fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
        fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight")
        atomic_write_bytes(path, buf.getvalue())
    return fig


def plot_ranks(result: Any, path: str | os.PathLike | None = None, title: str | None = None):
    """A heatmap of the rank of every module (``result.ranks``: a SearchResult, a FinetuneResult or a dict),
    layers across, module types down, vision and text side by side; colour is log2(rank), each cell is
    annotated with its rank."""
    plt = _pyplot()
    ranks = result if isinstance(result, dict) else result.ranks
    grids = {side: g for side, g in module_grid(ranks).items() if g[1]}
    fig, axes = plt.subplots(1, max(len(grids), 1), figsize=(3 + sum(0.45 * len(g[1]) for g in grids.values()), 3.6),
                             squeeze=False, gridspec_kw={"width_ratios": [max(len(g[1]), 1) for g in grids.values()]
                                                         or [1]})
    values = [r for r in ranks.values() if r > 0]
    lo, hi = (math.log2(min(values)), math.log2(max(values))) if values else (0, 1)
    image = None
    for ax, (side, (types, labels, grid)) in zip(axes[0], grids.items()):
        image = ax.imshow(np.log2(grid), aspect="auto", cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-9))
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=90)
        ax.set_yticks(range(len(types)), types, fontsize=8)
        ax.set_title(f"{side} ({int(np.nansum(np.isfinite(grid)))} modules)", fontsize=10)
        ax.set_xlabel("layer")
        for (i, j), r in np.ndenumerate(grid):
            if np.isfinite(r):
                ax.text(j, i, str(int(r)), ha="center", va="center", fontsize=6, color="white")
    if image is not None:
        bar = fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03)
        ticks = sorted(set(values))
        bar.set_ticks([math.log2(r) for r in ticks], labels=[str(r) for r in ticks])
        bar.set_label("rank")
    fig.suptitle(title or "searched LoRA rank per module", fontsize=11)
    return _save(fig, path)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def plot_alpha(result: Any, path: str | os.PathLike | None = None, modules: list[str] | None = None,
               max_modules: int = 12):
    """softmax(α) of every rank choice against the α step, one panel per module (``modules``, default: up to
    ``max_modules`` spread over the model), from a SearchResult's ``alpha_history``."""
    plt = _pyplot()
    history = result.alpha_history
    names = modules or list(history)
    if len(names) > max_modules:
        names = [names[round(i * (len(names) - 1) / (max_modules - 1))] for i in range(max_modules)]
    cols = min(4, max(len(names), 1))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        probs = _softmax(np.asarray(history[name], dtype=np.float64))
        for j, rank in enumerate(result.space):
            ax.plot(probs[:, j], label=f"r={rank}")
        ax.set_title(_short(name), fontsize=7)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=6)
    fig.supxlabel("α step")
    fig.supylabel("softmax(α)")
    fig.suptitle("architecture weights during the search", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _short(name: str) -> str:
    return name.replace("language_model.model.", "text.").replace("vision_model.", "vision.")


def plot_losses(result: Any, path: str | os.PathLike | None = None):
    """Train loss per step and the validation curve (a SearchResult's α-step losses, or a FinetuneResult's
    eval perplexity per epoch, on a second axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    train = np.asarray(result.train_losses, dtype=np.float64)
    ax.plot(np.arange(1, len(train) + 1), train, label="train loss", color="C0")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if hasattr(result, "validation_losses") and len(result.validation_losses):
        val = np.asarray(result.validation_losses, dtype=np.float64)
        ax.plot(np.linspace(1, len(train), len(val)), val, label="validation loss (α steps)", color="C1")
    if hasattr(result, "eval_perplexity") and len(result.eval_perplexity):
        twin = ax.twinx()
        ppl = np.asarray(result.eval_perplexity, dtype=np.float64)
        steps = np.linspace(len(train) / len(ppl), len(train), len(ppl))
        twin.plot(steps, ppl, "o-", color="C3", label="eval perplexity (per epoch)")
        twin.set_ylabel("perplexity")
        twin.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("training curves", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
