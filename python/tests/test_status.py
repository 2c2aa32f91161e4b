"""Python's copy of the C ABI's enum values and #defines agrees with loranas.h.

The values are defined once on the Python side (``loranas._status``); this test parses the
header of the source checkout and compares. An installed package has no header next to it, so
the test is skipped there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loranas import _bindings as B
from loranas import _status as S
from loranas import errors

HEADER = Path(__file__).resolve().parents[2] / "Sources" / "CLoRANAS" / "include" / "loranas.h"
pytestmark = pytest.mark.skipif(not HEADER.is_file(),
                                reason=f"no C header at {HEADER} (not a source checkout, e.g. an installed package)")


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def header_enums() -> dict[str, int]:
    """Every NAME = value inside the header's ``enum { ... }`` blocks (explicit values only)."""
    text = _strip_comments(HEADER.read_text())
    values: dict[str, int] = {}
    for body in re.findall(r"\benum\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"(LORANAS_\w+)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", item)
            assert m, f"cannot parse enum item {item!r} in {HEADER}"
            values[m.group(1)] = int(m.group(2), 0)
    return values


def header_defines() -> dict[str, int]:
    text = _strip_comments(HEADER.read_text())
    return {name: int(value, 0) for name, value in re.findall(r"#define\s+(LORANAS_\w+)\s+(\d+)\b", text)}


def python_values(prefixes: tuple[str, ...]) -> dict[str, int]:
    return {name: value for name, value in vars(S).items() if name.startswith(prefixes) and isinstance(value, int)}


def test_parser_finds_the_enums():
    enums = header_enums()
    assert enums["LORANAS_OK"] == 0 and enums["LORANAS_DTYPE_F32"] == 0  # the parser works at all
    assert len([n for n in enums if n.startswith("LORANAS_ERR_")]) >= 7


def test_status_codes_match_the_header():
    header = {n: v for n, v in header_enums().items() if n == "LORANAS_OK" or n.startswith("LORANAS_ERR_")}
    assert python_values(("LORANAS_OK", "LORANAS_ERR_")) == header
    assert S.STATUS_NAMES == {v: n for n, v in header.items()}
    for name, value in header.items():
        assert getattr(B, name) == value, name  # the bindings re-export the same values
    # every error status has its exception class, and the class says which status it is
    for name, value in header.items():
        if value != S.LORANAS_OK:
            cls = type(errors.error_for_status(value, "m"))
            assert cls is not errors.LoranasError and cls.status_code == value, name


def test_dtypes_match_the_header():
    header = {n: v for n, v in header_enums().items() if n.startswith("LORANAS_DTYPE_")}
    assert python_values(("LORANAS_DTYPE_",)) == header
    assert S.DTYPE_NAMES == {v: n[len("LORANAS_DTYPE_"):] for n, v in header.items()}
    for name, value in header.items():
        assert getattr(B, name) == value, name


def test_defines_match_the_header():
    defines = header_defines()
    assert defines["LORANAS_ABI_VERSION"] == B.LORANAS_ABI_VERSION
    assert defines["LORANAS_MAX_DIMS"] == B.LORANAS_MAX_DIMS
