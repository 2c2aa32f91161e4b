"""VSR-like spatial relations: two or three shapes (circle, square, triangle), each a different colour, placed
apart on both axes so left/right/above/below of their centres is unambiguous. Questions ask whether a relation
holds (yes/no), or which shape or colour stands in a relation to another."""

from __future__ import annotations

from ._draw import COLOURS, canvas
from ._example import Example, article, choice, join, sample_distinct, uniform

SHAPES = ("circle", "square", "triangle")
RELATIONS = {"left": ("left of", "to the left of"), "right": ("right of", "to the right of"),
             "above": ("above", "higher than"), "below": ("below", "lower than")}
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def sample(rng, image_size: int, split: str = "train") -> Example:
    """Shapes with a relation question, its answer and a caption (``split`` is unused)."""
    n = int(rng.integers(2, 4))
    shapes = [choice(rng, SHAPES) for _ in range(n)]
    colours = sample_distinct(rng, tuple(COLOURS), n)
    r = uniform(rng, 12, 16) * image_size / 112
    centres = _place(rng, n, r, image_size)
    image, draw = canvas(image_size)
    for shape, colour, centre in zip(shapes, colours, centres):
        _shape(draw, shape, centre, r, COLOURS[colour])
    names = [f"{c} {s}" for c, s in zip(colours, shapes)]
    if choice(rng, ("yes/no", "which")) == "yes/no":
        question, answer = _yes_no(rng, names, centres)
    else:
        question, answer = _which(rng, names, shapes, colours, centres)
    return Example(image, question, answer, _caption(rng, names, centres))


def holds(relation: str, a, b) -> bool:
    """Whether centre ``a`` is ``relation`` (left, right, above, below) centre ``b`` (y grows downwards)."""
    return {"left": a[0] < b[0], "right": a[0] > b[0], "above": a[1] < b[1], "below": a[1] > b[1]}[relation]


def _place(rng, n: int, r: float, size: int) -> list[tuple[float, float]]:
    """Centres at least ``1.4 r`` apart on both axes, not overlapping, inside the canvas."""
    low, high = r + 3, size - r - 3
    while True:
        centres = [(uniform(rng, low, high), uniform(rng, low, high)) for _ in range(n)]
        pairs = [(a, b) for i, a in enumerate(centres) for b in centres[i + 1:]]
        apart = all(min(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 1.4 * r for a, b in pairs)
        if apart and all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 2 * r + 4 for a, b in pairs):
            return centres


def _shape(draw, shape: str, centre, r: float, fill) -> None:
    x, y = centre
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif shape == "square":
        draw.rectangle([x - 0.85 * r, y - 0.85 * r, x + 0.85 * r, y + 0.85 * r], fill=fill)
    else:  # apex up; the area's centroid is the centre
        draw.polygon([(x, y - r), (x - r, y + r / 2), (x + r, y + r / 2)], fill=fill)


def _yes_no(rng, names: list[str], centres) -> tuple[str, str]:
    i, j = sample_distinct(rng, range(len(names)), 2)
    relation = choice(rng, tuple(RELATIONS))
    answer = choice(rng, ("yes", "no"))
    if holds(relation, centres[i], centres[j]) != (answer == "yes"):
        relation = OPPOSITE[relation]
    return f"Is the {names[i]} {choice(rng, RELATIONS[relation])} the {names[j]}?", answer


def _which(rng, names, shapes, colours, centres) -> tuple[str, str]:
    """Asks the shape (or colour) of the one shape standing in a relation to a reference shape."""
    options = []
    for ref in range(len(names)):
        for relation in RELATIONS:
            hits = [i for i in range(len(names)) if i != ref and holds(relation, centres[i], centres[ref])]
            if len(hits) == 1:
                options.append((ref, relation, hits[0]))
    ref, relation, hit = choice(rng, options)
    phrase = choice(rng, RELATIONS[relation])
    if choice(rng, ("shape", "colour")) == "shape":
        return f"What shape is {phrase} the {colours[ref]} one?", shapes[hit]
    return f"What colour is the shape {phrase} the {names[ref]}?", colours[hit]


def _caption(rng, names: list[str], centres) -> str:
    if len(names) == 2:
        a, b = sorted(range(2), key=lambda i: centres[i][0])
        vertical = "above" if centres[a][1] < centres[b][1] else "below"
        return choice(rng, (f"{article(names[a]).capitalize()} to the left of and {vertical} {article(names[b])}.",
                            f"{article(names[b]).capitalize()} to the right of and {OPPOSITE[vertical]} "
                            f"{article(names[a])}."))
    across = join([f"the {names[i]}" for i in sorted(range(3), key=lambda i: centres[i][0])])
    down = join([f"the {names[i]}" for i in sorted(range(3), key=lambda i: centres[i][1])])
    return f"Three shapes. From left to right: {across}; from top to bottom: {down}."
