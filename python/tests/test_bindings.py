"""The ctypes bindings agree with loranas.h: every function, its argument and return types,
the constants and the loranas_batch layout."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loranas import _bindings as B

_REPO = Path(__file__).resolve().parents[2]
_HEADERS = sorted(_REPO.glob("Sources/*/include/loranas.h"))
pytestmark = pytest.mark.skipif(len(_HEADERS) != 1, reason=f"needs exactly one loranas.h in {_REPO}/Sources")


@pytest.fixture(scope="module")
def header() -> str:
    text = _HEADERS[0].read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    _HANDLES.clear()
    _HANDLES.update(_opaque_handles(text))
    _CALLBACKS.clear()
    _CALLBACKS.update(_callback_typedefs(text))
    return text


def _prototypes(header: str) -> dict[str, tuple[str, list[str]]]:
    protos = {}
    pattern = r"(int32_t|void|const\s+char\s*\*)\s*(loranas_\w+)\s*\(([^)]*)\)\s*;"
    for ret, name, params in re.findall(pattern, header):
        params = " ".join(params.split())
        protos[name] = (" ".join(ret.split()), [] if params in ("", "void") else [p.strip() for p in params.split(",")])
    return protos


def _opaque_handles(header: str) -> set[str]:
    """Every ``typedef struct X X;`` (an opaque handle type; loranas_batch has a body)."""
    return set(re.findall(r"typedef\s+struct\s+(loranas_\w+)\s+\1\s*;", header))


def _callback_typedefs(header: str) -> dict[str, tuple[str, list[str]]]:
    """``typedef RET (*name)(params);`` -> {name: (RET, [params])}."""
    found = {}
    for ret, name, params in re.findall(r"typedef\s+(int32_t|void)\s*\(\s*\*\s*(loranas_\w+)\s*\)\s*\(([^)]*)\)\s*;", header):
        found[name] = (ret, [p.strip() for p in " ".join(params.split()).split(",")])
    return found


_HANDLES: set[str] = set()  # filled by the header fixture's users below
_CALLBACKS: set[str] = set()


def _ctype_for(c_decl: str):
    """The ctypes type the bindings should use for a C parameter or return type."""
    decl = re.sub(r"\bconst\b", " ", c_decl)
    stars = decl.count("*")
    words = decl.replace("*", " ").split()
    base = words[0]
    if base in _CALLBACKS and stars == 0:  # a function pointer typedef: the CFUNCTYPE of that name
        return getattr(B, base)
    if stars == 0:
        return {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
                "double": ctypes.c_double, "void": None}[base]
    if base == "char" and stars == 1:
        return ctypes.c_char_p
    if base == "void" and stars == 1:
        return ctypes.c_void_p
    if base in _HANDLES:  # opaque handles
        return ctypes.c_void_p if stars == 1 else ctypes.POINTER(ctypes.c_void_p)
    if base in ("loranas_batch", "loranas_image_input", "loranas_sample") and stars == 1:
        return ctypes.POINTER(getattr(B, base))
    return {"float": ctypes.POINTER(ctypes.c_float), "int64_t": ctypes.POINTER(ctypes.c_int64),
            "int32_t": ctypes.POINTER(ctypes.c_int32), "uint8_t": ctypes.POINTER(ctypes.c_uint8),
            "double": ctypes.POINTER(ctypes.c_double)}[base]


def test_every_header_function_is_bound(header):
    protos = _prototypes(header)
    assert len(protos) >= 29  # the parser found the header's functions
    declared = set(re.findall(r"\b(loranas_\w+)\s*\(", header))
    assert declared == set(protos), f"unparsed declarations: {declared - set(protos)}"
    bound = {name for name in dir(B) if name.startswith("loranas_") and callable(getattr(B, name))
             and not isinstance(getattr(B, name), type) and hasattr(getattr(B, name), "argtypes")}
    assert bound == set(protos), f"missing: {set(protos) - bound}; extra: {bound - set(protos)}"


def test_argument_and_return_types_match(header):
    for name, (ret, params) in _prototypes(header).items():
        fn = getattr(B, name)
        expected_ret = ctypes.c_char_p if ret == "const char *" else _ctype_for(ret)
        assert fn.restype is expected_ret, f"{name} restype {fn.restype} != {expected_ret}"
        assert fn.argtypes is not None, name
        assert len(fn.argtypes) == len(params), f"{name}: {len(fn.argtypes)} argtypes for {params}"
        for i, (param, argtype) in enumerate(zip(params, fn.argtypes)):
            expected = _ctype_for(param)
            assert argtype is expected, f"{name} argument {i} ({param}): {argtype} != {expected}"


def test_constants_match(header):
    values = {}
    for name, value in re.findall(r"#define\s+(LORANAS_\w+)\s+(\d+)", header):
        values[name] = int(value)
    for name, value in re.findall(r"\b(LORANAS_\w+)\s*=\s*(\d+)", header):
        values[name] = int(value)
    assert "LORANAS_ABI_VERSION" in values and "LORANAS_ERR_BUFFER_TOO_SMALL" in values and "LORANAS_DTYPE_I16" in values
    for name, value in values.items():
        assert getattr(B, name) == value, name
    dtypes = {v: k.removeprefix("LORANAS_DTYPE_") for k, v in values.items() if k.startswith("LORANAS_DTYPE_")}
    assert B.DTYPE_NAMES == dtypes
    statuses = {v: k for k, v in values.items() if k == "LORANAS_OK" or k.startswith("LORANAS_ERR_")}
    assert B.STATUS_NAMES == statuses


def test_batch_struct_fields_match(header):
    body = re.search(r"typedef\s+struct\s+loranas_batch\s*\{(.*?)\}\s*loranas_batch\s*;", header, re.S).group(1)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if decl:
            names += [n.strip().lstrip("*").strip() for n in re.sub(r"^.*?\b(int64_t|float)\b\s*\*?", "", decl).split(",")]
    assert [f[0] for f in B.loranas_batch._fields_] == names
    assert ctypes.sizeof(B.loranas_batch) == 14 * 8
    assert B.loranas_batch.pixel_values.offset == 10 * 8


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("name", ["loranas_batch", "loranas_image_input", "loranas_sample"])
def test_struct_layout_matches_the_c_compiler(tmp_path, name):
    struct = getattr(B, name)
    fields = [f[0] for f in struct._fields_]
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "loranas.h"\nint main(void) {\n'
        f'    printf("%zu\\n", sizeof({name}));\n'
        + "".join(f'    printf("%zu\\n", offsetof({name}, {f}));\n' for f in fields)
        + "    return 0;\n}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-I", str(_HEADERS[0].parent), "-o", str(exe), str(src)], check=True)
    out = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert out[0] == ctypes.sizeof(struct)
    assert out[1:] == [getattr(struct, f).offset for f in fields]


def test_handles_and_callbacks_are_declared(header):
    # The parsers found what the header declares (so the type checks above are not vacuous).
    assert _opaque_handles(header) == {"loranas_checkpoint", "loranas_model", "loranas_dataset", "loranas_result",
                                       "loranas_tokenizer", "loranas_processor", "loranas_processor_output"}
    for name in _opaque_handles(header):
        assert getattr(B, f"{name}_p") is ctypes.c_void_p, name
    callbacks = _callback_typedefs(header)
    assert set(callbacks) == {"loranas_progress_fn"}
    # every typedef is one of those or the loranas_batch, loranas_image_input and loranas_sample structs
    assert len(re.findall(r"\btypedef\b", header)) == len(_opaque_handles(header)) + len(callbacks) + 3


def test_progress_callback_type_matches(header):
    for name, (ret, params) in _callback_typedefs(header).items():
        fn_type = getattr(B, name)
        assert issubclass(fn_type, ctypes._CFuncPtr), name
        assert fn_type._restype_ is _ctype_for(ret), name
        assert list(fn_type._argtypes_) == [_ctype_for(p) for p in params], name
        assert fn_type._flags_ & ctypes._FUNCFLAG_CDECL, name


def test_functions_taking_a_callback_use_its_type(header):
    users = [name for name, (_, params) in _prototypes(header).items() if any("loranas_progress_fn" in p for p in params)]
    assert sorted(users) == ["loranas_finetune", "loranas_pretrain", "loranas_search"]
    for name in users:
        assert B.loranas_progress_fn in getattr(B, name).argtypes, name


def test_image_input_struct_fields_match(header):
    body = re.search(r"typedef\s+struct\s+loranas_image_input\s*\{(.*?)\}\s*loranas_image_input\s*;", header,
                     re.S).group(1)
    names = [decl.split()[-1].lstrip("*") for decl in body.split(";") if decl.strip()]
    assert [f[0] for f in B.loranas_image_input._fields_] == names
    assert ctypes.sizeof(B.loranas_image_input) == 5 * 8


def test_sample_struct_fields_match(header):
    body = re.search(r"typedef\s+struct\s+loranas_sample\s*\{(.*?)\}\s*loranas_sample\s*;", header, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    names = []
    for decl in body.split(";"):
        if decl.strip():
            names += [n.strip().lstrip("*") for n in re.sub(r"^\s*(int64_t|float)\s*\*?", "", decl.strip()).split(",")]
    assert [f[0] for f in B.loranas_sample._fields_] == names
    assert ctypes.sizeof(B.loranas_sample) == 12 * 8
