"""The text path, done by the engine: the Llama-3.2-Vision chat format, labels, and MllamaProcessor's
BOS rule, padding and ``cross_attention_mask``.

Layer 4 over the 1:1 bindings; every function is a thin call into the engine::

    text = loranas.text.render_record({"images": [img], "texts": [{"user": "Hi?", "assistant": "Hello."}]})
    sample = loranas.text.encode_record(tok, record, num_tiles=[4])   # input_ids, labels, cross_attention_mask
"""

from __future__ import annotations

import ctypes
import json
from typing import Any, Sequence

import numpy as np

from . import _bindings as B
from .errors import check
from .tokenizer import Tokenizer

# The first text buffer; longer results take one retry with the size the engine reports.
_TEXT_BUFFER = 4096


def _json(value: Any) -> bytes:
    # ASCII-only JSON: NUL and every non-ASCII character travel as escapes (a lone surrogate is refused by the engine).
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _record_json(record: dict) -> bytes:
    """The part of a Cauldron record the text path reads: the number of images and the turns."""
    if not isinstance(record, dict):
        raise TypeError(f"a Cauldron record must be a dict, got {type(record).__name__}")
    images = record.get("images")
    texts = record.get("texts")
    slim: dict[str, Any] = {"images": None if images is None else [None] * len(images)}
    if isinstance(texts, (list, tuple)):
        slim["texts"] = [{k: t.get(k) for k in ("user", "assistant") if k in t} if isinstance(t, dict) else t
                         for t in texts]
    else:
        slim["texts"] = texts
    return _json(slim)


def _date(date_string: str | None) -> bytes | None:
    return None if date_string is None else date_string.encode("utf-8")


def _render(fn, payload: bytes, add_generation_prompt: bool, date_string: str | None, context: str) -> str:
    size = _TEXT_BUFFER
    needed = ctypes.c_int64()
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        status = fn(payload, int(add_generation_prompt), _date(date_string), buf, size, ctypes.byref(needed))
        if status == B.LORANAS_ERR_BUFFER_TOO_SMALL and needed.value + 1 > size:
            size = needed.value + 1
            continue
        check(status, context)
        return buf.raw[: needed.value].decode("utf-8")
    raise RuntimeError(f"{context} still reports a buffer too small after a retry with {size} bytes")


def render_record(record: dict, add_generation_prompt: bool = False, date_string: str | None = None) -> str:
    """The chat string of a Cauldron record ``{"images": [...], "texts": [{"user", "assistant"}, ...]}``.

    Per turn a user message (all images, as ``<|image|>``, first in the first one) and an assistant message,
    rendered as the published Llama-3.2-Vision-Instruct template does. ``date_string`` (default: today) only
    appears in a chat without images.
    """
    return _render(B.loranas_chat_render_record, _record_json(record), add_generation_prompt, date_string,
                   "loranas_chat_render_record")


def render_messages(messages: Sequence[dict], add_generation_prompt: bool = False,
                    date_string: str | None = None) -> str:
    """transformers' ``apply_chat_template(messages, tokenize=False)`` with the published template."""
    return _render(B.loranas_chat_render_messages, _json(list(messages)), add_generation_prompt, date_string,
                   "loranas_chat_render_messages")


def _int64s(values: Sequence[int]):
    arr = (ctypes.c_int64 * max(len(values), 1))(*[int(v) for v in values])
    return arr


def encode_record(tokenizer: Tokenizer, record: dict, num_tiles: Sequence[int], max_image_tiles: int = 4,
                  date_string: str | None = None, max_length: int | None = None) -> dict[str, np.ndarray] | None:
    """One training sample: ``input_ids`` (S,), ``labels`` (S,) (-100 except the answers and their
    ``<|eot_id|>``) and ``cross_attention_mask`` (S, I, max_image_tiles); ``num_tiles[j]`` is image j's tile count.

    ``max_length`` cuts the sample to its first ``max_length`` tokens; a sample whose cut would remove an
    ``<|image|>`` token or every labelled token is skipped: the result is None (count it)."""
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    limit = 0 if max_length is None else int(max_length)
    payload = _record_json(record)
    tiles = [int(t) for t in num_tiles]
    tiles_arr = _int64s(tiles)
    context = "loranas_text_encode_record"
    n = ctypes.c_int64()
    with tokenizer._use() as handle:
        check(B.loranas_text_encode_record(handle, payload, _date(date_string), tiles_arr, len(tiles),
                                           max_image_tiles, limit, None, None, 0, None, 0, ctypes.byref(n)), context)
        s = n.value
        if s == 0:
            return None
        ids = np.zeros(s, dtype=np.int64)
        labels = np.zeros(s, dtype=np.int64)
        mask = np.zeros((s, len(tiles), max_image_tiles), dtype=np.int64)
        p = ctypes.POINTER(ctypes.c_int64)
        check(B.loranas_text_encode_record(handle, payload, _date(date_string), tiles_arr, len(tiles),
                                           max_image_tiles, limit, ids.ctypes.data_as(p), labels.ctypes.data_as(p), s,
                                           mask.ctypes.data_as(p), mask.size, ctypes.byref(n)), context)
    return {"input_ids": ids, "labels": labels, "cross_attention_mask": mask}


def encode_prompts(tokenizer: Tokenizer, prompts: Sequence[str], num_tiles: Sequence[Sequence[int]],
                   max_image_tiles: int = 4, pad_token_id: int = 128004,
                   padding_side: str = "right") -> dict[str, np.ndarray]:
    """``MllamaProcessor(text=prompts, images=..., padding=True, return_tensors="np")``'s text outputs:
    ``input_ids`` and ``attention_mask`` (B, S), ``cross_attention_mask`` (B, S, I, max_image_tiles).
    ``num_tiles[b]`` lists the tile count of each image of sample b."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    p_json = _json(list(prompts))
    t_json = _json([[int(t) for t in sample] for sample in num_tiles])
    left = int(padding_side == "left")
    context = "loranas_text_encode_prompts"
    b, s, i = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
    with tokenizer._use() as handle:
        check(B.loranas_text_encode_prompts(handle, p_json, t_json, max_image_tiles, pad_token_id, left,
                                            None, None, 0, None, 0, ctypes.byref(b), ctypes.byref(s),
                                            ctypes.byref(i)), context)
        ids = np.zeros((b.value, s.value), dtype=np.int64)
        attn = np.zeros((b.value, s.value), dtype=np.int64)
        mask = np.zeros((b.value, s.value, i.value, max_image_tiles), dtype=np.int64)
        p = ctypes.POINTER(ctypes.c_int64)
        check(B.loranas_text_encode_prompts(handle, p_json, t_json, max_image_tiles, pad_token_id, left,
                                            ids.ctypes.data_as(p), attn.ctypes.data_as(p), ids.size,
                                            mask.ctypes.data_as(p), mask.size, ctypes.byref(b), ctypes.byref(s),
                                            ctypes.byref(i)), context)
    return {"input_ids": ids, "attention_mask": attn, "cross_attention_mask": mask}
