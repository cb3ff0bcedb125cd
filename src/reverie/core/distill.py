"""Training fast mode's network on a shot's painted keyframes: tensors in, a `TrainReport` out.

Texler et al. (2020): random aligned patches of (plate, painted plate) keyframe pairs, an L1 term and a
perceptual term on a VGG's features, Adam, from scratch. Their adversarial term, there to keep strokes
crisp, is replaced by a Gram (style) term per patch, which does that job without a second network to
train (see `TrainConfig` for what it changed). Added: a temporal term on
consecutive plates of the shot, so that the network paints what moves with the motion and does not
flicker where the keyframes leave it unconstrained:

    temporal = masked mean |net(current) - warp(net(previous), flow)|

with the backward flow (current(x) ~ previous(x + flow(x))) and a consistency mask of where it is
trusted, as the Gatys path's temporal term (Ruder et al. 2016), here on the network instead of a frame.

Knows no files, devices or printing: progress goes to `on_step(step, total, loss)`, and `should_stop()`
is polled after each step (as in `reverie.core.transfer`, a stop returns what was trained so far).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from reverie.core.fastnet import FastNet, config_from_dict
from reverie.errors import ReverieError

Features = Callable[[Tensor], list[Tensor]]
"""(N, 3, H, W) RGB 0..1 -> feature maps of some layers (Reverie's VGG at the look's layers)."""

_EPS = 1e-8

MAX_STEPS = 1_000_000
"""The longest training anyone should ask for (days on a CPU): more is a typo."""


@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained; `to_dict`/`from_dict` keep it beside a saved network.

    Defaults, chosen on a CPU (2 cores, AVX-512 bf16) with `benchmarks/fast_net.py --quality`: the
    sample painting's look (VGG16, u=4) on a pan over a photo at 256x192, keyframes 32 px apart, scored
    on a frame between them by the Gram-style distance to the painting relative to the Gatys frame's:
    - steps 800, batch 4, patch 112: 112-px patches leave the deep VGG layers room (a 48-px patch
      leaves conv5_1 3x3 positions and teaches a generic texture). A step costs 0.3-0.46 s in bf16
      (0.74-1.06 s fp32) with VGG16, about 0.54-0.68 s with the temporal term. 800 steps scored 1.80x
      (quality bar 2x; the plate itself is 12.7x) and fit the 10-minute training budget of a preview
      (Sintel, 512x218: 0.68 s a step); 1500 steps scored 1.68x in 13.5-17 min (`--train-steps 1500`
      for the final frames). Mid-run of 800 steps (no temporal term, no style term) the ratio was
      6.7/4.7/2.8/2.2 at 100/200/400/800 steps: much fewer steps under-fit.
    - lr 4e-4 (Texler et al.), a warm-up over 5% of the steps, then a cosine decay to a tenth (see
      `lr_factor`). 1e-3 collapsed to a flat colour within 400 steps: do not raise it.
    - l1 1, perceptual 1 (a relative error per layer, see `perceptual_loss`, so 1 means the same with
      any feature network), style 4: a Gram term per patch (see `feature_losses`). On frames it has
      not seen, a network trained on pixels and features alone hedges between strokes and paints them
      faint. On the pan, style 1 took the ratio at 800 steps from 2.20 to 1.80 (3 made it 2.57). On
      the Sintel shot (512x218, 4 keyframes, `benchmarks/fast_retrain.py`), style 1 scored 2.84x on
      held-out frames: the network's frames had 2.4x less fine detail than the Gatys frames, and the
      conv1_1-conv3_1 Gram distances were 8-18x the Gatys frames' (conv5_1 1.6x). Style 4 scored 1.96x
      retrained, 1.85x in a full `benchmarks/fast.py` run (content 1.01x, flicker 0.85x under
      Reverie's flow, 0.14x under Farneback): a real shot's keyframes hold more different strokes
      than the pan's, and the hedging costs more there.
    - temporal 1, in the L1 term's units: at 800 steps it cut the warping error on a held-out pair of
      the pan (exact flow) from 0.032 to 0.026 and raised the ratio from 1.80 to 2.00; at 400 steps
      0.018 to 0.010 and 3.85 to 4.56. Lower it for more brushwork, raise it for steadier frames.
      Temporal 10 (with style 4 and `FastNetConfig.antialias`) cut the known-motion clip's flicker
      under the exact flow from 5.1x the temporal Gatys render's to 2.3x, but took Sintel's held-out
      style from 1.96x to 2.69x.
    - shift 0: the `shift_term` (a plate moved by a random offset painted as its painting moved).
      Shift 3 with style 4 took the known-motion clip's flicker (exact flow) from 5.1x to 4.2x and
      Sintel's from 0.86x to 0.68x (Reverie's flow), but the held-out style from 2.01x to 2.15x and
      from 1.96x to 2.29x, at 13% more per step: like the temporal weight, a trade, not a default.
    """

    steps: int = 800
    patch: int = 112
    batch: int = 4
    lr: float = 4e-4
    l1: float = 1.0
    perceptual: float = 1.0
    style: float = 4.0
    temporal: float = 1.0
    shift: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("patch", self.patch, 8, 4096)
        _check_int("batch", self.batch, 1, 1024)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not _finite(self.lr) or not 0 < self.lr <= 1:
            raise ReverieError(f"lr must be a number above 0 and at most 1, got {self.lr!r}")
        for name in ("l1", "perceptual", "style", "temporal", "shift"):
            value = getattr(self, name)
            if not _finite(value) or not 0 <= value <= 1e6:
                raise ReverieError(f"{name} weight must be a number from 0 to 1e6, got {value!r}")
        if self.l1 == 0 and self.perceptual == 0 and self.style == 0:
            raise ReverieError(
                "the l1, perceptual and style weights are all 0: the network would learn nothing"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TrainConfig:
        return config_from_dict(cls, record, "training config")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ReverieError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value; identity is what compares
class TrainingData:
    """What the network learns from; all float tensors on one device, images in 0..1.

    inputs (K, 3 + guides, H, W): keyframe plates (+ guides). targets (K, 3, H, W): the same keyframes
    painted. For the temporal term, all four or none: previous and current (P, 3 + guides, Hp, Wp)
    consecutive plates; flows (P, 2, Hp, Wp) the backward flow in pixels (dx, dy), current(x) ~
    previous(x + flow(x)); masks (P, 1, Hp, Wp) in 0..1, 1 where the flow is trusted.
    """

    inputs: Tensor
    targets: Tensor
    previous: Tensor | None = None
    current: Tensor | None = None
    flows: Tensor | None = None
    masks: Tensor | None = None

    def __post_init__(self) -> None:
        k, c, h, w = _shape(self.inputs, "keyframe inputs")
        if c < 3:
            raise ReverieError(f"keyframe inputs need RGB plus guides, got {c} channels")
        if _shape(self.targets, "painted keyframes") != (k, 3, h, w):
            raise ReverieError(
                f"painted keyframes {tuple(self.targets.shape)} must be ({k}, 3, {h}, {w}) like the plates"
            )
        pairs = (self.previous, self.current, self.flows, self.masks)
        if any(t is None for t in pairs) and any(t is not None for t in pairs):
            raise ReverieError("the temporal term needs previous, current, flows and masks together")
        if self.previous is not None:
            self._check_pairs(c)

    def _check_pairs(self, channels: int) -> None:
        assert self.current is not None and self.flows is not None and self.masks is not None
        p, c, h, w = _shape(self.previous, "previous plates")
        expected = {"current plates": (p, c, h, w), "flows": (p, 2, h, w), "masks": (p, 1, h, w)}
        for (name, shape), tensor in zip(
            expected.items(), (self.current, self.flows, self.masks), strict=True
        ):
            if tuple(tensor.shape) != shape:
                raise ReverieError(
                    f"{name} {tuple(tensor.shape)} must be {shape} to match the previous plates"
                )
        if c != channels:
            raise ReverieError(f"frame pairs have {c} channels but the keyframes have {channels}")

    @property
    def has_pairs(self) -> bool:
        return self.previous is not None


def _shape(tensor: object, name: str) -> tuple[int, int, int, int]:
    if not isinstance(tensor, Tensor) or tensor.dim() != 4 or not tensor.is_floating_point():
        shown = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ReverieError(f"{name} must be a float tensor (N, C, H, W), got {shown}")
    if min(tensor.shape) < 1:
        raise ReverieError(f"{name} are empty: {tuple(tensor.shape)}")
    k, c, h, w = tensor.shape
    return k, c, h, w


@dataclass(frozen=True)
class TrainReport:
    steps: int
    """Steps trained (fewer than asked when stopped)."""
    seconds: float
    loss: float
    """The weighted loss over the last 5% of the steps (one step's patches are a noisy measure)."""
    terms: dict[str, float]
    """The same window's mean of each unweighted term: l1, perceptual, style, temporal, shift."""
    history: tuple[float, ...]
    """The mean loss over each tenth of the steps trained: how training went, in ten numbers."""
    stopped: bool
    """True when should_stop ended training early."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OnStep = Callable[[int, int, float], None]


def train(
    net: FastNet,
    data: TrainingData,
    config: TrainConfig,
    *,
    features: Features | None = None,
    on_step: OnStep | None = None,
    should_stop: Callable[[], bool] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> TrainReport:
    """Train `net` in place to paint `data.inputs` as `data.targets` (and, with pairs, steadily).

    A step: `config.batch` random aligned patches of `config.patch` px from random keyframes (crops
    only: flips or rotations would break guides that encode position), plus, with pairs and a temporal
    weight, half as many aligned patches of random pairs; loss = l1 * L1 + perceptual * perceptual term
    + style * style term (both with `features`, see `feature_losses`) + temporal * `temporal_term`
    + shift * `shift_term` (on the keyframe patches); one Adam step. Use bf16 on CPUs with bf16
    instructions: 2x faster, same result here. The same seed, network and data give the same network
    on a CPU. autocast_dtype: e.g. torch.bfloat16 for the forward passes (the weights and Adam stay
    float32). A non-finite loss is a one-line ReverieError.
    """
    _check_network(net, data)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config.steps))
    start, losses, terms_seen = time.perf_counter(), [], []
    net.train()
    for step in range(1, config.steps + 1):
        total, terms = _loss(net, data, config, features, generator, autocast_dtype)
        value = float(total.detach())
        if not math.isfinite(value):
            raise ReverieError(
                f"training diverged at step {step} (loss {value}): lower the learning rate "
                f"(lr={config.lr:g}) or the loss weights, and check the keyframes for NaN or inf pixels"
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        schedule.step()
        losses.append(value)
        terms_seen.append(terms)
        if on_step is not None:
            on_step(step, config.steps, value)
        if should_stop is not None and step < config.steps and should_stop():
            break
    net.eval()
    return _report(losses, terms_seen, time.perf_counter() - start, len(losses) < config.steps)


def lr_factor(step: int, steps: int) -> float:
    """The learning rate's factor at a step: a linear warm-up over the first 5% of the steps (Adam's
    first moments are poor estimates, and a network without normalisation takes large first steps),
    then a cosine decay from 1 to 0.1."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _check_network(net: FastNet, data: TrainingData) -> None:
    wanted, given = net.config.in_channels, data.inputs.shape[1]
    if wanted != given:
        raise ReverieError(
            f"the network takes {wanted} input channels (RGB + {net.config.guides} guides) "
            f"but the keyframes have {given}"
        )


def _loss(
    net: FastNet,
    data: TrainingData,
    config: TrainConfig,
    features: Features | None,
    generator: torch.Generator,
    autocast_dtype: torch.dtype | None,
) -> tuple[Tensor, dict[str, float]]:
    """One step's weighted loss and its unweighted terms."""
    device = data.inputs.device
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        x, y = keyframe_patches(data, config.patch, config.batch, generator)
        out = net(x)
        terms = {"l1": (out.float() - y).abs().mean()}
        if features is not None and (config.perceptual > 0 or config.style > 0):
            terms.update(feature_losses(features, out, y))
        if data.has_pairs and config.temporal > 0:
            terms["temporal"] = temporal_term(net, *pair_patches(data, config.patch, config.batch, generator))
        if config.shift > 0:
            terms["shift"] = shift_term(net, x, out, generator)
    weights = {
        "l1": config.l1,
        "perceptual": config.perceptual,
        "style": config.style,
        "temporal": config.temporal,
        "shift": config.shift,
    }
    total = sum(
        (weights[name] * term.float() for name, term in terms.items()), torch.zeros((), device=device)
    )
    return total, {name: float(term.detach()) for name, term in terms.items()}


def perceptual_loss(features: Features, output: Tensor, target: Tensor) -> Tensor:
    """Sum over layers of mean((F_out - F_target)^2) / mean(F_target^2).

    Departs from a plain mean squared difference on purpose: each layer's term is relative to its
    target's energy, so a weight means the same with any feature network and preprocessing (Caffe VGG
    activations on 0-255 input are ~1e3 times torchvision's), and shallow layers with large activations
    do not drown the deep ones, which carry the brushwork.
    """
    return feature_losses(features, output, target)["perceptual"]


def feature_losses(features: Features, output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """The perceptual term (see `perceptual_loss`) and the style term: the sum over layers of
    |G_out - G_target|^2 / |G_target|^2, G each patch's Gram matrix per position."""
    with torch.no_grad():
        wanted = [t.float() for t in features(target)]
    found = [f.float() for f in features(output)]
    if len(found) != len(wanted):
        raise ValueError("the features callable returned different layers for the output and the target")
    perceptual = [
        (f - t).pow(2).mean() / (t.pow(2).mean() + _EPS) for f, t in zip(found, wanted, strict=True)
    ]
    style = []
    for f, t in zip(found, wanted, strict=True):
        g_out, g_target = _gram(f), _gram(t)
        style.append((g_out - g_target).pow(2).sum() / (g_target.pow(2).sum() + _EPS))
    return {"perceptual": torch.stack(perceptual).sum(), "style": torch.stack(style).sum()}


def _gram(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices per position, in float32 even under autocast (a style
    term is a small difference of large sums)."""
    flat = features.float().flatten(2)
    with torch.autocast(flat.device.type, enabled=False):
        return flat @ flat.transpose(1, 2) / flat.shape[-1]


def temporal_term(net: FastNet, previous: Tensor, current: Tensor, flows: Tensor, masks: Tensor) -> Tensor:
    """Masked mean |net(current) - warp(net(previous), flow)| over the trusted pixels and channels.

    Patches are crops of whole frames, so a flow vector that points outside its patch is also not
    trusted here (border replication would stand in for the real neighbour)."""
    both = net(torch.cat([previous, current])).float()
    painted_previous, painted_current = both.chunk(2)
    trusted = masks * _inside(flows)
    diff = (painted_current - warp(painted_previous, flows)).abs() * trusted
    return diff.sum() / (3 * trusted.sum() + _EPS)


def shift_term(net: FastNet, patches: Tensor, painted: Tensor, generator: torch.Generator) -> Tensor:
    """Mean |net(shifted patches) - shifted net(patches)| over the pixels that stay inside the patch,
    each patch shifted by its own random (dx, dy) of up to half the network's coarsest stride.

    A pan is a shift of the plate, mostly by a fraction of a pixel and seldom by a multiple of the
    stride; a network whose strokes depend on where the plate falls on its subsampling grid repaints
    them each frame (shimmer). Unlike the temporal term this needs no flow, so it is exact, and every
    keyframe patch of every step teaches it. Guides are shifted with the plate: a guide that encodes
    the screen position (not the scene) should train with shift 0.
    """
    n, _, h, w = patches.shape
    reach = 2.0 ** (net.config.levels - 1)
    offsets = (torch.rand((n, 2, 1, 1), generator=generator) * 2 - 1) * reach
    flows = offsets.to(patches.device).expand(n, 2, h, w).contiguous()
    moved = net(warp(patches, flows)).float()
    trusted = _inside(flows)
    diff = (moved - warp(painted.float(), flows)).abs() * trusted
    return diff.sum() / (3 * trusted.sum() + _EPS)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, border replicated.

    image (N, C, H, W); flow (N, 2, H, W) in pixels (dx, dy). Follows the image's device and dtype.
    """
    grid = _sample_grid(flow)
    return torch.nn.functional.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )


def _sample_grid(flow: Tensor) -> Tensor:
    """(N, H, W, 2) grid_sample coordinates in -1..1 (align_corners) of the points x + flow(x)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([gx, gy], dim=-1)


def _inside(flow: Tensor) -> Tensor:
    """(N, 1, H, W): 1 where x + flow(x) falls inside the image, else 0."""
    grid = _sample_grid(flow)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True)
    return inside.movedim(-1, 1).to(flow.dtype)


def keyframe_patches(
    data: TrainingData, patch: int, batch: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """`batch` random aligned (input, target) crops of `patch` px (at most the frames' size)."""
    boxes = _boxes(data.inputs.shape, patch, batch, generator)
    x, y = (
        torch.stack([t[k, :, top : top + s, left : left + r] for k, top, left, s, r in boxes])
        for t in (data.inputs, data.targets)
    )
    return x, y


def pair_patches(
    data: TrainingData, patch: int, batch: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """max(1, batch // 2) random aligned crops of (previous, current, flows, masks)."""
    assert data.previous is not None and data.current is not None
    assert data.flows is not None and data.masks is not None
    boxes = _boxes(data.previous.shape, patch, max(1, batch // 2), generator)
    tensors = (data.previous, data.current, data.flows, data.masks)
    previous, current, flows, masks = (
        torch.stack([t[k, :, top : top + s, left : left + r] for k, top, left, s, r in boxes])
        for t in tensors
    )
    return previous, current, flows, masks


def _boxes(
    shape: torch.Size, patch: int, batch: int, generator: torch.Generator
) -> list[tuple[int, int, int, int, int]]:
    """(frame, top, left, height, width) of `batch` random crops, drawn on the CPU generator."""
    count, _, height, width = shape
    ph, pw = min(patch, height), min(patch, width)
    frames = torch.randint(count, (batch,), generator=generator).tolist()
    tops = torch.randint(height - ph + 1, (batch,), generator=generator).tolist()
    lefts = torch.randint(width - pw + 1, (batch,), generator=generator).tolist()
    return [(k, t, left, ph, pw) for k, t, left in zip(frames, tops, lefts, strict=True)]


def _report(losses: list[float], terms: list[dict[str, float]], seconds: float, stopped: bool) -> TrainReport:
    window = max(1, len(losses) // 20)
    tail = terms[-window:]
    names = sorted({name for t in tail for name in t})
    means = {name: sum(t.get(name, 0.0) for t in tail) / len(tail) for name in names}
    tenths = [losses[i * len(losses) // 10 : (i + 1) * len(losses) // 10] for i in range(10)]
    history = tuple(sum(part) / len(part) for part in tenths if part)
    return TrainReport(len(losses), seconds, sum(losses[-window:]) / window, means, history, stopped)
