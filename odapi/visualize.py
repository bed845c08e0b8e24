"""Boxes and class names drawn on images, readable on any background."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

FALSE_COLOR = (255, 40, 40)  # a detection of nothing, or of the wrong class
MISSED_COLOR = (255, 255, 255)  # an object no detection found


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated colour per class (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], labels: Sequence[str],
               class_ids: Sequence[int], scores: Sequence[float | None] | None = None,
               colors: Sequence[tuple[int, int, int]] | None = None) -> Image.Image:
    """A copy of `image` with normalized [xmin, ymin, xmax, ymax] boxes and their captions
    (with the score, where one is given).

    Each caption sits on a filled tab in the box's colour, with black or white text by
    contrast, and a dark outline around the box line keeps it visible on light and dark pixels.
    """
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    line = max(2, round(min(width, height) / 200))
    font = _font(max(11, round(min(width, height) / 30)))
    for i, (xmin, ymin, xmax, ymax) in enumerate(boxes):
        color = colors[i] if colors else class_color(class_ids[i])
        rect = (xmin * width, ymin * height, xmax * width, ymax * height)
        draw.rectangle(rect, outline=(0, 0, 0), width=line + 2)
        draw.rectangle(rect, outline=color, width=line)
        caption = labels[i] if scores is None or scores[i] is None \
            else f"{labels[i]} {scores[i]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        tw, th = right - left + 4, bottom - top + 4
        tx = min(max(0, rect[0]), max(0, width - tw))
        ty = rect[1] - th if rect[1] - th >= 0 else rect[1]
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=color)
        luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        draw.text((tx + 2 - left, ty + 2 - top), caption, fill=text_color, font=font)
    return canvas
