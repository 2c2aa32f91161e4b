"""A non-zero status becomes the matching exception, carrying the engine's message."""

from __future__ import annotations

import ctypes
from pathlib import Path

import errno
import json
import os
import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

import loranas
from loranas import _bindings as B
from loranas.errors import check, error_for_status
from helpers import run_python, write_raw_safetensors


# ---- the mapping itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, cls, builtin",
    [
        (B.LORANAS_ERR_INVALID_ARGUMENT, loranas.InvalidArgumentError, ValueError),
        (B.LORANAS_ERR_IO, loranas.EngineIOError, OSError),
        (B.LORANAS_ERR_FORMAT, loranas.FormatError, ValueError),
        (B.LORANAS_ERR_NOT_FOUND, loranas.NotFoundError, KeyError),
        (B.LORANAS_ERR_NUMERIC, loranas.NumericError, ArithmeticError),
        (B.LORANAS_ERR_UNSUPPORTED, loranas.UnsupportedError, NotImplementedError),
        (B.LORANAS_ERR_BUFFER_TOO_SMALL, loranas.BufferTooSmallError, loranas.LoranasError),
    ],
)
def test_status_maps_to_class(status, cls, builtin):
    err = error_for_status(status, "the message", "doing x")
    assert type(err) is cls
    assert isinstance(err, loranas.LoranasError) and isinstance(err, builtin)
    assert err.status == status and err.message == "the message" and err.context == "doing x"
    assert str(err) == "doing x: the message"  # no KeyError-style quoting


def test_unknown_status_is_plain_error():
    err = error_for_status(99, "", "")
    assert type(err) is loranas.LoranasError and err.status == 99
    assert "99" in str(err)


def test_check_ok_is_silent():
    assert check(B.LORANAS_OK, "nothing") is None


# ---- errors coming from the engine ---------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "does-not-exist.safetensors"
    with pytest.raises((loranas.NotFoundError, loranas.EngineIOError)) as info:
        loranas.open_checkpoint(missing)
    assert info.value.status in (B.LORANAS_ERR_IO, B.LORANAS_ERR_NOT_FOUND)
    assert str(missing) in info.value.message  # the engine's own text names the path
    assert str(missing) in str(info.value)


def test_missing_file_sets_last_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    handle = B.loranas_checkpoint_p()
    status = B.loranas_checkpoint_open(str(missing).encode(), handle)
    assert status in (B.LORANAS_ERR_IO, B.LORANAS_ERR_NOT_FOUND)
    assert not handle.value
    assert str(missing).encode() in B.loranas_last_error()


def _valid_header(nbytes: int = 16) -> bytes:
    return json.dumps({"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()


HOSTILE = {
    # header length points past the end of the file
    "header_len_past_eof": lambda p: write_raw_safetensors(p, b"{}", b"", header_len=1 << 20),
    # a header length that overflows any offset arithmetic
    "header_len_huge": lambda p: write_raw_safetensors(p, b"{}", b"", header_len=(1 << 64) - 1),
    # fewer than the 8 bytes of the length prefix
    "truncated_prefix": lambda p: p.write_bytes(b"\x10\x00\x00"),
    "header_not_json": lambda p: write_raw_safetensors(p, b"{not json!", b""),
    "header_not_object": lambda p: write_raw_safetensors(p, b"[1, 2, 3]", b""),
    # the tensor's bytes run past the end of the data
    "data_past_eof": lambda p: write_raw_safetensors(p, _valid_header(16), b"\x00" * 8),
    # offsets disagree with dtype x shape (3 floats in 16 bytes)
    "size_mismatch": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}).encode(), b"\x00" * 16
    ),
    # shape x dtype size overflows 64 bits (2^62 elements x 8 bytes)
    "element_bytes_overflow": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F64", "shape": [2**31, 2**31], "data_offsets": [0, 8]}}).encode(), b"\x00" * 8
    ),
    "end_before_begin": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}).encode(), b"\x00" * 8
    ),
    "negative_dim": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}).encode(), b"\x00" * 16
    ),
    "unknown_dtype": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F7", "shape": [4], "data_offsets": [0, 4]}}).encode(), b"\x00" * 4
    ),
    "missing_offsets": lambda p: write_raw_safetensors(
        p, json.dumps({"w": {"dtype": "F32", "shape": [1]}}).encode(), b"\x00" * 4
    ),
}


# Each hostile file is opened in a child process: the header promises that nothing traps across the
# boundary, and a Swift trap (an overflow, a bad cast) would otherwise kill the whole test run.
_OPEN_AND_READ_ALL = """
import sys, loranas
try:
    with loranas.open_checkpoint(sys.argv[1]) as ckpt:
        for name in ckpt.names():  # a lazy engine may only notice when a tensor is read
            ckpt.read(name)
except loranas.LoranasError as e:
    print(type(e).__name__, e.status, repr(e.message))
else:
    print("no error")
"""


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_safetensors_is_format_error(tmp_path, case):
    path = tmp_path / f"{case}.safetensors"
    HOSTILE[case](path)
    proc = run_python(_OPEN_AND_READ_ALL, str(path))
    assert proc.returncode == 0, f"the engine crashed (exit {proc.returncode}): {proc.stderr[:1500]}"
    kind, status, message = proc.stdout.strip().split(" ", 2)
    assert (kind, int(status)) == ("FormatError", B.LORANAS_ERR_FORMAT), proc.stdout
    assert message not in ("''", '""')  # the engine said why


def test_missing_tensor(tmp_path):
    path = tmp_path / "one.safetensors"
    save_file({"present": np.ones(3, np.float32)}, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        with pytest.raises(loranas.NotFoundError) as info:
            ckpt.read("absent.weight")
        assert "absent.weight" in info.value.message
        with pytest.raises(KeyError):
            ckpt["absent.weight"]
        with pytest.raises(loranas.NotFoundError):
            ckpt.info("absent.weight")
        assert "absent.weight" not in ckpt


def test_matmul_shape_mismatch():
    with pytest.raises(loranas.InvalidArgumentError) as info:
        loranas.matmul(np.ones((2, 3)), np.ones((4, 5)))
    assert info.value.status == B.LORANAS_ERR_INVALID_ARGUMENT
    assert "(2, 3)" in str(info.value) and "(4, 5)" in str(info.value)
    with pytest.raises(ValueError):  # also a ValueError, like numpy's
        loranas.matmul(np.ones((2, 3)), np.ones((2, 3)), trans_b=False)
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.matmul(np.ones(3), np.ones((3, 3)))
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.matmul(np.ones((3, 3)), np.ones((3, 3, 1)))


def test_engine_validates_matmul_itself():
    # Bypass the Python checks: the engine must refuse bad dimensions, NULL buffers and buffers
    # shorter than the dimensions say, on its own.
    a = np.ones((2, 2), np.float32)
    c = np.empty((2, 2), np.float32)
    p = lambda x: x.ctypes.data_as(B.c_float_p)  # noqa: E731
    status = B.loranas_matmul_f32(p(a), 4, p(a), 4, p(c), 4, -1, 2, 2, 0, 0)
    assert status == B.LORANAS_ERR_INVALID_ARGUMENT
    with pytest.raises(loranas.InvalidArgumentError) as info:
        check(B.loranas_matmul_f32(p(a), 4, p(a), 4, p(c), 4, 2, -3, 2, 0, 0), "matmul")
    assert info.value.message
    with pytest.raises(loranas.InvalidArgumentError):
        check(B.loranas_matmul_f32(None, 4, p(a), 4, p(c), 4, 2, 2, 2, 0, 0), "matmul")
    with pytest.raises(loranas.InvalidArgumentError):
        check(B.loranas_matmul_f32(p(a), 4, p(a), 4, None, 4, 2, 2, 2, 0, 0), "matmul")
    with pytest.raises(loranas.InvalidArgumentError, match="c holds 3 elements, 4 needed"):
        check(B.loranas_matmul_f32(p(a), 4, p(a), 4, p(c), 3, 2, 2, 2, 0, 0), "matmul")


def test_handles_are_typed():
    """Issue 7, defect 9: a model handle passed as a dataset (or a freed handle) is an error,
    not undefined behaviour."""
    fixture = Path(__file__).resolve().parents[2] / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
    model = loranas.load_model(fixture)
    count = ctypes.c_int64()
    with model._use() as handle:
        status = B.loranas_dataset_count(handle, ctypes.byref(count))
    assert status == B.LORANAS_ERR_INVALID_ARGUMENT
    assert "dataset is a MllamaModel handle, where a Dataset handle is expected" in B.loranas_last_error().decode()
    raw = model._handle
    model.close()
    assert B.loranas_model_describe(raw, None, 0, ctypes.byref(count)) == B.LORANAS_ERR_INVALID_ARGUMENT
    assert "not a live handle" in B.loranas_last_error().decode()


def test_read_count_is_checked(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        out = np.full(8, -1.0, np.float32)
        for count in (5, 7, 0, -1):
            status = B.loranas_checkpoint_read_f32(ckpt._handle, b"w", out.ctypes.data_as(B.c_float_p), count)
            assert status == B.LORANAS_ERR_INVALID_ARGUMENT, count
        assert np.all(out == -1.0)  # nothing written on failure


def test_null_arguments_are_refused(tmp_path):
    out = B.loranas_checkpoint_p()
    assert B.loranas_checkpoint_open(None, out) == B.LORANAS_ERR_INVALID_ARGUMENT
    n = B.c_int64()
    assert B.loranas_checkpoint_count(None, n) == B.LORANAS_ERR_INVALID_ARGUMENT
    B.loranas_checkpoint_free(None)  # accepts NULL


def test_set_num_threads_invalid():
    before = loranas.get_num_threads()
    with pytest.raises(loranas.InvalidArgumentError) as info:
        loranas.set_num_threads(0)
    assert info.value.message  # from the engine
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.set_num_threads(-3)
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.set_num_threads(2**32 + 1)  # would wrap to 1 through ctypes
    with pytest.raises(loranas.InvalidArgumentError):
        loranas.set_num_threads(2.0)
    assert loranas.get_num_threads() == before


def test_set_and_get_num_threads():
    before = loranas.get_num_threads()
    assert before >= 1
    try:
        loranas.set_num_threads(3)
        assert loranas.get_num_threads() == 3
        loranas.set_num_threads(1)
        assert loranas.get_num_threads() == 1
    finally:
        loranas.set_num_threads(before)
    assert loranas.get_num_threads() == before


def test_last_error_is_per_thread(tmp_path):
    # A failure on another thread must not replace this thread's message.
    mine = tmp_path / "mine.safetensors"
    assert B.loranas_checkpoint_open(str(mine).encode(), B.loranas_checkpoint_p()) != B.LORANAS_OK
    theirs = tmp_path / "theirs.safetensors"
    t = threading.Thread(target=lambda: B.loranas_checkpoint_open(str(theirs).encode(), B.loranas_checkpoint_p()))
    t.start()
    t.join()
    message = B.loranas_last_error()
    assert str(mine).encode() in message and str(theirs).encode() not in message


# ---- filesystem errors carry errno and filename ----------------------------------------------------


@pytest.mark.parametrize(
    "code, builtin",
    [
        (errno.ENOENT, FileNotFoundError),
        (errno.EACCES, PermissionError),
        (errno.EISDIR, IsADirectoryError),
        (errno.ENOTDIR, NotADirectoryError),
        (errno.EEXIST, FileExistsError),
        (errno.ENOSPC, None),  # no OSError subclass: a plain EngineIOError
    ],
)
def test_io_error_carries_errno_and_filename(code, builtin):
    path = "/data/run 1/x: y.safetensors"  # spaces and a colon in the path
    message = f"cannot write {path}: {os.strerror(code)} (errno {code})"
    err = error_for_status(B.LORANAS_ERR_IO, message, "saving")
    assert isinstance(err, loranas.EngineIOError) and isinstance(err, OSError) and isinstance(err, loranas.LoranasError)
    if builtin is None:
        assert type(err) is loranas.EngineIOError
    else:
        assert isinstance(err, builtin) and type(err) is not loranas.EngineIOError
    assert err.errno == code and err.filename == path and err.strerror == os.strerror(code)
    assert err.status == B.LORANAS_ERR_IO and err.message == message
    assert str(err) == f"saving: {message}"  # the engine's text as is, not OSError's "[Errno ...]" form


def test_io_error_without_errno_keeps_defaults():
    err = error_for_status(B.LORANAS_ERR_IO, "the disk said no", "x")
    assert type(err) is loranas.EngineIOError
    assert err.errno is None and err.filename is None and str(err) == "x: the disk said no"
    # an errno without a recognizable path still gives the errno
    err = error_for_status(B.LORANAS_ERR_IO, f"write failed: {os.strerror(errno.EACCES)} (errno {errno.EACCES})")
    assert isinstance(err, PermissionError) and err.errno == errno.EACCES and err.filename is None


def test_check_raises_the_matching_oserror(monkeypatch):
    message = f"cannot open /nowhere/adapter_config.json: {os.strerror(errno.ENOENT)} (errno {errno.ENOENT})"
    monkeypatch.setattr(B, "loranas_last_error", lambda: message.encode())
    with pytest.raises(FileNotFoundError) as info:
        check(B.LORANAS_ERR_IO, "loranas_model_load_adapter('/nowhere')")
    assert isinstance(info.value, loranas.EngineIOError)
    assert info.value.filename == "/nowhere/adapter_config.json" and info.value.errno == errno.ENOENT
    assert str(info.value) == f"loranas_model_load_adapter('/nowhere'): {message}"
    # other statuses never become OSErrors, whatever their message says
    with pytest.raises(loranas.FormatError) as info:
        check(B.LORANAS_ERR_FORMAT, "x")
    assert not isinstance(info.value, OSError)


def test_filesystem_errors_are_oserrors_with_errno(tmp_path):
    """Issue 7, defect 8: a filesystem failure is an OSError subclass with errno and filename,
    not an InvalidArgumentError carrying Foundation's error text."""
    fixture = Path(__file__).resolve().parents[2] / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"
    model = loranas.load_model(fixture, adapter=fixture / "peft")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(NotADirectoryError) as info:
        model.save_adapter(blocker / "adapter")
    assert isinstance(info.value, loranas.EngineIOError)
    assert info.value.errno == errno.ENOTDIR
    assert "NSCocoaErrorDomain" not in str(info.value)


def test_paths_with_nul_are_refused(tmp_path):
    """Issue 7, defect 8: a NUL would silently truncate the path the engine sees."""
    with pytest.raises(loranas.InvalidArgumentError, match="NUL"):
        loranas.load_model(str(tmp_path) + "\0/elsewhere")
