"""Real handwritten digits: scikit-learn's ``load_digits`` 8x8 scans (shipped with the package, no download),
one to three side by side, upscaled by an integer factor with nearest-neighbour pixels. Each split draws its
scans from its own index range (:data:`RANGES`), so evaluation and caption images never appear in training."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from ._draw import BACKGROUND
from ._example import Example, choice, uniform

#: The ``load_digits`` indices (of 1797) each split draws from; disjoint.
RANGES = {"train": range(0, 900), "val": range(900, 1100), "eval": range(1100, 1400), "captions": range(1400, 1797)}


@functools.lru_cache(maxsize=1)
def scans() -> tuple[np.ndarray, np.ndarray]:
    """``load_digits``' images as uint8 ink darkness 0-255 (n, 8, 8) and their digit targets (n,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits task needs scikit-learn's bundled digit scans: pip install scikit-learn") from exc
    data = load_digits()
    return np.round(data.images * (255 / 16)).astype(np.uint8), data.target.astype(int)


def sample(rng, image_size: int, split: str = "train") -> Example:
    """One to three digit scans of ``split``'s index range as a number, with question, answer and caption."""
    images, targets = scans()
    pool = np.asarray(RANGES[split])
    k = int(rng.integers(1, 4))
    leading = pool[targets[pool] != 0] if k > 1 else pool  # no leading zero
    first = int(choice(rng, leading))
    indices = [first] + [int(i) for i in rng.choice(pool[pool != first], size=k - 1, replace=False)]
    image = _compose(rng, image_size, [images[i] for i in indices])
    number = "".join(str(targets[i]) for i in indices)
    question = choice(rng, ("What number is written?", "What number is handwritten in the image?",
                            "Which number do the handwritten digits show?"))
    noun = "digit" if k == 1 else "number"
    caption = choice(rng, (f"The handwritten {noun} {number}.", f"A handwritten {noun}: {number}."))
    return Example(image, question, number, caption, {"indices": indices})


def _compose(rng, size: int, digits: list[np.ndarray]) -> Image.Image:
    """The scans side by side as dark ink on white, scaled by one integer factor, placed with some jitter."""
    most = max(2, int(size * 0.85 // (8 * len(digits))))
    scale = int(rng.integers(max(2, round(most * 0.6)), most + 1))
    gap = int(rng.integers(0, scale + 1))
    spacer = np.zeros((8 * scale, gap), dtype=np.uint8)
    parts = [np.kron(d, np.ones((scale, scale), dtype=np.uint8)) for d in digits]
    strip = np.concatenate([p for part in parts for p in (spacer, part)][1:], axis=1)
    ink = Image.fromarray(255 - strip).convert("RGB")
    image = Image.new("RGB", (size, size), BACKGROUND)
    x = (size - ink.width) / 2 + uniform(rng, -0.4, 0.4) * (size - ink.width) / 2
    y = (size - ink.height) / 2 + uniform(rng, -0.4, 0.4) * (size - ink.height) / 2
    image.paste(ink, (round(x), round(y)))
    return image
