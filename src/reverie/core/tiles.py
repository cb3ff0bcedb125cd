"""Overlapping tiles for frames too large to optimise whole, blended back without seams.

Each tile is optimised against the whole painting's style targets and the frame's content scale, from
the same upsampled start image, so neighbouring tiles agree closely; a linear cross-fade over the
overlap removes what difference is left.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Box = tuple[int, int, int, int]
"""(top, left, bottom, right) in pixels."""


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of tiles of at most `tile` px covering `length`, neighbours overlapping by at least
    `overlap` px, spread evenly."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    if length <= tile:
        return [(0, length)]
    count = -(-(length - overlap) // (tile - overlap))  # ceil: enough tiles to cover the length
    step = (length - tile) / (count - 1)
    return [(round(i * step), round(i * step) + tile) for i in range(count)]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles `run_tiled` optimises for a height x width frame."""
    return len(spans(height, tile, overlap)) * len(spans(width, tile, overlap))


def _ramp(spans_: list[tuple[int, int]], i: int) -> Tensor:
    """Weights along one tile: 1 inside, fading linearly across the overlap with each neighbour."""
    start, end = spans_[i]
    ramp = torch.ones(end - start)
    if i > 0:
        fade = spans_[i - 1][1] - start
        ramp[:fade] = torch.arange(1, fade + 1) / (fade + 1)
    if i + 1 < len(spans_):
        fade = end - spans_[i + 1][0]
        ramp[-fade:] = torch.minimum(ramp[-fade:], torch.arange(fade, 0, -1) / (fade + 1))
    return ramp


def run_tiled(run: Callable[[Box], Tensor], shape: torch.Size, tile: int, overlap: int) -> Tensor:
    """Optimise each tile with run(box) -> (1, 3, h, w) and cross-fade them into a (1, 3, H, W) frame."""
    height, width = shape[-2:]
    rows, cols = spans(height, tile, overlap), spans(width, tile, overlap)
    total: Tensor | None = None
    weight: Tensor | None = None
    for r, (top, bottom) in enumerate(rows):
        for c, (left, right) in enumerate(cols):
            piece = run((top, left, bottom, right))
            w = (_ramp(rows, r)[:, None] * _ramp(cols, c)[None, :]).to(piece.device)
            if total is None or weight is None:
                total = piece.new_zeros((1, 3, height, width))
                weight = piece.new_zeros((1, 1, height, width))
            total[..., top:bottom, left:right] += piece * w
            weight[..., top:bottom, left:right] += w
    assert total is not None and weight is not None  # spans() always gives at least one tile
    return total / weight
