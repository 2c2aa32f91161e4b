"""DocVQA/HiTab-like documents rendered as text: a small table (2-3 rows by 2-3 columns of numbers), a receipt
(items, prices and a printed total) or a form (field names and values). Questions ask a cell, a row's sum, the
row with a column's largest value, the total, an item's price or a field's value."""

from __future__ import annotations

from ._draw import GREY, INK, canvas, fit, font, text_px
from ._example import Example, choice, join, sample_distinct, uniform

ROWS = ("tea", "pen", "cup", "hat", "map", "box", "jam", "ink", "bag", "key")
COLUMN_SETS = (("Mon", "Tue", "Wed"), ("Q1", "Q2", "Q3"), ("Jan", "Feb", "Mar"), ("A", "B", "C"),
               ("2021", "2022", "2023"))
ITEMS = ("milk", "eggs", "bread", "tea", "rice", "soap", "jam", "fish", "cake", "salt", "figs", "oil")
SHOPS = ("RECEIPT", "MARKET", "CAFE", "SHOP")
FIELDS = {"name": ("Ann", "Bob", "Eve", "Max", "Zoe", "Liam", "Mia", "Noah", "Ida", "Leo"),
          "city": ("Rome", "Oslo", "Lima", "Kyiv", "Doha", "Riga", "Bern", "Nice", "Baku", "Pune"),
          "age": tuple(str(a) for a in range(18, 91)),
          "room": tuple(str(r) for r in range(1, 61))}


def sample(rng, image_size: int, split: str = "train") -> Example:
    """A table, receipt or form with its question, answer and caption (``split`` is unused)."""
    return choice(rng, (_table, _receipt, _form))(rng, image_size)


def _table(rng, size: int) -> Example:
    rows = sample_distinct(rng, ROWS, int(rng.integers(2, 4)))
    columns = list(choice(rng, COLUMN_SETS)[:int(rng.integers(2, 4))])
    cells = [[int(v) + 1 for v in row] for row in rng.choice(99, size=(len(rows), len(columns)), replace=False)]
    k, px = size / 112, text_px(size)
    cw, ch = (size - 8 * k) / (len(columns) + 1), 17 * k
    x0, y0 = 4 * k, uniform(rng, 6, 112 - 6 - 17 * (len(rows) + 1)) * k
    image, draw = canvas(size)
    draw.rectangle([x0, y0, x0 + cw * (len(columns) + 1), y0 + ch], fill=(235, 235, 235))
    grid = [[""] + columns] + [[r] + [str(v) for v in row] for r, row in zip(rows, cells)]
    for i, line in enumerate(grid):
        for j, text in enumerate(line):
            face = fit(text, cw - 2, px)
            draw.text((x0 + cw * (j + 0.5), y0 + ch * (i + 0.5)), text, font=face, fill=INK, anchor="mm")
    for i in range(len(grid) + 1):
        draw.line([(x0, y0 + ch * i), (x0 + cw * (len(columns) + 1), y0 + ch * i)], fill=GREY)
    for j in range(len(columns) + 2):
        draw.line([(x0 + cw * j, y0), (x0 + cw * j, y0 + ch * len(grid))], fill=GREY)
    question, answer = _table_question(rng, rows, columns, cells)
    facts = "; ".join(f"row {r} has {join([str(v) for v in row])}" for r, row in zip(rows, cells))
    return Example(image, question, answer, f"A table with columns {join(columns)}; {facts}.")


def _table_question(rng, rows, columns, cells) -> tuple[str, str]:
    r, c = int(rng.integers(len(rows))), int(rng.integers(len(columns)))
    kind = choice(rng, ("cell", "cell", "sum", "max"))
    if kind == "cell":
        text = choice(rng, ("What is {r} in {c}?", "What value does row {r} have in column {c}?",
                            "In the table, what is the {c} value of {r}?"))
        return text.format(r=rows[r], c=columns[c]), str(cells[r][c])
    if kind == "sum":
        return choice(rng, ("What is the sum of row {}?", "What do the values of row {} add up to?")).format(rows[r]), \
            str(sum(cells[r]))
    column = [row[c] for row in cells]
    text = choice(rng, ("Which row has the largest value in column {}?", "Which row is highest in column {}?"))
    return text.format(columns[c]), rows[column.index(max(column))]


def _receipt(rng, size: int) -> Example:
    items = sample_distinct(rng, ITEMS, int(rng.integers(2, 4)))
    prices = [int(p) for p in rng.integers(1, 21, size=len(items))]
    total = sum(prices)
    k, px = size / 112, text_px(size)
    left, right = uniform(rng, 10, 22) * k, size - uniform(rng, 10, 22) * k
    y = uniform(rng, 8, 112 - 18 * (len(items) + 2) - 4) * k
    image, draw = canvas(size)
    draw.rectangle([left - 5 * k, y - 4 * k, right + 5 * k, y + 18 * k * (len(items) + 2)], fill=(250, 248, 235))
    draw.text(((left + right) / 2, y + 5 * k), choice(rng, SHOPS), font=font(px), fill=INK, anchor="mm")
    for i, (item, price) in enumerate(zip(items, prices)):
        row = y + 18 * k * (i + 1) + 5 * k
        draw.text((left, row), item, font=font(px), fill=INK, anchor="lm")
        draw.text((right, row), str(price), font=font(px), fill=INK, anchor="rm")
    bottom = y + 18 * k * (len(items) + 1)
    draw.line([(left, bottom - 2 * k), (right, bottom - 2 * k)], fill=INK)
    draw.text((left, bottom + 6 * k), "Total", font=font(px), fill=INK, anchor="lm")
    draw.text((right, bottom + 6 * k), str(total), font=font(px), fill=INK, anchor="rm")
    if rng.integers(3) == 0:
        question, answer = choice(rng, ("What is the total?", "What is the total amount on the receipt?")), total
    else:
        i = int(rng.integers(len(items)))
        question = choice(rng, ("How much does the {} cost?", "What is the price of {}?")).format(items[i])
        answer = prices[i]
    facts = join([f"{item} {price}" for item, price in zip(items, prices)])
    return Example(image, question, str(answer), f"A receipt: {facts}; total {total}.")


def _form(rng, size: int) -> Example:
    fields = sample_distinct(rng, tuple(FIELDS), 3)
    values = [choice(rng, FIELDS[f]) for f in fields]
    k, px = size / 112, text_px(size)
    x, y = uniform(rng, 6, 14) * k, uniform(rng, 10, 40) * k
    image, draw = canvas(size)
    draw.text((x, y), "FORM", font=font(px), fill=INK, anchor="lm")
    for i, (field, value) in enumerate(zip(fields, values)):
        row = y + 20 * k * (i + 1)
        draw.text((x, row), field.capitalize() + ":", font=font(px), fill=INK, anchor="lm")
        draw.rectangle([x + 36 * k, row - 8 * k, size - x, row + 8 * k], outline=GREY)
        draw.text((x + 40 * k, row), value, font=font(px), fill=INK, anchor="lm")
    i = int(rng.integers(3))
    question = choice(rng, ("What is the {} on the form?", "What {} is written in the form?",
                            "Which {} does the form give?")).format(fields[i])
    facts = ", ".join(f"{f} {v}" for f, v in zip(fields, values))
    return Example(image, question, values[i], f"A form: {facts}.")
