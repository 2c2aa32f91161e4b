"""Images through the engine against Pillow and transformers (their outputs are the references).

* decoding: PNGs of every colour type and bit depth (written by a small PNG encoder here, so that
  2/4-bit grey, 16-bit, tRNS and Adam7-interlaced files exist: Pillow cannot write all of them)
  and JPEGs written by Pillow, against transformers' ``convert_to_rgb(Image.open(...))`` (§1.2);
* the resize port against ``Image.resize(size, BILINEAR, reducing_gap=None)``, max |Δ| = 0;
* the processor against transformers' ``MllamaImageProcessorPil``.
Seeded; skipped when Pillow or transformers is missing.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")

from loranas import _bindings as B  # noqa: E402
from loranas import images  # noqa: E402
from loranas.errors import LoranasError  # noqa: E402

HEADER = Path(__file__).resolve().parents[2] / "Sources/CLoRANAS/include/loranas.h"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def transformers_rgb(data: bytes) -> np.ndarray:
    """transformers' conversion of a PIL image the caller opened (§1.2)."""
    from transformers.image_transforms import convert_to_rgb

    return np.asarray(convert_to_rgb(Image.open(io.BytesIO(data))))


# ---- a minimal PNG encoder (every colour type, bit depth, tRNS, Adam7) --------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _scanlines(samples: np.ndarray, depth: int) -> bytes:
    """Rows of (h, w, c) samples, each with filter byte 0."""
    out = bytearray()
    for row in samples:
        flat = row.reshape(-1)
        if depth == 16:
            body = flat.astype(">u2").tobytes()
        elif depth == 8:
            body = flat.astype(np.uint8).tobytes()
        else:
            per = 8 // depth
            padded = np.zeros(-(-flat.size // per) * per, dtype=np.uint8)
            padded[: flat.size] = flat
            packed = np.zeros(padded.size // per, dtype=np.uint8)
            for i in range(per):
                packed |= (padded[i::per] << (8 - depth * (i + 1))).astype(np.uint8)
            body = packed.tobytes()
        out += b"\x00" + body
    return bytes(out)


def encode_png(samples: np.ndarray, color_type: int, depth: int, palette=None, trns: bytes | None = None,
               interlace: bool = False) -> bytes:
    h, w = samples.shape[:2]
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _scanlines(sub, depth)
    else:
        raw = _scanlines(samples, depth)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                                              int(interlace)))
    if palette is not None:
        png += _chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    return png + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def png_cases():
    """(name, bytes) for every colour type and bit depth, with and without tRNS, some interlaced."""
    rng = np.random.default_rng(8)
    cases = []
    for color_type, depths in ((0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)), (4, (8, 16)), (6, (8, 16))):
        for depth in depths:
            for interlace in (False, True):
                h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
                c = CHANNELS[color_type]
                top = (1 << depth) - 1
                samples = rng.integers(0, top + 1, size=(h, w, c), dtype=np.int64)
                if depth == 16 and color_type in (0, 4):
                    # grey as Pillow's I;16 clips at 255: keep some values below 256
                    samples[..., 0][rng.random((h, w)) < 0.5] %= 256
                palette = None
                trns_options = [None]
                if color_type == 3:
                    n = 1 << depth
                    palette = rng.integers(0, 256, size=(n, 3))
                    trns_options = [None, bytes(rng.integers(0, 256, size=max(1, n // 2)).astype(np.uint8))]
                elif color_type == 0 and depth <= 8:
                    trns_options = [None, struct.pack(">H", int(samples[0, 0, 0]))]
                elif color_type == 0:
                    trns_options = [None, struct.pack(">H", int(samples[0, 0, 0]))]
                elif color_type == 2:
                    trns_options = [None, struct.pack(">HHH", *(int(v) for v in samples[0, 0]))]
                for trns in trns_options:
                    name = f"ct{color_type}-{depth}bit{'-trns' if trns else ''}{'-adam7' if interlace else ''}"
                    cases.append((name, encode_png(samples, color_type, depth, palette, trns, interlace)))
    return cases


@pytest.mark.parametrize("name,data", png_cases(), ids=[n for n, _ in png_cases()])
def test_png_decoding_equals_pillow(name, data):
    expected = transformers_rgb(data)
    got = images.decode(data)
    assert got.shape == expected.shape
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() == 0, f"{name}: max |Δ| {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"


def test_trns_quirks_as_pillow():
    """Pillow compares the low byte of a tRNS colour with its own 8-bit unpacking of each pixel."""
    grey16 = np.array([[[0], [44], [300], [65535], [100]]], dtype=np.int64)
    rgb16 = np.array([[[1, 2, 3], [256, 512, 768], [0, 0, 0]]], dtype=np.int64)
    grey4 = np.array([[[0], [1], [5], [15]]], dtype=np.int64)
    cases = [encode_png(grey16, 0, 16, trns=struct.pack(">H", t)) for t in (300, 255, 0, 44)]
    cases += [encode_png(rgb16, 2, 16, trns=struct.pack(">HHH", *t)) for t in ((1, 2, 3), (256, 512, 768))]
    cases += [encode_png(grey4, 0, 4, trns=struct.pack(">H", t)) for t in (0, 1, 5)]
    for data in cases:
        np.testing.assert_array_equal(images.decode(data), transformers_rgb(data))


def pillow_png(mode: str, size=(23, 17), seed=0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).quantize(50)
    elif mode == "1":
        im = Image.fromarray(rng.integers(0, 2, size=(size[1], size[0]), dtype=np.uint8) * 255).convert("1")
    else:
        bands = len(Image.new(mode, (1, 1)).getbands())
        arr = rng.integers(0, 256, size=(size[1], size[0], bands), dtype=np.uint8)
        im = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode=None).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA"])
def test_pillow_written_pngs(mode):
    for seed in range(3):
        data = pillow_png(mode, size=(5 + 7 * seed, 3 + 11 * seed), seed=seed)
        np.testing.assert_array_equal(images.decode(data), transformers_rgb(data))
    data = pillow_png("P", seed=4, transparency=3)  # a single transparent palette index
    np.testing.assert_array_equal(images.decode(data), transformers_rgb(data))


def test_alpha_composite_every_value():
    """Every (value, alpha) pair through Pillow's integer alpha_composite onto white."""
    v, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    arr = np.stack([v, (v * 7) % 256, 255 - v, a], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    np.testing.assert_array_equal(images.decode(buf.getvalue()), transformers_rgb(buf.getvalue()))


# ---- JPEG ---------------------------------------------------------------------------------------

def jpeg_bytes(mode: str, size, seed: int, **save) -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    # smooth content plus noise: closer to photos than pure noise, and it exercises every IDCT path
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 3 + yy) % 256, (yy * 5) % 256, (xx * yy) % 256], axis=-1)
    arr = np.clip(base + rng.integers(-40, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "JPEG", **save)
    return buf.getvalue()


JPEG_CASES = [
    ("baseline", "RGB", {"quality": 90}),
    ("baseline-444", "RGB", {"quality": 95, "subsampling": 0}),
    ("baseline-422", "RGB", {"quality": 75, "subsampling": 1}),
    ("progressive", "RGB", {"quality": 85, "progressive": True}),
    ("greyscale", "L", {"quality": 90}),
    ("greyscale-progressive", "L", {"quality": 80, "progressive": True}),
    ("cmyk", "CMYK", {"quality": 90}),
]


@pytest.mark.parametrize("name,mode,save", JPEG_CASES, ids=[c[0] for c in JPEG_CASES])
def test_jpeg_decoding_equals_pillow(name, mode, save):
    for seed, size in enumerate([(1, 1), (17, 9), (64, 48), (333, 201)]):
        data = jpeg_bytes(mode, size, seed, **save)
        expected = transformers_rgb(data)
        got = images.decode(data)
        assert got.shape == expected.shape
        diff = np.abs(got.astype(int) - expected.astype(int)).max()
        assert diff == 0, f"{name} {size}: max |Δ| = {diff}"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation, tmp_path):
    from transformers.image_utils import load_image

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes("RGB", (31, 18), orientation, quality=95, exif=exif.tobytes())
    # a PIL image the caller opened: no transpose
    np.testing.assert_array_equal(images.decode(data), transformers_rgb(data))
    # a path: transformers' load_image applies exif_transpose
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    np.testing.assert_array_equal(images.decode(data, as_path=True), np.asarray(load_image(str(path))))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_png_exif_orientation(orientation, tmp_path):
    from transformers.image_utils import load_image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(orientation).integers(0, 256, (9, 14, 3), dtype=np.uint8)).save(
        buf, "PNG", exif=exif.tobytes())
    data = buf.getvalue()
    assert b"eXIf" in data
    np.testing.assert_array_equal(images.decode(data), transformers_rgb(data))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(images.decode(data, as_path=True), np.asarray(load_image(str(path))))


def test_path_route_drops_alpha(tmp_path):
    from transformers.image_utils import load_image

    for mode in ("RGBA", "LA", "P"):
        data = pillow_png(mode, size=(19, 13), seed=5, **({"transparency": 2} if mode == "P" else {}))
        path = tmp_path / f"x-{mode}.png"
        path.write_bytes(data)
        np.testing.assert_array_equal(images.decode(data, as_path=True), np.asarray(load_image(str(path))))


# ---- bad input ----------------------------------------------------------------------------------

def test_bad_input_raises():
    png = pillow_png("RGB", size=(40, 30))
    jpg = jpeg_bytes("RGB", (40, 30), 0)
    for bad in (b"", b"garbage!", png[: len(png) // 2], jpg[: len(jpg) // 2], png[:8], jpg[:2] + b"\x00" * 50):
        with pytest.raises(LoranasError) as e:
            images.decode(bad)
        assert re.search(r"PNG|JPEG|format", str(e.value)), str(e.value)


def test_pixel_limit():
    huge = encode_png(np.zeros((1, 1, 1), dtype=np.uint8), 0, 8)
    huge = huge[:16] + struct.pack(">II", 20000, 9000) + huge[24:]  # 180 M pixels, over 2 × 89,478,485
    ihdr_crc = struct.pack(">I", zlib.crc32(huge[12:29]) & 0xFFFFFFFF)
    huge = huge[:29] + ihdr_crc + huge[33:]
    with pytest.raises(LoranasError, match="too large"):
        images.decode(huge)


def test_flags_match_the_header():
    text = HEADER.read_text()
    for name in ("LORANAS_IMAGE_EXIF_TRANSPOSE", "LORANAS_IMAGE_DROP_ALPHA"):
        assert int(re.search(rf"{name}\s*=\s*(\d+)", text).group(1)) == getattr(B, name)


# ---- resize -------------------------------------------------------------------------------------

def test_resize_equals_pillow():
    rng = np.random.default_rng(1)
    worst = 0
    cases = 0
    for _ in range(300):
        sw, sh = int(rng.integers(1, 2001)), int(rng.integers(1, 301))
        if rng.random() < 0.5:
            dw, dh = int(rng.integers(1, 2001)), int(rng.integers(1, 301))
        else:  # near the source size, where rounding is most fragile
            dw, dh = max(1, sw + int(rng.integers(-5, 6))), max(1, sh + int(rng.integers(-5, 6)))
        src = rng.integers(0, 256, size=(sh, sw, 3), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(src).resize((dw, dh), Image.BILINEAR, reducing_gap=None))
        got = images.resize(src, (dw, dh))
        worst = max(worst, int(np.abs(got.astype(int) - expected.astype(int)).max()))
        cases += 1
        assert worst == 0, f"{sw}x{sh} -> {dw}x{dh}: max |Δ| {worst}"
    assert cases == 300


def test_resize_pass_order_boundary():
    """Pillow 13 runs the vertical pass first iff the height shrinks and 2·(W − w) < H − h; the two
    orders round differently, so sizes on both sides of the boundary are checked."""
    rng = np.random.default_rng(3)
    for _ in range(60):
        sw, sh = int(rng.integers(20, 400)), int(rng.integers(20, 400))
        dh = int(rng.integers(1, sh))
        for delta in (-1, 0, 1):
            dw = sw - (sh - dh + delta) // 2
            if dw < 1:
                continue
            src = rng.integers(0, 256, size=(sh, sw, 3), dtype=np.uint8)
            expected = np.asarray(Image.fromarray(src).resize((dw, dh), Image.BILINEAR, reducing_gap=None))
            np.testing.assert_array_equal(images.resize(src, (dw, dh)), expected, err_msg=f"{sw}x{sh}->{dw}x{dh}")


# ---- the processor ------------------------------------------------------------------------------

def processor_images():
    """(name, bytes) images: PNG in every mode and JPEG, 1x1 to 2000x300, extreme aspect ratios."""
    rng = np.random.default_rng(2)
    sizes = [(1, 1), (1, 2000), (2000, 1), (2000, 300), (300, 2000), (5, 7), (55, 55), (56, 56), (343, 49),
             (100, 45), (640, 480), (1000, 170), (57, 3), (3, 57)]
    for i in range(126):
        w, h = int(rng.integers(1, 2001)), int(rng.integers(1, 301))
        sizes.append((w, h) if i % 2 else (h, w))
    out = []
    for i, (w, h) in enumerate(sizes):
        mode = ["RGB", "RGBA", "L", "LA", "P", "1"][i % 6]
        out.append((f"png-{mode}-{w}x{h}", pillow_png(mode, size=(w, h), seed=i)))
        if i % 2 == 0:
            jmode = ["RGB", "L", "CMYK"][i % 3]
            out.append((f"jpeg-{jmode}-{w}x{h}", jpeg_bytes(jmode, (w, h), i, quality=90)))
    return out


CONFIGS = [(56, 4, CLIP_MEAN, CLIP_STD), (28, 6, (0.5,) * 3, (0.5,) * 3), (32, 2, CLIP_MEAN, CLIP_STD),
           (40, 1, CLIP_MEAN, CLIP_STD), (64, 3, (0.5,) * 3, (0.5,) * 3), (112, 4, CLIP_MEAN, CLIP_STD)]


def test_processor_equals_transformers():
    """210 images, each under two of the six (tile size, tile count, mean/std) settings."""
    pytest.importorskip("transformers")
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    procs = [MllamaImageProcessorPil(size={"height": t, "width": t}, max_image_tiles=tiles, image_mean=list(mean),
                                     image_std=list(std)) for t, tiles, mean, std in CONFIGS]
    imgs = processor_images()
    compared = set()
    for i, (name, data) in enumerate(imgs):
        for c in (i % len(CONFIGS), (i + 3) % len(CONFIGS)):
            t, tiles, mean, std = CONFIGS[c]
            ref = procs[c](images=[[Image.open(io.BytesIO(data))]], return_tensors="np")
            got = images.process(data, tile_size=t, max_tiles=tiles, mean=mean, std=std)
            assert got["aspect_ratio_id"] == int(ref["aspect_ratio_ids"][0, 0]), name
            np.testing.assert_array_equal(got["aspect_ratio_mask"], ref["aspect_ratio_mask"][0, 0], err_msg=name)
            expected = ref["pixel_values"][0, 0]
            assert got["pixel_values"].shape == expected.shape
            diff = np.abs(got["pixel_values"] - expected).max()
            assert diff == 0, f"{name} t={t} T={tiles}: max |Δ| {diff}"
            compared.add(name)
    assert len(compared) >= 200


def test_processor_on_paths_equals_transformers(tmp_path):
    """Paths go through transformers' load_image (EXIF transpose, alpha dropped): ``as_path=True``."""
    pytest.importorskip("transformers")
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    proc = MllamaImageProcessorPil(size={"height": 56, "width": 56}, max_image_tiles=4, image_mean=list(CLIP_MEAN),
                                   image_std=list(CLIP_STD))
    files = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        files.append(("jpg", jpeg_bytes("RGB", (150, 40), orientation, quality=90, exif=exif.tobytes())))
    files += [("png", pillow_png(mode, size=(70, 130), seed=i)) for i, mode in enumerate(["RGBA", "LA", "P"])]
    for i, (ext, data) in enumerate(files):
        path = tmp_path / f"{i}.{ext}"
        path.write_bytes(data)
        ref = proc(images=[[str(path)]], return_tensors="np")
        got = images.process(data, tile_size=56, max_tiles=4, mean=CLIP_MEAN, std=CLIP_STD, as_path=True)
        assert got["aspect_ratio_id"] == int(ref["aspect_ratio_ids"][0, 0]), path
        np.testing.assert_array_equal(got["pixel_values"], ref["pixel_values"][0, 0], err_msg=str(path))
