"""VGG feature extractor for style transfer (Simonyan & Zisserman 2014), built from a weight provider.

The optimised image is always RGB in 0-255; the network applies its own weights' preprocessing, so the
image, its bounds and the losses mean the same whichever weights are used. With the Oxford (Caffe)
weights the gradients are exactly those of the film's Caffe implementation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from reverie.nets import check_requested
from reverie.nets.weights import VGGWeights

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """RGB 0-255 image -> the input the weights were trained on (an affine map per channel)."""

    scale: Tensor  # buffers, registered in __init__
    shift: Tensor

    def __init__(self, kind: str) -> None:
        super().__init__()
        scale: tuple[float, ...]
        shift: tuple[float, ...]
        if kind == "caffe":
            # Caffe VGG: BGR, 0-255, mean-subtracted, no scaling.
            scale, shift, order = (1.0, 1.0, 1.0), CAFFE_MEAN_BGR, [2, 1, 0]
        elif kind == "torchvision":
            scale = tuple(1 / (255 * s) for s in IMAGENET_STD)
            shift, order = tuple(255 * m for m in IMAGENET_MEAN), [0, 1, 2]
        else:
            raise ValueError(f"unknown preprocessing {kind!r}")
        self.order = order
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb255: Tensor) -> Tensor:
        x = (rgb255[:, self.order] - self.shift) * self.scale
        # Indexing the channels returns plain NCHW. With channels_last weights oneDNN then reorders the
        # first layer's input (bf16 evaluations 1.07x slower at 512 px); with NCHW weights as well, the
        # whole network ran in NCHW, 1.4x slower in fp32.
        return x.contiguous(memory_format=torch.channels_last)


class VGGFeatures(nn.Module):
    """VGG convolutions; returns post-ReLU activations of the requested layers.

    Layers are named conv{block}_{index} as in Caffe, where ReLU runs in place so that the blob called
    conv4_2 holds the rectified activation: that is what Gatys et al. and the film used.
    """

    def __init__(self, weights: VGGWeights, pooling: str = "max") -> None:
        super().__init__()
        self.arch = weights.arch
        self.pooling = pooling
        self.preprocess = Preprocess(weights.preprocessing)
        self.names = list(weights.convs)
        self.convs = nn.ModuleList()
        for name in self.names:
            w, b = weights.convs[name]
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            assert conv.bias is not None  # Conv2d has a bias by default
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            self.convs.append(conv)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor, layers: set[str] | frozenset[str]) -> dict[str, Tensor]:
        """image: (N, 3, H, W) RGB 0-255. Runs only up to the deepest requested layer."""
        check_requested(self.arch, self.names, layers)
        x = self.preprocess(image)
        out: dict[str, Tensor] = {}
        block = "1"
        for name, conv in zip(self.names, self.convs, strict=True):
            this_block = name[4 : name.index("_")]
            if this_block != block:
                x = self._pool(x)
                block = this_block
            x = F.relu(conv(x))
            if name in layers:
                out[name] = x
                if len(out) == len(layers):
                    break
        return out

    def strip_geometry(self, layers: set[str] | frozenset[str]) -> tuple[dict[str, int], int]:
        """How to evaluate an image in horizontal strips with the same features as whole: each layer's
        stride (input rows per feature row), and the rows of context a strip needs on each side, a
        multiple of the largest stride so that strips starting there see the same pooling windows.

        The context covers the deepest layer's receptive radius (each 3x3 conv widens it by one of its
        rows, each pooling by one), so zero padding at a strip's cut never reaches the rows it keeps.
        """
        check_requested(self.arch, self.names, layers)
        deepest = max(self.names.index(name) for name in layers)
        strides, stride, radius, block = {}, 1, 0, "1"
        for name in self.names[: deepest + 1]:
            this_block = name[4 : name.index("_")]
            if this_block != block:
                radius, stride, block = radius + stride, stride * 2, this_block
            radius += stride
            strides[name] = stride
        halo = -(-radius // stride) * stride
        return {name: strides[name] for name in layers}, halo

    def _pool(self, x: Tensor) -> Tensor:
        if self.pooling == "avg":
            return F.avg_pool2d(x, 2, ceil_mode=True)
        return F.max_pool2d(x, 2, ceil_mode=True)
