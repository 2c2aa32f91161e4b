"""Model inputs: checking numpy arrays against transformers' shapes, packing them into a
``loranas_batch``, and :class:`Dataset`, the owner of a ``loranas_dataset`` handle.

Argument names and shapes are those of ``MllamaForConditionalGeneration.forward``::

    input_ids            (B, S)              int
    attention_mask       (B, S)              int, 1 = real token (optional)
    labels               (B, S)              int, -100 = ignored (optional for forward)
    pixel_values         (B, I, T, C, H, W)  float
    aspect_ratio_ids     (B, I)              int
    aspect_ratio_mask    (B, I, T)           int
    cross_attention_mask (B, S, I, T)        int

A dataset sample has the same names without the batch axis.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Iterable, Mapping

import numpy as np

from . import _bindings as B
from ._handle import OwnedHandle, hold
from ._image_input import as_c_array, engine_image
from ._paths import c_path
from .errors import InvalidArgumentError, check

# Every argument with its dimensions (batched), in the order they are checked: the first array
# that has a dimension fixes it.
SHAPES: dict[str, tuple[str, ...]] = {
    "input_ids": ("B", "S"),
    "attention_mask": ("B", "S"),
    "labels": ("B", "S"),
    "pixel_values": ("B", "I", "T", "C", "H", "W"),
    "aspect_ratio_ids": ("B", "I"),
    "aspect_ratio_mask": ("B", "I", "T"),
    "cross_attention_mask": ("B", "S", "I", "T"),
}
IMAGE_ARGUMENTS = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask")

_INT64_MAX = np.iinfo(np.int64).max


def _convert(name: str, value: Any, context: str) -> np.ndarray:
    """A C-contiguous int64 array (float32 for pixel_values), refusing lossy conversions."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise InvalidArgumentError(f"{name} is not array-like: {exc}", context=context) from None
    if name == "pixel_values":
        if arr.dtype.kind not in "fiu":
            raise InvalidArgumentError(f"pixel_values must hold real numbers, got dtype {arr.dtype}", context=context)
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind not in "iub":
        raise InvalidArgumentError(f"{name} must hold integers, got dtype {arr.dtype}", context=context)
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise InvalidArgumentError(f"{name} holds values above the int64 range", context=context)
    return np.ascontiguousarray(arr, dtype=np.int64)


def prepare_inputs(inputs: Mapping[str, Any], *, batched: bool, context: str) -> dict[str, np.ndarray]:
    """Check names, dtypes and shapes; return int64 / float32 C-contiguous arrays with a batch axis.

    ``batched=False`` takes a sample (no batch axis) and adds one. None values count as absent.
    Value ranges (token ids, aspect-ratio ids, mask values) are left to the engine, which checks
    them against the model.
    """
    unknown = [k for k in inputs if k not in SHAPES]
    if unknown:
        raise InvalidArgumentError(f"unknown input {unknown[0]!r} (known: {', '.join(SHAPES)})", context=context)
    given = {k: v for k, v in inputs.items() if v is not None}
    if "input_ids" not in given:
        raise InvalidArgumentError("input_ids is required", context=context)
    images = [k for k in IMAGE_ARGUMENTS if k in given]
    if images and "pixel_values" not in given:
        raise InvalidArgumentError(f"{images[0]} given without pixel_values", context=context)
    if "pixel_values" in given:
        for k in IMAGE_ARGUMENTS[1:]:
            if k not in given:
                raise InvalidArgumentError(f"{k} is required with pixel_values", context=context)

    sizes: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}
    for name, dims in SHAPES.items():
        if name not in given:
            continue
        arr = _convert(name, given[name], context)
        dims = dims if batched else dims[1:]
        if arr.ndim != len(dims):
            hint = ""
            if not batched and arr.ndim == len(dims) + 1 and arr.shape[0] == 1:
                hint = f"; a sample has no batch axis: pass {name}[0]"
            elif batched and arr.ndim == len(dims) - 1:
                hint = f"; add the batch axis: pass {name}[None]"
            raise InvalidArgumentError(
                f"{name} must be {len(dims)}-D ({', '.join(dims)}), got shape {arr.shape}{hint}", context=context)
        for dim, size in zip(dims, arr.shape):
            if dim not in sizes:
                if size <= 0:
                    raise InvalidArgumentError(f"{name} has shape {arr.shape}: its {dim} axis is empty",
                                               context=context)
                sizes[dim] = size
        expected = tuple(sizes[d] for d in dims)
        if arr.shape != expected:
            raise InvalidArgumentError(
                f"{name} has shape {arr.shape}, expected ({', '.join(dims)}) = {expected}", context=context)
        out[name] = arr if batched else arr[None]
    return out


def make_batch(arrays: Mapping[str, np.ndarray]) -> B.loranas_batch:
    """A loranas_batch pointing into ``arrays`` (from :func:`prepare_inputs`), which must stay
    referenced until the call that reads the batch returns."""

    def ptr(name, ctype=B.c_int64_p):
        arr = arrays.get(name)
        return None if arr is None else arr.ctypes.data_as(ctype)

    b, s = arrays["input_ids"].shape
    batch = B.loranas_batch(batch_size=b, seq_len=s)
    batch.input_ids = ptr("input_ids")
    batch.attention_mask = ptr("attention_mask")
    batch.labels = ptr("labels")
    px = arrays.get("pixel_values")
    if px is not None:
        _, batch.num_images, batch.num_tiles, batch.channels, batch.height, batch.width = px.shape
        batch.pixel_values = ptr("pixel_values", B.c_float_p)
        batch.aspect_ratio_ids = ptr("aspect_ratio_ids")
        batch.aspect_ratio_mask = ptr("aspect_ratio_mask")
        batch.cross_attention_mask = ptr("cross_attention_mask")
    return batch


class Dataset(OwnedHandle):
    """Training or evaluation samples, copied into the engine and checked against a model.

    Parameters
    ----------
    model : Model
        The model the samples are for (its config fixes vocabulary, tiles and image size).
    samples : iterable of dict, optional
        Samples to add right away (see :meth:`add`).

    Notes
    -----
    A sample is a dict of numpy arrays with :meth:`Model.forward`'s argument names, without the
    batch axis: ``input_ids`` (S,) and ``labels`` (S,) are required; ``attention_mask`` (S,),
    ``pixel_values`` (I, T, C, H, W), ``aspect_ratio_ids`` (I,), ``aspect_ratio_mask`` (I, T) and
    ``cross_attention_mask`` (S, I, T) are optional (the image ones all together). Samples of
    different lengths and image counts are padded into batches by the engine.
    """

    _kind = "dataset"
    _free = staticmethod(B.loranas_dataset_free)

    def __init__(self, model, samples: Iterable[Mapping[str, Any]] | None = None):
        super().__init__()
        handle = B.loranas_dataset_p()
        with model._use() as model_handle:
            check(B.loranas_dataset_create(model_handle, ctypes.byref(handle)), "loranas_dataset_create")
        self._adopt(handle, "loranas_dataset_create")
        if samples is not None:
            self.extend(samples)

    def add(self, sample: Mapping[str, Any]) -> None:
        """Check and append one sample (a dict of arrays without the batch axis)."""
        self._add(sample, "Dataset.add")

    def extend(self, samples: Iterable[Mapping[str, Any]]) -> None:
        """Append samples in order. On an invalid sample, the ones before it stay added."""
        if isinstance(samples, Mapping):
            raise InvalidArgumentError("extend takes an iterable of samples, got a single dict; use add()",
                                       context="Dataset.extend")
        for i, sample in enumerate(samples):
            self._add(sample, f"Dataset.extend (sample {i})")

    def _add(self, sample: Mapping[str, Any], context: str) -> None:
        if not isinstance(sample, Mapping):
            raise InvalidArgumentError(f"a sample is a dict of arrays, got {type(sample).__name__}", context=context)
        if sample.get("labels") is None:
            raise InvalidArgumentError("labels is required in a training sample (-100 = ignored)", context=context)
        arrays = prepare_inputs(sample, batched=False, context=context)
        batch = make_batch(arrays)
        with self._use() as handle:
            check(B.loranas_dataset_add(handle, ctypes.byref(batch)), context)

    @classmethod
    def _wrap(cls, handle: B.loranas_dataset_p, context: str) -> "Dataset":
        """A Dataset owning a handle the engine just made."""
        dataset = cls.__new__(cls)
        OwnedHandle.__init__(dataset)
        dataset._adopt(handle, context)
        return dataset

    def split(self, fraction: float, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """``(train, validation)``: ``fraction`` of the samples, chosen by a seeded shuffle, go to validation.
        Both are views of this dataset's samples (nothing is copied)."""
        if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise InvalidArgumentError(f"fraction must be in (0, 1), got {fraction!r}", context="Dataset.split")
        if not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise InvalidArgumentError(f"seed must be an integer in [0, 2**64), got {seed!r}", context="Dataset.split")
        train, validation = B.loranas_dataset_p(), B.loranas_dataset_p()
        with self._use() as handle:
            check(B.loranas_dataset_split(handle, float(fraction), seed, ctypes.byref(train), ctypes.byref(validation)),
                  "loranas_dataset_split")
        try:
            first = Dataset._wrap(train, "loranas_dataset_split")
        except BaseException:
            B.loranas_dataset_free(validation)
            raise
        return first, Dataset._wrap(validation, "loranas_dataset_split")

    @classmethod
    def from_cauldron(cls, source, model=None, processor=None, max_length: int | None = None) -> "Dataset":
        """Cauldron records as a dataset, encoded by the engine.

        ``source`` is a JSONL path (one ``{"images": [...], "texts": [{"user", "assistant"}, ...]}`` a line,
        images as paths relative to the file or base64), or an iterable of such records, e.g. a list or an HF
        ``datasets.Dataset``, whose images are PIL images, paths, bytes or uint8 arrays. ``model`` is a
        :class:`Model` or a model directory (its config.json checks the samples); ``processor`` a
        :class:`Processor` or a directory (default: the model's). ``max_length`` cuts each sample to its first
        ``max_length`` tokens; a record whose cut would remove an image or every answer is skipped and counted
        in :attr:`skipped`. Errors name the file and line, or the record's index.
        """
        from .processor import Processor

        context = "Dataset.from_cauldron"
        model_dir = _model_dir(model, processor, context)
        limit = _max_length(max_length, context)
        proc = processor if isinstance(processor, Processor) else Processor(processor or model_dir)
        try:
            if isinstance(source, (str, os.PathLike)):
                handle = B.loranas_dataset_p()
                with proc._use() as p:
                    check(B.loranas_dataset_from_cauldron(c_path(model_dir, context), p, c_path(source, context),
                                                          limit, ctypes.byref(handle)), context)
                return cls._wrap(handle, context)
            return cls._from_records(source, model_dir, proc, limit, context)
        finally:
            if proc is not processor:
                proc.close()

    @classmethod
    def _from_records(cls, records, model_dir: str, proc, limit: int, context: str) -> "Dataset":
        if isinstance(records, (bytes, Mapping)) or not hasattr(records, "__iter__"):
            raise InvalidArgumentError(f"source must be a JSONL path or an iterable of records, got "
                                       f"{type(records).__name__}", context=context)
        handle = B.loranas_dataset_p()
        check(B.loranas_dataset_create_for_records(c_path(model_dir, context), ctypes.byref(handle)), context)
        dataset = cls._wrap(handle, context)
        try:
            for i, record in enumerate(records):
                dataset._add_record(proc, record, limit, f"{context} (record {i})")
            if len(dataset) == 0:
                raise InvalidArgumentError(f"empty dataset ({dataset.skipped} records skipped by max_length)",
                                           context=context)
        except BaseException:
            dataset.close()
            raise
        return dataset

    def _add_record(self, proc, record, limit: int, context: str) -> None:
        from .text import _record_json

        if not isinstance(record, Mapping):
            raise InvalidArgumentError(f"a record is a dict, got {type(record).__name__}", context=context)
        images = record.get("images") or []
        if not isinstance(images, (list, tuple)):
            raise InvalidArgumentError("the record's images must be a list", context=context)
        try:
            entries = [engine_image(im, 0) for im in images]
        except (TypeError, ValueError, OSError) as exc:
            raise InvalidArgumentError(f"an image of the record: {exc}", context=context) from None
        c_images = as_c_array([e for e, _ in entries])
        kept = ctypes.c_int32()
        payload = _record_json(dict(record))
        with hold(self, proc) as (handle, p):
            check(B.loranas_dataset_add_record(handle, p, payload, c_images, len(entries), limit, ctypes.byref(kept)),
                  context)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Dataset":
        """A pack (written by :meth:`save` or ``loranas pack``) as a dataset streamed from disk: memory stays
        flat whatever its size. The pack records its model's config, which the samples are checked against."""
        context = f"Dataset.load({os.fspath(path)!r})"
        handle = B.loranas_dataset_p()
        check(B.loranas_dataset_load(c_path(path, context), ctypes.byref(handle)), context)
        return cls._wrap(handle, context)

    def save(self, path: str | os.PathLike) -> None:
        """Write the dataset as a pack (a temporary file renamed into place). ``loranas pack`` writes the same
        bytes from the same JSONL file."""
        context = f"Dataset.save({os.fspath(path)!r})"
        with self._use() as handle:
            check(B.loranas_dataset_save(handle, c_path(path, context)), context)

    @property
    def skipped(self) -> int:
        """Records dropped while the dataset was made (``max_length`` would have cut an image or every answer)."""
        count = ctypes.c_int64()
        with self._use(during_run=True) as handle:
            check(B.loranas_dataset_skipped(handle, ctypes.byref(count)), "loranas_dataset_skipped")
        return int(count.value)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index`` as the processor makes it, without the batch axis: ``input_ids``, ``labels`` and,
        when it has images, ``pixel_values``, ``aspect_ratio_ids``, ``aspect_ratio_mask``, ``cross_attention_mask``."""
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, got {type(index).__name__}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"sample {index} of a dataset of {n}")
        dims = B.loranas_sample()
        with self._use(during_run=True) as handle:
            check(B.loranas_dataset_sample(handle, i, ctypes.byref(dims)), "loranas_dataset_sample")
            out = _sample_arrays(dims)
            buffers = _sample_buffers(dims, out)
            check(B.loranas_dataset_sample(handle, i, ctypes.byref(buffers)), "loranas_dataset_sample")
        return out

    def __len__(self) -> int:
        count = ctypes.c_int64()
        with self._use(during_run=True) as handle:
            check(B.loranas_dataset_count(handle, ctypes.byref(count)), "loranas_dataset_count")
        return int(count.value)

    def __repr__(self) -> str:
        return f"<loranas.Dataset ({'closed' if self.closed else f'{len(self)} samples'})>"


def _model_dir(model, processor, context: str) -> str:
    """The model directory whose config.json checks a dataset: ``model``'s, else the processor's."""
    from .model import Model
    from .processor import Processor

    if isinstance(model, Model):
        return model.path
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if model is not None:
        raise InvalidArgumentError(f"model must be a loranas.Model or a model directory, got {type(model).__name__}",
                                   context=context)
    if isinstance(processor, Processor):
        return processor.model_dir
    if isinstance(processor, (str, os.PathLike)):
        return os.fspath(processor)
    raise InvalidArgumentError("give the model (a loranas.Model or its directory) or its processor", context=context)


def _max_length(max_length, context: str) -> int:
    """``max_length`` for the C ABI: 0 means no cut."""
    if max_length is None:
        return 0
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 1 <= max_length < 2**31:
        raise InvalidArgumentError(f"max_length must be a positive integer, got {max_length!r}", context=context)
    return max_length


def _sample_arrays(d: B.loranas_sample) -> dict[str, np.ndarray]:
    s, i, t = d.seq_len, d.num_images, d.num_tiles
    out = {"input_ids": np.zeros(s, dtype=np.int64), "labels": np.zeros(s, dtype=np.int64)}
    if i > 0:
        out["pixel_values"] = np.zeros((i, t, d.channels, d.height, d.width), dtype=np.float32)
        out["aspect_ratio_ids"] = np.zeros(i, dtype=np.int64)
        out["aspect_ratio_mask"] = np.zeros((i, t), dtype=np.int64)
        out["cross_attention_mask"] = np.zeros((s, i, t), dtype=np.int64)
    return out


def _sample_buffers(d: B.loranas_sample, arrays: dict[str, np.ndarray]) -> B.loranas_sample:
    out = B.loranas_sample(d.seq_len, d.num_images, d.num_tiles, d.channels, d.height, d.width)
    for name, arr in arrays.items():
        setattr(out, name, arr.ctypes.data_as(B.c_float_p if name == "pixel_values" else B.c_int64_p))
    return out


def as_dataset(model, data, what: str) -> tuple[Dataset, bool]:
    """``data`` as a Dataset for ``model``, and whether it was made here (the caller closes it)."""
    if isinstance(data, Dataset):
        return data, False
    if data is None or isinstance(data, (str, bytes, Mapping)):
        raise InvalidArgumentError(f"{what} must be a loranas.Dataset or an iterable of sample dicts, "
                                   f"got {type(data).__name__}", context=what)
    try:
        iterator = iter(data)
    except TypeError:
        raise InvalidArgumentError(f"{what} must be a loranas.Dataset or an iterable of sample dicts, "
                                   f"got {type(data).__name__}", context=what) from None
    dataset = Dataset(model)
    try:
        for i, sample in enumerate(iterator):
            dataset._add(sample, f"{what} (sample {i})")
    except BaseException:
        dataset.close()
        raise
    return dataset, True
