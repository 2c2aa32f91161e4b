"""Finding and loading libloranas; the ABI check at import."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

import loranas
from loranas import _bindings, _lib
from helpers import run_python


def _import_in_subprocess(env: dict[str, str]):
    return run_python("import loranas; print(loranas.library_path())", env=env)


def test_loaded_library_is_a_candidate():
    assert os.path.samefile(loranas.library_path(), _bindings.lib_path)
    assert _bindings.lib_path.name == _lib.LIB_FILENAME


def test_env_override_loads_that_file(tmp_path):
    copy = tmp_path / "custom" / "libloranas.so"
    copy.parent.mkdir()
    shutil.copyfile(loranas.library_path(), copy)
    proc = _import_in_subprocess({"LORANAS_LIBRARY": str(copy)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(copy)


def test_bogus_env_path_lists_it(tmp_path, monkeypatch):
    bogus = tmp_path / "nowhere" / "libloranas.so"
    monkeypatch.setenv("LORANAS_LIBRARY", str(bogus))
    with pytest.raises(_lib.LibraryNotFoundError) as info:
        _lib.load_library()
    assert info.value.attempts == [(str(bogus), "no such file")]
    assert str(bogus) in str(info.value)
    assert "LORANAS_LIBRARY" in str(info.value)


def test_bogus_env_path_fails_import(tmp_path):
    bogus = tmp_path / "libloranas.so"
    proc = _import_in_subprocess({"LORANAS_LIBRARY": str(bogus)})
    assert proc.returncode != 0
    assert "LibraryNotFoundError" in proc.stderr
    assert f"{bogus}: no such file" in proc.stderr


def test_env_path_that_is_not_a_library(tmp_path, monkeypatch):
    junk = tmp_path / "libloranas.so"
    junk.write_bytes(b"this is not an ELF file")
    monkeypatch.setenv("LORANAS_LIBRARY", str(junk))
    with pytest.raises(_lib.LibraryNotFoundError) as info:
        _lib.load_library()
    [(path, reason)] = info.value.attempts
    assert path == str(junk)
    assert reason.startswith("failed to load")


def test_search_order_and_every_path_listed(tmp_path, monkeypatch):
    # A fake checkout: <tmp>/Package.swift and <tmp>/python/loranas, with no library anywhere.
    (tmp_path / "Package.swift").write_text("// fake")
    package_dir = tmp_path / "python" / "loranas"
    package_dir.mkdir(parents=True)
    monkeypatch.delenv("LORANAS_LIBRARY", raising=False)
    monkeypatch.setattr(_lib, "PACKAGE_DIR", package_dir)

    paths = _lib.candidate_paths()
    assert paths[0] == package_dir / "libloranas.so"
    assert paths[1] == tmp_path / ".build" / "release" / "libloranas.so"
    assert tmp_path / ".build" / "debug" / "libloranas.so" in paths
    assert tmp_path / ".build" / "x86_64-unknown-linux-gnu" / "release" / "libloranas.so" in paths
    assert paths.index(tmp_path / ".build" / "debug" / "libloranas.so") > 1

    with pytest.raises(_lib.LibraryNotFoundError) as info:
        _lib.load_library()
    assert [p for p, _ in info.value.attempts] == [str(p) for p in paths]
    for p in paths:
        assert str(p) in str(info.value)


def test_installed_package_does_not_search_a_repo(tmp_path, monkeypatch):
    package_dir = tmp_path / "site-packages" / "loranas"  # no Package.swift two levels up
    package_dir.mkdir(parents=True)
    monkeypatch.delenv("LORANAS_LIBRARY", raising=False)
    monkeypatch.setattr(_lib, "PACKAGE_DIR", package_dir)
    assert _lib.candidate_paths() == [package_dir / "libloranas.so"]


# ---- ABI -----------------------------------------------------------------------------------------


def test_abi_version_matches_bindings():
    assert loranas.abi_version() == _bindings.LORANAS_ABI_VERSION == 5


def test_version_is_semver():
    import re

    v = loranas.version()
    assert isinstance(v, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?", v), v


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build a fake library")
def test_abi_mismatch_refused_at_import(tmp_path):
    src = tmp_path / "fake.c"
    src.write_text(
        textwrap.dedent(
            """
            #include <stdint.h>
            int32_t loranas_abi_version(void) { return 1; }
            """
        )
    )
    lib = tmp_path / "libloranas.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    proc = _import_in_subprocess({"LORANAS_LIBRARY": str(lib)})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError"), proc.stderr
    assert "ABI version 5" in last and "ABI version 1" in last, last
