"""Loss terms of Gatys et al. (2016), normalised as in the Caffe implementation the *Come Swim* film used.

With these normalisations the style:content ratio 10**u means what it meant for the film: u=4 is the
classic look at a 512-px working size. All functions follow their inputs' device; they compute in float32
even when the features come out of a bfloat16 network, because Gram differences are small numbers
taken from large ones.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import BackwardCFunction, FunctionCtx


def as_matrix(features: Tensor) -> Tensor:
    """(1, C, H, W) features -> (H*W, C) float32. Free for channels_last tensors (no copy)."""
    return _flatten(features).float()


def _flatten(features: Tensor) -> Tensor:
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"expected features of shape (1, C, H, W), got {tuple(features.shape)}")
    return features.movedim(1, -1).reshape(-1, features.shape[1])


def gram(features: Tensor) -> Tensor:
    """Unnormalised Gram matrix G = F F^T of (1, C, H, W) features: (C, C), float32 (Gatys eq. 3)."""
    f = _flatten(features)
    with torch.autocast(f.device.type, enabled=False):
        if f.dtype == torch.bfloat16 and f.requires_grad:
            return _LowPrecisionGram.apply(f)
        f = f.float()
        return f.T @ f


class _LowPrecisionGram(torch.autograd.Function):
    """F^T F of bfloat16 features (M, C), as float32, with a backward pass in bfloat16.

    Products of two bf16 numbers are exact in fp32, so G is the same as upcasting first. The backward
    dF = F (dG + dG^T) runs as one bf16 product with fp32 accumulation: dF is rounded to bf16 anyway on
    its way into the bf16 network, and autograd's own backward of F^T F would be two fp32 products. The
    forward is a bf16 tensor-core product with fp32 output on CUDA (`mm(..., out_dtype=)`, CUDA-only in
    PyTorch 2.13), an fp32 product elsewhere.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, f: Tensor) -> Tensor:
        ctx.save_for_backward(f)
        if f.is_cuda:
            return torch.mm(f.T, f, out_dtype=torch.float32)
        upcast = f.float()
        return upcast.T @ upcast

    # The ctx autograd passes is the graph node, a BackwardCFunction: FunctionCtx lacks saved_tensors.
    @staticmethod
    def backward(ctx: BackwardCFunction, grad: Tensor) -> Tensor:
        (f,) = ctx.saved_tensors
        return f @ (grad + grad.T).to(f.dtype)


def guided_gram(features: Tensor, weights: Tensor) -> Tensor:
    """Spatially guided Gram F diag(w) F^T (Gatys et al. 2017, "Controlling Perceptual Factors"):
    only the positions a guide weighs count. features (1, C, H, W); weights (H*W, 1) in 0..1."""
    f = as_matrix(features)
    with torch.autocast(f.device.type, enabled=False):
        return (f * weights).T @ f


def content_loss(features: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """1/2 sum((F - P)^2) (Gatys eq. 1); `weights` (1, 1, H, W), if given, weighs each position."""
    squared = (features.float() - target.float()).pow(2)
    return 0.5 * (squared if weights is None else squared * weights).sum()


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """E = 1 / (4 N^2 M^2) sum((G - A)^2) with N channels and M = H*W positions (Gatys eq. 4).

    target_gram must be expressed for the same M as `features` (see `rescale_gram`).
    """
    n, m = features.shape[1], features.shape[2] * features.shape[3]
    return gram_loss(gram(features), target_gram, n, m)


def gram_loss(g: Tensor, target_gram: Tensor, channels: int, positions: float | Tensor) -> Tensor:
    """Gatys' E of a Gram matrix already summed (e.g. strip by strip): (G - A)^2 / (4 N^2 M^2)."""
    return (g - target_gram).pow(2).sum() / (4.0 * channels * channels * positions * positions)


def guided_style_loss(features: Tensor, weights: Tensor, target_gram: Tensor, area: Tensor) -> Tensor:
    """`style_loss` over a guided region: M becomes the region's weighted area (sum of the weights)."""
    return gram_loss(guided_gram(features, weights), target_gram, features.shape[1], area)


def rescale_gram(target_gram: Tensor, positions_from: float, positions_to: float) -> Tensor:
    """Express a Gram matrix computed over `positions_from` positions for `positions_to` positions.

    Departure from the film's code, on purpose: an unnormalised Gram grows with the number of positions,
    so a style image larger than the frame (the film scaled it to 1.2x) gave a target the frame could
    never reach, and the style's size changed its strength. Scaling the target by M_frame / M_style keeps
    Gatys' E unchanged when sizes match and makes style scale a choice of brush size only.
    """
    return target_gram * (positions_to / positions_from)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: sum of squared differences between neighbouring pixels, (1, 3, H, W) image."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).sum() + dy.float().pow(2).sum()


def temporal_loss(image: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Short-term temporal loss of Ruder et al. (2016): the mean over pixels and channels of
    mask * (image - target)**2, where target is the previous stylised frame warped into this one and
    mask (1, 1, H, W) in 0..1 is 0 where the flow is not trusted (disocclusions, motion boundaries).
    image and target are (1, 3, H, W). A mean, so the term does not grow with the frame's size.
    """
    diff = (image.float() - target.float()).pow(2)
    return (diff * mask).sum() / (diff.numel())
