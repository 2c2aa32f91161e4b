"""InterGPS/GeomVerse-like geometry: a triangle with two labelled angles (ask the third), a segment split by a
point with the whole and one part labelled (ask the other part), a rectangle with labelled sides (ask perimeter
or area) and a right triangle with labelled legs (ask the hypotenuse). Figures are drawn to the stated measures."""

from __future__ import annotations

import math

from ._draw import INK, canvas, centered, text_px
from ._example import Example, choice, uniform

LETTERS = ("ABC", "PQR", "XYZ", "DEF", "KLM")
TRIPLES = ((3, 4, 5), (6, 8, 10), (5, 12, 13), (8, 15, 17), (9, 12, 15), (12, 16, 20), (7, 24, 25), (15, 20, 25))


def sample(rng, image_size: int, split: str = "train") -> Example:
    """A geometry figure with its question, numeric answer and caption (``split`` is unused)."""
    kind = choice(rng, (_angles, _segment, _rectangle, _hypotenuse))
    return kind(rng, image_size)


def _angles(rng, size: int) -> Example:
    names = choice(rng, LETTERS)
    a = int(rng.integers(30, 86))
    b = int(rng.integers(30, 151 - a))
    angles = [a, b, 180 - a - b]
    ca = math.sin(math.radians(b)) / math.sin(math.radians(angles[2]))
    unit = [(0.0, 0.0), (1.0, 0.0), (ca * math.cos(math.radians(a)), ca * math.sin(math.radians(a)))]
    points = _fit(rng, unit, size)
    image, draw = canvas(size)
    draw.polygon(points, outline=INK)
    cx, cy = sum(p[0] for p in points) / 3, sum(p[1] for p in points) / 3
    ask = int(rng.integers(3))
    for i, (x, y) in enumerate(points):
        _label(draw, (x, y), (cx, cy), -8 * size / 112, names[i], text_px(size))
        if i != ask:
            _label(draw, (x, y), (cx, cy), 16 * size / 112, f"{angles[i]}°", text_px(size) - 1)
    given = [i for i in range(3) if i != ask]
    question = choice(rng, ("What is the measure of angle {} in degrees?", "How many degrees is angle {}?",
                            "Find angle {} in degrees.")).format(names[ask])
    caption = (f"A triangle {names} with angle {names[given[0]]} of {angles[given[0]]} degrees and angle "
               f"{names[given[1]]} of {angles[given[1]]} degrees.")
    return Example(image, question, str(angles[ask]), caption)


def _segment(rng, size: int) -> Example:
    names = choice(rng, LETTERS)
    whole = int(rng.integers(8, 31))
    least = math.ceil(whole / 5)
    part = int(rng.integers(least, whole - least + 1))
    first = bool(rng.integers(2))  # the labelled part is the first piece
    k = size / 112
    x0, x1, y = 12 * k, size - 12 * k, uniform(rng, 35, 55) * k
    xm = x0 + (x1 - x0) * (part if first else whole - part) / whole
    image, draw = canvas(size)
    draw.line([(x0, y), (x1, y)], fill=INK, width=max(1, round(k)))
    for x, name in zip((x0, xm, x1), names):
        draw.line([(x, y - 3 * k), (x, y + 3 * k)], fill=INK)
        centered(draw, (x, y - 10 * k), name, text_px(size))
    centered(draw, (((x0 + xm) if first else (xm + x1)) / 2, y + 8 * k), str(part), text_px(size))
    draw.line([(x0, y + 17 * k), (x1, y + 17 * k)], fill=INK)
    for x in (x0, x1):
        draw.line([(x, y + 14 * k), (x, y + 20 * k)], fill=INK)
    centered(draw, ((x0 + x1) / 2, y + 26 * k), str(whole), text_px(size))
    known, asked = (names[:2], names[1:]) if first else (names[1:], names[:2])
    question = choice(rng, ("What is the length of {}?", "How long is {}?", "Find the length of {}.")).format(asked)
    caption = f"A segment {names[0]}{names[2]} of length {whole} with point {names[1]} on it; {known} is {part}."
    return Example(image, question, str(whole - part), caption)


def _rectangle(rng, size: int) -> Example:
    w, h = int(rng.integers(2, 13)), int(rng.integers(2, 13))
    k = size / 112
    scale = uniform(rng, 50, 76) * k / max(w, h)
    pw, ph = max(w * scale, 14 * k), max(h * scale, 14 * k)
    x0, y0 = (size - pw) / 2 + uniform(rng, -10, 8) * k, (size - ph) / 2 + uniform(rng, -8, 10) * k
    image, draw = canvas(size)
    draw.rectangle([x0, y0, x0 + pw, y0 + ph], outline=INK, width=max(1, round(k)))
    centered(draw, (x0 + pw / 2, y0 - 7 * k), str(w), text_px(size))
    centered(draw, (x0 + pw + 8 * k, y0 + ph / 2), str(h), text_px(size))
    if rng.integers(2):
        question, answer = choice(rng, ("What is the perimeter of the rectangle?",
                                        "What is the rectangle's perimeter?")), 2 * (w + h)
    else:
        question, answer = choice(rng, ("What is the area of the rectangle?", "What is the rectangle's area?")), w * h
    return Example(image, question, str(answer), f"A rectangle of width {w} and height {h}.")


def _hypotenuse(rng, size: int) -> Example:
    a, b, c = choice(rng, TRIPLES)
    if rng.integers(2):
        a, b = b, a
    points = _fit(rng, [(0.0, 0.0), (a / b, 0.0), (0.0, 1.0)], size)
    image, draw = canvas(size)
    draw.polygon(points, outline=INK)
    right, end_a, end_b = points
    m = 6 * size / 112
    units = [((p[0] - right[0]) / math.dist(p, right), (p[1] - right[1]) / math.dist(p, right)) for p in (end_a, end_b)]
    corner = [(right[0] + m * units[0][0], right[1] + m * units[0][1]),
              (right[0] + m * (units[0][0] + units[1][0]), right[1] + m * (units[0][1] + units[1][1])),
              (right[0] + m * units[1][0], right[1] + m * units[1][1])]
    draw.line(corner, fill=INK)
    centre = (sum(p[0] for p in points) / 3, sum(p[1] for p in points) / 3)
    for end, length in ((end_a, a), (end_b, b)):
        middle = ((right[0] + end[0]) / 2, (right[1] + end[1]) / 2)
        _label(draw, middle, centre, -8 * size / 112, str(length), text_px(size))
    question = choice(rng, ("What is the length of the hypotenuse?", "How long is the hypotenuse?"))
    return Example(image, question, str(c), f"A right triangle with legs {a} and {b}.")


def _fit(rng, unit: list[tuple[float, float]], size: int) -> list[tuple[float, float]]:
    """Unit-space points (y up), turned by a random angle and optionally mirrored, scaled into the canvas with a
    random margin for labels and a little offset, y flipped."""
    turn = uniform(rng, 0, 2 * math.pi)
    mirror = -1 if rng.integers(2) else 1
    turned = [(mirror * (x * math.cos(turn) - y * math.sin(turn)), x * math.sin(turn) + y * math.cos(turn))
              for x, y in unit]
    xs, ys = [p[0] for p in turned], [p[1] for p in turned]
    margin = uniform(rng, 17, 24) * size / 112
    scale = (size - 2 * margin) / max(max(xs) - min(xs), max(ys) - min(ys))
    width, height = (max(xs) - min(xs)) * scale, (max(ys) - min(ys)) * scale
    ox = (size - width) / 2 + uniform(rng, -0.5, 0.5) * (size - 2 * margin - width)
    oy = (size + height) / 2 + uniform(rng, -0.5, 0.5) * (size - 2 * margin - height)
    return [(ox + (x - min(xs)) * scale, oy - (y - min(ys)) * scale) for x, y in turned]


def _label(draw, point, centre, offset: float, text: str, px: int) -> None:
    """``text`` (``px`` high) at ``offset`` px from ``point`` towards ``centre`` (negative: away from it)."""
    (x, y), (cx, cy) = point, centre
    d = math.hypot(cx - x, cy - y) or 1.0
    centered(draw, (x + (cx - x) / d * offset, y + (cy - y) / d * offset), text, px)
