"""One image as the engine's ``loranas_image_input``, following transformers' route for its type.

* ``PIL.Image.Image``: transformers' ``convert_to_rgb`` (no EXIF transpose). An image with alpha (an ``A`` band
  or ``info["transparency"]``) is re-encoded losslessly as PNG (after ``convert("RGBA")`` when its mode cannot
  be saved as PNG) and the engine composites it onto white with Pillow's integer ``alpha_composite``; any
  other image is ``np.asarray(im.convert("RGB"))``, which is exactly what transformers computes for it.
* ``str`` / ``os.PathLike``: a file, as ``load_image`` reads it (EXIF transpose, alpha dropped).
* ``bytes``: as a PIL image opened from those bytes (no EXIF transpose, alpha onto white).
* ``numpy.ndarray``: uint8 (H, W, 3) RGB, or (H, W) / (H, W, 1) grey.

PNG and JPEG files and bytes are decoded by the engine; other formats go through Pillow (imported lazily,
only for them and for PIL images).
"""

from __future__ import annotations

import ctypes
import io
import os

import numpy as np

from . import _bindings as B

__all__ = ["engine_image", "is_image", "as_c_array"]

# Modes Pillow writes to PNG as they are (so the engine's ported conversion rules apply).
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
_PATH_FLAGS = B.LORANAS_IMAGE_EXIF_TRANSPOSE | B.LORANAS_IMAGE_DROP_ALPHA


def _is_pil(x) -> bool:
    module = type(x).__module__
    if not module.startswith("PIL."):
        return False
    from PIL import Image

    return isinstance(x, Image.Image)


def is_image(x) -> bool:
    """True for one image of a type :func:`engine_image` takes (a 4-D array is a list of images)."""
    if isinstance(x, np.ndarray):
        return x.ndim in (2, 3)
    return isinstance(x, (str, bytes, bytearray, memoryview, os.PathLike)) or _is_pil(x)


def _is_png_or_jpeg(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff"


def _encoded(data: bytes, flags: int, sample: int) -> tuple[B.loranas_image_input, object]:
    buf = np.frombuffer(data, dtype=np.uint8)
    entry = B.loranas_image_input(buf.ctypes.data_as(B.c_uint8_p), buf.size, 0, 0, flags, sample)
    return entry, buf


def _raw(rgb: np.ndarray, sample: int) -> tuple[B.loranas_image_input, object]:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    entry = B.loranas_image_input(rgb.ctypes.data_as(B.c_uint8_p), rgb.size, w, h, 0, sample)
    return entry, rgb


def _from_array(x: np.ndarray, sample: int):
    if x.dtype != np.uint8:
        raise TypeError(f"a numpy image must be uint8, got {x.dtype}")
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"a numpy image must be (H, W, 3) RGB or (H, W) grey, got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"a numpy image needs height and width >= 1, got shape {x.shape}")
    return _raw(x, sample)


def _from_pil(im, sample: int):
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if not has_alpha:
        return _raw(np.asarray(im.convert("RGB")), sample)
    if im.mode not in _PNG_MODES:
        im = im.convert("RGBA")
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=0)
    return _encoded(buf.getvalue(), 0, sample)


def _from_path(path, sample: int):
    with open(path, "rb") as f:
        data = f.read()
    if _is_png_or_jpeg(data):
        return _encoded(data, _PATH_FLAGS, sample)
    from PIL import Image, ImageOps  # another format: load_image's own steps

    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return _raw(np.asarray(im.convert("RGB")), sample)


def engine_image(x, sample: int) -> tuple[B.loranas_image_input, object]:
    """``x`` as a ``loranas_image_input`` of sample ``sample``, and the object that owns its bytes (keep it
    alive until the engine call returns)."""
    if isinstance(x, np.ndarray):
        return _from_array(x, sample)
    if isinstance(x, (bytes, bytearray, memoryview)):
        data = bytes(x)
        if _is_png_or_jpeg(data):
            return _encoded(data, 0, sample)
        from PIL import Image

        return _from_pil(Image.open(io.BytesIO(data)), sample)
    if isinstance(x, str) and x.startswith(("http://", "https://", "data:")):
        raise ValueError(f"URLs and data URIs are not loaded; download the image and pass its path or bytes: "
                         f"{x[:60]!r}")
    if isinstance(x, (str, os.PathLike)):
        return _from_path(x, sample)
    if _is_pil(x):
        return _from_pil(x, sample)
    raise TypeError(f"an image must be a PIL image, a path, bytes or a uint8 numpy array, got {type(x).__name__}")


def as_c_array(entries: list) -> ctypes.Array:
    """``loranas_image_input`` entries as a C array (one zeroed entry when there are none)."""
    return (B.loranas_image_input * max(len(entries), 1))(*entries)
