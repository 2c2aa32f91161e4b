"""A search process killed with SIGKILL at an arbitrary step, then resumed from its checkpoint
directory, ends with the same bits as an uninterrupted run (same seed, same thread count)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"

# The child runs a search with a checkpoint after every step, prints each finished step, and
# writes the final result as JSON. Data come from test_training's generator.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
pause_at = int(sys.argv[4])
import loranas
from test_training import make_samples
loranas.set_num_threads(2)
model = loranas.load_model(sys.argv[1])
def progress(e):
    if e["kind"] == "step":
        print("step", e["step"], flush=True)
        if e["step"] == pause_at:      # step done, its checkpoint not yet written: wait to be killed
            time.sleep(120)
result = loranas.search(model, make_samples(24, seed=1), make_samples(6, seed=2), space=(2, 4, 8), epochs=2,
                        batch_size=3, lr=3e-3, alpha_lr=5e-2, seed=7, checkpoint_dir=sys.argv[2] or None,
                        checkpoint_every=1, progress=progress)
print("RESULT", json.dumps({"ranks": result.ranks, "alpha": {k: v.tolist() for k, v in result.alpha_history.items()},
                           "losses": result.train_losses}), flush=True)
"""


def child(ckpt: str, pause_at: int = 0, **kw) -> subprocess.Popen:
    import loranas
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(loranas.__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    env["LORANAS_LIBRARY"] = loranas.library_path()
    return subprocess.Popen([sys.executable, "-c", CHILD, str(TILES4), ckpt, str(Path(__file__).parent), str(pause_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def result_of(p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("kill_after", [3, 11])
def test_sigkill_then_resume_gives_the_same_bits(tmp_path, kill_after):
    reference = result_of(child(""))

    ckpt = tmp_path / "run"
    p = child(str(ckpt), pause_at=kill_after)
    # Kill hard once step `kill_after` is done but before its checkpoint is written, so the resume
    # has to replay it from the previous checkpoint.
    for line in p.stdout:
        if line.strip() == f"step {kill_after}":
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert (ckpt / "state.safetensors").exists()

    resumed = result_of(child(str(ckpt)))
    assert resumed["ranks"] == reference["ranks"]
    assert resumed["losses"] == reference["losses"]
    assert resumed["alpha"] == reference["alpha"]
