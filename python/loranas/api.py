"""Layer 4: the user API over the bindings and handle owners."""

from __future__ import annotations

import os

import numpy as np

from . import _bindings as B
from .checkpoint import Checkpoint
from .errors import InvalidArgumentError, check
from .model import Model

_INT32_MAX = 2**31 - 1


def abi_version() -> int:
    """The C ABI version of the loaded library (checked at import to equal the bindings')."""
    return int(B.loranas_abi_version())


def version() -> str:
    """The engine's semantic version."""
    raw = B.loranas_version()
    return raw.decode("utf-8") if raw else ""


def library_path() -> str:
    """The path of the loaded libloranas."""
    return str(B.lib_path)


def set_num_threads(n: int) -> None:
    """Set the number of engine worker threads (>= 1; the engine validates the value)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InvalidArgumentError(f"num_threads must be an int, got {type(n).__name__}", context="set_num_threads")
    n = int(n)
    if not -_INT32_MAX - 1 <= n <= _INT32_MAX:  # ctypes would wrap it silently
        raise InvalidArgumentError(f"num_threads {n} does not fit in int32", context="set_num_threads")
    check(B.loranas_set_num_threads(n), f"loranas_set_num_threads({n})")


def get_num_threads() -> int:
    """The number of engine worker threads."""
    return int(B.loranas_get_num_threads())


def open_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Open a safetensors checkpoint: a file, a sharded ``*.index.json`` or a directory."""
    return Checkpoint(path)


def _as_f32_matrix(x, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{what} must be 2-D, got shape {arr.shape}", context="matmul")
    return arr


def matmul(a, b, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` in float32 through the engine, where op transposes when asked.

    ``a`` is (m, k), or (k, m) with ``trans_a``; ``b`` is (k, n), or (n, k) with ``trans_b``.
    Inputs are converted to C-contiguous float32 (a copy only when needed). Returns (m, n).
    """
    a = _as_f32_matrix(a, "a")
    b = _as_f32_matrix(b, "b")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise InvalidArgumentError(
            f"inner dimensions differ: op(a) is {(m, k)} and op(b) is {(kb, n)} "
            f"(a {a.shape}, trans_a={bool(trans_a)}; b {b.shape}, trans_b={bool(trans_b)})",
            context="matmul",
        )
    c = np.empty((m, n), dtype=np.float32)
    status = B.loranas_matmul_f32(
        a.ctypes.data_as(B.c_float_p),
        a.size,
        b.ctypes.data_as(B.c_float_p),
        b.size,
        c.ctypes.data_as(B.c_float_p),
        c.size,
        m,
        k,
        n,
        int(bool(trans_a)),
        int(bool(trans_b)),
    )
    check(status, f"loranas_matmul_f32(m={m}, k={k}, n={n}, trans_a={int(bool(trans_a))}, "
                  f"trans_b={int(bool(trans_b))})")
    return c


# ---- models ----------------------------------------------------------------------------------


def load_model(path: str | os.PathLike, adapter: str | os.PathLike | None = None, dtype: str = "float32") -> Model:
    """Load a Hugging Face Mllama checkpoint directory.

    Parameters
    ----------
    path : str or PathLike
        A directory with ``config.json`` and ``model.safetensors`` (or a sharded index).
    adapter : str or PathLike, optional
        A PEFT LoRA adapter directory to load onto the model (see :meth:`Model.load_adapter`).
    dtype : {"float32", "bfloat16"}
        float32 (the default) computes exactly as transformers in float32. bfloat16 holds the frozen base
        weights once, as bfloat16 (a bf16 checkpoint is not widened), and runs the linear layers' GEMMs on the
        CPU's bf16 matrix units (AMX tiles, else AVX512-BF16) with float32 sums, LoRA's products included (as
        torch's autocast runs them); LoRA's weights and their gradients, α, optimizer state, norms, attention and
        the loss stay float32. ``Model.compute`` says which kernel runs.

    Returns
    -------
    Model
        Close it with ``close()`` or a ``with`` block (or let it be garbage-collected).

    Raises
    ------
    NotFoundError, EngineIOError, FormatError
        When the directory, a file or a tensor is missing or malformed.
    """
    return Model(path, adapter=adapter, dtype=dtype)


def init_model(path: str | os.PathLike, seed: int = 0) -> Model:
    """A model from a directory's ``config.json`` with fresh weights, for training from scratch with
    :func:`loranas.pretrain`: drawn as transformers' ``_init_weights`` draws them (N(0, 0.02²) matrices and
    embeddings, norms 1, biases and the cross-attention gates 0), from ``seed``. The directory needs no
    weights; save the trained model with :meth:`Model.save_merged`."""
    return Model(path, fresh_seed=seed)
