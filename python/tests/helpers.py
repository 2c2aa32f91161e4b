"""Writing safetensors files by hand (for dtypes safetensors.numpy lacks, and hostile files), and
small helpers shared by the tests (a subprocess with the same loranas, concurrent workers)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest, ties to even.

    NaNs are not handled (the tests use none).
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]], metadata=None) -> None:
    """Write ``{name: (dtype, shape, raw little-endian bytes)}`` as a safetensors file."""
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    write_raw_safetensors(path, json.dumps(header).encode("utf-8"), b"".join(d for _, _, d in tensors.values()))


def write_raw_safetensors(path: Path, header: bytes, body: bytes, header_len: int | None = None) -> None:
    """The file as bytes: u64 little-endian header length, header JSON (space-padded to 8), body."""
    if header_len is None:
        header = header + b" " * (-len(header) % 8)
        header_len = len(header)
    Path(path).write_bytes(struct.pack("<Q", header_len) + header + body)


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports the same loranas package and library as
    this one (unless ``env`` overrides LORANAS_LIBRARY)."""
    import loranas

    full_env = dict(os.environ)
    package_parent = str(Path(loranas.__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, full_env.get("PYTHONPATH")]))
    full_env["LORANAS_LIBRARY"] = loranas.library_path()
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], env=full_env, capture_output=True, text=True,
                          timeout=120)


def run_threads(work: Callable[[int], object], count: int) -> None:
    """Run ``work(i)`` for every i in ``range(count)``, each on its own thread, all at once; wait
    for them all, then re-raise the first exception a thread raised (a failure in a thread would
    otherwise only be printed)."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # re-raised below, on the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
