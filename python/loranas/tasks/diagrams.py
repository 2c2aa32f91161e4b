"""AI2D/TQA-like diagrams: a food chain (3-4 labelled boxes joined by arrows) or a cycle (3-4 boxes around a
ring), with a four-option multiple-choice question about the arrows; the answer is the option's letter."""

from __future__ import annotations

import math

from ._draw import INK, arrow, canvas, fit, shorten, text_px
from ._example import Example, choice, sample_distinct, uniform

CHAINS = (("grass", "cricket", "frog", "snake", "hawk"), ("algae", "shrimp", "fish", "seal", "shark"),
          ("seed", "mouse", "snake", "owl"), ("leaf", "beetle", "bird", "fox"), ("plant", "deer", "wolf"),
          ("kelp", "urchin", "otter", "orca"))
CYCLES = (("egg", "larva", "pupa", "adult"), ("cloud", "rain", "river", "sea"), ("seed", "sprout", "plant", "flower"),
          ("egg", "chick", "hen"), ("egg", "tadpole", "frog"), ("ice", "water", "steam"))
WORDS = sorted({w for group in CHAINS + CYCLES for w in group})
LETTERS = "ABCD"
BOX = (232, 240, 255)
#: Box centres (at 112 px) of 3- and 4-node cycles, in ring order.
RING = {3: ((56, 16), (84, 94), (28, 94)), 4: ((56, 14), (88, 56), (56, 98), (24, 56))}


def sample(rng, image_size: int, split: str = "train") -> Example:
    """A chain or cycle diagram with a multiple-choice question, its letter answer and a caption."""
    cycle = bool(rng.integers(2))
    nodes = _nodes(rng, cycle)
    edges = [(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes) if cycle else len(nodes) - 1)]
    image = _draw(rng, image_size, nodes, cycle)
    question, correct = _question(rng, nodes, edges, cycle)
    inside = sample_distinct(rng, [w for w in nodes if w != correct], 2)
    outside = sample_distinct(rng, [w for w in WORDS if w not in nodes], 1)
    options = sample_distinct(rng, inside + outside + [correct], 4)
    listed = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options))
    text = f"{question}\n{listed}\nAnswer with the option's letter."
    kind = "cycle" if cycle else "food chain"
    facts = ", ".join(f"{a} points to {b}" for a, b in edges)
    return Example(image, text, LETTERS[options.index(correct)], f"A {kind} diagram: {facts}.")


def _nodes(rng, cycle: bool) -> list[str]:
    if cycle:
        group = choice(rng, CYCLES)
        start = int(rng.integers(len(group)))
        return list(group[start:] + group[:start])
    group = choice(rng, CHAINS)
    n = min(len(group), int(rng.integers(3, 5)))
    start = int(rng.integers(len(group) - n + 1))
    return list(group[start:start + n])


def _question(rng, nodes: list[str], edges, cycle: bool) -> tuple[str, str]:
    """A question about the arrows and its correct option."""
    kinds = ("to", "from") if cycle else ("to", "from", "start", "end")
    kind = choice(rng, kinds)
    a, b = choice(rng, edges)
    if kind == "to":
        return choice(rng, ("What does {} point to?", "Which box does the arrow from {} point to?")).format(a), b
    if kind == "from":
        return choice(rng, ("What points to {}?", "Which box has an arrow pointing to {}?")).format(b), a
    if kind == "start":
        return choice(rng, ("Which box has no arrow pointing to it?", "Where does the food chain start?")), nodes[0]
    return choice(rng, ("Which box points to nothing?", "Where does the food chain end?")), nodes[-1]


def _draw(rng, size: int, nodes: list[str], cycle: bool):
    k, n = size / 112, len(nodes)
    hw, hh = 22 * k, 7 * k
    if cycle:
        start = int(rng.integers(n))
        ring = RING[n][start:] + RING[n][:start]
        if rng.integers(2):  # counter-clockwise
            ring = ring[:1] + ring[:0:-1]
        centres = [((x + uniform(rng, -4, 4)) * k, (y + uniform(rng, -4, 4)) * k) for x, y in ring]
    else:
        step = (size - 2 * hh - 8 * k) / (n - 1)
        order = range(n) if rng.integers(2) else range(n - 1, -1, -1)
        centres = [(size / 2 + uniform(rng, -16, 16) * k, hh + 4 * k + step * i) for i in order]
    image, draw = canvas(size)
    for i in range(n if cycle else n - 1):
        start, end = centres[i], centres[(i + 1) % n]
        start, end = shorten(start, end, _to_border(start, end, hw, hh), _to_border(end, start, hw, hh) + 1)
        arrow(draw, start, end, head=5 * k)
    for (x, y), word in zip(centres, nodes):
        draw.rectangle([x - hw, y - hh, x + hw, y + hh], fill=BOX, outline=INK)
        draw.text((x, y), word, font=fit(word, 2 * hw - 4, text_px(size)), fill=INK, anchor="mm")
    return image


def _to_border(centre, towards, hw: float, hh: float) -> float:
    """Distance from a box's centre to its border in the direction of ``towards``."""
    dx, dy = abs(towards[0] - centre[0]), abs(towards[1] - centre[1])
    length = math.hypot(dx, dy) or 1.0
    return min(hw * length / dx if dx else math.inf, hh * length / dy if dy else math.inf)
