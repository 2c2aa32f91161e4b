"""Procedural, download-free vision-language tasks modelled on the Cauldron subsets of the LangVision-LoRA-NAS
paper, written as Cauldron JSONL with PNG images.

Six tasks (:data:`NAMES`): ``charts`` (ChartQA-like bar and line charts), ``spatial`` (VSR-like shape
relations), ``geometry`` (InterGPS/GeomVerse-like angles, segments, rectangles), ``documents``
(DocVQA/HiTab-like tables, receipts and forms), ``diagrams`` (AI2D/TQA-like chains and cycles with
multiple-choice questions) and ``digits`` (scikit-learn's real handwritten digit scans). Answers are short and
canonical (a number, a word, ``yes``/``no``, a letter) so exact-match accuracy is meaningful, and correct by
construction. :func:`make` writes the QA splits; :func:`make_captions` writes image descriptions of the same
kinds of pictures, from a disjoint seed stream, for pretraining.

Everything is deterministic by ``seed``: each example draws from its own ``numpy`` PCG64 generator seeded by
``SeedSequence(seed, spawn_key=(task, split, index))``, so equal seeds give byte-identical files.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np

from . import charts, diagrams, digits, documents, geometry, spatial
from ._example import Example
from .._files import atomic_write_bytes
from ._files import png_bytes, record, remove_stale, write_json, write_jsonl

NAMES = ("charts", "spatial", "geometry", "documents", "diagrams", "digits")
SPLITS = ("train", "val", "eval")
#: Attempts to draw an image not drawn before, per example.
MAX_DRAWS = 1000
CAPTION_PROMPTS = ("Describe the image.", "What does the picture show?", "Describe what you see in the image.")
_MODULES = {"charts": charts, "spatial": spatial, "geometry": geometry, "documents": documents,
            "diagrams": diagrams, "digits": digits}

__all__ = ["NAMES", "SPLITS", "CAPTION_PROMPTS", "Example", "generate", "make", "make_captions", "rng_for"]


def rng_for(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The generator of one example: PCG64 from ``SeedSequence(seed, spawn_key=(crc32(task), crc32(split), index))``.
    ``split`` is ``train``, ``val``, ``eval`` or ``captions``."""
    key = (zlib.crc32(task.encode()), zlib.crc32(split.encode()), index)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def generate(task: str, counts: dict[str, int], seed: int = 0, image_size: int = 112, seen: set | None = None):
    """Yields ``(split, index, example, png)`` for ``task``: ``counts[split]`` examples of each split in the order
    of ``counts`` (``train``, ``val``, ``eval`` or ``captions``), exactly as :func:`make` and :func:`make_captions`
    write them.

    Example ``index`` of a split draws from :func:`rng_for` ``(seed, task, split, index)``; when its image is
    byte-equal to one drawn before (or to one in ``seen``, a set of SHA-256 digests of PNG bytes, which it
    extends), the same generator draws again, so no image repeats within a task and evaluation images never
    equal training ones.
    """
    _check_names([task])
    _check_size(image_size)
    for split, n in counts.items():
        _check_count(f"counts[{split!r}]", n)
    seen = set() if seen is None else seen
    for split, n in counts.items():
        for index in range(n):
            rng = rng_for(seed, task, split, index)
            for _ in range(MAX_DRAWS):
                example = _MODULES[task].sample(rng, image_size, split)
                data = png_bytes(example.image)
                digest = hashlib.sha256(data).digest()
                if digest not in seen:
                    break
            else:
                raise ValueError(f"{task}: no new image in {MAX_DRAWS} draws at image_size {image_size}")
            seen.add(digest)
            yield split, index, example, data


def make(directory, names=None, n_train: int = 200, n_val: int = 50, n_eval: int = 50, seed: int = 0,
         image_size: int = 112) -> dict[str, dict[str, Path]]:
    """Writes ``DIRECTORY/<task>/{train,val,eval}.jsonl``, their images ``DIRECTORY/<task>/images/<split>-<i>.png``
    and ``DIRECTORY/<task>/meta.json`` for each task of ``names`` (default: all of :data:`NAMES`; a list or a
    comma-separated string).

    Returns ``{task: {split: jsonl path}}``. Raises ValueError for an unknown task, a negative count or an
    ``image_size`` below 32, before writing anything.
    """
    names = _check_names(NAMES if names is None else names)
    counts = {"train": n_train, "val": n_val, "eval": n_eval}
    for split, n in counts.items():
        _check_count(f"n_{split}", n)
    _check_size(image_size)
    root = Path(directory)
    out = {}
    for task in names:
        records = {split: [] for split in SPLITS}
        sources = {split: [] for split in SPLITS}
        for split, index, example, data in generate(task, counts, seed, image_size):
            name = f"{split}-{index:05d}.png"
            atomic_write_bytes(root / task / "images" / name, data)
            records[split].append(record(f"images/{name}", example.question, example.answer))
            sources[split].append(example.source)
        out[task] = {}
        for split in SPLITS:
            remove_stale(root / task / "images", split, {f"{split}-{i:05d}.png" for i in range(counts[split])})
            out[task][split] = root / task / f"{split}.jsonl"
            write_jsonl(out[task][split], records[split])
        meta = {"task": task, "seed": seed, "image_size": image_size, "counts": counts}
        if any(any(s) for s in sources.values()):
            meta["sources"] = sources
        write_json(root / task / "meta.json", meta)
    return out


def make_captions(directory, n_per_task: int = 500, seed: int = 0, image_size: int = 112, names=None) -> Path:
    """Writes ``DIRECTORY/captions.jsonl``: ``n_per_task`` description records per task (tasks interleaved), with
    images ``DIRECTORY/images/<task>-<i>.png`` and ``DIRECTORY/captions.meta.json``; returns the JSONL path.

    The pictures come from the ``captions`` seed stream (and, for digits, their own scans), and any image
    byte-equal to one of the task splits already in ``DIRECTORY/<task>/images`` is drawn again, so pretraining
    never sees an evaluation image when the tasks are made first in the same directory.
    """
    names = _check_names(NAMES if names is None else names)
    _check_count("n_per_task", n_per_task)
    _check_size(image_size)
    root = Path(directory)
    streams = {}
    for task in names:
        seen = {hashlib.sha256(p.read_bytes()).digest() for p in sorted((root / task / "images").glob("*.png"))}
        streams[task] = generate(task, {"captions": n_per_task}, seed, image_size, seen)
    records, sources = [], []
    for i in range(n_per_task):
        for task in names:
            _, _, example, data = next(streams[task])
            name = f"{task}-{i:05d}.png"
            atomic_write_bytes(root / "images" / name, data)
            prompt = CAPTION_PROMPTS[zlib.crc32(f"{seed}/{task}/{i}".encode()) % len(CAPTION_PROMPTS)]
            records.append(record(f"images/{name}", prompt, example.caption))
            sources.append({"task": task, "index": i, **example.source})
    for task in names:
        remove_stale(root / "images", task, {f"{task}-{i:05d}.png" for i in range(n_per_task)})
    path = root / "captions.jsonl"
    write_jsonl(path, records)
    write_json(root / "captions.meta.json", {"seed": seed, "image_size": image_size, "n_per_task": n_per_task,
                                             "tasks": list(names), "sources": sources})
    return path


def _check_names(names) -> tuple[str, ...]:
    names = tuple(names.split(",")) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError(f"no task names given: choose from {', '.join(NAMES)}")
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown task name(s) {', '.join(map(repr, unknown))}: choose from {', '.join(NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"task names repeat: {list(names)}")
    return names


def _check_count(what: str, n) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {n!r}")


def _check_size(image_size) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
