"""Issue 7, defect 5: killing ``save_adapter`` over an existing adapter must never leave the new
weights beside the old adapter_config.json. A child process saves adapters A and B over each
other in a loop and is killed with SIGKILL at random moments; after each kill the directory must load as
exactly A or exactly B (judged by the evaluation they give), never as a mix."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import loranas

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
PEFT = TILES4 / "peft"

# The child saves A and B over each other in turn, so that every save is a change of adapter.
CHILD = r"""
import sys
import loranas
a = loranas.load_model(sys.argv[1], adapter=sys.argv[2])
b = loranas.load_model(sys.argv[1], adapter=sys.argv[3])
print("ready", flush=True)
while True:
    a.save_adapter(sys.argv[4])
    b.save_adapter(sys.argv[4])
"""


def make_adapter_b(path: Path) -> None:
    """Adapter A with every lora_B halved and every alpha (and lora_alpha) times four."""
    st = pytest.importorskip("safetensors.numpy")
    path.mkdir()
    tensors = st.load_file(str(PEFT / "adapter_model.safetensors"))
    st.save_file({k: (v * 0.5 if "lora_B" in k else v) for k, v in tensors.items()},
                 str(path / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((PEFT / "adapter_config.json").read_text())
    config["lora_alpha"] = config["lora_alpha"] * 4
    config["alpha_pattern"] = {k: v * 4 for k, v in config["alpha_pattern"].items()}
    (path / "adapter_config.json").write_text(json.dumps(config))


def perplexity(model, adapter: Path, samples) -> float:
    model.load_adapter(adapter)
    return model.evaluate(samples)["perplexity"]


def test_killed_save_leaves_old_or_new_adapter_never_a_mix(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import make_samples

    samples = make_samples(4, seed=3)
    b = tmp_path / "b"
    make_adapter_b(b)
    target = tmp_path / "adapter"
    shutil.copytree(PEFT, target)
    model = loranas.load_model(TILES4)
    ppl_a = perplexity(model, PEFT, samples)
    ppl_b = perplexity(model, b, samples)
    assert abs(ppl_a - ppl_b) > 1e-3 * ppl_a, "A and B must be told apart"

    env = dict(os.environ)
    package_parent = str(Path(loranas.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    env["LORANAS_LIBRARY"] = loranas.library_path()
    rng = random.Random(0)
    seen = {"a": 0, "b": 0}
    for trial in range(10):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(TILES4), str(PEFT), str(b), str(target)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(rng.uniform(0.01, 0.2))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        got = perplexity(model, target, samples)
        matches = [name for name, ppl in (("a", ppl_a), ("b", ppl_b)) if np.isclose(got, ppl, rtol=1e-6)]
        assert matches, f"trial {trial}: the adapter loads as neither A ({ppl_a}) nor B ({ppl_b}) but {got}"
        seen[matches[0]] += 1
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".adapter.")]
    assert seen["a"] > 0 and seen["b"] > 0, seen
    # Staging directories of killed writes are hidden siblings; nothing else is left in the target.
    assert sorted(os.listdir(target)) == ["adapter_config.json", "adapter_model.safetensors"] + \
        (["reference.safetensors"] if (target / "reference.safetensors").exists() else []), leftovers
