"""Data-parallel runs under ``mpirun -np 2`` (issue 11): search and fine-tune equal one process on the same global
batches within fp32 summation order (README, "Several processes": relative 1e-4 on losses and perplexities, 1e-4
on α), two runs on two ranks give the same bits, run states move between 1 and 2 ranks, rank 0 alone writes, a
failure on one rank stops every rank with its error, and a killed rank stops the job within seconds.

The tests need Open MPI's mpirun; CI sets LORANAS_REQUIRE_MPI=1 so that a missing mpirun fails instead of
skipping."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import loranas
from test_cauldron_dataset import model_dir, records, write_jsonl  # noqa: F401  (pytest fixtures)
from test_cli_jobs import data, pipeline  # noqa: F401  (pytest fixtures)

HERE = Path(__file__).resolve().parent
TILES4 = HERE.parents[1] / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
MPIRUN = shutil.which("mpirun")
if MPIRUN is None and os.environ.get("LORANAS_REQUIRE_MPI") == "1":
    raise RuntimeError("LORANAS_REQUIRE_MPI=1 but there is no mpirun (apt install openmpi-bin)")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun (Open MPI) on this machine")
TOLERANCE = 1e-4


def environment() -> dict:
    env = dict(os.environ)
    package_parent = str(Path(loranas.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    env["LORANAS_LIBRARY"] = loranas.library_path()
    return env


def mpirun(ranks: int) -> list[str]:
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return [MPIRUN, "-np", str(ranks), "--oversubscribe", *root]


def command(ranks: int, spec: dict) -> list[str]:
    job = [sys.executable, str(HERE / "mpi_job.py"), json.dumps({"model": str(TILES4), **spec})]
    return job if ranks == 1 else mpirun(ranks) + job


def run_job(ranks: int, tmp_path: Path, name: str, **spec) -> dict:
    out = tmp_path / f"{name}.json"
    r = subprocess.run(command(ranks, {"out": str(out), **spec}), capture_output=True, text=True, timeout=300,
                       env=environment())
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result["world"] == [0, ranks]
    return result


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))


def assert_close(one: dict, two: dict) -> None:
    assert one["steps"] == two["steps"]
    assert rel(one["losses"], two["losses"]) < TOLERANCE
    for key in ("val_losses", "perplexity"):
        if key in one:
            assert rel(one[key], two[key]) < TOLERANCE
    if "alpha" in one:
        assert one["ranks"] == two["ranks"]
        for module, history in one["alpha"].items():
            assert np.max(np.abs(np.array(history) - np.array(two["alpha"][module]))) < TOLERANCE


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("one")
    return {job: run_job(1, tmp, job, job=job) for job in ("search", "finetune")}


@pytest.mark.parametrize("job", ["search", "finetune"])
def test_two_ranks_equal_one_process_and_repeat_bit_for_bit(one_process, tmp_path, job):
    two = run_job(2, tmp_path, "a", job=job)
    assert_close(one_process[job], two)
    assert run_job(2, tmp_path, "b", job=job) == two


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
@pytest.mark.parametrize("job", ["search", "finetune"])
def test_a_run_state_resumes_on_another_number_of_ranks(one_process, tmp_path, job, first, then):
    ckpt = str(tmp_path / "ckpt")
    part = run_job(first, tmp_path, "part", job=job, checkpoint_dir=ckpt, max_steps=5)
    assert part["steps"] == 5
    assert_close(one_process[job], run_job(then, tmp_path, "rest", job=job, checkpoint_dir=ckpt))


def test_greedy_generation_split_across_ranks_equals_one_process(tmp_path):
    assert run_job(2, tmp_path, "two", job="generate")["ids"] == run_job(1, tmp_path, "one", job="generate")["ids"]


def test_rank_zero_alone_writes_the_adapter(tmp_path):
    adapter = tmp_path / "adapter"
    run_job(2, tmp_path, "ft", job="finetune", max_steps=2, adapter=str(adapter))
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_different_data_on_one_rank_is_an_error_on_every_rank(tmp_path):
    r = subprocess.run(command(2, {"job": "search", "out": str(tmp_path / "x.json"), "fail_rank": 1}),
                       capture_output=True, text=True, timeout=120, env=environment())
    assert r.returncode != 0
    assert "rank 1: this rank's options and data differ from rank 0's" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_an_uncaught_exception_on_one_rank_stops_every_rank(tmp_path):
    """Rank 1's script raises while rank 0 is already in the search: the excepthook aborts the whole job."""
    start = time.monotonic()
    r = subprocess.run(command(2, {"job": "search", "out": str(tmp_path / "x.json"), "raise_rank": 1}),
                       capture_output=True, text=True, timeout=120, env=environment())
    assert time.monotonic() - start < 60
    assert r.returncode != 0
    assert "RuntimeError: a bug in rank 1's script" in r.stderr
    assert "rank 1 of 2: uncaught RuntimeError" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_a_killed_rank_stops_the_job_and_the_last_run_state_resumes(one_process, tmp_path):
    ckpt = tmp_path / "ckpt"
    pid_file = tmp_path / "rank1.pid"
    spec = {"job": "search", "out": str(tmp_path / "killed.json"), "checkpoint_dir": str(ckpt), "pause_at": 3,
            "pid_file": str(pid_file)}
    p = subprocess.Popen(command(2, spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=environment())
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline and p.poll() is None, "rank 1 never reached step 3"
            time.sleep(0.1)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        start = time.monotonic()
        rest, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert time.monotonic() - start < 30
    assert p.returncode != 0
    assert "exited on signal 9" in rest
    assert not (tmp_path / "killed.json").exists()
    assert_close(one_process["search"], run_job(1, tmp_path, "resumed", job="search", checkpoint_dir=str(ckpt)))


def test_cli_search_and_eval_under_mpirun(pipeline, model_dir, data, tmp_path):
    """`mpirun -np 2 loranas search|eval` on a pack and a JSONL with images: the search ends at the one-process
    ranks and losses, evaluation at its perplexity and the very same answers; rank 0 alone prints."""
    from test_cli import cli
    from test_cli_jobs import SEARCH

    def mpi_cli(*args):
        r = subprocess.run(mpirun(2) + [str(cli()), *map(str, args)], capture_output=True, text=True,
                           timeout=600, env=environment())
        assert r.returncode == 0, r.stderr
        assert r.stderr.count("loranas: 2 processes × 1 threads; rank 0 of 2 (Open MPI") == 1, r.stderr
        return json.loads(r.stdout)

    search = mpi_cli("search", model_dir, "--train", data["train"], "--val", data["val"], *SEARCH,
                     "-o", tmp_path / "search.json", "--json")
    assert search["ranks"] == pipeline["search"]["ranks"]
    assert rel(search["train_losses"], pipeline["search"]["train_losses"]) < TOLERANCE
    assert json.loads((tmp_path / "search.json").read_text())["ranks"] == search["ranks"]
    ev = mpi_cli("eval", model_dir, "--data", data["val"], "--adapter", pipeline["dir"] / "adapter", "--json",
                 "--threads", "1")
    assert rel(ev["perplexity"], pipeline["eval"]["perplexity"]) < TOLERANCE
    assert ev["tokens"] == pipeline["eval"]["tokens"]
    assert ev["answers"] == pipeline["eval"]["answers"]
