"""Layer 3: the owner of a ``loranas_model`` handle."""

from __future__ import annotations

import copy
import ctypes
import json
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

    def __init__(self, path: str | os.PathLike, adapter: str | os.PathLike | None = None, *,
                 fresh_seed: int | None = None, dtype: str = "float32"):
        super().__init__()
        if dtype not in ("float32", "bfloat16"):
            raise InvalidArgumentError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}", context="load_model")
        self.path = os.fspath(path)
        self.dtype = dtype
        #: How the frozen base weights are computed ("float32", or which bf16 kernel).
        self.compute = "float32"
        self._adapter_version = 0  # bumped by every call that may change the adapters
        handle = B.loranas_model_p()
        if fresh_seed is None:
            context = f"loranas_model_load({self.path!r})"
            status = B.loranas_model_load(c_path(self.path, context), dtype.encode(), ctypes.byref(handle))
            check(status, context)
        else:
            context = f"loranas_model_init({self.path!r})"
            seed = _seed_arg(fresh_seed, context)
            check(B.loranas_model_init(c_path(self.path, context), seed, ctypes.byref(handle)), context)
        self._adopt(handle, context)
        try:
            with self._use() as h:
                text = read_string(B.loranas_model_describe, h, "loranas_model_describe")
            self._config: dict = parse_json(text, "loranas_model_describe")
            if dtype == "bfloat16":  # loaded in bf16 (or switched, for fresh weights); this reports how
                with self._use() as h:
                    self.compute = read_string(B.loranas_model_use_bfloat16, h, "loranas_model_use_bfloat16")
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

    def generate(self, input_ids=None, attention_mask=None, pixel_values=None, aspect_ratio_ids=None,
                 aspect_ratio_mask=None, cross_attention_mask=None, *, max_new_tokens: int = 20,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, stop_token_ids=None,
                 images=None, prompt: str | None = None):
        """Generate after each prompt, as transformers' ``generate`` does (greedy when ``temperature`` is 0).

        The vision tower and the prompt run once; then one token per step against a KV cache, with the
        adapters applied as in :meth:`forward`. Batched prompts must be left-padded (``attention_mask`` 0
        before the tokens), as transformers requires.

        Parameters
        ----------
        input_ids, attention_mask, pixel_values, aspect_ratio_ids, aspect_ratio_mask, cross_attention_mask
            The prompt, as for :meth:`forward` (no labels). Pass ``attention_mask`` with padded prompts:
            without it every token counts as real (transformers would infer it from the pad token).
        max_new_tokens : int
            New tokens per sample at most, in [1, max_position_embeddings - prompt length].
        temperature : float
            0 = greedy (argmax); > 0 samples from softmax(logits / temperature).
        top_p : float
            In (0, 1]: sampling keeps the most likely tokens until their mass reaches top_p.
        seed : int
            The sampler's seed (0 ≤ seed < 2^64): the same seed gives the same tokens.
        stop_token_ids : int or iterable of int, optional
            A sample stops after producing one of these (default: the config's ``eos_token_id``).
        images, prompt
            The shortcut: ``generate(images=[...], prompt="...")`` formats ``prompt`` with the chat template
            (one image slot per image), runs :class:`loranas.Processor` of the model directory, stops at eos
            or ``<|eot_id|>`` and returns the decoded answer (str, special tokens removed).

        Returns
        -------
        numpy.ndarray
            int64, (B, S + new): the prompt ids followed by the new ids (each sample's stop id included);
            rows that stopped early are padded with the pad token id, as transformers pads them.
        """
        if prompt is not None or images is not None:
            if input_ids is not None:
                raise InvalidArgumentError("pass either input_ids or images/prompt, not both",
                                           context="Model.generate")
            return self._generate_text(images, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, seed=seed, stop_token_ids=stop_token_ids)
        context = "Model.generate"
        arrays = prepare_inputs(
            {"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values,
             "aspect_ratio_ids": aspect_ratio_ids, "aspect_ratio_mask": aspect_ratio_mask,
             "cross_attention_mask": cross_attention_mask},
            batched=True, context=context)
        n = _int_arg(max_new_tokens, "max_new_tokens", context, below=2**62)
        room = self._max_positions() - arrays["input_ids"].shape[1]
        if n > room:  # checked here too, before the output buffer is allocated
            raise InvalidArgumentError(f"max_new_tokens must be in 1...{room} (max_position_embeddings − prompt "
                                       f"length), got {n}", context=context)
        temperature, top_p = _float_arg(temperature, "temperature", context), _float_arg(top_p, "top_p", context)
        seed = _seed_arg(seed, context)
        stops = np.ascontiguousarray(self._stop_ids(stop_token_ids, context), dtype=np.int64)
        batch = make_batch(arrays)
        ids = arrays["input_ids"]
        b = ids.shape[0]
        out = np.empty((b, n), dtype=np.int64)
        lengths = np.empty(b, dtype=np.int64)
        stop_ptr = stops.ctypes.data_as(B.c_int64_p) if stops.size else None
        with self._use() as h:
            status = B.loranas_model_generate(h, ctypes.byref(batch), n, temperature, top_p, seed, stop_ptr,
                                              stops.size, out.ctypes.data_as(B.c_int64_p), out.size,
                                              lengths.ctypes.data_as(B.c_int64_p), lengths.size)
            check(status, "loranas_model_generate")
        width = int(lengths.max())
        new = out[:, :width].copy()
        new[new < 0] = self._pad_token_id()
        return np.concatenate([ids, new], axis=1)

    def _generate_text(self, images, prompt, **options) -> str:
        """The images + prompt shortcut of :meth:`generate`: chat template, processor, decoded answer."""
        from .processor import Processor

        if not isinstance(prompt, str):
            raise InvalidArgumentError("prompt must be a str", context="Model.generate")
        images = [] if images is None else list(images)
        with Processor(self.path) as processor:
            content = [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]
            chat = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
            inputs = processor(images=[images] if images else None, text=chat)
            tokenizer = processor.tokenizer
            if options["stop_token_ids"] is None:
                eot = tokenizer.token_to_id("<|eot_id|>")
                options["stop_token_ids"] = self._stop_ids(None, "Model.generate") + ([] if eot is None else [eot])
            ids = self.generate(**inputs, **options)
            answer = ids[0, inputs["input_ids"].shape[1]:]
            return tokenizer.decode([int(t) for t in answer], skip_special_tokens=True)

    def _config_json(self) -> dict:
        with open(os.path.join(self.path, "config.json"), encoding="utf-8") as f:
            return json.load(f)

    def _stop_ids(self, given, context: str) -> list[int]:
        """``given`` as a list of ints, or the config's eos_token_id(s) (text_config first)."""
        if given is None:
            config = self._config_json()
            eos = config.get("text_config", {}).get("eos_token_id", config.get("eos_token_id"))
            given = [] if eos is None else eos
        if isinstance(given, (int, np.integer)) and not isinstance(given, bool):
            given = [given]
        try:
            ids = [int(t) for t in given]
        except (TypeError, ValueError):
            raise InvalidArgumentError("stop_token_ids must be an int or a list of ints", context=context) from None
        if any(isinstance(t, bool) for t in given):
            raise InvalidArgumentError("stop_token_ids must be ints, not bools", context=context)
        return ids

    def _max_positions(self) -> int:
        return int(self._config_json().get("text_config", {}).get("max_position_embeddings", 131072))

    def _pad_token_id(self) -> int:
        pad = self._config["text"].get("pad_token_id")
        return 0 if pad is None else int(pad)

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

    def save_merged(self, directory: str | os.PathLike, dtype: str = "float32") -> None:
        """Write ``config.json`` + ``model.safetensors`` with the LoRA adapters merged into the
        weights (a plain checkpoint that :func:`loranas.load_model` or transformers can load).
        ``dtype`` is ``"float32"`` or ``"bfloat16"`` (rounded to nearest even, as torch rounds)."""
        if dtype not in ("float32", "bfloat16"):
            raise InvalidArgumentError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}", context="save_merged")
        directory = os.fspath(directory)
        with self._use() as h:
            context = f"loranas_model_save_merged({directory!r})"
            check(B.loranas_model_save_merged(h, c_path(directory, context), dtype.encode()), context)

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


def _float_arg(value, name: str, context: str) -> float:
    """``value`` as a float (the engine checks its range); bools and non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{name} must be a number, got {type(value).__name__}", context=context)
    return float(value)


def _seed_arg(value, context: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 2**64:
        raise InvalidArgumentError(f"seed must be an int in [0, 2^64), got {value!r}", context=context)
    return int(value)
