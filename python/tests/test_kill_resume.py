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
import json, sys
sys.path.insert(0, sys.argv[3])
import loranas
from test_training import make_samples
loranas.set_num_threads(2)
model = loranas.load_model(sys.argv[1])
def progress(e):
    if e["kind"] == "step":
        print("step", e["step"], flush=True)
result = loranas.search(model, make_samples(24, seed=1), make_samples(6, seed=2), space=(2, 4, 8), epochs=2,
                        batch_size=3, lr=3e-3, alpha_lr=5e-2, seed=7, checkpoint_dir=sys.argv[2] or None,
                        checkpoint_every=1, progress=progress)
print("RESULT", json.dumps({"ranks": result.ranks, "alpha": {k: v.tolist() for k, v in result.alpha_history.items()},
                           "losses": result.train_losses}), flush=True)
"""


def child(ckpt: str, **kw) -> subprocess.Popen:
    import loranas
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(loranas.__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    env["LORANAS_LIBRARY"] = loranas.library_path()
    return subprocess.Popen([sys.executable, "-c", CHILD, str(TILES4), ckpt, str(Path(__file__).parent)],
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
    p = child(str(ckpt))
    # Kill hard once `kill_after` steps have been reported: the child is then inside the next step
    # or inside writing a checkpoint (a temporary file that a resume never reads).
    for line in p.stdout:
        if line.startswith("step") and int(line.split()[1]) >= kill_after:
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert (ckpt / "state.safetensors").exists()

    resumed = result_of(child(str(ckpt)))
    assert resumed["ranks"] == reference["ranks"]
    assert resumed["losses"] == reference["losses"]
    assert resumed["alpha"] == reference["alpha"]
