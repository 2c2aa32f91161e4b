"""Ctrl-C (SIGINT) during a search or a fine-tune stops the run at the next step, writes the
checkpoint, and raises KeyboardInterrupt: never a result, never "Exception ignored".

Each case runs a child process, sends it SIGINT mid-run, then resumes from the checkpoint in a
new child and compares with an uninterrupted run (the pattern of test_kill_resume).

The children use one engine thread: with two, the engine's thread pool (lr_pool.c) was seen to
hang now and then (a worker's late decrement of ``remaining`` lost to the next job's reset),
which has nothing to do with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixture at {TILES4}")

TOTAL_STEPS = 64  # 64 samples, batch 2, 2 epochs

# argv: tests dir, model, kind (search | finetune), progress mode (none | true | callable), checkpoint dir or "".
# Prints "step N" after each step (callable and true modes) or RUNNING once the run is in the engine
# (no progress), and the result as JSON. No periodic checkpoints: only the stop (and an epoch end) writes one.
CHILD = r"""
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even if started with SIGINT ignored
sys.path.insert(0, sys.argv[1])
import loranas
from test_training import make_samples
kind, mode, ckpt = sys.argv[3], sys.argv[4], sys.argv[5]
loranas.set_num_threads(1)  # the same for every run (bit-exact resume); see the note at the top
model = loranas.load_model(sys.argv[2])
train = loranas.Dataset(model, make_samples(64, seed=1))
val = loranas.Dataset(model, make_samples(6, seed=2))

def log_step(event):
    if event["kind"] == "step":
        print("step", event["step"], flush=True)

if mode == "callable":
    progress = log_step
elif mode == "true":  # the built-in reporter, spied on to learn the steps
    report = loranas.progress._Reporter.__call__
    def spy(self, event):
        stop = report(self, event)
        log_step(event)
        return stop
    loranas.progress._Reporter.__call__ = spy
    progress = True
else:  # no progress: a thread says when the run is in the engine (the model is marked running)
    progress = None
    import threading, time
    def watch():
        while model._running_thread is None:
            time.sleep(0.001)
        print("RUNNING", flush=True)
    threading.Thread(target=watch, daemon=True).start()
common = dict(epochs=2, batch_size=2, seed=7, checkpoint_dir=ckpt or None, checkpoint_every=1000, progress=progress)
if kind == "search":
    r = loranas.search(model, train, val, space=(2, 4, 8), lr=3e-3, alpha_lr=5e-2, **common)
    out = {"ranks": r.ranks, "train": r.train_losses, "val": r.validation_losses,
           "alpha": {k: v.tolist() for k, v in r.alpha_history.items()}}
else:
    r = loranas.finetune(model, train, val, ranks=4, lr=3e-3, dropout=0.1, **common)
    out = {"ranks": r.ranks, "train": r.train_losses, "evals": r.evaluations}
out["steps"] = r.steps
print("RESULT", json.dumps(out), flush=True)
"""


def start(kind: str, mode: str, ckpt: str = "") -> subprocess.Popen:
    import loranas

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(loranas.__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    env["LORANAS_LIBRARY"] = loranas.library_path()
    return subprocess.Popen([sys.executable, "-c", CHILD, str(Path(__file__).parent), str(TILES4), kind, mode, ckpt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(p: subprocess.Popen) -> tuple[list[int], dict]:
    """The steps a child reported and its result; the child must succeed."""
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
    results = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, out
    return steps, json.loads(results[0][len("RESULT "):])


_references: dict[str, dict] = {}


def reference(kind: str) -> dict:
    """The uninterrupted run's result (computed once per kind)."""
    if kind not in _references:
        _, _references[kind] = finish(start(kind, "none"))
    return _references[kind]


@pytest.mark.parametrize("mode", ["none", "true", "callable"])
@pytest.mark.parametrize("kind", ["search", "finetune"])
def test_ctrl_c_stops_checkpoints_and_raises(tmp_path, kind, mode):
    expected = reference(kind)
    assert expected["steps"] == TOTAL_STEPS

    ckpt = tmp_path / "run"
    p = start(kind, mode, str(ckpt))
    seen: list[int] = []
    for line in p.stdout:
        if line.strip() == "RUNNING":  # no progress: interrupt a little after the run started
            time.sleep(0.05)
            break
        if line.startswith("step "):  # the first step is done: interrupt during the next one,
            seen.append(int(line.split()[1]))
            time.sleep(0.005)  # most likely while the engine computes (a step takes 10 ms or more)
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    seen += [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]

    assert p.returncode != 0 and "KeyboardInterrupt" in err, (p.returncode, err)
    assert "Traceback" in err
    assert "RESULT" not in out, "an interrupted run returned a result"
    assert "Exception ignored" not in err, err
    assert (ckpt / "state.safetensors").is_file(), "no checkpoint written on Ctrl-C"

    # Resume: the first step reported is the one after the checkpoint's, and the end equals an
    # uninterrupted run.
    resumed_steps, resumed = finish(start(kind, "callable", str(ckpt)))
    assert resumed_steps, "the checkpoint is the finished run's: Ctrl-C did not stop it early"
    stopped_at = resumed_steps[0] - 1
    assert 1 <= stopped_at < TOTAL_STEPS - 2, f"the run did not stop early (checkpoint at step {stopped_at})"
    if seen:  # stopped at the step in progress when Ctrl-C came: right after the last one reported
        assert seen[-1] <= stopped_at <= seen[-1] + 1, (seen, stopped_at)
    assert resumed_steps == list(range(stopped_at + 1, TOTAL_STEPS + 1))
    assert resumed == expected
