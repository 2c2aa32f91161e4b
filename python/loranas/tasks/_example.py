"""The example every task draws, and the seeded choices tasks make."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
from PIL import Image


@dataclasses.dataclass
class Example:
    """One drawn image with its question, short canonical answer and descriptive caption.

    ``source`` records where a non-procedural image came from (the digits task's sklearn indices); it goes to
    the task's meta.json.
    """

    image: Image.Image
    question: str
    answer: str
    caption: str
    source: dict[str, Any] = dataclasses.field(default_factory=dict)


def choice(rng: np.random.Generator, items: Sequence):
    """One item of ``items``, uniformly."""
    return items[int(rng.integers(len(items)))]


def sample_distinct(rng: np.random.Generator, items: Sequence, k: int) -> list:
    """``k`` distinct items of ``items`` in random order."""
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A float in [low, high)."""
    return float(rng.uniform(low, high))


def number_words(n: int) -> str:
    """``n`` (2 to 5) as a word, for captions."""
    return {2: "two", 3: "three", 4: "four", 5: "five"}[n]


def join(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def article(noun: str) -> str:
    """``noun`` with ``a`` or ``an`` before it."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun
