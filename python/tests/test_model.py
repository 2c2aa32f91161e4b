"""loranas.load_model / Model on the repository's transformers fixtures: forward against
transformers' logits and loss, adapters, evaluation, input checks and handle ownership."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import loranas
from helpers import run_threads

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"
TILES4 = FIXTURES / "tiles4_gqa"
TILE1 = FIXTURES / "tile1_bf16"
SHARDED = FIXTURES / "tiles4_gqa_sharded"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixtures at {FIXTURES}")


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    assert a.shape == ref.shape, f"shape {a.shape} != {ref.shape}"
    return float(np.linalg.norm(a.astype(np.float64) - ref) / np.linalg.norm(ref.astype(np.float64)))


@pytest.fixture(scope="module")
def tiles4():
    with loranas.load_model(TILES4) as model:
        yield model


@pytest.fixture(scope="module")
def tiles4_inputs():
    return load_file(str(TILES4 / "inputs.safetensors"))


@pytest.mark.parametrize("case", [
    (TILES4, "inputs", "reference"),
    (SHARDED, "inputs", "reference"),
    (TILE1, "inputs", "reference"),
    (TILE1, "inputs_text_only", "reference_text_only"),
], ids=["tiles4_gqa", "tiles4_gqa_sharded", "tile1_bf16", "tile1_bf16_text_only"])
def test_forward_matches_transformers(case):
    model_dir, inputs_name, reference_name = case
    data_dir = TILES4 if model_dir == SHARDED else model_dir
    inputs = load_file(str(data_dir / f"{inputs_name}.safetensors"))
    reference = load_file(str(data_dir / f"{reference_name}.safetensors"))
    if inputs_name == "inputs_text_only":
        assert "pixel_values" not in inputs  # really the text-only path
    with loranas.load_model(model_dir) as model:
        out = model.forward(**inputs)
    assert out.logits.dtype == np.float32 and out.logits.flags.c_contiguous
    assert rel_err(out.logits, reference["logits"]) < 1e-5
    assert isinstance(out.loss, float)
    assert abs(out.loss - float(reference["loss"][0])) < 1e-5


def test_config_describes_the_model(tiles4):
    config = tiles4.config
    hf = json.loads((TILES4 / "config.json").read_text())
    assert config["text"]["vocab_size"] == hf["text_config"]["vocab_size"] == tiles4.vocab_size
    assert config["vision"]["max_num_tiles"] == hf["vision_config"]["max_num_tiles"]
    assert config["image_token_index"] == hf["image_token_index"]
    assert config["total_parameters"] == sum(config["parameters"].values())
    assert sum(g["count"] for g in config["targetable_modules"]) == 65
    config["text"]["vocab_size"] = -1  # a copy: the model's own is untouched
    assert tiles4.config["text"]["vocab_size"] == hf["text_config"]["vocab_size"]


def test_forward_without_labels_has_no_loss(tiles4, tiles4_inputs):
    with_labels = tiles4.forward(**tiles4_inputs)
    inputs = dict(tiles4_inputs)
    del inputs["labels"]
    out = tiles4.forward(**inputs)
    assert out.loss is None
    np.testing.assert_array_equal(out.logits, with_labels.logits)
    np.testing.assert_array_equal(tiles4(**inputs).logits, out.logits)  # __call__ is forward


def test_forward_converts_dtypes_and_layouts(tiles4, tiles4_inputs):
    expected = tiles4.forward(**tiles4_inputs).logits
    converted = {k: (np.asfortranarray(v.astype(np.float64)) if k == "pixel_values" else v.astype(np.int32))
                 for k, v in tiles4_inputs.items()}
    converted["attention_mask"] = tiles4_inputs["attention_mask"].astype(bool)
    np.testing.assert_array_equal(tiles4.forward(**converted).logits, expected)


def test_batch_rows_are_independent(tiles4, tiles4_inputs):
    full = tiles4.forward(**tiles4_inputs).logits
    for i in range(full.shape[0]):
        row = tiles4.forward(**{k: v[i:i + 1] for k, v in tiles4_inputs.items()}).logits
        assert rel_err(row[0], full[i]) < 1e-5, f"sample {i}"


# ---- bad inputs --------------------------------------------------------------------------------

def _with(inputs, **changes):
    out = dict(inputs)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _bad_cases(inputs):
    ids_high = inputs["input_ids"].copy()
    ids_high[0, 3] = 1000
    ids_negative = inputs["input_ids"].copy()
    ids_negative[1, 0] = -5
    labels_high = inputs["labels"].copy()
    labels_high[0, 4] = 96
    ar_high = inputs["aspect_ratio_ids"].copy()
    ar_high[0, 0] = 9
    nan_pixels = inputs["pixel_values"].copy()
    nan_pixels[0, 0, 0, 0, 0, 0] = np.nan
    mask_two = inputs["attention_mask"].copy()
    mask_two[0, 0] = 2
    t3 = {k: inputs[k][:, :, :3] for k in ("pixel_values", "aspect_ratio_mask")}
    t3["cross_attention_mask"] = inputs["cross_attention_mask"][..., :3]
    return {
        # (changes, words the message must contain)
        "1-D input_ids": (dict(input_ids=inputs["input_ids"][0]), ["input_ids", "2-D", "[None]"]),
        "float input_ids": (dict(input_ids=inputs["input_ids"].astype(np.float32)), ["input_ids", "integers"]),
        "short attention_mask": (dict(attention_mask=inputs["attention_mask"][:, :5]), ["attention_mask", "(3, 14)"]),
        "labels of another batch": (dict(labels=inputs["labels"][:2]), ["labels", "(3, 14)"]),
        "pixel_values without batch": (dict(pixel_values=inputs["pixel_values"][0]), ["pixel_values", "6-D"]),
        "cross_attention_mask images": (dict(cross_attention_mask=inputs["cross_attention_mask"][:, :, :1]),
                                        ["cross_attention_mask", "(3, 14, 2, 4)"]),
        "aspect_ratio_ids shape": (dict(aspect_ratio_ids=inputs["aspect_ratio_ids"][:, :1]), ["aspect_ratio_ids", "(3, 2)"]),
        "missing aspect_ratio_mask": (dict(aspect_ratio_mask=None), ["aspect_ratio_mask", "required"]),
        "missing cross_attention_mask": (dict(cross_attention_mask=None), ["cross_attention_mask", "required"]),
        "images without pixel_values": (dict(pixel_values=None), ["without pixel_values"]),
        "token id past the embedding table": (dict(input_ids=ids_high), ["input_ids", "1000"]),
        "negative token id": (dict(input_ids=ids_negative), ["input_ids", "-5"]),
        "label past the vocabulary": (dict(labels=labels_high), ["labels", "96"]),
        "aspect ratio id": (dict(aspect_ratio_ids=ar_high), ["aspect_ratio_ids", "9"]),
        "NaN pixel": (dict(pixel_values=nan_pixels), ["pixel_values", "NaN"]),
        "attention_mask value": (dict(attention_mask=mask_two), ["attention_mask", "0 or 1"]),
        "3 tiles for a 4-tile model": (t3, ["pixel_values", "(4, 3, 12, 12)"]),
        "string input_ids": (dict(input_ids=np.array([["a", "b"]])), ["input_ids", "integers"]),
    }


@pytest.mark.parametrize("name", list(_bad_cases(load_file(str(TILES4 / "inputs.safetensors")))
                                  if (TILES4 / "inputs.safetensors").is_file() else []))
def test_bad_inputs_raise_clean_errors(tiles4, tiles4_inputs, name):
    changes, words = _bad_cases(tiles4_inputs)[name]
    with pytest.raises(ValueError) as info:
        tiles4.forward(**_with(tiles4_inputs, **changes))
    assert isinstance(info.value, loranas.InvalidArgumentError)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    # the model still works afterwards
    assert tiles4.forward(**tiles4_inputs).loss is not None


def test_none_where_required(tiles4, tiles4_inputs):
    with pytest.raises(loranas.InvalidArgumentError, match="input_ids is required"):
        tiles4.forward(None)
    with pytest.raises(loranas.InvalidArgumentError, match="input_ids is required"):
        tiles4.forward(input_ids=None, labels=tiles4_inputs["labels"])
    with pytest.raises(TypeError):
        loranas.load_model(None)
    with pytest.raises(TypeError):
        tiles4.load_adapter(None)


def test_missing_model_raises_not_found(tmp_path):
    missing = tmp_path / "no-model"
    with pytest.raises(loranas.NotFoundError) as info:
        loranas.load_model(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(loranas.NotFoundError, match="adapter_config.json"):
        loranas.load_model(TILES4, adapter=tmp_path / "no-adapter")


def test_malformed_model_raises_format_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(loranas.FormatError):
        loranas.load_model(tmp_path)


# ---- adapters ----------------------------------------------------------------------------------

def test_peft_fixture_adapter_matches_peft(tiles4_inputs):
    reference = load_file(str(TILES4 / "peft" / "reference.safetensors"))
    with loranas.load_model(TILES4, adapter=TILES4 / "peft") as model:
        out = model.forward(**tiles4_inputs)
    assert rel_err(out.logits, reference["logits"]) < 1e-5
    assert abs(out.loss - float(reference["loss"][0])) < 1e-5


def test_save_adapter_merged_and_clear(tmp_path, tiles4_inputs):
    base = load_file(str(TILES4 / "reference.safetensors"))["logits"]
    with loranas.load_model(TILES4, adapter=TILES4 / "peft") as model:
        adapted = model.forward(**tiles4_inputs).logits
        assert rel_err(adapted, base) > 1e-3  # the adapter changes the output

        model.save_adapter(tmp_path / "adapter")
        assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
        model.save_merged(tmp_path / "merged")

        model.clear_adapters()
        assert rel_err(model.forward(**tiles4_inputs).logits, base) < 1e-5
        with pytest.raises(loranas.InvalidArgumentError, match="no LoRA adapters"):
            model.save_adapter(tmp_path / "empty")

        model.load_adapter(tmp_path / "adapter")  # the saved adapter reloads exactly
        np.testing.assert_array_equal(model.forward(**tiles4_inputs).logits, adapted)

    with loranas.load_model(tmp_path / "merged") as merged:
        # merged weights round the sum W + s·BA once: atol = rtol = 1e-4 as in PEFT's merge tests
        np.testing.assert_allclose(merged.forward(**tiles4_inputs).logits, adapted, rtol=1e-4, atol=1e-4)


def test_evaluate_matches_the_batch_loss(tiles4, tiles4_inputs):
    reference = load_file(str(TILES4 / "reference.safetensors"))
    samples = [{k: v[i] for k, v in tiles4_inputs.items()} for i in range(3)]
    targets = int(sum((s["labels"][1:] != -100).sum() for s in samples))  # the shift drops the first label
    result = tiles4.evaluate(samples, batch_size=3)
    assert set(result) == {"loss", "perplexity", "mean_batch_loss", "mean_batch_perplexity", "tokens"}
    assert result["tokens"] == targets
    assert abs(result["loss"] - float(reference["loss"][0])) < 1e-5  # one batch: HF's loss is token-weighted
    assert result["perplexity"] == pytest.approx(np.exp(result["loss"]), rel=1e-12)

    per_sample = tiles4.evaluate(loranas.Dataset(tiles4, samples), batch_size=1)
    assert per_sample["tokens"] == targets
    assert abs(per_sample["loss"] - result["loss"]) < 1e-5
    losses = [tiles4.forward(**{k: v[i:i + 1] for k, v in tiles4_inputs.items()}).loss for i in range(3)]
    assert per_sample["mean_batch_loss"] == pytest.approx(np.mean(losses), abs=1e-5)
    assert per_sample["mean_batch_perplexity"] == pytest.approx(np.exp(per_sample["mean_batch_loss"]), rel=1e-12)
    with pytest.raises(loranas.InvalidArgumentError, match="batch_size"):
        tiles4.evaluate(samples, batch_size=0)


def test_evaluate_batch_size_limits(tiles4, tiles4_inputs):
    samples = [{k: v[i] for k, v in tiles4_inputs.items()} for i in range(3)]
    for bad in (0, -1):
        with pytest.raises(loranas.InvalidArgumentError, match=f"batch_size must be positive, got {bad}"):
            tiles4.evaluate(samples, batch_size=bad)
    # the engine takes batch_size < 2^20: a large value is too large, not "not positive"
    for bad in (2**20, 10**9, 10**30):
        message = rf"batch_size must be less than 2\^20 \(1048576\), got {bad}"
        with pytest.raises(loranas.InvalidArgumentError, match=message) as info:
            tiles4.evaluate(samples, batch_size=bad)
        assert "positive" not in str(info.value)
    with pytest.raises(loranas.InvalidArgumentError, match="batch_size must be an int"):
        tiles4.evaluate(samples, batch_size=2.0)
    # the largest accepted value works (one batch holding every sample)
    assert tiles4.evaluate(samples, batch_size=2**20 - 1) == pytest.approx(tiles4.evaluate(samples, batch_size=3))


def test_evaluate_with_an_overflowing_perplexity(tmp_path, tiles4_inputs):
    # lm_head scaled up: logits in the thousands, loss > 709, so exp(loss) overflows to infinity
    tensors = load_file(str(TILES4 / "model.safetensors"))
    tensors["language_model.lm_head.weight"] = tensors["language_model.lm_head.weight"] * 2000
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_bytes((TILES4 / "config.json").read_bytes())
    samples = [{k: v[i] for k, v in tiles4_inputs.items()} for i in range(3)]
    with loranas.load_model(tmp_path) as model:
        assert model.forward(**tiles4_inputs).loss > 1000
        result = model.evaluate(samples)
    assert result["loss"] > 1000 and result["perplexity"] == float("inf")


# ---- ownership and threads ---------------------------------------------------------------------

def test_close_is_idempotent_and_final(tiles4_inputs):
    model = loranas.load_model(TILES4)
    assert not model.closed and "open" in repr(model)
    model.close()
    model.close()
    assert model.closed and "closed" in repr(model)
    with pytest.raises(ValueError, match="closed"):
        model.forward(**tiles4_inputs)
    with pytest.raises(ValueError, match="closed"):
        model.clear_adapters()
    with pytest.raises(ValueError, match="closed"):
        loranas.Dataset(model)
    with loranas.load_model(TILES4) as model2:
        pass
    assert model2.closed


def test_concurrent_forwards_agree(tiles4, tiles4_inputs):
    expected = tiles4.forward(**tiles4_inputs).logits
    results = [None] * 4

    def work(i):
        results[i] = tiles4.forward(**tiles4_inputs).logits

    run_threads(work, 4)
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_close_waits_for_a_call_in_progress(tiles4_inputs):
    model = loranas.load_model(TILES4)
    started, finished = threading.Event(), []

    def work():
        with model._use():  # what every call holds while in the engine
            started.set()
            finished.append(model.forward(**tiles4_inputs).loss)  # the lock is reentrant

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    model.close()  # blocks until work() leaves the lock
    t.join()
    assert finished and finished[0] is not None and model.closed
