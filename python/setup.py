"""Build step of the loranas wheel: put libloranas.so inside the package.

`pip install ./python` runs `build_py` below, which takes the library from, in order:

1. ``$LORANAS_LIBRARY``, a prebuilt library (copied as is);
2. ``<repo>/.build/release/libloranas.so`` when it is newer than every file under
   ``<repo>/Sources`` and ``<repo>/Package.swift`` (copied as is);
3. otherwise ``swift build -c release --product loranas`` in ``<repo>`` (this folder's parent).
   ``swift`` is ``$LORANAS_SWIFT``, else the one on PATH, else ``/opt/swift/usr/bin/swift``.

The wheel holds a native library, so it is tagged ``py3-none-<platform>``, not pure Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIB_FILENAME = {"darwin": "libloranas.dylib", "win32": "loranas.dll"}.get(sys.platform, "libloranas.so")


def _log(msg: str) -> None:
    print(f"loranas build: {msg}", file=sys.stderr, flush=True)


def _newest_source_mtime() -> float:
    newest = (REPO / "Package.swift").stat().st_mtime
    for dirpath, _, filenames in os.walk(REPO / "Sources"):
        for name in filenames:
            newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _find_swift() -> str:
    for candidate in (os.environ.get("LORANAS_SWIFT"), shutil.which("swift"), "/opt/swift/usr/bin/swift"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "loranas: no Swift toolchain found (set LORANAS_SWIFT, put swift on PATH or install it at "
        "/opt/swift), and no prebuilt library given in LORANAS_LIBRARY"
    )


def _swift_build() -> Path:
    swift = _find_swift()
    cmd = [swift, "build", "-c", "release", "--product", "loranas"]
    _log(f"running {' '.join(cmd)} in {REPO}")
    try:
        subprocess.run(cmd, cwd=REPO, check=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"loranas: `{' '.join(cmd)}` failed with exit status {exc.returncode} (its output is above); "
            "fix the build, or set LORANAS_LIBRARY to a prebuilt libloranas.so to package that instead"
        ) from None
    bin_path = subprocess.run(
        [swift, "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    lib = Path(bin_path) / LIB_FILENAME
    if not lib.is_file():
        raise RuntimeError(f"loranas: swift build succeeded but {lib} does not exist")
    return lib


def locate_library() -> Path:
    """The library to package, building it if needed."""
    override = os.environ.get("LORANAS_LIBRARY")
    if override:
        lib = Path(override).expanduser()
        if not lib.is_file():
            raise RuntimeError(f"loranas: LORANAS_LIBRARY={override} is not a file")
        _log(f"using prebuilt {lib} (LORANAS_LIBRARY)")
        return lib
    if not (REPO / "Package.swift").is_file():
        raise RuntimeError(
            f"loranas: {REPO} is not the loranas repository (no Package.swift), so the engine cannot be "
            "built; build from a checkout (`pip install ./python`) or set LORANAS_LIBRARY"
        )
    existing = REPO / ".build" / "release" / LIB_FILENAME
    if existing.is_file() and existing.stat().st_mtime >= _newest_source_mtime():
        _log(f"using {existing} (newer than the sources)")
        return existing
    return _swift_build()


class BuildPyWithLibrary(build_py):
    def run(self) -> None:
        super().run()
        lib = locate_library()
        if getattr(self, "editable_mode", False):
            # An editable install imports from python/loranas, whose loader falls back to the
            # repo's .build folders: nothing to copy.
            return
        target = Path(self.build_lib) / "loranas" / LIB_FILENAME
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lib, target)
        os.chmod(target, 0o755)
        _log(f"copied {lib} -> {target}")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / "loranas" / LIB_FILENAME))
        return outputs


class PlatformWheel(bdist_wheel):
    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat  # the library does not use the Python C API


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
