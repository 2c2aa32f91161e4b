"""Paths on their way to the engine: C strings end at the first NUL, so a path holding one would
silently name another file. Such a path is refused instead."""

from __future__ import annotations

import os

from .errors import InvalidArgumentError


def c_path(path: str | os.PathLike | bytes, context: str) -> bytes:
    """``path`` as the bytes the engine receives; a NUL anywhere in it is an error."""
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise InvalidArgumentError(f"path {os.fsdecode(encoded)!r} contains a NUL byte", context=context)
    return encoded
