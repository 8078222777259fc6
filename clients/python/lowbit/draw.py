"""Drawing detections onto an image with Pillow."""
from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from PIL import Image, ImageDraw, ImageFont

from lowbit.types import Detection


def _color(class_id: int) -> tuple[int, int, int]:
    """A distinct, stable color per class id (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable since Pillow 10.1
    except TypeError:  # pragma: no cover - older Pillow
        return ImageFont.load_default()


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """Returns an RGB copy of image with each detection's box and "label score"."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(min(canvas.size) / 250))
    font = _font(max(12, round(min(canvas.size) / 40)))
    for d in detections:
        color = _color(d.class_id)
        box = [d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max]
        draw.rectangle(box, outline=color, width=line)
        text = f"{d.label or d.class_id} {d.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left, bottom - top
        x = max(0.0, d.box.x_min)
        y = d.box.y_min - text_h - 2 * line if d.box.y_min >= text_h + 2 * line else d.box.y_min
        draw.rectangle([x, y, x + text_w + 2 * line, y + text_h + 2 * line], fill=color)
        draw.text((x + line - left, y + line - top), text, fill=(0, 0, 0), font=font)
    return canvas


def save_annotated(source: Union[str, Path, Image.Image], detections: Sequence[Detection], out: Union[str, Path]) -> Path:
    """Draws detections on source (a path or an image) and saves to out (format from its suffix)."""
    image = Image.open(source) if not isinstance(source, Image.Image) else source
    out_path = Path(out)
    draw_detections(image, detections).save(out_path)
    return out_path
