"""``loranas.Processor`` against transformers' ``MllamaProcessor`` (Pillow image path) built from the same
model directory: every output array, for images of every PNG mode and JPEG (RGB, L, CMYK) from 1×1 to
2000×300, batched with 0, 1 and 2 images per sample, right and left padding, several (tile size, tile count,
mean/std) settings; PIL, numpy, path and bytes inputs; the chat template; and the errors. The references are
always computed by transformers and Pillow. Seeded; skipped without Pillow, transformers or the tokenizer."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("transformers")

import loranas  # noqa: E402
from loranas.errors import LoranasError  # noqa: E402
from test_image_processor import CLIP_MEAN, CLIP_STD, jpeg_bytes, pillow_png, processor_images  # noqa: E402

TEMPLATE = Path(__file__).parent / "fixtures" / "llama32-vision-chat-template.jinja"
PAD = "<|reserved_special_token_2|>"  # id 128004, the published pad id (named so in this tokenizer)
DATE = "26 Jul 2024"
# (tile size, max tiles, mean, std, padding side)
SETTINGS = [(56, 4, CLIP_MEAN, CLIP_STD, "right"), (28, 6, (0.5,) * 3, (0.5,) * 3, "left"),
            (32, 2, CLIP_MEAN, CLIP_STD, "left"), (40, 1, CLIP_MEAN, CLIP_STD, "right")]
PROMPTS = ["Describe this.", " what is it?", "日本語 and emoji 🙂", "", "a\nb\n\n", "<|begin_of_text|>already BOS"]


def write_model_dir(out: Path, tokenizer_dir: Path, tile: int, tiles: int, mean, std, side: str = "right",
                    template: bool = True) -> Path:
    """A model directory as published checkpoints lay it out, with a small vision config."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(tokenizer_dir / "tokenizer.json", out / "tokenizer.json")
    (out / "config.json").write_text(json.dumps({
        "model_type": "mllama", "vision_config": {"image_size": tile, "max_num_tiles": tiles},
        "text_config": {"pad_token_id": 128004}}))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "MllamaImageProcessor", "processor_class": "MllamaProcessor",
        "size": {"height": tile, "width": tile}, "max_image_tiles": tiles, "image_mean": list(mean),
        "image_std": list(std), "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
        "do_resize": True, "resample": 2, "rescale_factor": 1 / 255}))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": PAD, "padding_side": side,
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072}))
    if template:
        shutil.copy(TEMPLATE, out / "chat_template.jinja")
    return out


def hf_processor(model_dir: Path):
    """transformers' MllamaProcessor of the directory, with the Pillow image processor."""
    from transformers import MllamaProcessor, PreTrainedTokenizerFast
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    ip = MllamaImageProcessorPil.from_pretrained(str(model_dir))
    return MllamaProcessor(image_processor=ip, tokenizer=tok, chat_template=TEMPLATE.read_text())


@pytest.fixture(scope="module", params=range(len(SETTINGS)), ids=[f"t{s[0]}-T{s[1]}-{s[4]}" for s in SETTINGS])
def pair(request, llama3_tokenizer_dir, tmp_path_factory):
    tile, tiles, mean, std, side = SETTINGS[request.param]
    d = write_model_dir(tmp_path_factory.mktemp("mllama"), llama3_tokenizer_dir, tile, tiles, mean, std, side)
    return request.param, loranas.Processor.from_pretrained(d), hf_processor(d)


def assert_same(got: dict, ref, what: str) -> float:
    """Same keys, shapes, dtypes and values; returns max |Δ| of pixel_values (asserted 0)."""
    assert set(got) == set(ref.keys()), f"{what}: keys {sorted(got)} != {sorted(ref.keys())}"
    worst = 0.0
    for key in got:
        expected = np.asarray(ref[key])
        assert got[key].shape == expected.shape, f"{what} {key}: {got[key].shape} != {expected.shape}"
        assert got[key].dtype == expected.dtype, f"{what} {key}: {got[key].dtype} != {expected.dtype}"
        if key == "pixel_values":
            worst = float(np.abs(got[key] - expected).max()) if expected.size else 0.0
            assert worst == 0, f"{what}: pixel_values max |Δ| {worst}"
        else:
            np.testing.assert_array_equal(got[key], expected, err_msg=f"{what} {key}")
    return worst


def batches(images: list, seed: int):
    """Samples of 0, 1 or 2 images (the order shuffled), 2 to 4 samples per call; yields (texts, nested images)."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(images):
        texts, nested = [], []
        for k in range(int(rng.integers(2, 5))):
            # the first sample has an image: transformers fails on a call without any
            n = min(int(rng.integers(1 if k == 0 else 0, 3)), len(images) - i)
            sample = images[i:i + n]
            i += n
            prompt = PROMPTS[int(rng.integers(len(PROMPTS)))]
            where = int(rng.integers(3))
            tokens = "<|image|>" * n
            texts.append(tokens + prompt if where == 0 else prompt + tokens if where == 1
                         else "<|image|>" + prompt + "<|image|>" * (n - 1) if n else prompt)
            nested.append(sample)
        order = rng.permutation(len(texts))
        yield [texts[o] for o in order], [nested[o] for o in order]


def test_batches_equal_transformers(pair):
    """Every processor image (≈210 PNG of every mode and JPEG RGB/L/CMYK, 1×1 to 2000×300) in mixed batches."""
    index, proc, ref = pair
    imgs = [Image.open(io.BytesIO(data)) for _, data in processor_images()]
    compared = 0
    for texts, nested in batches(imgs, seed=index):
        got = proc(text=texts, images=nested)
        expected = ref(text=texts, images=nested, return_tensors="np", padding=True)
        assert_same(got, expected, f"setting {index}, texts {texts}")
        compared += sum(len(s) for s in nested)
    assert compared == len(imgs) >= 200


def test_text_only_and_images_only(pair):
    _, proc, ref = pair
    texts = ["Hello there", "<|begin_of_text|>x", ""]
    assert_same(proc(text=texts), ref(text=texts, return_tensors="np", padding=True), "text only")
    ims = [Image.open(io.BytesIO(pillow_png("RGB", size=(70, 20), seed=1)))]
    assert_same(proc(images=ims), ref(images=ims, return_tensors="np"), "images only")


def test_input_nesting(pair):
    """A single image, a flat list (one sample) and a str text, as transformers nests them."""
    _, proc, ref = pair
    a = Image.open(io.BytesIO(pillow_png("RGB", size=(90, 40), seed=2)))
    b = Image.open(io.BytesIO(jpeg_bytes("RGB", (30, 77), 3)))
    cases = [("<|image|>one", a), ("<|image|><|image|>two", [a, b]), (["<|image|>x", "y"], [[a], []])]
    for text, images in cases:
        assert_same(proc(text=text, images=images), ref(text=text, images=images, return_tensors="np", padding=True),
                    repr(text))


@pytest.fixture(scope="module")
def proc56(llama3_tokenizer_dir, tmp_path_factory):
    d = write_model_dir(tmp_path_factory.mktemp("mllama56"), llama3_tokenizer_dir, 56, 4, CLIP_MEAN, CLIP_STD)
    return loranas.Processor.from_pretrained(d), hf_processor(d)


def pil_images() -> list:
    """PIL objects in every mode, including those transformers converts itself (CMYK, YCbCr, I, F, PA)."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    out = [base, base.convert("L"), base.convert("1"), base.convert("CMYK"), base.convert("YCbCr"),
           base.convert("LA"), base.convert("RGBA"), base.convert("P"), base.convert("HSV"), base.convert("LAB")]
    rgba = Image.fromarray(rng.integers(0, 256, size=(33, 47, 4), dtype=np.uint8), "RGBA")
    out += [rgba, rgba.convert("PA"), rgba.convert("RGBa")]  # Pillow cannot convert "La" to RGB(A) at all
    p = base.convert("P")
    p.info["transparency"] = 5
    out.append(p)
    trns = Image.open(io.BytesIO(pillow_png("P", size=(40, 20), seed=3, transparency=bytes(range(0, 250, 5)))))
    out.append(trns)
    grey16 = rng.integers(0, 1200, size=(20, 31), dtype=np.uint16)
    out += [Image.fromarray(grey16), Image.fromarray(grey16.astype(np.int32)),
            Image.fromarray(grey16.astype(np.float32) / 3)]
    rgb_t = base.copy()
    rgb_t.info["transparency"] = tuple(int(v) for v in rgb[0, 0])
    out.append(rgb_t)
    return out


def test_pil_inputs_in_every_mode(proc56):
    proc, ref = proc56
    for im in pil_images():
        text = "<|image|>What is it?"
        assert_same(proc(text=text, images=im), ref(text=text, images=im, return_tensors="np", padding=True),
                    f"PIL mode {im.mode} {im.info.get('transparency')!r}")


def test_numpy_and_bytes_inputs(proc56):
    proc, ref = proc56
    rng = np.random.default_rng(11)
    # (1, 1, 3) is left out: transformers reads an array whose first axis is 1 or 3 as channels-first
    for shape in [(2, 1, 3), (40, 300, 3), (300, 9, 3), (57, 57, 3)]:
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        assert_same(proc(text="<|image|>", images=arr), ref(text="<|image|>", images=arr, return_tensors="np",
                                                             padding=True), f"numpy {shape}")
    grey = rng.integers(0, 256, size=(30, 50), dtype=np.uint8)
    assert_same(proc(text="<|image|>", images=grey),
                ref(text="<|image|>", images=Image.fromarray(grey), return_tensors="np", padding=True), "numpy grey")
    for data in [pillow_png("RGBA", size=(60, 20), seed=4), pillow_png("P", size=(20, 60), seed=5, transparency=2),
                 jpeg_bytes("CMYK", (64, 48), 6, quality=90), jpeg_bytes("L", (17, 90), 7, quality=80)]:
        pil = Image.open(io.BytesIO(data))
        assert_same(proc(text="<|image|>", images=data),
                    ref(text="<|image|>", images=pil, return_tensors="np", padding=True), "bytes")


def test_path_inputs(proc56, tmp_path):
    """Paths take transformers' load_image route: EXIF transpose, alpha dropped."""
    proc, ref = proc56
    paths = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths.append(("jpg", jpeg_bytes("RGB", (150, 40), orientation, quality=90, exif=exif.tobytes())))
    paths += [("png", pillow_png(mode, size=(70, 130), seed=i)) for i, mode in enumerate(["RGBA", "LA", "P", "L"])]
    files = []
    for i, (ext, data) in enumerate(paths):
        path = tmp_path / f"{i}.{ext}"
        path.write_bytes(data)
        files.append(path)
    texts = ["<|image|>a", "<|image|><|image|>b"] * (len(files) // 3) + ["<|image|>c"] * (len(files) % 3)
    nested, i = [], 0
    for t in texts:
        n = t.count("<|image|>")
        nested.append(files[i:i + n])
        i += n
    expected = ref(text=texts, images=[[str(p) for p in s] for s in nested], return_tensors="np", padding=True)
    assert_same(proc(text=texts, images=nested), expected, "paths")


CONVERSATIONS = [
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
     {"role": "user", "content": [{"type": "text", "text": "And its colour?"}]}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": " Hi!\n"},
     {"role": "user", "content": "Tell me a joke."}],
    [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": [{"type": "text", "text": "x"}]}],
    [{"role": "user", "content": [{"type": "text", "text": "two: "}, {"type": "image"}, {"type": "image"}]}],
]


@pytest.mark.parametrize("generation", [False, True])
def test_apply_chat_template_equals_transformers(proc56, generation):
    proc, ref = proc56
    for messages in CONVERSATIONS:
        expected = ref.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False,
                                           date_string=DATE)
        assert proc.apply_chat_template(messages, add_generation_prompt=generation, date_string=DATE) == expected
    # the default date is today's, as the template's strftime_now gives it
    plain = CONVERSATIONS[1]
    assert proc.apply_chat_template(plain) == ref.apply_chat_template(plain, tokenize=False)


def test_properties(proc56):
    proc, ref = proc56
    assert proc.pad_token_id == ref.tokenizer.pad_token_id
    assert proc.image_token_id == ref.image_token_id
    assert proc.bos_token_id == ref.tokenizer.bos_token_id and proc.eos_token_id == ref.tokenizer.eos_token_id
    assert (proc.tile_size, proc.max_image_tiles, proc.padding_side) == (56, 4, "right")
    assert proc.tokenizer.encode("Hello <|image|>") == ref.tokenizer("Hello <|image|>")["input_ids"]


# ---- errors -------------------------------------------------------------------------------------

def test_image_count_mismatch(proc56):
    proc, ref = proc56
    im = Image.open(io.BytesIO(pillow_png("RGB", seed=1)))
    with pytest.raises(ValueError):
        ref(text="no image token", images=im, return_tensors="np")
    with pytest.raises(LoranasError, match=r"1 images|<\|image\|>"):
        proc(text="no image token", images=im)
    with pytest.raises(ValueError, match="texts but images"):
        proc(text=["<|image|>a", "b", "c"], images=[[im], []])


def test_bad_directories(llama3_tokenizer_dir, tmp_path):
    args = (llama3_tokenizer_dir, 56, 4, CLIP_MEAN, CLIP_STD)
    d = write_model_dir(tmp_path / "template", *args)
    (d / "chat_template.jinja").write_text("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(loranas.UnsupportedError, match="not the published Llama-3.2-Vision template"):
        loranas.Processor.from_pretrained(d)
    d = write_model_dir(tmp_path / "notok", *args)
    (d / "tokenizer.json").unlink()
    with pytest.raises(loranas.NotFoundError, match="tokenizer.json"):
        loranas.Processor.from_pretrained(d)
    d = write_model_dir(tmp_path / "noimage", *args)
    data = json.loads((d / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<|image|>"]
    (d / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(LoranasError, match=r"<\|image\|>"):
        loranas.Processor.from_pretrained(d)
    d = write_model_dir(tmp_path / "contradiction", *args)
    config = json.loads((d / "config.json").read_text())
    config["vision_config"]["image_size"] = 560
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoranasError, match="contradicts config.json"):
        loranas.Processor.from_pretrained(d)


def test_bad_images(proc56):
    proc, _ = proc56
    png = pillow_png("RGB", size=(40, 30))
    with pytest.raises(loranas.FormatError, match=r"images\[0\].*PNG"):
        proc(text="<|image|>", images=png[: len(png) // 2])
    huge = pillow_png("L", size=(1, 1))
    import struct
    import zlib

    huge = huge[:16] + struct.pack(">II", 20000, 9000) + huge[24:]
    huge = huge[:29] + struct.pack(">I", zlib.crc32(huge[12:29]) & 0xFFFFFFFF) + huge[33:]
    with pytest.raises(LoranasError, match="too large"):
        proc(text="<|image|>", images=huge)
    with pytest.raises(TypeError):
        proc(text="<|image|>", images=np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        proc(text="<|image|>", images=np.zeros((4, 4, 4), np.uint8))


def test_c_abi_bad_arguments(proc56):
    """Every bad argument of the processor calls is a status and a message, never a crash."""
    import ctypes

    from loranas import _bindings as B

    proc, _ = proc56
    png = np.frombuffer(pillow_png("RGB", size=(9, 7)), np.uint8)
    rgb = np.zeros((4, 5, 3), np.uint8)

    def entry(data, size, w=0, h=0, flags=0, sample=0):
        ptr = None if data is None else data.ctypes.data_as(B.c_uint8_p)
        return B.loranas_image_input(ptr, size, w, h, flags, sample)

    def call(texts, entries, count=None):
        out = B.loranas_processor_output_p()
        array = None if entries is None else (B.loranas_image_input * max(len(entries), 1))(*entries)
        with proc._use() as h:
            status = B.loranas_processor_call(h, texts, array, len(entries or []) if count is None else count,
                                              ctypes.byref(out))
        message = B.loranas_last_error().decode()
        if out.value:
            B.loranas_processor_output_free(out)
        return status, message

    two = b'["<|image|>a", "<|image|>b"]'
    cases = [
        (b"not json", [], None, "JSON|json"),
        (b'{"a": 1}', [], None, "array of strings"),
        (b'["a", 3]', [], None, r"texts_json\[1\]"),
        (b"[]", [], None, "at least one text"),
        (two, [entry(png, png.size)], -1, "num_images"),
        (two, None, 2, "images is NULL"),
        (two, [entry(png, png.size, sample=1), entry(png, png.size, sample=0)], None, "sample order"),
        (two, [entry(png, png.size, sample=2)], None, r"outside 0\.\.<2"),
        (two, [entry(png, png.size, sample=-1)], None, r"sample is -1"),
        (two, [entry(None, 10)], None, "data is NULL"),
        (two, [entry(png, -5)], None, "non-negative"),
        (two, [entry(png, png.size, flags=64)], None, "unknown image flags"),
        (two, [entry(rgb, rgb.size - 1, 5, 4)], None, "needs size 60"),
        (two, [entry(rgb, rgb.size, 5, 4, flags=1)], None, "flags must be 0"),
        (two, [entry(rgb, rgb.size, -5, 4)], None, "non-negative"),
        (two, [entry(rgb, rgb.size, 5, 0)], None, "width and height"),
        (two, [entry(png, png.size), entry(png, png.size)], None, r"<\|image\|>"),
    ]
    for texts, entries, count, pattern in cases:
        status, message = call(texts, entries, count)
        assert status != B.LORANAS_OK, (texts, pattern)
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    # NULL handles and outputs, a handle of another kind
    out = B.loranas_processor_output_p()
    assert B.loranas_processor_call(None, two, None, 0, ctypes.byref(out)) == B.LORANAS_ERR_INVALID_ARGUMENT
    tok = proc.tokenizer
    with tok._use() as th:
        assert B.loranas_processor_call(th, two, None, 0, ctypes.byref(out)) == B.LORANAS_ERR_INVALID_ARGUMENT
        assert "Tokenizer handle" in B.loranas_last_error().decode()
    with proc._use() as h:
        assert B.loranas_processor_call(h, None, None, 0, ctypes.byref(out)) == B.LORANAS_ERR_INVALID_ARGUMENT
        assert B.loranas_processor_call(h, b'["x"]', None, 0, None) == B.LORANAS_ERR_INVALID_ARGUMENT
        assert B.loranas_processor_chat_template(h, b"[", 0, None, None, 0, None) != B.LORANAS_OK
        v = ctypes.c_int64()
        assert B.loranas_processor_info(h, None, *(ctypes.byref(v) for _ in range(5)), None) != B.LORANAS_OK
    B.loranas_processor_free(None)
    B.loranas_processor_output_free(None)
    # reading an output into buffers that are too small, or NULL
    entries = (B.loranas_image_input * 1)(entry(png, png.size))
    with proc._use() as h:
        assert B.loranas_processor_call(h, b'["<|image|>x"]', entries, 1, ctypes.byref(out)) == B.LORANAS_OK
    try:
        dims = [ctypes.c_int64() for _ in range(5)]
        assert B.loranas_processor_output_shape(out, *(ctypes.byref(d) for d in dims)) == B.LORANAS_OK
        b, s, i, t, side = (d.value for d in dims)
        assert (b, i, t, side) == (1, 1, 4, 56)
        ids = np.zeros(b * s, np.int64)
        p = ids.ctypes.data_as(B.c_int64_p)
        status = B.loranas_processor_output_read(out, p, p, b * s - 1, None, 0, None, 0, None, 0, None, 0)
        assert status == B.LORANAS_ERR_INVALID_ARGUMENT and "input_ids" in B.loranas_last_error().decode()
        status = B.loranas_processor_output_read(out, p, p, b * s, None, 0, None, 0, None, 0, None, 0)
        assert status == B.LORANAS_ERR_INVALID_ARGUMENT and "cross_attention_mask" in B.loranas_last_error().decode()
        status = B.loranas_processor_output_read(out, p, p, b * s, p, -1, None, 0, None, 0, None, 0)
        assert status == B.LORANAS_ERR_INVALID_ARGUMENT and "non-negative" in B.loranas_last_error().decode()
        big = 10**6
        status = B.loranas_processor_output_read(out, p, p, b * s, None, big, None, 0, None, 0, None, 0)
        assert status == B.LORANAS_ERR_INVALID_ARGUMENT and "NULL" in B.loranas_last_error().decode()
        assert B.loranas_processor_output_shape(out, None, None, None, None, None) == B.LORANAS_ERR_INVALID_ARGUMENT
    finally:
        B.loranas_processor_output_free(out)
    assert B.loranas_processor_output_shape(out, *(ctypes.byref(d) for d in dims)) == B.LORANAS_ERR_INVALID_ARGUMENT
