"""The Gatys optimisation: tensors in, a `TransferResult` out. Knows no files, devices or printing.

Images are (1, 3, H, W) RGB float tensors in 0-255 on the network's device. Progress is reported
through one callback that receives an `IterationEvent` per iteration; `should_stop` is polled after
each iteration so a UI or a signal handler can end a render early and still get the current image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, OptimizeResult, minimize
from torch import Tensor, nn
from torch.nn import functional as F

from reverie.core.losses import (
    content_loss,
    gram,
    gram_loss,
    guided_gram,
    guided_style_loss,
    rescale_gram,
    style_loss,
    temporal_loss,
    tv_loss,
)
from reverie.core.strips import STRIP_PIXELS, Grams, Strip, each_strip, style_grams
from reverie.look import Look

REFERENCE_LONG_SIDE = 512
"""u keeps the film's meaning at this working size; other sizes rescale the content term to match."""


@dataclass(frozen=True)
class Losses:
    """Weighted loss terms: total = content + style + tv + temporal, style already multiplied by 10**u."""

    content: float
    style: float
    tv: float
    temporal: float = 0.0

    @property
    def total(self) -> float:
        return self.content + self.style + self.tv + self.temporal


@dataclass(frozen=True)
class IterationEvent:
    iteration: int
    """Iterations finished so far (1-based)."""
    total: int
    losses: Losses
    """Losses of the iteration's last evaluation: for L-BFGS, at the point its line search accepted (the
    image the iteration ended with); for Adam, at the image the iteration started from (its one
    evaluation, before the step)."""
    image: Tensor
    """The current image (a live view: clone it to keep it)."""


@dataclass(frozen=True)
class TransferResult:
    image: Tensor
    """(1, 3, H, W) RGB 0-255, float32, detached."""
    losses: Losses
    """Losses of the returned image."""
    iterations: int
    stopped: bool
    """True when should_stop ended the run before all iterations."""


Callback = Callable[[IterationEvent], None]

_MIN_U_MAP = 0.01  # black in a u-map: the content term weighs 100x there, the style term nothing

FIRST_STEP = 64.0
"""Grey levels (of 255) the steepest pixel moves in L-BFGS-B's first step, which has no curvature to size
it by and which SciPy's line search can only shorten (the pixels are boxed): 64 reaches the same losses
at 15, 50 and 150 iterations as the unscaled slam did (Tübingen, 256 px, u=4), 1 or 16 lag early."""

TEMPORAL_SCALE = 1e4
"""Brings the temporal term (a mean of squared pixel differences) to the style term's scale, so that a
temporal weight of about 1 holds a shot steady (calibrated on test clips; see the README's figures)."""


@dataclass(frozen=True)
class Guidance:
    """Spatial control (Gatys et al. 2017), as (1, 1, H, W) maps in 0..1 at the content's size.

    masks: per style, where it goes (None: everywhere). u_map: local degree of unrealism; a grey value g
    weighs the style term by g and the content term by 1/g there (floored at 0.01), so the local
    style:content ratio is 10**u * g**2: g=0.3 is about one step of u less, black keeps the plate.
    Weighting content too matters: the deep layers' receptive fields otherwise carry the neighbouring
    regions' paint into a region the style term leaves alone.
    """

    masks: tuple[Tensor | None, ...] = ()
    u_map: Tensor | None = None

    def style_guides(self, n_styles: int) -> list[Tensor | None] | None:
        masks = list(self.masks) or [None] * n_styles
        if len(masks) != n_styles:
            raise ValueError(f"{len(masks)} masks for {n_styles} styles")
        if self.u_map is None and all(m is None for m in masks):
            return None
        u = self.u_map
        return [u if m is None else m if u is None else m * u for m in masks]

    def crop(self, top: int, left: int, bottom: int, right: int) -> Guidance:
        """The same guidance over a tile of the frame."""
        masks = tuple(None if m is None else m[..., top:bottom, left:right] for m in self.masks)
        u_map = None if self.u_map is None else self.u_map[..., top:bottom, left:right]
        return Guidance(masks, u_map)

    def content_weights(self) -> Tensor | None:
        return None if self.u_map is None else 1.0 / self.u_map.clamp_min(_MIN_U_MAP)


@dataclass(frozen=True)
class Temporal:
    """Temporal coherence for a frame of a shot (Ruder et al. 2016).

    target: (1, 3, H, W) 0-255, the previous stylised frame warped into this one by the optical flow,
    in the same colour space as the content the network sees. mask: (1, 1, H, W) 0..1, 0 where the flow
    is not trusted. weight: the look's temporal weight. The term is
    weight * TEMPORAL_SCALE * 10**u * mean(mask * diff**2) (see `temporal_loss`): scaled with the style
    term, which dominates a frame's loss, so one temporal weight holds a shot steady at every u. Both
    terms' per-pixel gradients fall with the pixel count alike, so it holds at every size too.
    """

    target: Tensor
    mask: Tensor
    weight: float

    def crop(self, top: int, left: int, bottom: int, right: int) -> Temporal:
        """The same constraint over a tile of the frame."""
        box = (..., slice(top, bottom), slice(left, right))
        return Temporal(self.target[box], self.mask[box], self.weight)


def content_scale(height: int, width: int) -> float:
    """Weight of the content term that keeps a look the same at every working size.

    Under the film's normalisation the content term grows with the pixel count while the style term
    does not, so the same u looked more photographic at a larger size. Scaling the content term by the
    pixel count of the 512-px version of the frame over this one's makes u mean exactly the film's u at
    512 px, and the same balance of paint and photo at any other size.
    """
    return (REFERENCE_LONG_SIDE / max(height, width)) ** 2


class Objective:
    """The weighted Gatys loss of an image; targets are computed once, at construction."""

    def __init__(
        self,
        net: nn.Module,
        content: Tensor,
        styles: Sequence[Tensor],
        look: Look,
        style_weights: Sequence[float] | None = None,
        autocast_dtype: torch.dtype | None = None,
        guidance: Guidance | None = None,
        frame_size: tuple[int, int] | None = None,
        temporal: Temporal | None = None,
        grams: Sequence[Grams] | None = None,
    ) -> None:
        """grams: each style's Gram matrices on the style layers (`core.strips.style_grams`), when the
        caller has them already; computed here otherwise."""
        self.net, self.look, self.autocast_dtype = net, look, autocast_dtype
        self.temporal = temporal
        layers = look.layers()
        self.content_layers = layers.content
        self.style_layers = dict(zip(layers.style, layers.style_weights, strict=True))
        self.layers = frozenset(self.content_layers) | frozenset(self.style_layers)
        # A tile is weighed as part of its whole frame (height, width), so tiling keeps the look.
        h, w = frame_size or content.shape[-2:]
        self.content_weight = content_scale(h, w)
        self.style_weight = 10.0**look.u
        with torch.no_grad():
            self.content_targets, self.shapes = self._content_targets(content)
            guidance = guidance or Guidance()
            weights = guidance.content_weights()
            self.content_maps = {
                k: None if weights is None else _resize_map(weights, self.content_targets[k].shape[2:])
                for k in self.content_layers
            }
            grams = grams or [style_grams(net, style, frozenset(self.style_layers)) for style in styles]
            guides = guidance.style_guides(len(grams))
            self._build_style_targets(grams, style_weights, guides, self.shapes)

    def _content_targets(self, content: Tensor) -> tuple[dict[str, Tensor], dict[str, torch.Size]]:
        """The content layers' features of the content, and every layer's feature size: in strips when
        the content is large (whole frames are measured so, see `measure`), else in one pass."""
        targets: dict[str, list[Tensor]] = {k: [] for k in self.content_layers}
        heights, widths = dict.fromkeys(self.layers, 0), dict.fromkeys(self.layers, 0)

        def keep(strip: Strip) -> None:
            for layer, (_, f) in strip.items():
                heights[layer], widths[layer] = heights[layer] + f.shape[2], f.shape[3]
                if layer in targets:
                    targets[layer].append(f)

        self._each_strip(content, keep)
        shapes = {k: torch.Size((heights[k], widths[k])) for k in self.layers}
        return {k: torch.cat(v, dim=2).detach() for k, v in targets.items()}, shapes

    def _build_style_targets(
        self,
        grams: Sequence[Grams],
        style_weights: Sequence[float] | None,
        guides: Sequence[Tensor | None] | None,
        shapes: dict,
    ) -> None:
        """Blended Gram targets, or, with spatial guides, one set of guided targets per style."""
        weights = list(style_weights) if style_weights else [1.0] * len(grams)
        self.style_weights = [w / sum(weights) for w in weights]
        self.guided = None
        if guides is None or all(g is None for g in guides):
            self.style_targets = self._blend(grams, shapes)
        else:
            self.guided = [self._guided_targets(g, sg, shapes) for g, sg in zip(guides, grams, strict=True)]

    def _features(self, image: Tensor) -> dict[str, Tensor]:
        # channels_last runs the convolutions faster on CPU and GPU; the optimised image itself stays
        # contiguous because L-BFGS flattens its gradient with view().
        image = image.contiguous(memory_format=torch.channels_last)
        dtype = self.autocast_dtype
        with torch.autocast(image.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return self.net(image, self.layers)

    def _each_strip(
        self, image: Tensor, visit: Callable[[Strip], None], max_pixels: int = STRIP_PIXELS
    ) -> None:
        """`_features` strip by strip (see `core.strips.each_strip`), for images without gradients."""
        image = image.contiguous(memory_format=torch.channels_last)
        dtype = self.autocast_dtype
        with torch.autocast(image.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            each_strip(self.net, image, self.layers, visit, max_pixels)

    @torch.no_grad()
    def measure(self, image: Tensor, max_pixels: int = STRIP_PIXELS) -> Losses:
        """The loss terms of an image as calling the objective gives them, but computed strip by strip:
        a frame too large to hold its activations at once (a tiled refine's) is measured whole in the
        memory of a strip. Content losses and Gram matrices are sums over positions, so they add up
        strip by strip; the Gram differences are taken once, at the end."""
        contents: list[Tensor] = []
        grams: dict[tuple[int, str], Tensor] = {}

        def add(strip: Strip) -> None:
            contents.append(self._content_rows(strip))
            for key, g in self._gram_rows(strip).items():
                grams[key] = grams[key] + g if key in grams else g

        self._each_strip(image, add, max_pixels)
        content, style = _sum(contents), self._style_from_grams(grams)
        tv = tv_loss(image) if self.look.tv_weight else image.new_zeros(())
        terms = [
            content * self.content_weight,
            style * self.style_weight,
            tv * (self.look.tv_weight * self.content_weight),
            self._temporal_term(image),
        ]
        return Losses(*(float(t) for t in terms))

    def _content_rows(self, strip: Strip) -> Tensor:
        total = []
        for k in self.content_layers:
            row, f = strip[k]
            rows = slice(row, row + f.shape[2])
            weights = self.content_maps[k]
            target = self.content_targets[k][..., rows, :]
            total.append(content_loss(f, target, None if weights is None else weights[..., rows, :]))
        return _sum(total)

    def _gram_rows(self, strip: Strip) -> dict[tuple[int, str], Tensor]:
        """Per (style, layer) the strip's share of the image's Gram matrix (one style when unguided)."""
        out = {}
        for layer in self.style_layers:
            row, f = strip[layer]
            if self.guided is None:
                out[0, layer] = gram(f)
                continue
            width = f.shape[3]
            for i, targets in enumerate(self.guided):
                weights = targets[layer][0][row * width : (row + f.shape[2]) * width]
                out[i, layer] = guided_gram(f, weights)
        return out

    def _style_from_grams(self, grams: dict[tuple[int, str], Tensor]) -> Tensor:
        total = []
        for (i, layer), g in grams.items():
            n, weight = g.shape[0], self.style_layers[layer]
            if self.guided is None:
                total.append(weight * gram_loss(g, self.style_targets[layer], n, self.shapes[layer].numel()))
            else:
                _, target, area = self.guided[i][layer]
                total.append(self.style_weights[i] * weight * gram_loss(g, target, n, area))
        return _sum(total)

    def _blend(self, style_grams: Sequence[Grams], shapes: dict) -> dict[str, Tensor]:
        """Weighted mean of the styles' Gram targets, each expressed for the frame's size."""
        targets: dict[str, Tensor] = {}
        for grams, weight in zip(style_grams, self.style_weights, strict=True):
            for layer, (g, positions) in grams.items():
                g = rescale_gram(g, positions, shapes[layer].numel()) * weight
                targets[layer] = targets[layer] + g if layer in targets else g
        return targets

    def _guided_targets(
        self, guide: Tensor | None, grams: Grams, shapes: dict
    ) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """Per layer: the guide at that layer's size (H*W, 1), the style's target Gram for the guided
        area, and that area. A guide is resized to each layer by area averaging."""
        out = {}
        for layer, (g, positions) in grams.items():
            h, w = shapes[layer]
            if guide is None:
                weights = torch.ones(h * w, 1, device=g.device)
            else:
                weights = _resize_map(guide, (h, w)).reshape(h * w, 1)
            # A nearly empty region would divide by ~0; a style that covers nothing simply does nothing.
            area = weights.sum().clamp_min(1.0)
            out[layer] = (weights, rescale_gram(g, positions, float(area)), area)
        return out

    def _style_term(self, feats: dict[str, Tensor]) -> Tensor:
        if self.guided is None:
            return _sum(w * style_loss(feats[k], self.style_targets[k]) for k, w in self.style_layers.items())
        total = feats[self.content_layers[0]].new_zeros((), dtype=torch.float32)
        for targets, style_weight in zip(self.guided, self.style_weights, strict=True):
            for layer, layer_weight in self.style_layers.items():
                weights, target, area = targets[layer]
                total = total + style_weight * layer_weight * guided_style_loss(
                    feats[layer], weights, target, area
                )
        return total

    def __call__(self, image: Tensor) -> Tensor:
        """Loss terms (content, style, tv, temporal) as a float32 tensor of shape (4,); total = their sum."""
        feats = self._features(image)
        c = _sum(
            content_loss(feats[k], self.content_targets[k], self.content_maps[k]) for k in self.content_layers
        )
        s = self._style_term(feats)
        tv = tv_loss(image) if self.look.tv_weight else image.new_zeros(())
        t = self._temporal_term(image)
        return torch.stack(
            [
                c * self.content_weight,
                s * self.style_weight,
                tv * (self.look.tv_weight * self.content_weight),
                t,
            ]
        )

    def _temporal_term(self, image: Tensor) -> Tensor:
        temporal = self.temporal
        if temporal is None or temporal.weight == 0:
            return image.new_zeros((), dtype=torch.float32)
        scale = temporal.weight * TEMPORAL_SCALE * self.style_weight
        return temporal_loss(image, temporal.target, temporal.mask) * scale


def _sum(terms: Iterable[Tensor]) -> Tensor:
    """sum() of loss terms, checked to be a tensor: with no terms at all sum() would give the int 0."""
    total = sum(terms)
    if not isinstance(total, Tensor):
        raise ValueError("no loss terms to sum: the look has no layers for this term")
    return total


def _resize_map(guide: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """A (1, 1, H, W) map at a layer's size, by area averaging (as the pooling layers see it)."""
    return F.interpolate(guide.float(), size=tuple(size), mode="area")


def initial_image(
    mode: str,
    content: Tensor,
    style: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The image optimisation starts from: content, mixed (0.95 content + 0.05 style), or noise.

    `style` must already have the content's size for mixed. Coloured noise is Gaussian around the
    content's mean colour, drawn from `generator` so a seed gives the same start on every run.
    """
    if mode == "content":
        return content.clone()
    if mode == "mixed":
        if style is None or style.shape != content.shape:
            raise ValueError("mixed init needs a style image of the content's size")
        return 0.95 * content + 0.05 * style
    if mode == "noise":
        noise = torch.randn(content.shape, generator=generator, dtype=content.dtype, device="cpu")
        mean = content.mean(dim=(2, 3), keepdim=True)
        return (mean + 64.0 * noise.to(content.device)).clamp(0, 255)
    raise ValueError(f"unknown init mode {mode!r}")


class _Stop(StopIteration):
    """Raised by the per-iteration report to end the optimisation early (SciPy stops on StopIteration)."""


# report(iteration, losses, image) is called after each iteration; it raises _Stop to end the run.
Report = Callable[[int, Losses, Tensor], None]


def _run_lbfgsb(objective: Objective, x0: Tensor, look: Look, report: Report) -> Tensor:
    """L-BFGS-B with pixel bounds 0-255 and a Wolfe line search: the film's optimiser (via SciPy).

    PyTorch's L-BFGS has neither bounds nor, per single iteration, a usable line search; without one it
    overshot badly at high u on small frames (loss up 50x for tens of iterations), which a director
    would see as a ruined render. SciPy's needs about 1.1 evaluations per iteration here.
    """
    shape, device = x0.shape, x0.device
    last: dict[str, Tensor] = {}
    scale = 0.0  # set at the first evaluation, see below

    def value_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal scale
        x = torch.from_numpy(flat).to(device=device, dtype=torch.float32).view(shape).requires_grad_(True)
        terms = objective(x)
        (grad,) = torch.autograd.grad(terms.sum(), x)
        last["terms"] = terms.detach()
        # With pixel bounds, L-BFGS-B's first step is the whole Cauchy step x - g: unscaled (gradients of
        # ~1e8 per pixel) it slams every pixel with any gradient, however faint, to 0 or 255, so a
        # u-map's black region was ruined at the first iteration (and by how much hung on rounding, so
        # on the CPU model). Scaled, the steepest pixel moves FIRST_STEP grey levels and a pixel with a
        # faint gradient barely moves; L-BFGS is blind to the scale from its second step on.
        scale = scale or FIRST_STEP / max(float(grad.abs().max()), 1e-30)
        return float(last["terms"].sum()) * scale, (grad.double() * scale).cpu().numpy().ravel()

    iteration = 0

    def on_iteration(intermediate_result: OptimizeResult) -> None:  # SciPy matches this name
        nonlocal iteration
        iteration += 1
        image = torch.from_numpy(intermediate_result.x).to(device=device, dtype=torch.float32).view(shape)
        report(iteration, Losses(*last["terms"].tolist()), image)

    result = minimize(
        value_and_grad,
        x0.detach().double().cpu().numpy().ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(0.0, 255.0),
        callback=on_iteration,
        options={"maxiter": look.iterations, "maxcor": look.lbfgs_history, "ftol": 0.0, "gtol": 0.0},
    )
    return torch.from_numpy(result.x).to(device=device, dtype=torch.float32).view(shape)


def _run_lbfgs_device(objective: Objective, x0: Tensor, look: Look, report: Report) -> Tensor:
    """L-BFGS kept on the device (for GPUs): the same method as `_run_lbfgsb`, without copying the image
    to the host at every evaluation, which at 1080p would cost more than the GPU's forward and backward.

    Two-loop recursion with the usual s.y / y.y initial scaling (Nocedal & Wright, alg. 7.4), a strong
    Wolfe line search (PyTorch's, as its L-BFGS uses) along the step projected onto the pixel bounds
    0-255. The loss is divided by its starting value: at high u it is ~1e15 with gradients to match, and
    the line search's cubic interpolation squares products of those, which overflows float32 (SciPy
    works in float64). The only host syncs are the line search's loss comparisons.
    """
    shape = x0.shape
    x = x0.detach().clone().float().contiguous().view(-1)
    scaled = _Scaled(objective, shape)
    f, g, terms = scaled(x)
    history: list[tuple[Tensor, Tensor, Tensor]] = []  # (s, y, 1 / y.s)
    for iteration in range(1, look.iterations + 1):
        d = -_two_loop(g, history)
        # No history yet: a first step of ~1 grey level per pixel; the Wolfe search may lengthen it.
        t = 1.0 if history else 1.0 / float(d.abs().max().clamp_min(1e-12))
        x_new, f, g_new, terms = _line_search(scaled, x, f, g, d, t)
        s, y = x_new - x, g_new - g
        ys = (y * s).sum()
        if float(ys) > 1e-10 * float((y * y).sum()):  # keep pairs that keep the Hessian model positive
            history = [*history, (s, y, 1.0 / ys)][-look.lbfgs_history :]
        x, g = x_new, g_new
        try:
            report(iteration, Losses(*terms.tolist()), x.view(shape))
        except _Stop:
            break
    return x.view(shape)


class _Scaled:
    """The objective at a flat image, as (loss / starting loss, its gradient, the unscaled terms)."""

    def __init__(self, objective: Objective, shape: torch.Size) -> None:
        self.objective, self.shape, self.scale = objective, shape, 0.0

    def __call__(self, flat: Tensor) -> tuple[float, Tensor, Tensor]:
        x = flat.detach().view(self.shape).requires_grad_(True)
        terms = self.objective(x)
        total = terms.sum()
        value = float(total.detach())
        self.scale = self.scale or 1.0 / max(value, 1e-30)
        (grad,) = torch.autograd.grad(total * self.scale, x)
        return value * self.scale, grad.reshape(-1), terms.detach()


def _two_loop(g: Tensor, history: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """H g for the L-BFGS inverse-Hessian approximation of the history (oldest first)."""
    q, alphas = g.clone(), []
    for s, y, rho in reversed(history):
        alpha = rho * (s * q).sum()
        q.sub_(alpha * y)
        alphas.append(alpha)
    if history:
        s, y, _ = history[-1]
        q.mul_((s * y).sum() / (y * y).sum())
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * (y * q).sum()
        q.add_((alpha - beta) * s)
    return q


def _line_search(
    scaled: _Scaled, x: Tensor, f: float, g: Tensor, d: Tensor, t: float
) -> tuple[Tensor, float, Tensor, Tensor]:
    """Strong Wolfe line search along d, each trial point projected onto the pixel bounds."""
    from torch.optim.lbfgs import _strong_wolfe

    terms_at: dict[float, Tensor] = {}

    def along(_x: Tensor, step: float, direction: Tensor) -> tuple[float, Tensor]:
        value, grad, terms_at[step] = scaled((x + step * direction).clamp(0, 255))
        return value, grad

    f_new, g_new, t, _ = _strong_wolfe(along, x, t, d, f, g, float((g * d).sum()), max_ls=20)
    return (x + t * d).clamp(0, 255), f_new, g_new, terms_at[t]


def _run_adam(objective: Objective, x0: Tensor, look: Look, report: Report) -> Tensor:
    x = x0.detach().clone().float().contiguous().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=look.adam_lr)
    for iteration in range(1, look.iterations + 1):
        opt.zero_grad(set_to_none=False)
        terms = objective(x)
        terms.sum().backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 255)  # the same pixel bounds as L-BFGS-B
        try:
            report(iteration, Losses(*terms.detach().tolist()), x.detach())
        except _Stop:
            break
    return x.detach()


def transfer(
    content: Tensor,
    styles: Sequence[Tensor],
    look: Look,
    net: nn.Module,
    *,
    init: Tensor | None = None,
    style_weights: Sequence[float] | None = None,
    autocast_dtype: torch.dtype | None = None,
    guidance: Guidance | None = None,
    frame_size: tuple[int, int] | None = None,
    temporal: Temporal | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    fp32_finish: int = 0,
    release_memory: Callable[[], None] | None = None,
    grams: Sequence[Grams] | None = None,
) -> TransferResult:
    """Optimise an image whose content features match `content` and whose Gram statistics match the
    (weighted) `styles`, for `look.iterations` iterations.

    content: (1, 3, H, W) RGB 0-255. styles: (1, 3, Hs, Ws) each, any size. init: (1, 3, H, W) start
    image; by default the one `look.init` names (content, mixed or noise; a path is the caller's job).
    guidance: masks and a u-map (see `Guidance`). frame_size: (height, width) of the whole frame when
    `content` is a tile of it. temporal: the warped previous frame of a shot to stay close to (see
    `Temporal`). Pixels stay within 0-255, as with the film's L-BFGS-B bounds. fp32_finish: with an
    autocast dtype, run the last this many iterations in float32 (see `precision_phases`).
    release_memory: called as each phase starts, once its targets are built, when the buffers freed
    so far (the painting's features, the last phase's activations) will not be needed again.
    grams: the styles' Gram matrices, when the caller keeps them (the engine computes them once per
    painting and size); computed from `styles` otherwise.
    """
    _check_inputs(content, styles, init)
    if temporal is not None and temporal.target.shape != content.shape:
        raise ValueError(f"temporal target {tuple(temporal.target.shape)} must match {tuple(content.shape)}")
    if init is None:
        generator = torch.Generator().manual_seed(look.seed)
        mix = _resize_like(styles[0], content) if look.init == "mixed" else None
        init = initial_image(look.init, content, mix, generator)
    done, stopped = 0, False

    def report(step: int, losses: Losses, image: Tensor) -> None:
        nonlocal done, stopped
        iteration = offset + step
        done = iteration
        if not math.isfinite(losses.total):
            raise FloatingPointError(f"loss became {losses.total} at iteration {iteration}")
        if callback is not None:
            callback(IterationEvent(iteration, look.iterations, losses, image))
        if should_stop is not None and should_stop() and iteration < look.iterations:
            stopped = True
            raise _Stop

    run = _runner(look.optimizer, content.device)
    image, offset = init.clamp(0, 255), 0
    if grams is None:  # once for every phase: the painting's Grams do not depend on the precision
        layers = frozenset(look.layers().style)
        grams = [style_grams(net, style, layers) for style in styles]
    for iterations, dtype in precision_phases(look.iterations, autocast_dtype, fp32_finish):
        # A new phase starts the optimiser afresh (L-BFGS keeps only the last few steps in any case).
        objective = Objective(
            net, content, styles, look, style_weights, dtype, guidance, frame_size, temporal, grams
        )
        if release_memory is not None:
            release_memory()
        image = run(objective, image, look.replace(iterations=iterations), report)
        offset += iterations
        if stopped:
            break
    with torch.no_grad():
        final = Losses(*objective(image).tolist())
    return TransferResult(image=image, losses=final, iterations=done, stopped=stopped)


def precision_phases(
    iterations: int, dtype: torch.dtype | None, fp32_finish: int
) -> list[tuple[int, torch.dtype | None]]:
    """(iterations, autocast dtype) of each phase of an optimisation.

    A bf16 network's gradients are noisy at the 0.3% level, which stalls L-BFGS a few per cent above
    the loss float32 reaches (1080p, VGG16, u=4, 512 iterations: 1.449e10 against 1.407e10). Finishing
    in float32 reaches it: 400 bf16 + 152 float32 iterations on an H100 took 11.3 s, float32 alone 13.6
    s (benchmarks/gpu_check.py).
    """
    tail = min(max(fp32_finish, 0), iterations) if dtype is not None else 0
    phases = [(iterations - tail, dtype), (tail, None)]
    return [(n, d) for n, d in phases if n > 0] or [(0, dtype)]


def _runner(optimizer: str, device: torch.device) -> Callable[[Objective, Tensor, Look, Report], Tensor]:
    """Adam, or L-BFGS: SciPy's L-BFGS-B on a CPU (the film's), the device-resident one elsewhere."""
    if optimizer == "adam":
        return _run_adam
    return _run_lbfgsb if device.type == "cpu" else _run_lbfgs_device


def _resize_like(image: Tensor, like: Tensor) -> Tensor:
    return torch.nn.functional.interpolate(
        image, size=like.shape[-2:], mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 255)


def _check_inputs(content: Tensor, styles: Sequence[Tensor], init: Tensor | None) -> None:
    if content.dim() != 4 or content.shape[:2] != (1, 3):
        raise ValueError(f"content must be (1, 3, H, W), got {tuple(content.shape)}")
    if not styles:
        raise ValueError("at least one style image is needed")
    for s in styles:
        if s.dim() != 4 or s.shape[:2] != (1, 3):
            raise ValueError(f"style must be (1, 3, H, W), got {tuple(s.shape)}")
    if init is not None and init.shape != content.shape:
        raise ValueError(f"init {tuple(init.shape)} must match content {tuple(content.shape)}")
