"""Gram matrices of an image too large to run through the network at once, computed in strips.

A refine pass to 4K scales the painting to 1.2x the frame, 4608x2880 px: its float32 VGG activations
alone took 12 GB, more than the optimisation of a whole tile. The Gram matrix is a sum over positions,
so it can be summed strip by strip; a network that says how (`strip_geometry`: the VGGs) gets strips
with enough context rows that every kept feature is the one the whole image would give.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from reverie.core.losses import gram

STRIP_PIXELS = 2**22
"""Images up to this many pixels run whole; larger ones in strips of about this size (about 4 GB of
float32 VGG activations at the peak)."""

Grams = dict[str, tuple[Tensor, int]]
"""Per layer: the unnormalised Gram matrix and its number of positions."""


@torch.no_grad()
def style_grams(
    net: nn.Module, image: Tensor, layers: frozenset[str], max_pixels: int = STRIP_PIXELS
) -> Grams:
    """Each layer's Gram matrix of a (1, 3, H, W) image and its position count, as `gram` of the whole
    image's features gives them (up to float rounding), in strips when the image is larger than
    max_pixels and the network supports it."""
    totals: dict[str, Tensor] = {}
    counts = dict.fromkeys(layers, 0)

    def add(strip: Strip) -> None:
        for layer, (_, f) in strip.items():
            g = gram(f)
            totals[layer] = totals[layer] + g if layer in totals else g
            counts[layer] += f.shape[2] * f.shape[3]

    each_strip(net, image, layers, add, max_pixels)
    return {k: (totals[k], counts[k]) for k in layers}


Strip = dict[str, tuple[int, Tensor]]
"""Per layer: the first feature row a strip owns, and its rows of features."""


def each_strip(
    net: nn.Module,
    image: Tensor,
    layers: frozenset[str],
    visit: Callable[[Strip], None],
    max_pixels: int = STRIP_PIXELS,
) -> None:
    """Call visit(strip) with the features of a (1, 3, H, W) image on `layers`, strip by strip: together
    the strips give the whole image's features exactly (each runs with enough context rows). A small
    image, or a network without `strip_geometry`, is one strip. A callback rather than an iterator, so
    that no strip's features are still held while the next is computed."""
    height, width = image.shape[-2:]
    geometry = getattr(net, "strip_geometry", None)
    if geometry is None or height * width <= max_pixels:
        visit({k: (0, f) for k, f in net(image, layers).items()})
        return
    strides, halo = geometry(layers)
    for top, bottom in _strips(height, max(1, max_pixels // width), halo, max(strides.values())):
        lo, hi = max(0, top - halo), min(height, bottom + halo)
        kept = {}
        for layer, f in net(image[..., lo:hi, :], layers).items():
            s = strides[layer]
            start = (top - lo) // s
            kept[layer] = (top // s, f[..., start : start + -(-bottom // s) - top // s, :])
        visit(kept)
        del kept


def _strips(height: int, rows: int, halo: int, align: int) -> Iterator[tuple[int, int]]:
    """(top, bottom) input rows of each strip: tops on multiples of `align`, each strip with its two
    halos about `rows` tall (at least one aligned step of its own)."""
    step = max(align, (rows - 2 * halo) // align * align)
    for top in range(0, height, step):
        yield top, min(height, top + step)
