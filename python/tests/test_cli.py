"""The loranas-cli binary: help text, inspect on checkpoints written by Python's safetensors
package (F32 and BF16, single file and sharded), model directories, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import f32_to_bf16_bits, write_safetensors

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"


def cli() -> Path:
    for config in ("release", "debug"):
        p = ROOT / ".build" / config / "loranas-cli"
        if p.exists():
            return p
    pytest.skip("loranas-cli is not built (swift build -c release --product loranas-cli)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli()), *args], capture_output=True, text=True, timeout=300)


def test_help_and_version():
    top = run("--help")
    assert top.returncode == 0
    assert "inspect" in top.stdout and "compare" in top.stdout
    assert "Search a LoRA rank" in top.stdout
    sub = run("inspect", "--help")
    assert sub.returncode == 0 and "--json" in sub.stdout and "PATH" in sub.stdout.upper()
    v = run("--version")
    assert v.returncode == 0 and v.stdout.strip().count(".") == 2


def inspect_json(path: Path) -> dict:
    r = run("inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_inspect_f32_single_file(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_file({"a": a, "b": np.ones(5, dtype=np.float32)}, str(tmp_path / "x.safetensors"))
    out = inspect_json(tmp_path / "x.safetensors")
    rows = {t["name"]: t for t in out["tensors"]}
    assert rows["a"] == {"name": "a", "dtype": "F32", "shape": [3, 4], "bytes": 48}
    assert out["total_parameters"] == 17 and out["total_bytes"] == 68
    text = run("inspect", str(tmp_path / "x.safetensors"))
    assert "2 tensors, 17 parameters, 68 bytes" in text.stdout


def test_inspect_bf16(tmp_path):
    x = np.linspace(-2, 2, 10, dtype=np.float32)
    write_safetensors(tmp_path / "h.safetensors", {"w": ("BF16", (2, 5), f32_to_bf16_bits(x).tobytes())})
    out = inspect_json(tmp_path / "h.safetensors")
    assert out["tensors"] == [{"name": "w", "dtype": "BF16", "shape": [2, 5], "bytes": 20}]


def test_inspect_sharded(tmp_path):
    save_file({"a": np.zeros((2, 2), np.float32)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros(3, np.float32)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {"total_size": 28}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    for p in (tmp_path, tmp_path / "model.safetensors.index.json"):
        out = inspect_json(p)
        assert sorted(t["name"] for t in out["tensors"]) == ["a", "b"] and out["total_parameters"] == 7


def test_inspect_model_directory():
    out = inspect_json(FIXTURE)
    assert out["architecture"] == "MllamaForConditionalGeneration"
    assert out["total_parameters"] == sum(out["parameters"].values())
    groups = out["targetable_modules"]
    assert sum(g["count"] for g in groups) == 65          # what PEFT wraps with the nine types
    assert {g["type"] for g in groups} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"}


def test_bad_inputs_give_one_line_errors(tmp_path):
    missing = run("inspect", str(tmp_path / "nope.safetensors"))
    assert missing.returncode != 0 and "no such file" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    hostile = tmp_path / "bad.safetensors"
    hostile.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    bad = run("inspect", str(hostile))
    assert bad.returncode != 0 and "past the end" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--space", "4,x,16"], '"x" is not a positive rank'),
    (["--space", "16,4"], "increasing order"),
    (["--seq-len", "100000000"], "max_position_embeddings"),
    (["--threads", "500"], "--threads must be in 1...64"),
    (["--budget", "1.5"], "--budget must be in (0, 1]"),
])
def test_compare_refuses_bad_options_in_one_line(args, message):
    """Issue 7: `compare` used to drop bad --space entries and abort the process on huge sizes."""
    r = run("compare", str(FIXTURE), "--random-init", *args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr


def test_bad_thread_environment_is_an_error():
    env = dict(os.environ, LORANAS_NUM_THREADS="abc")
    r = subprocess.run([str(cli()), "inspect", str(FIXTURE)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert 'LORANAS_NUM_THREADS="abc"' in r.stderr, r.stderr
