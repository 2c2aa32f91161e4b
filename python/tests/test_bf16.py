"""The bfloat16 mode (issue 12, first cut): load_model(dtype="bfloat16") rounds the frozen linear weights to bf16
and runs them on the CPU's bf16 matrix units with fp32 sums. Its logits are checked against transformers run as
CPU users run it (bf16 weights, torch.autocast bf16), with the tolerance measured here; searches and fine-tunes
on bf16 reach fp32's ranks and perplexity within 0.5%."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loranas
from test_training import SPACE, TRAIN, VAL, make_samples

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TILES4 = Path(__file__).resolve().parents[2] / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
# max |logits - transformers' autocast logits| / max |logits|, measured 1.3e-2 (AMX); ours is 1.8e-2 from exact fp32
# and autocast 2.3e-2 (autocast also rounds every GEMM's output to bf16, we keep fp32 sums). Both are bf16's
# 8-bit mantissa on each linear's inputs over this fixture's layers; the bound leaves room for other CPUs.
TOLERANCE = 3e-2


def batch(n=3):
    samples = make_samples(n, seed=9)
    keys = ("input_ids", "attention_mask", "pixel_values", "aspect_ratio_ids", "aspect_ratio_mask",
            "cross_attention_mask")
    return {k: np.stack([s[k][:8] if k in ("input_ids", "attention_mask", "cross_attention_mask") else s[k]
                         for s in samples]) for k in keys}


def hf_logits(inputs, autocast: bool) -> np.ndarray:
    dtype = torch.bfloat16 if autocast else torch.float32
    model = transformers.MllamaForConditionalGeneration.from_pretrained(TILES4, dtype=dtype).eval()
    args = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    if autocast:
        args["pixel_values"] = args["pixel_values"].to(torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return model(**args).logits.float().numpy()


def rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_bf16_logits_are_within_the_tolerance_of_transformers_autocast():
    inputs = batch()
    with loranas.load_model(TILES4, dtype="bfloat16") as model:
        assert model.compute.startswith("bfloat16 weights")
        ours = model.forward(**inputs).logits
    with loranas.load_model(TILES4) as model:
        fp32 = model.forward(**inputs).logits
    autocast, exact = hf_logits(inputs, autocast=True), hf_logits(inputs, autocast=False)
    assert rel(ours, autocast) < TOLERANCE
    assert rel(fp32, exact) < 1e-5
    assert rel(ours, exact) > 1e-5, "bfloat16 mode computed exactly like float32: it did not switch"


def test_search_and_finetune_in_bf16_match_fp32():
    """The issue's criterion: the same ranks, or the fine-tuned eval perplexity within 0.5% (measured: ranks differ
    on this random fixture's near ties, perplexity 108.11 against 108.32, 0.19%)."""
    def run(dtype):
        with loranas.load_model(TILES4, dtype=dtype) as model:
            loranas.set_num_threads(1)
            s = loranas.search(model, TRAIN, VAL, space=SPACE, max_steps=4, batch_size=3, lr=1e-2, seed=3)
            f = loranas.finetune(model, make_samples(12, seed=5), VAL, ranks=s, epochs=1, batch_size=3, lr=1e-2,
                                 seed=3)
            return s.ranks, f.eval_perplexity[-1]
    (ranks32, ppl32), (ranks16, ppl16) = run("float32"), run("bfloat16")
    assert len(ranks16) == len(ranks32)
    assert abs(ppl16 - ppl32) / ppl32 < 5e-3  # stricter than the "same ranks or within 0.5%"


def test_bf16_weights_export_as_computed_and_bf16_checkpoints_load_as_stored(tmp_path):
    """The bf16 mode keeps only the packed bf16 weights (their float32 storage is given back and reads zero), so
    exports unpack them: the linear weights as torch rounds them, everything else as loaded. Reloading that export
    computes the same logits; a bf16 checkpoint loads bit for bit (neither widened nor rounded again)."""
    from safetensors.torch import load_file

    inputs = batch(2)
    with loranas.load_model(TILES4, dtype="bfloat16") as model:
        first = model.forward(**inputs).logits
        model.save_merged(tmp_path / "f32")
        model.save_merged(tmp_path / "b16", dtype="bfloat16")
    original = load_file(TILES4 / "model.safetensors")
    exported = load_file(tmp_path / "f32" / "model.safetensors")
    linear = {n for n, t in original.items() if t.dim() == 2 and "embed" not in n and n.endswith(".weight")}
    assert "language_model.lm_head.weight" in linear and len(linear) > 20
    for name, tensor in original.items():
        expected = tensor.to(torch.bfloat16).float() if name in linear else tensor
        assert torch.equal(exported[name], expected), name
    with loranas.load_model(tmp_path / "f32", dtype="bfloat16") as model:
        assert np.array_equal(model.forward(**inputs).logits, first)
    with loranas.load_model(tmp_path / "b16", dtype="bfloat16") as model:
        model.save_merged(tmp_path / "again")
    stored = load_file(tmp_path / "b16" / "model.safetensors")
    again = load_file(tmp_path / "again" / "model.safetensors")
    for name, tensor in stored.items():
        assert torch.equal(again[name], tensor.float()), name


def test_bad_dtype_is_refused():
    with pytest.raises(loranas.InvalidArgumentError, match="dtype must be"):
        loranas.load_model(TILES4, dtype="float16")


def test_pretraining_a_bf16_model_is_refused():
    with loranas.load_model(TILES4, dtype="bfloat16") as model:
        with pytest.raises(loranas.InvalidArgumentError, match="needs a float32 model"):
            loranas.pretrain(model, TRAIN, VAL, max_steps=1, batch_size=3)
