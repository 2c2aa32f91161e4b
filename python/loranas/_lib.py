"""Layer 1: find and load libloranas.

Search order (the first one that loads wins):

1. ``$LORANAS_LIBRARY``: the full path of the library. When set it is the only candidate, so a
   wrong override is reported instead of silently loading some other build.
2. The package folder (``loranas/libloranas.so``), where ``pip install`` copies the library.
3. The repository's SwiftPM build folders, when this package sits in a source checkout
   (``<repo>/python/loranas``): release builds before debug builds.

If nothing loads, :class:`LibraryNotFoundError` lists every path tried and why each failed.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ENV_VAR = "LORANAS_LIBRARY"

if sys.platform == "darwin":
    LIB_FILENAME = "libloranas.dylib"
elif sys.platform == "win32":
    LIB_FILENAME = "loranas.dll"
else:
    LIB_FILENAME = "libloranas.so"

PACKAGE_DIR = Path(__file__).resolve().parent

# SwiftPM build folders, relative to the repository root, in the order they are tried.
_BUILD_SUBDIRS = (
    ".build/release",
    ".build/x86_64-unknown-linux-gnu/release",
    ".build/aarch64-unknown-linux-gnu/release",
    ".build/debug",
    ".build/x86_64-unknown-linux-gnu/debug",
    ".build/aarch64-unknown-linux-gnu/debug",
)


class LibraryNotFoundError(ImportError):
    """libloranas could not be found or loaded. ``attempts`` holds ``(path, reason)`` pairs."""

    def __init__(self, attempts: list[tuple[str, str]]):
        self.attempts = attempts
        lines = [f"could not load {LIB_FILENAME}; tried:"]
        lines += [f"  {path}: {reason}" for path, reason in attempts]
        lines.append(
            f"Set {ENV_VAR} to the library's full path, build it with "
            "`swift build -c release --product loranas` in the repository root, "
            "or reinstall the package (`pip install ./python`)."
        )
        super().__init__("\n".join(lines))


def repo_root() -> Path | None:
    """The source checkout this package lives in, or None when installed elsewhere."""
    root = PACKAGE_DIR.parent.parent
    return root if (root / "Package.swift").is_file() else None


def candidate_paths() -> list[Path]:
    """Every path the loader would try, in order."""
    override = os.environ.get(ENV_VAR)
    if override:
        return [Path(override).expanduser()]
    paths = [PACKAGE_DIR / LIB_FILENAME]
    root = repo_root()
    if root is not None:
        paths += [root / sub / LIB_FILENAME for sub in _BUILD_SUBDIRS]
    return paths


def prefer_openblas_kernels() -> None:
    """OpenBLAS picks its kernels when it loads. Unless OPENBLAS_CORETYPE says which, choose those this CPU runs best,
    by the engine's rule (lr_openblas_preferred_core): OpenBLAS 0.3.21 takes newer Intel CPUs for Prescott (SSE3),
    2-3x slower. /proc/cpuinfo lists only the features the kernel enabled."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if "avx512_bf16" in flags and {"avx512f", "avx512bw", "avx512vl"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "Cooperlake"
    elif {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif {"avx2", "fma"} <= set(flags):
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


def load_library() -> tuple[ctypes.CDLL, Path]:
    """Load the first candidate that exists and loads; return it with its path."""
    prefer_openblas_kernels()
    attempts: list[tuple[str, str]] = []
    for path in candidate_paths():
        if not path.exists():
            attempts.append((str(path), "no such file"))
            continue
        if not path.is_file():
            attempts.append((str(path), "not a regular file"))
            continue
        try:
            return ctypes.CDLL(str(path)), path
        except OSError as exc:  # a broken file, a missing dependency (libswiftCore, openblas), ...
            attempts.append((str(path), f"failed to load: {exc}"))
    raise LibraryNotFoundError(attempts)
