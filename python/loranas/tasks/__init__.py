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

import zlib
from pathlib import Path

import numpy as np

from . import charts, diagrams, digits, documents, geometry, spatial
from ._example import Example, choice
from ._files import atomic_write, png_bytes, record, remove_stale, write_json, write_jsonl

NAMES = ("charts", "spatial", "geometry", "documents", "diagrams", "digits")
SPLITS = ("train", "val", "eval")
CAPTION_PROMPTS = ("Describe the image.", "What does the picture show?", "Describe what you see in the image.")
_MODULES = {"charts": charts, "spatial": spatial, "geometry": geometry, "documents": documents,
            "diagrams": diagrams, "digits": digits}

__all__ = ["NAMES", "SPLITS", "Example", "make", "make_captions", "rng_for", "sample"]


def rng_for(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The generator of one example: PCG64 from ``SeedSequence(seed, spawn_key=(crc32(task), crc32(split), index))``.
    ``split`` is ``train``, ``val``, ``eval`` or ``captions``."""
    key = (zlib.crc32(task.encode()), zlib.crc32(split.encode()), index)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def sample(task: str, seed: int, split: str, index: int, image_size: int = 112) -> Example:
    """Example ``index`` of ``task``'s ``split`` (``train``, ``val``, ``eval`` or ``captions``) for ``seed``."""
    _check_names([task])
    _check_size(image_size)
    return _MODULES[task].sample(rng_for(seed, task, split, index), image_size, split)


def make(directory, names=None, n_train: int = 200, n_val: int = 50, n_eval: int = 50, seed: int = 0,
         image_size: int = 112) -> dict[str, dict[str, Path]]:
    """Writes ``DIRECTORY/<task>/{train,val,eval}.jsonl``, their images ``DIRECTORY/<task>/images/<split>-<i>.png``
    and ``DIRECTORY/<task>/meta.json`` for each task of ``names`` (default: all of :data:`NAMES`).

    Returns ``{task: {split: jsonl path}}``. Raises ValueError for an unknown task, a negative count or an
    ``image_size`` below 32.
    """
    names = _check_names(NAMES if names is None else names)
    counts = {"train": n_train, "val": n_val, "eval": n_eval}
    for split, n in counts.items():
        _check_count(f"n_{split}", n)
    _check_size(image_size)
    root = Path(directory)
    out = {}
    for task in names:
        sources = {}
        out[task] = {}
        for split in SPLITS:
            out[task][split], sources[split] = _write_split(root / task, task, split, counts[split], seed, image_size)
        meta = {"task": task, "seed": seed, "image_size": image_size, "counts": counts}
        if any(any(s) for s in sources.values()):
            meta["sources"] = sources
        write_json(root / task / "meta.json", meta)
    return out


def make_captions(directory, n_per_task: int = 500, seed: int = 0, image_size: int = 112, names=None) -> Path:
    """Writes ``DIRECTORY/captions.jsonl``: ``n_per_task`` description records per task (tasks interleaved),
    images in ``DIRECTORY/images/<task>-<i>.png``, drawn from the ``captions`` seed stream (and, for digits, its
    own scans), so no caption image is a QA image. Also writes ``DIRECTORY/captions.meta.json``. Returns the
    JSONL path."""
    names = _check_names(NAMES if names is None else names)
    _check_count("n_per_task", n_per_task)
    _check_size(image_size)
    root = Path(directory)
    records, sources, written = [], [], set()
    for i in range(n_per_task):
        for task in names:
            rng = rng_for(seed, task, "captions", i)
            example = _MODULES[task].sample(rng, image_size, "captions")
            name = f"{task}-{i:05d}.png"
            _write_image(root / "images" / name, example)
            written.add(name)
            records.append(record(f"images/{name}", choice(rng, CAPTION_PROMPTS), example.caption))
            sources.append({"task": task, "index": i, **example.source})
    for task in names:
        remove_stale(root / "images", task, written)
    path = root / "captions.jsonl"
    write_jsonl(path, records)
    write_json(root / "captions.meta.json", {"seed": seed, "image_size": image_size, "n_per_task": n_per_task,
                                             "tasks": list(names), "sources": sources})
    return path


def _write_split(task_dir: Path, task: str, split: str, n: int, seed: int, image_size: int):
    records, sources, written = [], [], set()
    for i in range(n):
        example = _MODULES[task].sample(rng_for(seed, task, split, i), image_size, split)
        name = f"{split}-{i:05d}.png"
        _write_image(task_dir / "images" / name, example)
        written.add(name)
        records.append(record(f"images/{name}", example.question, example.answer))
        sources.append(example.source)
    remove_stale(task_dir / "images", split, written)
    path = task_dir / f"{split}.jsonl"
    write_jsonl(path, records)
    return path, sources


def _write_image(path: Path, example: Example) -> None:
    atomic_write(path, png_bytes(example.image))


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
