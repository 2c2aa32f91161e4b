"""Model.generate against transformers' ``MllamaForConditionalGeneration.generate``: greedy token for token
on the fixtures (images, several images, rows before the image token, text only, left-padded batches, a
PEFT adapter), stop tokens, seeded sampling, the images + prompt shortcut, and argument errors.

Needs torch, transformers and peft (skipped otherwise). Torch runs in float32 with its defaults (sdpa,
DynamicCache).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

torch = pytest.importorskip("torch", reason="the generation tests need torch")
transformers = pytest.importorskip("transformers", reason="the generation tests need transformers")

import loranas  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "LoRANASTests" / "Fixtures" / "mllama"
TILES4 = FIXTURES / "tiles4_gqa"
TILE1 = FIXTURES / "tile1_bf16"
pytestmark = pytest.mark.skipif(not (TILES4 / "config.json").is_file(), reason=f"no fixtures at {FIXTURES}")

torch.set_num_threads(2)
IMAGE_KEYS = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")


def text_config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())["text_config"]


def hf_model(model_dir: Path, adapter: Path | None = None):
    model = transformers.MllamaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    if adapter is not None:
        peft = pytest.importorskip("peft", reason="the adapter test needs peft")
        model = peft.PeftModel.from_pretrained(model, adapter).eval()
    return model


def hf_generate(model, inputs: dict, max_new_tokens: int, eos: list[int], pad: int) -> np.ndarray:
    """transformers' greedy generate, told the eos and pad ids and nothing that stops it earlier."""
    args = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.generate(**args, do_sample=False, max_new_tokens=max_new_tokens, min_new_tokens=0,
                             eos_token_id=eos, pad_token_id=pad, temperature=None, top_p=None, top_k=None)
    return out.numpy()


def sample(inputs: dict, i: int, length: int | None = None) -> dict:
    """Sample i of a fixture batch (its first `length` tokens), without labels, keeping the batch axis."""
    out = {}
    for k, v in inputs.items():
        if k == "labels":
            continue
        v = v[i:i + 1]
        if k in ("input_ids", "attention_mask", "cross_attention_mask") and length is not None:
            v = v[:, :length]
        out[k] = np.ascontiguousarray(v)
    return out


def left_pad(samples: list[dict], pad: int) -> dict:
    """Batch single samples (all-real tokens) with left padding, as transformers' batched generation wants."""
    s = max(x["input_ids"].shape[1] for x in samples)
    out: dict[str, list] = {}
    for x in samples:
        n = s - x["input_ids"].shape[1]
        out.setdefault("input_ids", []).append(np.concatenate([np.full((1, n), pad), x["input_ids"]], 1))
        mask = np.concatenate([np.zeros((1, n), np.int64), np.ones_like(x["input_ids"])], 1)
        out.setdefault("attention_mask", []).append(mask)
        if "cross_attention_mask" in x:
            cam = x["cross_attention_mask"]
            zeros = np.zeros((1, n) + cam.shape[2:], np.int64)
            out.setdefault("cross_attention_mask", []).append(np.concatenate([zeros, cam], 1))
        for k in IMAGE_KEYS:
            if k in x:
                out.setdefault(k, []).append(x[k])
    return {k: np.ascontiguousarray(np.concatenate(v, 0)) for k, v in out.items()}


@pytest.fixture(scope="module")
def tiles4_inputs():
    return load_file(str(TILES4 / "inputs.safetensors"))


@pytest.fixture(scope="module")
def tile1_inputs():
    return load_file(str(TILE1 / "inputs.safetensors"))


@pytest.fixture(scope="module")
def hf_tiles4():
    return hf_model(TILES4)


@pytest.fixture(scope="module")
def tiles4():
    with loranas.load_model(TILES4) as model:
        yield model


def check_equal(engine_model, torch_model, model_dir: Path, inputs: dict, n: int, stop=None) -> int:
    """Engine vs transformers greedy on `inputs`; returns the number of new tokens compared."""
    cfg = text_config(model_dir)
    eos = [cfg["eos_token_id"]] if stop is None else stop
    ours = engine_model.generate(**inputs, max_new_tokens=n, stop_token_ids=eos)
    ref = hf_generate(torch_model, inputs, n, eos, cfg["pad_token_id"])
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, ref)
    return ref.shape[1] - inputs["input_ids"].shape[1]


@pytest.mark.parametrize("i,length,n", [(0, 14, 24), (0, 5, 12), (0, 3, 8), (2, 14, 20), (1, 11, 16)],
                         ids=["two-images", "rows-before-image", "image-token-last", "left-padded", "one-image"])
def test_greedy_equals_transformers_with_images(tiles4, hf_tiles4, tiles4_inputs, i, length, n):
    assert check_equal(tiles4, hf_tiles4, TILES4, sample(tiles4_inputs, i, length), n) > 0


def test_greedy_equals_transformers_without_stop(tiles4, hf_tiles4, tiles4_inputs):
    # an id the model never picks here, so all 40 tokens are generated
    inputs = sample(tiles4_inputs, 0)
    assert check_equal(tiles4, hf_tiles4, TILES4, inputs, 40, stop=[95]) >= 1


def test_greedy_equals_transformers_tile1_and_text_only(tile1_inputs):
    text_only = load_file(str(TILE1 / "inputs_text_only.safetensors"))
    hf = hf_model(TILE1)
    with loranas.load_model(TILE1) as model:
        assert "pixel_values" not in text_only
        for inputs in (sample(tile1_inputs, 0), sample(tile1_inputs, 1, 7), sample(text_only, 0),
                       sample(text_only, 1, 7), sample(text_only, 0, 3)):
            check_equal(model, hf, TILE1, inputs, 20)


def test_batched_left_padding_equals_transformers(tiles4, hf_tiles4, tiles4_inputs, tile1_inputs):
    pad = text_config(TILES4)["pad_token_id"]
    batch = left_pad([sample(tiles4_inputs, 0), sample(tiles4_inputs, 1, 11), sample(tiles4_inputs, 0, 6)], pad)
    check_equal(tiles4, hf_tiles4, TILES4, batch, 16)
    text = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    check_equal(tiles4, hf_tiles4, TILES4, text, 16)
    # tile1_bf16's layer 0 is a cross-attention layer, and transformers' batched generate then fails (its causal
    # mask takes the cache length from layer 0, the vision tokens' count); so each row is checked against the
    # same prompt alone, which test_greedy_equals_transformers_tile1_and_text_only compares with transformers.
    singles = [sample(tile1_inputs, 0), sample(tile1_inputs, 1, 7)]
    batch = left_pad(singles, text_config(TILE1)["pad_token_id"])
    with loranas.load_model(TILE1) as model:
        out = model.generate(**batch, max_new_tokens=12, stop_token_ids=[])
        for row, single in zip(out, singles):
            alone = model.generate(**single, max_new_tokens=12, stop_token_ids=[])[0]
            np.testing.assert_array_equal(row[-12:], alone[-12:])


def test_peft_adapter_equals_transformers(tiles4_inputs, tmp_path):
    hf = hf_model(TILES4, TILES4 / "peft")
    with loranas.load_model(TILES4, adapter=TILES4 / "peft") as model:
        for inputs in (sample(tiles4_inputs, 0), sample(tiles4_inputs, 1, 11)):
            check_equal(model, hf, TILES4, inputs, 16)
        plain = model.generate(**sample(tiles4_inputs, 0), max_new_tokens=16)
        model.save_merged(tmp_path / "merged")
    with loranas.load_model(tmp_path / "merged") as merged:  # merged weights give the same tokens
        np.testing.assert_array_equal(merged.generate(**sample(tiles4_inputs, 0), max_new_tokens=16), plain)
    with loranas.load_model(TILES4) as base:
        assert not np.array_equal(plain, base.generate(**sample(tiles4_inputs, 0), max_new_tokens=16))


def test_stop_tokens_end_each_sample(tiles4, hf_tiles4, tiles4_inputs):
    pad = text_config(TILES4)["pad_token_id"]
    batch = left_pad([sample(tiles4_inputs, 0), sample(tiles4_inputs, 1, 11)], pad)
    free = tiles4.generate(**batch, max_new_tokens=12, stop_token_ids=[])
    assert free.shape == (2, 14 + 12)
    stop = int(free[0, 14 + 3])  # sample 0's 4th new token
    first = int(np.argmax(free[0, 14:] == stop))
    out = tiles4.generate(**batch, max_new_tokens=12, stop_token_ids=[stop])
    np.testing.assert_array_equal(out[0, :14 + first + 1], free[0, :14 + first + 1])
    assert (out[0, 14 + first + 1:] == pad).all()
    check_equal(tiles4, hf_tiles4, TILES4, batch, 12, stop=[stop])


def test_sampling_is_seeded(tiles4, tiles4_inputs):
    inputs = sample(tiles4_inputs, 0)
    run = lambda **kw: tiles4.generate(**inputs, max_new_tokens=24, stop_token_ids=[], **kw)  # noqa: E731
    a = run(temperature=1.5, seed=1)
    np.testing.assert_array_equal(a, run(temperature=1.5, seed=1))
    assert not np.array_equal(a, run(temperature=1.5, seed=2))
    greedy = run()
    np.testing.assert_array_equal(run(temperature=1e-6, seed=3), greedy)
    np.testing.assert_array_equal(run(temperature=1.0, top_p=1e-9, seed=4), greedy)
    np.testing.assert_array_equal(run(temperature=1.0, top_p=0.5, seed=5), run(temperature=1.0, top_p=0.5, seed=5))


def test_bad_arguments(tiles4, tiles4_inputs):
    inputs = sample(tiles4_inputs, 0)
    cases = [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 256 - 14 + 1}, "max_new_tokens"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"stop_token_ids": [96]}, "stop token"),
        ({"stop_token_ids": "x"}, "stop_token_ids"),
    ]
    for kwargs, word in cases:
        with pytest.raises(loranas.InvalidArgumentError, match=word):
            tiles4.generate(**inputs, **kwargs)
    tiles4.generate(**inputs, max_new_tokens=256 - 14)  # the largest allowed
    bad_shapes = [
        dict(inputs, cross_attention_mask=inputs["cross_attention_mask"][:, :5]),
        dict(inputs, attention_mask=np.ones((1, 5), np.int64)),
        dict(inputs, input_ids=inputs["input_ids"][0]),
    ]
    for bad in bad_shapes:
        with pytest.raises(loranas.InvalidArgumentError):
            tiles4.generate(**bad)
    right = dict(inputs, attention_mask=np.concatenate([np.ones((1, 12)), np.zeros((1, 2))], 1).astype(np.int64))
    with pytest.raises(loranas.InvalidArgumentError, match="left-padded"):
        tiles4.generate(**right)
    with pytest.raises(loranas.InvalidArgumentError, match="not both"):
        tiles4.generate(input_ids=inputs["input_ids"], prompt="hi")


def test_c_abi_checks_every_argument(tiles4, tiles4_inputs):
    import ctypes

    from loranas import _bindings as B
    from loranas.data import make_batch, prepare_inputs
    from loranas.errors import check

    arrays = prepare_inputs(sample(tiles4_inputs, 0), batched=True, context="test")
    batch = make_batch(arrays)
    out, lengths, stops = np.empty((1, 4), np.int64), np.empty(1, np.int64), np.array([1], np.int64)
    p = lambda a: a.ctypes.data_as(B.c_int64_p)  # noqa: E731

    def call(**kw):
        args = dict(prompt=ctypes.byref(batch), n=4, t=0.0, top_p=1.0, seed=0, stops=p(stops), n_stops=1,
                    out=p(out), out_count=4, lengths=p(lengths), lengths_count=1)
        args.update(kw)
        with tiles4._use() as h:
            return B.loranas_model_generate(h, *args.values())

    assert call() == B.LORANAS_OK
    assert 1 <= lengths[0] <= 4 and (out[0, lengths[0]:] == -1).all()
    bad = [dict(prompt=None), dict(out=None), dict(lengths=None), dict(out_count=3), dict(lengths_count=2),
           dict(n=0, out_count=0), dict(stops=None), dict(n_stops=-1), dict(t=float("inf")), dict(top_p=float("nan"))]
    for kw in bad:
        assert call(**kw) == B.LORANAS_ERR_INVALID_ARGUMENT, kw
    with pytest.raises(loranas.InvalidArgumentError):
        check(call(out_count=3), "loranas_model_generate")
    assert B.loranas_model_generate(None, ctypes.byref(batch), 4, 0.0, 1.0, 0, None, 0, p(out), 4, p(lengths),
                                    1) == B.LORANAS_ERR_INVALID_ARGUMENT


def test_images_and_prompt_shortcut(llama3_tokenizer_dir, tmp_path):
    """generate(images=..., prompt=...) = transformers' processor + chat template + greedy generate + decode."""
    from test_cauldron_dataset import CLIP_MEAN, CLIP_STD
    from test_processor import hf_processor, write_model_dir
    from PIL import Image

    out = write_model_dir(tmp_path / "tiny", llama3_tokenizer_dir, 12, 4, CLIP_MEAN, CLIP_STD)
    config = json.loads((TILES4 / "config.json").read_text())
    config["text_config"].update(vocab_size=128256, pad_token_id=128004, bos_token_id=128000, eos_token_id=128001)
    config["image_token_index"] = 128256
    torch.manual_seed(0)
    hf = transformers.MllamaForConditionalGeneration(transformers.MllamaConfig(**config)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "gate" in name:
                p.fill_(0.7)
    hf.save_pretrained(out)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)) for _ in range(2)]
    proc = hf_processor(out)
    content = [{"type": "image"}] * 2 + [{"type": "text", "text": "What is in these pictures?"}]
    chat = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    inputs = {k: v.numpy() for k, v in proc(images=[images], text=chat, return_tensors="pt").items()}
    eot = proc.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    ref = hf_generate(hf, inputs, 10, [128001, eot], 128004)
    want = proc.tokenizer.decode(ref[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    with loranas.load_model(out) as model:
        got = model.generate(images=images, prompt="What is in these pictures?", max_new_tokens=10)
    assert isinstance(got, str)
    assert got == want
