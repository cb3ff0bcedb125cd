"""Peak-memory estimate of a transfer, so that a size that cannot fit is refused before allocating."""

from __future__ import annotations

from collections.abc import Iterable

from reverie.nets.weights import BLOCK_CHANNELS, VGG_BLOCKS, conv_names

_WEIGHT_BYTES = {"vgg16": 59_000_000, "vgg19": 81_000_000}  # conv weights only, float32

# Autograd keeps the conv outputs and ReLU results (and pooling indices); backward adds gradients of the
# largest layers. The factor is fitted to the peak RSS of CPU renders on top of the process's own size:
# VGG16 512x384 +0.81 GiB, 1024x768 +2.93 GiB; VGG19 1024x768 +3.31 GiB (PyTorch 2.13, fp32).
_ACTIVATION_FACTOR = 3.3
_RUNTIME_BYTES = 500 * 2**20  # Python, PyTorch and SciPy themselves


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
    """Estimated peak bytes of optimising a height x width image (network, targets, optimiser state).

    GoogLeNet is far lighter than VGG; it is estimated as VGG16 to conv5_1, a safe upper bound.
    """
    if network not in VGG_BLOCKS:
        network, layers = "vgg16", ("conv5_1",)
    acts = activation_elements(network, height, width, deepest_layer(network, layers))
    # SciPy's L-BFGS-B works in float64: 2 vectors per history step plus about 10 of workspace.
    optimiser = (2 * history + 10) * 3 * height * width * 8
    activations = _ACTIVATION_FACTOR * acts * activation_bytes
    return int(activations + optimiser + _WEIGHT_BYTES[network] + _RUNTIME_BYTES)


def frame_bytes(height: int, width: int, style_side: int) -> int:
    """What a tiled pass keeps for the whole frame beside one tile's optimisation: about eight float32
    RGB copies of the frame (plate, content, start, the blend's sums, the finished tiles) and two of the
    scaled painting (its long side `style_side`; counted as a square). 1.1 GiB at 3840x2160."""
    return 8 * 12 * height * width + 2 * 12 * style_side**2


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
