"""Calls that hold several handles (search, fine-tune, evaluate) take their locks in one global
order, so two threads passing the same datasets in swapped roles cannot deadlock.

Each scenario runs in a child process with a watchdog: a deadlock makes the child report the
threads that are stuck and exit, instead of hanging pytest. Before the fix (locks taken in
argument order) the "swapped" scenario hung in 9 runs out of 10 within 200 iterations
(about 1.3 s of work per run); it runs 400 here. The "shared" scenario (train == val, and
evaluations beside the searches) guards the order between ``evaluate`` and ``search``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixture at {TILES4}")

ITERATIONS = {"swapped": 400, "shared": 150}
WATCHDOG_SECONDS = 30  # a run without deadlock takes a few seconds

CHILD = r"""
import os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import loranas
from test_training import make_samples, TILES4
scenario, iterations, watchdog = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
loranas.set_num_threads(1)
m1, m2 = loranas.load_model(TILES4), loranas.load_model(TILES4)
a = loranas.Dataset(m1, make_samples(1, seed=1))
b = loranas.Dataset(m1, make_samples(1, seed=2))

def search(model, train, val):
    # tiny: one step, one module type, batch of one
    loranas.search(model, train, val, space=(2,), max_steps=1, batch_size=1, targets="q_proj", side="text")

jobs = {
    # two searches with the datasets in swapped roles
    "swapped": [lambda: search(m1, a, b), lambda: search(m2, b, a)],
    # the same dataset as train and val, beside a search using it and an evaluation on the same model
    "shared": [lambda: search(m1, a, a), lambda: search(m2, b, a), lambda: m1.evaluate(a, batch_size=1),
               lambda: m2.evaluate(b)],
}[scenario]
done = [0] * len(jobs)
errors = []

def loop(k):
    try:
        for i in range(iterations):
            jobs[k]()
            done[k] = i + 1
    except BaseException as exc:
        errors.append(repr(exc))

sys.setswitchinterval(1e-6)  # switch threads as often as possible: widens the race
threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(len(jobs))]
for t in threads:
    t.start()
deadline = time.monotonic() + watchdog
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
stuck = [k for k, t in enumerate(threads) if t.is_alive()]
print("STUCK" if stuck else "DONE", stuck, done, errors, flush=True)
os._exit(1 if stuck or errors else 0)  # no clean shutdown: stuck threads hold locks
"""


@pytest.mark.parametrize("scenario", ["swapped", "shared"])
def test_no_deadlock_between_threads_sharing_datasets(scenario):
    import loranas

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(loranas.__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    env["LORANAS_LIBRARY"] = loranas.library_path()
    args = [sys.executable, "-c", CHILD, str(Path(__file__).parent), scenario, str(ITERATIONS[scenario]),
            str(WATCHDOG_SECONDS)]
    try:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=WATCHDOG_SECONDS + 60)
    except subprocess.TimeoutExpired:  # the child's own watchdog should have fired first
        pytest.fail(f"the child process did not finish in {WATCHDOG_SECONDS + 60} s")
    assert proc.returncode == 0, f"deadlock or error (STUCK [threads] [iterations done]):\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.startswith("DONE [] "), proc.stdout
