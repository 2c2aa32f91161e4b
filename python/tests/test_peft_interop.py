"""Adapters cross between the engine and PEFT in both directions, with mixed ranks:

(a) an adapter the engine fine-tuned and exported loads with ``PeftModel.from_pretrained`` with no
    missing or unexpected keys and gives the engine's logits;
(b) an adapter PEFT made (``rank_pattern`` / ``alpha_pattern``, B non-zero) loads into the engine
    and gives PEFT's logits.

Needs torch, transformers and peft (skipped otherwise). Torch runs in float32, eval mode, with the
default attention (sdpa) and no cache.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

torch = pytest.importorskip("torch", reason="the PEFT interop tests need torch")
transformers = pytest.importorskip("transformers", reason="the PEFT interop tests need transformers")
peft = pytest.importorskip("peft", reason="the PEFT interop tests need peft")

import loranas  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"
TILES4 = FIXTURES / "tiles4_gqa"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixtures at {FIXTURES}")

torch.set_num_threads(2)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    assert a.shape == ref.shape, f"shape {a.shape} != {ref.shape}"
    return float(np.linalg.norm(a.astype(np.float64) - ref) / np.linalg.norm(ref.astype(np.float64)))


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return load_file(str(TILES4 / "inputs.safetensors"))


def base_model():
    model = transformers.MllamaForConditionalGeneration.from_pretrained(TILES4, dtype=torch.float32)
    assert model.config._attn_implementation == "sdpa"  # the default, as the fixtures were made
    return model.eval()


def torch_logits(model, inputs) -> np.ndarray:
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, use_cache=False)
    return out.logits.float().numpy()


def synthetic_samples(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        s = int(rng.integers(8, 13))
        ids = np.concatenate([[96], rng.integers(0, 96, s - 1)]).astype(np.int64)
        labels = ids.copy()
        labels[0] = -100
        samples.append({"input_ids": ids, "labels": labels,
                        "pixel_values": rng.standard_normal((1, 4, 3, 12, 12)).astype(np.float32),
                        "aspect_ratio_ids": np.array([6]), "aspect_ratio_mask": np.ones((1, 4), np.int64),
                        "cross_attention_mask": np.ones((s, 1, 4), np.int64)})
    return samples


def test_torch_base_model_matches_the_engine(inputs):
    # the two sides agree before any adapter (so a failure below is about the adapter)
    with loranas.load_model(TILES4) as model:
        engine = model.forward(**inputs).logits
    assert rel_err(engine, torch_logits(base_model(), inputs)) < 1e-5


def test_engine_adapter_loads_in_peft(inputs, tmp_path):
    train, val = synthetic_samples(9, 1), synthetic_samples(3, 2)
    with loranas.load_model(TILES4) as model:
        names = list(loranas.finetune(model, train, val, ranks=2, max_steps=1, batch_size=3).ranks)
        ranks = {name: (2, 4, 8)[i % 3] for i, name in enumerate(names)}  # every module, mixed ranks
        result = loranas.finetune(model, train, val, ranks=ranks, max_steps=3, batch_size=3, lr=1e-2, lora_alpha=12)
        assert result.ranks == ranks
        result.save_peft(tmp_path / "adapter")
        engine = model.forward(**inputs).logits

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert len(saved) == 2 * len(ranks)
    b_norms = [np.abs(v).max() for k, v in saved.items() if ".lora_B." in k]
    assert min(b_norms) > 0  # fine-tuned: every B moved off zero
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["rank_pattern"]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = peft.PeftModel.from_pretrained(base_model(), tmp_path / "adapter").eval()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if any(word in m.lower() for word in ("missing", "unexpected", "mismatch"))], messages

    # PEFT neither drops nor ignores a key: its adapter state is exactly the file's
    state = peft.get_peft_model_state_dict(peft_model)
    assert set(state) == set(saved)
    for key, value in saved.items():
        np.testing.assert_array_equal(state[key].numpy(), value, err_msg=key)
    for module, rank in ranks.items():
        layer = peft_model.get_submodule("base_model.model.model." + module.replace("language_model.model.", "language_model."))
        assert layer.r["default"] == rank, module
        assert layer.scaling["default"] == pytest.approx(12 / rank), module

    err = rel_err(engine, torch_logits(peft_model, inputs))
    print("engine adapter in PEFT: relative error", err)
    assert err < 1e-5


def test_peft_adapter_loads_in_the_engine(inputs, tmp_path):
    torch.manual_seed(0)
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"],
        rank_pattern={
            "down_proj": 8,  # a bare module type: every down_proj
            r"model\.language_model\.layers\.[13]\.cross_attn\.(q_proj|k_proj)": 2,
            r"model\.vision_model\.global_transformer\.layers\.1\.mlp\.fc1": 6,
        },
        alpha_pattern={
            "v_proj": 3,
            r"model\.language_model\.layers\.2\.mlp\.up_proj": 20,
        },
    )
    peft_model = peft.get_peft_model(base_model(), config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                param.normal_(0.0, 0.2)
    peft_model.eval()
    ranks_seen = {m.r["default"] for m in peft_model.modules() if hasattr(m, "r") and isinstance(m.r, dict) and m.r}
    assert ranks_seen == {2, 4, 6, 8}  # the patterns matched something
    expected = torch_logits(peft_model, inputs)
    peft_model.save_pretrained(tmp_path / "peft")

    with loranas.load_model(TILES4) as plain:
        base = plain.forward(**inputs).logits
    assert rel_err(expected, base) > 1e-2  # the adapter matters
    with loranas.load_model(TILES4, adapter=tmp_path / "peft") as model:
        out = model.forward(**inputs)
    err = rel_err(out.logits, expected)
    print("PEFT adapter in the engine: relative error", err)
    assert err < 1e-5
