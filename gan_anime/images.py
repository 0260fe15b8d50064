"""Small image helpers shared by training samples and inference: grids and atomic PNG writes."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from PIL import Image

from gan_anime.files import atomic_write


def to_uint8(images) -> np.ndarray:
    """float [B, H, W, 3] in [-1, 1] -> uint8 [B, H, W, 3] (rounded, clipped)."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, cols: Optional[int] = None, pad: int = 2,
              background=(255, 255, 255)) -> Image.Image:
    """uint8 [N, H, W, 3] -> one PIL image, ``cols`` per row (default: a near-square grid)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty uint8 array [N, H, W, 3], got shape {images.shape}")
    n, h, w, _ = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    sheet = np.empty((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    sheet[...] = np.asarray(background, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = images[i]
    return Image.fromarray(sheet)


def save_png(image, path: str) -> str:
    """Write a PIL image or uint8 [H, W, 3] array to ``path`` atomically; returns the path."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, np.uint8))
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def labelled_grid(images: np.ndarray, cols: int, col_labels=(), row_labels=(), title: str = "",
                  pad: int = 2) -> Image.Image:
    """:func:`make_grid` with a title line on top, a label over each column and left of each row.

    images: uint8 [rows * cols, H, W, 3], row by row.  Labels are drawn in PIL's built-in font, so no
    font file is needed.
    """
    from PIL import ImageDraw, ImageFont
    grid = make_grid(images, cols, pad=pad)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text):
        box = probe.textbbox((0, 0), text, font=font)
        return box[2] - box[0], box[3] - box[1]

    line = max([size(t)[1] for t in (title, *col_labels, *row_labels) if t] or [0]) + 4
    left = max([size(t)[0] for t in row_labels] or [0]) + (6 if row_labels else 0)
    top = (line if title else 0) + (line if col_labels else 0)
    sheet = Image.new("RGB", (grid.width + left, grid.height + top), "white")
    sheet.paste(grid, (left, top))
    draw = ImageDraw.Draw(sheet)
    h, w = images.shape[1], images.shape[2]
    if title:
        draw.text((2, 2), title, fill="black", font=font)
    for c, text in enumerate(col_labels):
        x = left + pad + c * (w + pad) + (w - size(text)[0]) // 2
        draw.text((max(x, left), top - line + 2), text, fill="black", font=font)
    for r, text in enumerate(row_labels):
        y = top + pad + r * (h + pad) + (h - size(text)[1]) // 2
        draw.text((2, y), text, fill="black", font=font)
    return sheet
