"""Peak-memory estimate of a transfer, so that a size that cannot fit is refused before allocating."""

from __future__ import annotations

from collections.abc import Iterable

from reverie.nets.weights import BLOCK_CHANNELS, VGG_BLOCKS, conv_names

_WEIGHT_BYTES = {"vgg16": 59_000_000, "vgg19": 81_000_000}  # conv weights only, float32

# Autograd keeps about one activation per conv layer (the ReLU output, shared with the next conv's
# input) plus pooling indices; backward adds two live gradients of the largest layer. The factor was
# fitted to measured peak RSS of 512- and 1024-px runs (see tests/core/test_memory.py for the bound).
_ACTIVATION_FACTOR = 1.6


def activation_elements(network: str, height: int, width: int, deepest: str) -> int:
    """Elements of all conv outputs up to and including `deepest` (e.g. conv5_1)."""
    total, h, w = 0, height, width
    for block, (count, channels) in enumerate(zip(VGG_BLOCKS[network], BLOCK_CHANNELS, strict=True), start=1):
        if block > 1:
            h, w = -(-h // 2), -(-w // 2)
        for index in range(1, count + 1):
            total += channels * h * w
            if f"conv{block}_{index}" == deepest:
                return total
    return total


def deepest_layer(network: str, layers: Iterable[str]) -> str:
    return max(layers, key=conv_names(network).index)


def estimate_bytes(
    network: str,
    height: int,
    width: int,
    layers: Iterable[str],
    *,
    history: int = 8,
    activation_bytes: int = 4,
) -> int:
    """Estimated peak bytes of optimising a height x width image (network, targets, optimiser state)."""
    acts = activation_elements(network, height, width, deepest_layer(network, layers))
    image = 3 * height * width * 4
    # L-BFGS keeps 2 vectors per history step; x, its gradient, direction and the previous gradient.
    optimiser = (2 * history + 6) * image
    return int(_ACTIVATION_FACTOR * acts * activation_bytes + optimiser + 2 * _WEIGHT_BYTES[network])


def largest_fitting_side(
    network: str, aspect: float, layers: Iterable[str], budget: int, history: int
) -> int:
    """The largest working long side (a multiple of 64) that fits in `budget` bytes; aspect = w / h."""
    layers = list(layers)
    side = 64
    while side < 65536:
        nxt = side + 64
        h, w = (nxt, max(1, round(nxt * aspect))) if aspect < 1 else (max(1, round(nxt / aspect)), nxt)
        if estimate_bytes(network, h, w, layers, history=history) > budget:
            break
        side = nxt
    return side
