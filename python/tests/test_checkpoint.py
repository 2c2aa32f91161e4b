"""Reading checkpoints written by Python's safetensors package (and by hand, for BF16)."""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import loranas
from loranas import _bindings as B
from helpers import bf16_bits_to_f32, f32_to_bf16_bits, run_threads, write_safetensors


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected.astype(np.float32))
    # assert_array_equal treats 0.0 == -0.0: check the signs too.
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected.astype(np.float32)))


# ---- F32 -----------------------------------------------------------------------------------------


@pytest.fixture
def f32_tensors():
    rng = np.random.default_rng(0)
    return {
        "model.embed_tokens.weight": rng.standard_normal((11, 8)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.norm.weight": rng.standard_normal(8).astype(np.float32),
        "conv.weight": rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
        "big": rng.standard_normal((512, 300)).astype(np.float32),
        "scale": np.array(2.5, dtype=np.float32),  # 0-d
        "specials": np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -3.4e38], dtype=np.float32),
    }


def test_f32_single_file(tmp_path, f32_tensors):
    path = tmp_path / "model.safetensors"
    save_file(f32_tensors, str(path), metadata={"format": "pt", "note": "written by safetensors.numpy"})
    with loranas.open_checkpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(f32_tensors)  # __metadata__ is not a tensor
        assert len(ckpt) == len(f32_tensors)
        assert "__metadata__" not in ckpt
        for name, expected in f32_tensors.items():
            assert name in ckpt
            assert ckpt.info(name) == ("F32", expected.shape)
            _assert_same(ckpt.read(name), expected)
            _assert_same(ckpt[name], expected)


def test_reads_return_fresh_arrays(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.arange(4, dtype=np.float32)}, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        first = ckpt["w"]
        first[:] = 99
        _assert_same(ckpt["w"], np.arange(4, dtype=np.float32))


def test_open_accepts_str_and_pathlike(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.ones(2, np.float32)}, str(path))
    for p in (path, str(path)):
        with loranas.Checkpoint.open(p) as ckpt:
            assert ckpt.names() == ["w"]


# ---- F16 / BF16 ----------------------------------------------------------------------------------


def test_f16(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "a": rng.standard_normal((7, 5)).astype(np.float16),
        "b": np.array([0.0, -0.0, 1.0, -2.0, 65504.0, np.inf, -np.inf, 6e-8, 1e-4], dtype=np.float16),
    }
    path = tmp_path / "half.safetensors"
    save_file(tensors, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        for name, expected in tensors.items():
            assert ckpt.info(name) == ("F16", expected.shape)
            _assert_same(ckpt[name], expected.astype(np.float32))  # f16 -> f32 is exact


def test_bf16_helper_rounds_to_nearest_even():
    x = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, -2.0], dtype=np.float32)
    bits = f32_to_bf16_bits(x)
    assert list(bits) == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC000]
    np.testing.assert_array_equal(bf16_bits_to_f32(bits), [1.0, 1.0, 1.0 + 2**-6, 1.0 + 2**-7, -2.0])


def test_bf16(tmp_path):
    rng = np.random.default_rng(2)
    source = {
        "layer.weight": rng.standard_normal((6, 10)).astype(np.float32),
        "specials": np.array(
            [0.0, -0.0, np.inf, -np.inf, 1.0 + 2**-8, 3.0e38, -1e-40, 9.2e-41, 1.0], dtype=np.float32
        ),
        "row": rng.uniform(-100, 100, size=33).astype(np.float32),
    }
    tensors = {}
    expected = {}
    for name, x in source.items():
        bits = f32_to_bf16_bits(x)
        tensors[name] = ("BF16", x.shape, bits.astype("<u2").tobytes())
        expected[name] = bf16_bits_to_f32(bits).reshape(x.shape)
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, tensors, metadata={"format": "pt"})
    with loranas.open_checkpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(source)
        for name in source:
            assert ckpt.info(name) == ("BF16", source[name].shape)
            _assert_same(ckpt[name], expected[name])
    # bf16 keeps 8 significant bits: the round trip is close to the float32 source.
    np.testing.assert_allclose(expected["layer.weight"], source["layer.weight"], rtol=2**-8)


# ---- other dtypes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, name",
    [
        (np.float64, "F64"),
        (np.int64, "I64"),
        (np.int32, "I32"),
        (np.int16, "I16"),
        (np.int8, "I8"),
        (np.uint8, "U8"),
        (np.bool_, "BOOL"),
    ],
)
def test_other_dtypes_convert_to_f32(tmp_path, dtype, name):
    if dtype is np.bool_:
        values = np.array([[True, False, True], [False, False, True]])
    elif np.dtype(dtype).kind == "u":
        values = np.array([[0, 1, 2], [127, 200, 255]], dtype=dtype)
    elif dtype is np.float64:
        values = np.array([[0.5, -1.25, 1e10], [-0.0, 3.0, 2.0**-30]], dtype=dtype)
    else:
        values = np.array([[0, -1, 2], [-100, 100, np.iinfo(dtype).max if np.dtype(dtype).itemsize == 1 else 12345]],
                          dtype=dtype)
    path = tmp_path / f"{name}.safetensors"
    save_file({"t": values}, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        assert ckpt.info("t") == (name, values.shape)
        _assert_same(ckpt["t"], values.astype(np.float32))


# ---- names -----------------------------------------------------------------------------------------


def test_long_and_unicode_names(tmp_path):
    long_name = "model.layers." + "x" * 600 + ".weight"  # past the first name buffer
    names = {long_name: np.ones(2, np.float32), "poids.ñ.权重": np.full(3, 2.0, np.float32), "a": np.zeros(1, np.float32)}
    path = tmp_path / "names.safetensors"
    save_file(names, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(names)
        for name, expected in names.items():
            _assert_same(ckpt[name], expected)


def test_name_buffer_protocol(tmp_path):
    name = "w" * 40
    path = tmp_path / "n.safetensors"
    save_file({name: np.ones(1, np.float32)}, str(path))
    with loranas.open_checkpoint(path) as ckpt:
        needed = ctypes.c_int64(-1)
        small = ctypes.create_string_buffer(8)
        status = B.loranas_checkpoint_name(ckpt._handle, 0, small, 8, ctypes.byref(needed))
        assert status == B.LORANAS_ERR_BUFFER_TOO_SMALL
        assert needed.value == 40
        exact = ctypes.create_string_buffer(41)  # the name and its NUL
        needed.value = -1
        assert B.loranas_checkpoint_name(ckpt._handle, 0, exact, 41, ctypes.byref(needed)) == B.LORANAS_OK
        assert needed.value == 40 and exact.value == name.encode()
        tight = ctypes.create_string_buffer(40)  # no room for the NUL
        assert B.loranas_checkpoint_name(ckpt._handle, 0, tight, 40, ctypes.byref(needed)) == B.LORANAS_ERR_BUFFER_TOO_SMALL
        for bad_index in (-1, 1):
            status = B.loranas_checkpoint_name(ckpt._handle, bad_index, exact, 41, ctypes.byref(needed))
            assert status in (B.LORANAS_ERR_INVALID_ARGUMENT, B.LORANAS_ERR_NOT_FOUND)


# ---- sharded checkpoints and directories ---------------------------------------------------------


@pytest.fixture
def sharded(tmp_path):
    rng = np.random.default_rng(3)
    shard1 = {
        "model.embed_tokens.weight": rng.standard_normal((10, 4)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((8, 4)).astype(np.float32),
    }
    shard2 = {
        "model.layers.1.mlp.up_proj.weight": rng.standard_normal((8, 4)).astype(np.float16),
        "lm_head.weight": rng.standard_normal((10, 4)).astype(np.float32),
        "model.norm.weight": np.ones(4, np.float32),
    }
    folder = tmp_path / "sharded-model"
    folder.mkdir()
    files = {"model-00001-of-00002.safetensors": shard1, "model-00002-of-00002.safetensors": shard2}
    for filename, tensors in files.items():
        save_file(tensors, str(folder / filename), metadata={"format": "pt"})
    index = {
        "metadata": {"total_size": sum(t.nbytes for s in files.values() for t in s.values())},
        "weight_map": {name: filename for filename, tensors in files.items() for name in tensors},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    expected = {**shard1, **shard2}
    return folder, expected


def _check_sharded(ckpt, expected):
    assert sorted(ckpt.names()) == sorted(expected)
    assert len(ckpt) == 5
    for name, values in expected.items():
        dtype = "F16" if values.dtype == np.float16 else "F32"
        assert ckpt.info(name) == (dtype, values.shape)
        _assert_same(ckpt[name], values.astype(np.float32))


def test_sharded_by_index_path(sharded):
    folder, expected = sharded
    with loranas.open_checkpoint(folder / "model.safetensors.index.json") as ckpt:
        _check_sharded(ckpt, expected)


def test_sharded_by_directory(sharded):
    folder, expected = sharded
    with loranas.open_checkpoint(folder) as ckpt:
        _check_sharded(ckpt, expected)


def test_directory_with_single_file(tmp_path, f32_tensors):
    folder = tmp_path / "single"
    folder.mkdir()
    save_file(f32_tensors, str(folder / "model.safetensors"))
    with loranas.open_checkpoint(folder) as ckpt:
        assert sorted(ckpt.names()) == sorted(f32_tensors)
        _assert_same(ckpt["big"], f32_tensors["big"])


def test_sharded_missing_shard(sharded):
    folder, _ = sharded
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises((loranas.EngineIOError, loranas.NotFoundError)) as info:
        with loranas.open_checkpoint(folder / "model.safetensors.index.json") as ckpt:
            ckpt.read("lm_head.weight")  # a lazy engine may open shards on first read
    assert "model-00002-of-00002.safetensors" in info.value.message


def test_empty_directory(tmp_path):
    with pytest.raises((loranas.NotFoundError, loranas.EngineIOError)) as info:
        loranas.open_checkpoint(tmp_path)
    assert str(tmp_path) in info.value.message


# ---- ownership and threads -----------------------------------------------------------------------


def test_close_and_context_manager(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.ones(2, np.float32)}, str(path))
    ckpt = loranas.open_checkpoint(path)
    assert not ckpt.closed
    with ckpt:
        assert ckpt.names() == ["w"]
    assert ckpt.closed
    ckpt.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        ckpt.read("w")
    with pytest.raises(ValueError, match="closed"):
        ckpt.names()
    with pytest.raises(ValueError, match="closed"):
        ckpt.info("w")
    assert "closed" in repr(ckpt)


def test_many_handles_are_freed(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.arange(1000, dtype=np.float32)}, str(path))
    for _ in range(200):  # dropped without close(): __del__ frees them
        ckpt = loranas.open_checkpoint(path)
        assert ckpt["w"][999] == 999
        del ckpt


def test_concurrent_reads_on_one_handle(tmp_path):
    rng = np.random.default_rng(4)
    tensors = {f"t{i}": rng.standard_normal((64, 64)).astype(np.float32) for i in range(8)}
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    failures = []
    with loranas.open_checkpoint(path) as ckpt:

        def worker(seed):
            order = np.random.default_rng(seed).permutation(list(tensors))
            for _ in range(5):
                for name in order:
                    if not np.array_equal(ckpt[name], tensors[name]):
                        failures.append(name)

        run_threads(worker, 4)
    assert failures == []
