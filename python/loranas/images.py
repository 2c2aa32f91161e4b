"""Images through the engine: decoding, Pillow's bilinear resize, and the Mllama image processor.

Thin: every function converts its arguments, calls one C function and raises on a non-zero status.
By default bytes are treated as transformers treats a PIL image the caller opened (no EXIF
transpose, alpha composited onto white); ``as_path=True`` follows its route for paths, URLs and
base64 strings (``ImageOps.exif_transpose``, then a plain ``convert("RGB")`` that drops alpha).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _bindings as B
from .errors import check

__all__ = ["decode", "resize", "process"]


def _flags(as_path: bool) -> int:
    return (B.LORANAS_IMAGE_EXIF_TRANSPOSE | B.LORANAS_IMAGE_DROP_ALPHA) if as_path else 0


def _bytes(data: bytes) -> tuple[np.ndarray, object]:
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    return arr, arr.ctypes.data_as(B.c_uint8_p)


def decode(data: bytes, as_path: bool = False) -> np.ndarray:
    """PNG or JPEG bytes as an (h, w, 3) uint8 array, equal to Pillow's ``convert("RGB")`` rules."""
    arr, ptr = _bytes(data)
    h = B.c_int64()
    w = B.c_int64()
    flags = _flags(as_path)
    status = B.loranas_image_decode(ptr, arr.size, flags, None, 0, ctypes.byref(h), ctypes.byref(w))
    check(status, "loranas_image_decode")
    out = np.empty((h.value, w.value, 3), dtype=np.uint8)
    status = B.loranas_image_decode(ptr, arr.size, flags, out.ctypes.data_as(B.c_uint8_p), out.size, ctypes.byref(h),
                                    ctypes.byref(w))
    check(status, "loranas_image_decode")
    return out


def resize(rgb, size: tuple[int, int]) -> np.ndarray:
    """``Image.fromarray(rgb).resize(size, BILINEAR, reducing_gap=None)``; size is (width, height)."""
    src = np.ascontiguousarray(rgb, dtype=np.uint8)
    if src.ndim != 3 or src.shape[2] != 3:
        raise ValueError(f"rgb must be (h, w, 3), got shape {src.shape}")
    out_w, out_h = (int(v) for v in size)
    out = np.empty((max(out_h, 0), max(out_w, 0), 3), dtype=np.uint8)
    status = B.loranas_image_resize_rgb(src.ctypes.data_as(B.c_uint8_p), src.size, src.shape[0], src.shape[1],
                                        out_h, out_w, out.ctypes.data_as(B.c_uint8_p), out.size)
    check(status, f"loranas_image_resize_rgb({src.shape[1]}x{src.shape[0]} -> {out_w}x{out_h})")
    return out


def process(data: bytes, tile_size: int = 224, max_tiles: int = 4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
            rescale_factor: float = 1 / 255, as_path: bool = False) -> dict:
    """One image through transformers' MllamaImageProcessor (Pillow path).

    Returns ``pixel_values`` (T, 3, t, t) float32, ``aspect_ratio_id`` (int) and ``aspect_ratio_mask``
    (T,) int64, which are one image slot of transformers' (B, I, T, ...) arrays.
    """
    arr, ptr = _bytes(data)
    mean_arr = np.ascontiguousarray(mean, dtype=np.float64)
    std_arr = np.ascontiguousarray(std, dtype=np.float64)
    if mean_arr.shape != (3,) or std_arr.shape != (3,):
        raise ValueError("mean and std must hold 3 values")
    tiles = max(int(max_tiles), 0)
    side = max(int(tile_size), 0)
    pixels = np.zeros((tiles, 3, side, side), dtype=np.float32)
    mask = np.zeros((tiles,), dtype=np.int64)
    ratio = B.c_int64()
    status = B.loranas_image_process(
        ptr, arr.size, _flags(as_path), int(tile_size), int(max_tiles), mean_arr.ctypes.data_as(B.c_double_p),
        std_arr.ctypes.data_as(B.c_double_p), float(rescale_factor), pixels.ctypes.data_as(B.c_float_p),
        pixels.size, ctypes.byref(ratio), mask.ctypes.data_as(B.c_int64_p), mask.size)
    check(status, f"loranas_image_process(tile_size={tile_size}, max_tiles={max_tiles})")
    return {"pixel_values": pixels, "aspect_ratio_id": int(ratio.value), "aspect_ratio_mask": mask}
