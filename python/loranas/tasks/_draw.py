"""Drawing helpers shared by the tasks: canvas, colours, fonts, text placement and arrows.

Every coordinate is in pixels of a square canvas; tasks scale their layouts by the image size so the same
parameters draw the same picture at any ``image_size``. Pillow's ImageDraw draws shapes without anti-aliasing,
so a filled shape holds exactly its colour (the tests find shapes by colour); text is anti-aliased grey.
"""

from __future__ import annotations

import functools
import math

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
GREY = (150, 150, 150)

#: Named, well separated fill colours (saturated, so they stand apart from black text and grey lines).
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 0),
    "purple": (140, 40, 180),
    "orange": (245, 130, 0),
}


@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's built-in FreeType font (Aileron) at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def text_px(image_size: int) -> int:
    """The body text size for a canvas: 10 px at 112 px, scaled, at least 7."""
    return max(7, round(image_size * 10 / 112))


def canvas(image_size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A white RGB square and its drawing context."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    return image, ImageDraw.Draw(image)


def fit(text: str, max_width: float, size: int) -> ImageFont.FreeTypeFont:
    """The largest font of at most ``size`` px (at least 6) that draws ``text`` at most ``max_width`` wide."""
    while size > 6 and font(size).getlength(text) > max_width:
        size -= 1
    return font(size)


def centered(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill=INK) -> None:
    """Draws ``text`` in a ``size`` px font centred on ``xy``."""
    draw.text(xy, text, font=font(size), fill=fill, anchor="mm")


def arrow(draw: ImageDraw.ImageDraw, start, end, fill=INK, width: int = 1, head: float = 5.0) -> None:
    """A straight arrow from ``start`` to ``end`` with a filled head at ``end``."""
    (x0, y0), (x1, y1) = start, end
    draw.line([start, end], fill=fill, width=width)
    angle = math.atan2(y1 - y0, x1 - x0)
    left = (x1 - head * math.cos(angle - 0.45), y1 - head * math.sin(angle - 0.45))
    right = (x1 - head * math.cos(angle + 0.45), y1 - head * math.sin(angle + 0.45))
    draw.polygon([end, left, right], fill=fill)


def shorten(start, end, by_start: float, by_end: float):
    """The segment ``start``-``end`` cut by ``by_start`` px at its start and ``by_end`` px at its end."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    return (x0 + ux * by_start, y0 + uy * by_start), (x1 - ux * by_end, y1 - uy * by_end)
