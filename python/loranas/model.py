"""Layer 3: the owner of a ``loranas_model`` handle."""

from __future__ import annotations

import copy
import ctypes
import os
from typing import Any

import numpy as np

from . import _bindings as B
from ._handle import OwnedHandle, hold, read_string
from .data import as_dataset, make_batch, prepare_inputs
from ._paths import c_path
from .errors import InvalidArgumentError, check
from .results import evaluation_from_json, parse_json, take_result


class ModelOutput:
    """What :meth:`Model.forward` returns.

    Attributes
    ----------
    logits : numpy.ndarray
        float32, shape (B, S, vocab_size).
    loss : float or None
        Mean cross-entropy over the non-ignored targets (shifted by one, as transformers does),
        or None when no labels were given.
    """

    __slots__ = ("logits", "loss")

    def __init__(self, logits: np.ndarray, loss: float | None):
        self.logits = logits
        self.loss = loss

    def __repr__(self) -> str:
        return f"ModelOutput(logits={self.logits.shape}, loss={self.loss})"


class Model(OwnedHandle):
    """A Hugging Face Mllama model (``MllamaForConditionalGeneration``) loaded by the engine.

    Create it with :func:`loranas.load_model`. The handle is freed by :meth:`close`, by leaving a
    ``with`` block, or when the object is garbage-collected. Methods may be called from several
    threads (the engine serializes them); ``close`` waits for a call in progress.
    """

    _kind = "model"
    _free = staticmethod(B.loranas_model_free)

    def __init__(self, path: str | os.PathLike, adapter: str | os.PathLike | None = None):
        super().__init__()
        self.path = os.fspath(path)
        self._adapter_version = 0  # bumped by every call that may change the adapters
        handle = B.loranas_model_p()
        context = f"loranas_model_load({self.path!r})"
        check(B.loranas_model_load(c_path(self.path, context), ctypes.byref(handle)), context)
        self._adopt(handle, context)
        try:
            with self._use() as h:
                text = read_string(B.loranas_model_describe, h, "loranas_model_describe")
            self._config: dict = parse_json(text, "loranas_model_describe")
            if adapter is not None:
                self.load_adapter(adapter)
        except BaseException:
            self.close()
            raise

    def _label(self) -> str:
        return f"model {self.path!r}"

    def __repr__(self) -> str:
        return f"<loranas.Model {self.path!r} ({'closed' if self.closed else 'open'})>"

    @property
    def config(self) -> dict:
        """The engine's description of the model (a copy): ``vision`` and ``text`` configs,
        ``image_token_index``, ``total_parameters``, ``parameters`` per part and
        ``targetable_modules`` (LoRA-targetable linear layers grouped by type and location)."""
        return copy.deepcopy(self._config)

    @property
    def vocab_size(self) -> int:
        """The text vocabulary size V (the last axis of the logits)."""
        return int(self._config["text"]["vocab_size"])

    # ---- inference -------------------------------------------------------------------------------

    def forward(self, input_ids, attention_mask=None, pixel_values=None, aspect_ratio_ids=None,
                aspect_ratio_mask=None, cross_attention_mask=None, labels=None) -> ModelOutput:
        """Run the model on a batch, with transformers' argument names and shapes.

        Parameters
        ----------
        input_ids : array of int, (B, S)
            Token ids; the image token is ``config["image_token_index"]``.
        attention_mask : array of int, (B, S), optional
            1 for real tokens, 0 for padding (default: all 1).
        pixel_values : array of float, (B, I, T, C, H, W), optional
            Image tiles; needs the three arguments below. Omit all four for text only.
        aspect_ratio_ids : array of int, (B, I)
        aspect_ratio_mask : array of int, (B, I, T)
        cross_attention_mask : array of int, (B, S, I, T)
        labels : array of int, (B, S), optional
            Targets (-100 = ignored), shifted by one inside, as in transformers.

        Returns
        -------
        ModelOutput
            ``logits`` (B, S, vocab_size) float32 and ``loss`` (float, or None without labels).

        Raises
        ------
        ValueError
            (``InvalidArgumentError``) for a wrong shape or dtype, naming the argument, and for
            values the engine rejects (token ids out of range, ...).
        """
        context = "Model.forward"
        arrays = prepare_inputs(
            {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
             "pixel_values": pixel_values, "aspect_ratio_ids": aspect_ratio_ids,
             "aspect_ratio_mask": aspect_ratio_mask, "cross_attention_mask": cross_attention_mask},
            batched=True, context=context)
        batch = make_batch(arrays)
        b, s = arrays["input_ids"].shape
        logits = np.empty((b, s, self.vocab_size), dtype=np.float32)
        loss = ctypes.c_float(np.nan)
        has_loss = ctypes.c_int32(0)
        with self._use() as h:
            status = B.loranas_model_forward(h, ctypes.byref(batch), logits.ctypes.data_as(B.c_float_p), logits.size,
                                             ctypes.byref(loss), ctypes.byref(has_loss))
            check(status, "loranas_model_forward")
        return ModelOutput(logits, float(loss.value) if has_loss.value else None)

    __call__ = forward

    def evaluate(self, samples, batch_size: int = 8) -> dict:
        """Token-weighted evaluation of labelled samples, in order, ``batch_size`` at a time.

        Parameters
        ----------
        samples : Dataset or iterable of dict
            Samples as for :class:`loranas.Dataset`.
        batch_size : int
            Samples per forward pass, in [1, 2^20) (the engine's limit; a batch holding every
            sample is fine: ``batch_size=len(samples)``).

        Returns
        -------
        dict
            ``loss`` (mean NLL per target token), ``perplexity`` (exp(loss)), ``mean_batch_loss``
            and ``mean_batch_perplexity`` (mean of per-batch means, as papers often report), and
            ``tokens`` (target tokens counted).
        """
        batch_size = _int_arg(batch_size, "batch_size", "Model.evaluate", below=MAX_EVAL_BATCH_SIZE + 1)
        dataset, owned = as_dataset(self, samples, "samples")
        try:
            out = B.loranas_result_p()
            with hold(self, dataset) as (h, d):
                check(B.loranas_evaluate(h, d, batch_size, ctypes.byref(out)), "loranas_evaluate")
            return evaluation_from_json(take_result(out, "loranas_evaluate"))
        finally:
            if owned:
                dataset.close()

    # ---- adapters --------------------------------------------------------------------------------

    def load_adapter(self, directory: str | os.PathLike) -> None:
        """Load a PEFT LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``),
        replacing any adapter; ``rank_pattern`` / ``alpha_pattern`` give mixed ranks."""
        directory = os.fspath(directory)
        self._path_call(B.loranas_model_load_adapter, directory, "loranas_model_load_adapter")

    def save_adapter(self, directory: str | os.PathLike) -> None:
        """Save the model's LoRA adapters in PEFT's format (``peft.PeftModel.from_pretrained``
        loads them; mixed ranks are written as ``rank_pattern`` / ``alpha_pattern``)."""
        self._path_call(B.loranas_model_save_adapter, os.fspath(directory), "loranas_model_save_adapter",
                        changes_adapters=False)

    def save_merged(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors`` with the LoRA adapters merged into the
        weights (a plain checkpoint that :func:`loranas.load_model` or transformers can load)."""
        self._path_call(B.loranas_model_save_merged, os.fspath(directory), "loranas_model_save_merged",
                        changes_adapters=False)

    def clear_adapters(self) -> None:
        """Remove every adapter (LoRA or a search's supernet), back to the base model."""
        with self._use() as h:
            self._adapter_version += 1
            check(B.loranas_model_clear_adapters(h), "loranas_model_clear_adapters")

    def _path_call(self, fn, directory: str, name: str, changes_adapters: bool = True) -> None:
        with self._use() as h:
            if changes_adapters:
                self._adapter_version += 1
            context = f"{name}({directory!r})"
            check(fn(h, c_path(directory, context)), context)


# The engine's limit on loranas_evaluate's batch_size (it takes 0 < batch_size < 2^20).
MAX_EVAL_BATCH_SIZE = 2**20 - 1


def _int_arg(value, name: str, context: str, *, below: int) -> int:
    """``value`` as an int in [1, below), refusing bools and floats, with a message naming the bound broken."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an int, got {type(value).__name__}", context=context)
    value = int(value)
    if value <= 0:
        raise InvalidArgumentError(f"{name} must be positive, got {value}", context=context)
    if value >= below:
        bound = f"2^{below.bit_length() - 1} ({below})" if below & (below - 1) == 0 else str(below)
        raise InvalidArgumentError(f"{name} must be less than {bound}, got {value}", context=context)
    return value
