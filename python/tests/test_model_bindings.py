"""The model functions of the C ABI through the raw ctypes bindings (loranas_batch layout included),
on the repository's transformers fixtures."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from loranas import _bindings as B
from loranas.errors import check

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"
TILE1 = FIXTURES / "tile1_bf16"
needs_fixtures = pytest.mark.skipif(not (TILE1 / "config.json").is_file(), reason=f"no fixtures at {FIXTURES}")


def _i64(x: np.ndarray | None):
    return None if x is None else x.ctypes.data_as(B.c_int64_p)


def _batch(inputs: dict[str, np.ndarray], keep: list) -> B.loranas_batch:
    """A loranas_batch over `inputs`; the arrays are appended to `keep` so they outlive the call."""
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32 if k == "pixel_values" else np.int64)
              for k, v in inputs.items()}
    keep.append(arrays)
    b, s = arrays["input_ids"].shape
    batch = B.loranas_batch(batch_size=b, seq_len=s)
    batch.input_ids = _i64(arrays["input_ids"])
    batch.attention_mask = _i64(arrays.get("attention_mask"))
    batch.labels = _i64(arrays.get("labels"))
    if "pixel_values" in arrays:
        _, i, t, c, h, w = arrays["pixel_values"].shape
        batch.num_images, batch.num_tiles, batch.channels, batch.height, batch.width = i, t, c, h, w
        batch.pixel_values = arrays["pixel_values"].ctypes.data_as(B.c_float_p)
        batch.aspect_ratio_ids = _i64(arrays["aspect_ratio_ids"])
        batch.aspect_ratio_mask = _i64(arrays["aspect_ratio_mask"])
        batch.cross_attention_mask = _i64(arrays["cross_attention_mask"])
    return batch


@pytest.fixture(scope="module")
def model():
    handle = B.loranas_model_p()
    check(B.loranas_model_load(str(TILE1).encode(), None, ctypes.byref(handle)), "loranas_model_load")
    assert handle.value
    yield handle.value
    B.loranas_model_free(handle.value)


def _forward(model, inputs, vocab):
    keep: list = []
    batch = _batch(inputs, keep)
    b, s = inputs["input_ids"].shape
    logits = np.full((b, s, vocab), np.nan, np.float32)
    loss = ctypes.c_float(-1.0)
    has_loss = ctypes.c_int32(-1)
    check(B.loranas_model_forward(model, ctypes.byref(batch), logits.ctypes.data_as(B.c_float_p), logits.size,
                                  ctypes.byref(loss), ctypes.byref(has_loss)), "loranas_model_forward")
    return logits, loss.value, has_loss.value


def test_model_load_missing(tmp_path):
    missing = tmp_path / "no-model"
    handle = B.loranas_model_p()
    status = B.loranas_model_load(str(missing).encode(), None, ctypes.byref(handle))
    assert status in (B.LORANAS_ERR_IO, B.LORANAS_ERR_NOT_FOUND)
    assert not handle.value
    assert str(missing).encode() in B.loranas_last_error()


def test_model_null_handle():
    needed = ctypes.c_int64()
    assert B.loranas_model_describe(None, None, 0, ctypes.byref(needed)) == B.LORANAS_ERR_INVALID_ARGUMENT
    logits = np.zeros(4, np.float32)
    assert B.loranas_model_forward(None, None, logits.ctypes.data_as(B.c_float_p), 4, None, None) \
        == B.LORANAS_ERR_INVALID_ARGUMENT
    B.loranas_model_free(None)


@needs_fixtures
def test_describe_buffer_protocol(model):
    needed = ctypes.c_int64(-1)
    small = ctypes.create_string_buffer(4)
    assert B.loranas_model_describe(model, small, 4, ctypes.byref(needed)) == B.LORANAS_ERR_BUFFER_TOO_SMALL
    assert needed.value > 4
    buf = ctypes.create_string_buffer(needed.value + 1)
    check(B.loranas_model_describe(model, buf, needed.value + 1, ctypes.byref(needed)), "describe")
    summary = json.loads(buf.raw[: needed.value].decode())
    assert isinstance(summary, dict) and summary
    config = json.loads((TILE1 / "config.json").read_text())
    assert str(config["text_config"]["vocab_size"]) in json.dumps(summary)


@needs_fixtures
@pytest.mark.parametrize("case", ["inputs", "inputs_text_only"])
def test_forward_matches_transformers(model, case):
    inputs = load_file(str(TILE1 / f"{case}.safetensors"))
    reference = load_file(str(TILE1 / f"reference{case.removeprefix('inputs')}.safetensors"))
    vocab = reference["logits"].shape[-1]
    logits, loss, has_loss = _forward(model, inputs, vocab)
    # atol = rtol = 1e-4, as for the PEFT fixture comparisons (STYLE.md)
    np.testing.assert_allclose(logits, reference["logits"], rtol=1e-4, atol=1e-4)
    assert has_loss == 1
    np.testing.assert_allclose(loss, reference["loss"][0], rtol=1e-4, atol=1e-4)


@needs_fixtures
def test_forward_without_labels_and_bad_count(model):
    inputs = load_file(str(TILE1 / "inputs_text_only.safetensors"))
    reference = load_file(str(TILE1 / "reference_text_only.safetensors"))
    del inputs["labels"]
    logits, _, has_loss = _forward(model, inputs, reference["logits"].shape[-1])
    assert has_loss == 0
    np.testing.assert_allclose(logits, reference["logits"], rtol=1e-4, atol=1e-4)

    keep: list = []
    batch = _batch(inputs, keep)
    short = np.zeros(reference["logits"].size - 1, np.float32)
    status = B.loranas_model_forward(model, ctypes.byref(batch), short.ctypes.data_as(B.c_float_p), short.size,
                                     None, None)
    assert status == B.LORANAS_ERR_INVALID_ARGUMENT
    assert str(short.size).encode() in B.loranas_last_error()
