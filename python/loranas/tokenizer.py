"""Layer 3 and 4: the owner of a ``loranas_tokenizer`` handle, and its user API."""

from __future__ import annotations

import ctypes
import os
from typing import Iterable

from . import _bindings as B
from ._handle import OwnedHandle
from ._paths import c_path
from .errors import InvalidArgumentError, check


class Tokenizer(OwnedHandle):
    """A Hugging Face ``tokenizer.json`` read by the engine; it gives the ids HF ``tokenizers`` gives.

    Supported components: BPE (byte-level, as Llama 3) and WordLevel models; Split, ByteLevel,
    Whitespace, WhitespaceSplit and Sequence pre-tokenizers; NFC normalization; TemplateProcessing
    and ByteLevel post-processors; the ByteLevel decoder; added tokens with their flags. A file with
    another component raises :class:`loranas.UnsupportedError` naming it::

        tok = loranas.Tokenizer.from_file("tokenizer.json")
        ids = tok.encode("Hello <|image|> world")
        text = tok.decode(ids)
    """

    _kind = "tokenizer"
    _free = staticmethod(B.loranas_tokenizer_free)

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = os.fspath(path)
        handle = B.loranas_tokenizer_p()
        context = f"loranas_tokenizer_load({self.path!r})"
        check(B.loranas_tokenizer_load(c_path(self.path, context), ctypes.byref(handle)), context)
        self._adopt(handle, context)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a ``tokenizer.json`` file."""
        return cls(path)

    @classmethod
    def _from_handle(cls, handle: ctypes.c_void_p, path: str, context: str) -> "Tokenizer":
        """Own a tokenizer handle another call created (e.g. ``loranas_processor_tokenizer``)."""
        tok = cls.__new__(cls)
        OwnedHandle.__init__(tok)
        tok.path = path
        tok._adopt(handle, context)
        return tok

    def _label(self) -> str:
        return f"tokenizer {self.path!r}"

    def __repr__(self) -> str:
        return f"<loranas.Tokenizer {self.path!r} ({'closed' if self.closed else 'open'})>"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The token ids of ``text``; ``add_special_tokens`` applies the post-processor's template."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        data = text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, as in HF tokenizers
        context = "loranas_tokenizer_encode"
        count = ctypes.c_int64()
        with self._use() as handle:
            check(B.loranas_tokenizer_encode(handle, data, len(data), int(add_special_tokens), None, 0,
                                             ctypes.byref(count)), context)
            ids = (ctypes.c_int64 * max(count.value, 1))()
            check(B.loranas_tokenizer_encode(handle, data, len(data), int(add_special_tokens), ids, count.value,
                                             ctypes.byref(count)), context)
        return list(ids[:count.value])

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids``; ids that no token has are skipped, as HF ``tokenizers`` skips them."""
        values = [int(i) for i in ids]
        bad = [i for i in values if not 0 <= i < 2**32]
        if bad:
            raise InvalidArgumentError(f"token ids must be in 0...2^32-1, got {bad[0]}",
                                       context="loranas_tokenizer_decode")
        array = (ctypes.c_int64 * max(len(values), 1))(*values)
        context = "loranas_tokenizer_decode"
        needed = ctypes.c_int64(-1)
        with self._use() as handle:
            status = B.loranas_tokenizer_decode(handle, array, len(values), int(skip_special_tokens), None, 0,
                                                ctypes.byref(needed))
            if status != B.LORANAS_ERR_BUFFER_TOO_SMALL:
                check(status, context)
            buf = ctypes.create_string_buffer(needed.value + 1)
            check(B.loranas_tokenizer_decode(handle, array, len(values), int(skip_special_tokens), buf,
                                             needed.value + 1, ctypes.byref(needed)), context)
        # The text may hold NUL characters: read out_len bytes, not up to the first NUL.
        return buf.raw[:needed.value].decode("utf-8")

    @property
    def vocab_size(self) -> int:
        """The number of distinct tokens, added tokens included (HF's ``get_vocab_size(True)``)."""
        size = ctypes.c_int64()
        with self._use() as handle:
            check(B.loranas_tokenizer_vocab_size(handle, ctypes.byref(size)), "loranas_tokenizer_vocab_size")
        return size.value

    def token_to_id(self, token: str) -> int | None:
        """The id of a token string, or None when no token has it."""
        data = token.encode("utf-8")
        if b"\0" in data:
            raise InvalidArgumentError(f"token {token!r} contains a NUL character, which a C string cannot carry",
                                       context="loranas_tokenizer_token_to_id")
        out = ctypes.c_int64()
        with self._use() as handle:
            check(B.loranas_tokenizer_token_to_id(handle, data, ctypes.byref(out)), "loranas_tokenizer_token_to_id")
        return None if out.value < 0 else out.value
