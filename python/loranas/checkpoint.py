"""Layer 3: the owner of a ``loranas_checkpoint`` handle."""

from __future__ import annotations

import ctypes
import math
import os
from typing import Iterator

import numpy as np

from . import _bindings as B
from ._handle import OwnedHandle
from ._paths import c_path
from .errors import check

# The first name buffer; longer names take one retry with the size the engine reports.
_NAME_BUFFER = 256


class Checkpoint(OwnedHandle):
    """A safetensors checkpoint opened by the engine: a single file, a sharded index
    (``model.safetensors.index.json``) or a directory holding either.

    Use it as a read-only mapping from tensor name to a float32 numpy array::

        with loranas.open_checkpoint("model.safetensors") as ckpt:
            for name in ckpt:
                dtype, shape = ckpt.info(name)
                array = ckpt[name]

    The handle is freed by :meth:`close`, by leaving the ``with`` block, or when the object is
    garbage-collected. Methods may be called from several threads; ``close`` waits for calls in
    progress.
    """

    _kind = "checkpoint"
    _free = staticmethod(B.loranas_checkpoint_free)

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self._names: list[str] | None = None
        self.path = os.fspath(path)
        handle = B.loranas_checkpoint_p()
        context = f"loranas_checkpoint_open({self.path!r})"
        check(B.loranas_checkpoint_open(c_path(self.path, context), ctypes.byref(handle)), context)
        self._adopt(handle, context)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Checkpoint":
        return cls(path)

    def _label(self) -> str:
        return f"checkpoint {self.path!r}"

    def __repr__(self) -> str:
        return f"<loranas.Checkpoint {self.path!r} ({'closed' if self.closed else 'open'})>"

    # ---- names ---------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Tensor names, in the engine's order."""
        if self._names is None:
            with self._use() as handle:
                count = ctypes.c_int64()
                check(B.loranas_checkpoint_count(handle, ctypes.byref(count)), "loranas_checkpoint_count")
                self._names = [self._name_at(handle, i) for i in range(count.value)]
        elif self.closed:
            raise ValueError(f"the {self._label()} is closed")
        return list(self._names)

    @staticmethod
    def _name_at(handle: int, index: int) -> str:
        size = _NAME_BUFFER
        needed = ctypes.c_int64()
        for _ in range(2):  # the second try has room for the length the engine reported
            buf = ctypes.create_string_buffer(size)
            status = B.loranas_checkpoint_name(handle, index, buf, size, ctypes.byref(needed))
            if status == B.LORANAS_ERR_BUFFER_TOO_SMALL and needed.value + 1 > size:
                size = needed.value + 1
                continue
            check(status, f"loranas_checkpoint_name(index={index})")
            if not 0 <= needed.value < size:
                raise RuntimeError(f"loranas_checkpoint_name(index={index}) reported length {needed.value} "
                                   f"for a buffer of {size} bytes")
            return buf.raw[: needed.value].decode("utf-8")
        raise RuntimeError(f"loranas_checkpoint_name(index={index}) still reports a buffer too small "
                           f"({size} bytes for length {needed.value})")

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def keys(self) -> list[str]:
        return self.names()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    # ---- tensors -------------------------------------------------------------------------------

    def info(self, name: str) -> tuple[str, tuple[int, ...]]:
        """The stored dtype (a safetensors name: ``"F32"``, ``"BF16"``, ...) and the shape."""
        with self._use() as handle:
            return self._info(handle, name)

    def _info(self, handle: int, name: str) -> tuple[str, tuple[int, ...]]:
        dtype = ctypes.c_int32()
        ndim = ctypes.c_int64()
        shape = (ctypes.c_int64 * B.LORANAS_MAX_DIMS)()
        status = B.loranas_checkpoint_info(handle, name.encode("utf-8"), ctypes.byref(dtype), ctypes.byref(ndim), shape,
                                           B.LORANAS_MAX_DIMS)
        check(status, f"loranas_checkpoint_info({name!r})")
        if not 0 <= ndim.value <= B.LORANAS_MAX_DIMS:
            raise RuntimeError(f"loranas_checkpoint_info({name!r}) reported {ndim.value} dims")
        dtype_name = B.DTYPE_NAMES.get(dtype.value, f"UNKNOWN({dtype.value})")
        return dtype_name, tuple(int(d) for d in shape[: ndim.value])

    def read(self, name: str) -> np.ndarray:
        """Tensor ``name`` converted to a new float32 array of its shape."""
        with self._use() as handle:
            _, shape = self._info(handle, name)
            out = np.empty(shape, dtype=np.float32)
            count = math.prod(shape)
            status = B.loranas_checkpoint_read_f32(
                handle, name.encode("utf-8"), out.ctypes.data_as(B.c_float_p), count
            )
            check(status, f"loranas_checkpoint_read_f32({name!r})")
            return out

    def __getitem__(self, name: str) -> np.ndarray:
        return self.read(name)
