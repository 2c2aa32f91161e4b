"""ChartQA-like bar and line charts: 3 to 5 labelled categories with distinct integer values printed on the
marks, a y axis with ticks. Questions ask a category's value, the tallest/shortest (highest/lowest) category,
the number of bars (points) or the difference of two values."""

from __future__ import annotations

from ._draw import COLOURS, GREY, INK, canvas, centered, fit, font, text_px
from ._example import Example, choice, join, number_words, sample_distinct

LABELS = ("ant", "bee", "cat", "dog", "elk", "fox", "owl", "yak", "emu", "cod", "hen", "pig", "cow", "rat", "bat")

TEMPLATES = {
    ("bar", "value"): ("What is the value of {a}?", "What value does the {a} bar show?",
                       "How high is the bar for {a}?"),
    ("bar", "max"): ("Which bar is the tallest?", "Which category has the tallest bar?",
                     "Which label has the highest bar?"),
    ("bar", "min"): ("Which bar is the shortest?", "Which category has the shortest bar?",
                     "Which label has the lowest bar?"),
    ("bar", "count"): ("How many bars are there?", "How many bars does the chart have?"),
    ("line", "value"): ("What is the value at {a}?", "What value does the line reach at {a}?"),
    ("line", "max"): ("Which point is the highest?", "At which label is the line highest?"),
    ("line", "min"): ("Which point is the lowest?", "At which label is the line lowest?"),
    ("line", "count"): ("How many points are there?", "How many points does the line have?"),
    ("bar", "diff"): ("By how much does {a} exceed {b}?", "What is {a} minus {b}?"),
    ("line", "diff"): ("By how much does {a} exceed {b}?", "What is {a} minus {b}?"),
}


def sample(rng, image_size: int, split: str = "train") -> Example:
    """A bar or line chart with its question, answer and caption (``split`` is unused: the seed stream differs)."""
    kind = choice(rng, ("bar", "line"))
    n = int(rng.integers(3, 6))
    labels = sample_distinct(rng, LABELS, n)
    top = choice(rng, (10, 20))
    values = [int(v) + 1 for v in rng.choice(top, size=n, replace=False)]
    colour = choice(rng, tuple(COLOURS))
    image = _draw(image_size, kind, labels, values, top, COLOURS[colour])
    question, answer = _question(rng, kind, labels, values)
    facts = join([f"{label} {value}" for label, value in zip(labels, values)])
    what = f"{number_words(n)} {colour} bars" if kind == "bar" else f"a {colour} line through {number_words(n)} points"
    caption = choice(rng, (f"A {kind} chart with {what}: {facts}.", f"A {kind} chart. From left to right: {facts}."))
    return Example(image, question, answer, caption)


def _question(rng, kind: str, labels: list[str], values: list[int]) -> tuple[str, str]:
    qtype = choice(rng, ("value", "value", "max", "min", "count", "diff"))
    a, b = sample_distinct(rng, range(len(labels)), 2)
    if values[a] < values[b]:
        a, b = b, a
    text = choice(rng, TEMPLATES[(kind, qtype)]).format(a=labels[a], b=labels[b])
    answers = {"value": values[a], "max": labels[values.index(max(values))],
               "min": labels[values.index(min(values))], "count": len(labels), "diff": values[a] - values[b]}
    return text, str(answers[qtype])


def _draw(size: int, kind: str, labels: list[str], values: list[int], top: int, fill):
    image, draw = canvas(size)
    k = size / 112
    left, right, upper, lower = 18 * k, size - 5 * k, 14 * k, size - 16 * k
    small = text_px(size) - 1
    for tick in (0, top // 2, top):
        y = lower - (lower - upper) * tick / top
        draw.line([(left - 2 * k, y), (left, y)], fill=INK)
        draw.text((left - 3 * k, y), str(tick), font=font(small), fill=INK, anchor="rm")
        if tick:
            draw.line([(left + 1, y), (right, y)], fill=(225, 225, 225))
    slot = (right - left) / len(labels)
    points = []
    for i, (label, value) in enumerate(zip(labels, values)):
        cx, y = left + slot * (i + 0.5), lower - (lower - upper) * value / top
        if kind == "bar":
            half = slot * 0.3
            draw.rectangle([round(cx - half), round(y), round(cx + half), round(lower) - 1], fill=fill)
        points.append((cx, y))
        draw.text((cx, lower + 7 * k), label, font=fit(label, slot - 1, text_px(size)), fill=INK, anchor="mm")
    if kind == "line":
        draw.line(points, fill=fill, width=max(1, round(1.5 * k)))
        for cx, y in points:
            r = 2.5 * k
            draw.ellipse([cx - r, y - r, cx + r, y + r], fill=fill)
    for (cx, y), value in zip(points, values):
        centered(draw, (cx, y - 6 * k), str(value), small, fill=INK)
    draw.line([(left, upper - 4 * k), (left, lower), (right, lower)], fill=GREY if kind == "line" else INK)
    return image
