"""Writing the task tree: PNG bytes without metadata, Cauldron JSONL records and JSON, each atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from .._files import atomic_write_bytes


def png_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG with fixed settings and no metadata chunks, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def record(image: str, user: str, assistant: str) -> dict:
    """A Cauldron record: one image path (relative to the JSONL file) and one user/assistant turn."""
    return {"images": [image], "texts": [{"user": user, "assistant": assistant}]}


def write_jsonl(path: Path, records: list[dict]) -> None:
    """``records`` one JSON object a line (UTF-8, keys in insertion order)."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_bytes(path, lines.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def remove_stale(images: Path, prefix: str, written: set[str]) -> None:
    """Deletes ``images/<prefix>-*.png`` files a previous, larger run left that this run did not write."""
    for old in images.glob(f"{prefix}-*.png"):
        if old.name not in written:
            old.unlink()
