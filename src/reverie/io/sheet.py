"""Contact sheets: a grid of tiles with row and column labels, a caption under each tile, and titles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_PAD = 8
_BACKGROUND = (24, 24, 24)
_INK = (235, 235, 235)
_DIM = (160, 160, 160)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def contact_sheet(
    tiles: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    captions: Sequence[Sequence[str]],
    title: str,
    subtitle: str,
) -> np.ndarray:
    """Lay out tiles[row][col] (float RGB 0..1, any sizes) on a dark sheet; returns float RGB 0..1."""
    tile_w = max(t.shape[1] for row in tiles for t in row)
    tile_h = max(t.shape[0] for row in tiles for t in row)
    font, small = _font(16), _font(12)
    label_w = max([_text_width(font, s) for s in row_labels] + [0]) + 2 * _PAD
    head_h, col_h, cap_h = 56, 26, 20
    cell_w, cell_h = tile_w + _PAD, tile_h + cap_h + _PAD
    width = label_w + len(col_labels) * cell_w + _PAD
    height = head_h + col_h + len(row_labels) * cell_h + _PAD
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((_PAD, _PAD), title, font=_font(18), fill=_INK)
    draw.text((_PAD, _PAD + 24), subtitle, font=small, fill=_DIM)
    for c, label in enumerate(col_labels):
        draw.text((label_w + c * cell_w, head_h + 4), label, font=font, fill=_INK)
    for r, label in enumerate(row_labels):
        top = head_h + col_h + r * cell_h
        draw.text((_PAD, top + tile_h // 2 - 8), label, font=font, fill=_INK)
        for c, tile in enumerate(tiles[r]):
            left = label_w + c * cell_w
            sheet.paste(Image.fromarray(_to_uint8(tile)), (left, top))
            draw.text((left, top + tile_h + 3), _fit(small, captions[r][c], tile_w), font=small, fill=_DIM)
    return np.asarray(sheet, dtype=np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _fit(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str, width: int) -> str:
    """Shorten a caption with an ellipsis so it stays under its tile."""
    while text and _text_width(font, text) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
