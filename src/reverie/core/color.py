"""Colour control (Gatys, Bethge, Hertzmann, Shechtman 2016, "Preserving Color in Neural Artistic Style
Transfer"): luminance-only transfer and colour-statistics matching.

Images are (1, 3, H, W) RGB tensors in 0-255 and stay on their device and dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

# NTSC YIQ: Y is luminance, I and Q carry the chroma that luminance-only transfer keeps from the plate.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    m = matrix.to(image.device, image.dtype)
    return torch.einsum("ij,njhw->nihw", m, image)


def rgb_to_yiq(image: Tensor) -> Tensor:
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    return _apply(torch.linalg.inv(_RGB_TO_YIQ.double()).float(), image)


def luminance_image(image: Tensor) -> Tensor:
    """The luminance channel repeated as RGB, so that the network sees a grey image."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Grey style image whose luminance has the content's mean and spread (their eq. 2)."""
    ys, yc = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    matched = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-3)) + yc.mean()
    return matched.expand(-1, 3, -1, -1).contiguous()


def keep_chroma(stylised: Tensor, content: Tensor) -> Tensor:
    """Stylised luminance with the content's chroma (I, Q), clamped to 0-255. Same sizes required."""
    yiq = torch.cat([rgb_to_yiq(stylised)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 255)


def match_color(style: Tensor, content: Tensor) -> Tensor:
    """Recolour `style` so its colour mean and covariance equal the content's (their section 2.1).

    Uses the symmetric matrix square roots (the "image analogies" variant) rather than Cholesky: it
    keeps hues closest to the painting's while matching the plate's statistics.
    """
    s, c = _pixels(style), _pixels(content)
    mu_s, mu_c = s.mean(0), c.mean(0)
    transform = _sqrtm(_cov(c, mu_c)) @ torch.linalg.inv(_sqrtm(_cov(s, mu_s)))
    out = (s - mu_s) @ transform.T + mu_c
    h, w = style.shape[-2:]
    return out.T.reshape(1, 3, h, w).clamp(0, 255).to(style.dtype)


def _pixels(image: Tensor) -> Tensor:
    return image[0].reshape(3, -1).T.double()


def _cov(x: Tensor, mean: Tensor) -> Tensor:
    d = x - mean
    # A small ridge keeps a flat (e.g. grey) image invertible.
    return d.T @ d / max(len(x) - 1, 1) + 1e-3 * torch.eye(3, dtype=x.dtype, device=x.device)


def _sqrtm(matrix: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(matrix)
    return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
