"""The figures of a search and a fine-tune on the tiles4_gqa fixture: files written and non-empty, the rank
grid placing every module once, and ``python -m loranas plot``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import loranas  # noqa: E402
from loranas.plots import TEXT_TYPES, VISION_TYPES, module_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    samples = [{"input_ids": rng.integers(0, 96, 12), "labels": rng.integers(0, 96, 12)} for _ in range(12)]
    with loranas.Model(TILES4) as model:
        found = loranas.search(model, samples[:8], samples[8:], space=(2, 4, 8), epochs=2, batch_size=4, lr=1e-2,
                               alpha_lr=5e-2, seed=1)
        tuned = loranas.finetune(model, samples[:8], samples[8:], ranks=found, epochs=2, batch_size=4, lr=1e-2)
    return found, tuned


def test_rank_grid_places_every_module_once(results):
    found, _ = results
    grids = module_grid(found.ranks)
    placed = sum(int(np.isfinite(g).sum()) for _, _, g in grids.values())
    assert placed == len(found.ranks)
    assert grids["vision"][0] == VISION_TYPES and grids["text"][0] == TEXT_TYPES
    name = "language_model.model.layers.1.cross_attn.q_proj"
    types, labels, grid = grids["text"]
    assert grid[types.index("q_proj"), labels.index("1x")] == found.ranks[name]
    name = "vision_model.global_transformer.layers.0.mlp.fc2"
    types, labels, grid = grids["vision"]
    assert grid[types.index("fc2"), labels.index("g0")] == found.ranks[name]


@pytest.mark.parametrize("kind", ["ranks", "alpha", "losses"])
def test_figures_are_written(results, tmp_path, kind):
    found, tuned = results
    plot = {"ranks": loranas.plot_ranks, "alpha": loranas.plot_alpha, "losses": loranas.plot_losses}[kind]
    for i, result in enumerate([found, tuned] if kind != "alpha" else [found]):
        path = tmp_path / f"{kind}{i}.png"
        fig = plot(result, path=path)
        assert fig.axes and path.stat().st_size > 5000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_from_the_shell(results, tmp_path):
    found, _ = results
    found.save(tmp_path / "search.json")
    for kind in ("ranks", "alpha", "losses"):
        out = tmp_path / f"{kind}.png"
        run = subprocess.run([sys.executable, "-m", "loranas", "plot", str(tmp_path / "search.json"), "-o", str(out),
                              "--kind", kind], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert out.stat().st_size > 5000
    bad = subprocess.run([sys.executable, "-m", "loranas", "plot", str(tmp_path / "missing.json"), "-o",
                          str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "missing.json" in bad.stderr
