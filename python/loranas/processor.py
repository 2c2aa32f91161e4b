"""Layer 3 and 4: the owner of a ``loranas_processor`` handle: transformers' ``MllamaProcessor`` in the engine."""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Sequence

import numpy as np

from . import _bindings as B
from ._handle import OwnedHandle, read_string
from ._image_input import as_c_array, engine_image, is_image
from ._paths import c_path
from .errors import check
from .tokenizer import Tokenizer

__all__ = ["Processor"]

IMAGE_TOKEN = "<|image|>"


def nest_images(images) -> list[list]:
    """transformers' ``make_nested_list_of_images``: one image → ``[[im]]``; a flat list is one sample's
    images; a list of lists is one list per sample (which may be empty); a 4-D array is a list of images."""
    if isinstance(images, (list, tuple)) and images and all(isinstance(s, (list, tuple)) for s in images):
        for b, sample in enumerate(images):
            for j, im in enumerate(sample):
                if not is_image(im):
                    raise ValueError(f"images[{b}][{j}] is not an image ({type(im).__name__})")
        return [list(s) for s in images]
    if isinstance(images, (list, tuple)) and images and all(is_image(im) for im in images):
        return [list(images)]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [list(images)]
    if is_image(images):
        return [[images]]
    raise ValueError("Invalid input type. Must be a single image, a list of images, or a list of batches of images.")


def _texts(text) -> list[str]:
    if isinstance(text, str):
        return [text]
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return list(text)
    raise TypeError("text must be a str or a list of str")


def _slim_message(m: dict) -> dict:
    """The parts of a message the chat format reads (image objects in ``{"type": "image"}`` items are dropped)."""
    content = m.get("content")
    if isinstance(content, (list, tuple)):
        content = [{k: v for k, v in part.items() if k in ("type", "text")} if isinstance(part, dict) else part
                   for part in content]
    return {"role": m.get("role"), "content": content}


class Processor(OwnedHandle):
    """transformers' ``MllamaProcessor`` (Pillow image path) for a model directory, run by the engine::

        proc = loranas.Processor.from_pretrained("path/to/Llama-3.2-11B-Vision-Instruct")
        batch = proc(text=["<|image|>Describe.", "Hi"], images=[[pil_image], []])
        prompt = proc.apply_chat_template(messages, add_generation_prompt=True)

    ``batch`` equals ``MllamaProcessor(..., return_tensors="np", padding=True)``'s numpy dict.
    """

    _kind = "processor"
    _free = staticmethod(B.loranas_processor_free)

    def __init__(self, model_dir: str | os.PathLike):
        super().__init__()
        self.model_dir = os.fspath(model_dir)
        handle = B.loranas_processor_p()
        context = f"loranas_processor_load({self.model_dir!r})"
        check(B.loranas_processor_load(c_path(self.model_dir, context), ctypes.byref(handle)), context)
        self._adopt(handle, context)
        self._read_info()
        self._tokenizer: Tokenizer | None = None

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike) -> "Processor":
        """Read a Hugging Face model directory (tokenizer.json, tokenizer_config.json, preprocessor_config.json
        or config.json, and the chat template, which must be the published Llama-3.2-Vision one)."""
        return cls(model_dir)

    def _read_info(self) -> None:
        values = [ctypes.c_int64() for _ in range(6)]
        left = ctypes.c_int32()
        with self._use() as handle:
            check(B.loranas_processor_info(handle, *(ctypes.byref(v) for v in values), ctypes.byref(left)),
                  "loranas_processor_info")
        (self.pad_token_id, self.image_token_id, self.bos_token_id, self.eos_token_id, self.tile_size,
         self.max_image_tiles) = (v.value for v in values)
        self.padding_side = "left" if left.value else "right"

    def _label(self) -> str:
        return f"processor {self.model_dir!r}"

    def __repr__(self) -> str:
        return (f"<loranas.Processor {self.model_dir!r} tile {self.tile_size} × {self.max_image_tiles} "
                f"({'closed' if self.closed else 'open'})>")

    @property
    def tokenizer(self) -> Tokenizer:
        """The processor's tokenizer (the engine's, shared)."""
        if self._tokenizer is None:
            handle = B.loranas_tokenizer_p()
            with self._use() as h:
                check(B.loranas_processor_tokenizer(h, ctypes.byref(handle)), "loranas_processor_tokenizer")
            path = os.path.join(self.model_dir, "tokenizer.json")
            self._tokenizer = Tokenizer._from_handle(handle, path, "loranas_processor_tokenizer")
        return self._tokenizer

    def __call__(self, images=None, text=None, *, return_tensors: str | None = "np",
                 padding: bool | str = True) -> dict[str, np.ndarray]:
        """``MllamaProcessor(images=images, text=text, return_tensors="np", padding=True)``.

        Keys: ``input_ids``, ``attention_mask`` (B, S) when ``text`` is given; ``cross_attention_mask``
        (B, S, I, T) when both are; ``pixel_values`` (B, I, T, 3, t, t) float32, ``aspect_ratio_ids`` (B, I) and
        ``aspect_ratio_mask`` (B, I, T) when ``images`` is given. Integers are int64.
        """
        if return_tensors not in ("np", None) or padding not in (True, "longest"):
            raise ValueError("only return_tensors='np' with padding=True (or 'longest') is supported")
        if images is None and text is None:
            raise ValueError("You must provide either text or images")
        nested = None if images is None else nest_images(images)
        texts = [IMAGE_TOKEN * len(s) for s in nested] if text is None else _texts(text)
        if nested is None:
            nested = [[] for _ in texts]
        elif len(nested) != len(texts):
            raise ValueError(f"{len(texts)} texts but images for {len(nested)} samples: pass one list of images "
                             "per text (a flat list is one sample's images)")
        out = self._run(texts, nested)
        if text is None:
            return {k: out[k] for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask") if k in out}
        if images is None:
            return {k: out[k] for k in ("input_ids", "attention_mask")}
        return out

    def _run(self, texts: list[str], nested: list[list]) -> dict[str, np.ndarray]:
        entries, keep = [], []
        for b, sample in enumerate(nested):
            for im in sample:
                entry, owner = engine_image(im, b)
                entries.append(entry)
                keep.append(owner)
        array = as_c_array(entries)
        payload = json.dumps(texts, ensure_ascii=True).encode("ascii")
        output = B.loranas_processor_output_p()
        with self._use() as handle:
            check(B.loranas_processor_call(handle, payload, array, len(entries), ctypes.byref(output)),
                  "loranas_processor_call")
        try:
            return _read_output(output)
        finally:
            B.loranas_processor_output_free(output)

    def apply_chat_template(self, conversation: Sequence[dict] | Sequence[Sequence[dict]],
                            add_generation_prompt: bool = False, tokenize: bool = False,
                            date_string: str | None = None, **kwargs: Any) -> str | list[str]:
        """``processor.apply_chat_template(conversation, add_generation_prompt=..., tokenize=False)`` with the
        published Llama-3.2-Vision template; a list of conversations gives a list of strings. ``date_string``
        (default: today) only appears in the system block of a chat without images."""
        if tokenize:
            raise NotImplementedError("tokenize=True: call the processor on the rendered text instead")
        if kwargs:
            raise TypeError(f"unsupported arguments: {sorted(kwargs)}")
        if conversation and isinstance(conversation[0], (list, tuple)):
            return [self.apply_chat_template(c, add_generation_prompt, date_string=date_string)
                    for c in conversation]
        payload = json.dumps([_slim_message(m) for m in conversation], ensure_ascii=True).encode("ascii")
        date = None if date_string is None else date_string.encode("utf-8")
        with self._use() as handle:
            return read_string(
                lambda h, buf, size, out: B.loranas_processor_chat_template(
                    h, payload, int(add_generation_prompt), date, buf, size, out),
                handle, "loranas_processor_chat_template")


def _read_output(output: B.loranas_processor_output_p) -> dict[str, np.ndarray]:
    """Copies a processor result out of the engine."""
    dims = [ctypes.c_int64() for _ in range(5)]
    check(B.loranas_processor_output_shape(output, *(ctypes.byref(d) for d in dims)), "loranas_processor_output_shape")
    b, s, i, t, side = (d.value for d in dims)
    out = {"input_ids": np.zeros((b, s), np.int64), "attention_mask": np.zeros((b, s), np.int64),
           "cross_attention_mask": np.zeros((b, s, i, t), np.int64),
           "pixel_values": np.zeros((b, i, t, 3, side, side), np.float32),
           "aspect_ratio_ids": np.zeros((b, i), np.int64), "aspect_ratio_mask": np.zeros((b, i, t), np.int64)}

    def ptr(name, kind):
        return out[name].ctypes.data_as(kind) if out[name].size else None

    check(B.loranas_processor_output_read(
        output, ptr("input_ids", B.c_int64_p), ptr("attention_mask", B.c_int64_p), out["input_ids"].size,
        ptr("cross_attention_mask", B.c_int64_p), out["cross_attention_mask"].size,
        ptr("pixel_values", B.c_float_p), out["pixel_values"].size, ptr("aspect_ratio_ids", B.c_int64_p),
        out["aspect_ratio_ids"].size, ptr("aspect_ratio_mask", B.c_int64_p), out["aspect_ratio_mask"].size),
        "loranas_processor_output_read")
    if i == 0:  # no sample has an image: transformers returns no image arrays
        for name in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask"):
            del out[name]
    return out
