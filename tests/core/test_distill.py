"""Training fast mode's network: it learns a known mapping, deterministically, steadily along a pan, and
refuses bad data and configs in one line."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from conftest import photo
from reverie.core.distill import (
    TrainConfig,
    TrainingData,
    feature_losses,
    lr_factor,
    perceptual_loss,
    shift_term,
    temporal_term,
    train,
    warp,
)
from reverie.core.fastnet import FastNet, FastNetConfig, paint
from reverie.errors import Cancelled, ReverieError

H, W = 48, 64
NET = FastNetConfig(guides=1, width=16, levels=2, blocks=1)
QUICK = TrainConfig(steps=100, patch=32, batch=4, lr=2e-3)
STRIPE = (0.5 + 0.5 * torch.sin(2 * math.pi * torch.arange(W) / 6)).expand(1, H, W)
MIX = torch.tensor([[0.5, 0.3, 0.1], [0.1, 0.4, 0.4], [0.3, 0.1, 0.5]])


def plate(seed: int, h: int = H, w: int = W) -> torch.Tensor:
    return torch.from_numpy(photo(h, w, seed)).permute(2, 0, 1)


def shot_frame(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(plate + stripe guide, painted): a fixed colour transform plus the guide's stripes, their
    strength modulated by the plate's brightness: a known 'look' the network must learn."""
    rgb = plate(seed)
    painted = torch.einsum("ij,jhw->ihw", MIX, rgb) + 0.4 * rgb.mean(0, keepdim=True) * (STRIPE - 0.5)
    return torch.cat([rgb, STRIPE]), painted.clamp(0, 1)


def keyframes(*seeds: int) -> TrainingData:
    inputs, targets = zip(*(shot_frame(s) for s in seeds), strict=True)
    return TrainingData(torch.stack(inputs), torch.stack(targets))


def fresh(config: FastNetConfig = NET, seed: int = 0) -> FastNet:
    torch.manual_seed(seed)
    return FastNet(config)


def held_out_error(net: FastNet, seed: int = 7) -> float:
    x, y = shot_frame(seed)
    return float((paint(net, x[None]) - y).abs().mean())


def tiny_features(image: torch.Tensor) -> list[torch.Tensor]:
    """A fixed random two-layer conv stack standing in for VGG."""
    gen = torch.Generator().manual_seed(1)
    w1, w2 = torch.randn(8, 3, 3, 3, generator=gen), torch.randn(8, 8, 3, 3, generator=gen) / 5
    f1 = torch.relu(torch.nn.functional.conv2d(image, w1.to(image.dtype), padding=1))
    f2 = torch.relu(
        torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(f1, 2), w2.to(f1.dtype), padding=1)
    )
    return [f1, f2]


def test_learns_a_known_mapping_on_a_held_out_frame():
    net = fresh()
    bound = 0.03
    assert held_out_error(net) > 3 * bound  # untrained: the plate, not the look
    report = train(net, keyframes(1, 2), QUICK, features=tiny_features)
    assert held_out_error(net) < bound
    assert report.steps == 100 and not report.stopped
    assert report.history[-1] < report.history[0] / 3
    assert set(report.terms) == {"l1", "perceptual", "style"} and math.isfinite(report.loss)


def test_training_is_deterministic_for_a_seed():
    config = TrainConfig(steps=6, patch=24, batch=2)
    nets = [fresh(), fresh(), fresh()]
    train(nets[0], keyframes(1), config, features=tiny_features)
    train(nets[1], keyframes(1), config, features=tiny_features)
    train(nets[2], keyframes(1), TrainConfig(steps=6, patch=24, batch=2, seed=1), features=tiny_features)
    same = [torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True)]
    other = [torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[2].parameters(), strict=True)]
    assert all(same) and not all(other)


def test_progress_and_stop():
    seen: list[tuple[int, int, float]] = []
    report = train(
        fresh(),
        keyframes(1),
        TrainConfig(steps=50, patch=16, batch=1),
        on_step=lambda *a: seen.append(a),
        should_stop=lambda: len(seen) >= 3,
    )
    assert [s[:2] for s in seen] == [(1, 50), (2, 50), (3, 50)]
    assert report.steps == 3 and report.stopped
    assert len(report.history) == 3


def test_a_cancel_raised_by_the_callback_goes_through():
    def cancel(*_):
        raise Cancelled

    with pytest.raises(Cancelled):
        train(fresh(), keyframes(1), TrainConfig(steps=5, patch=16, batch=1), on_step=cancel)


def test_divergence_is_one_line():
    def poisoned(image: torch.Tensor) -> list[torch.Tensor]:
        return [image * float("nan")]

    with pytest.raises(
        ReverieError, match=r"diverged at step 1 \(loss nan\): lower the learning rate"
    ) as err:
        train(fresh(), keyframes(1), TrainConfig(steps=3, patch=16, batch=1), features=poisoned)
    assert "\n" not in str(err.value)


def test_patches_larger_than_the_frames_use_the_whole_frame():
    report = train(fresh(), keyframes(1), TrainConfig(steps=2, patch=512, batch=1))
    assert report.steps == 2


def test_config_round_trip_and_checks():
    config = TrainConfig(steps=10, patch=64, batch=3, lr=1e-3, l1=2.0, perceptual=0.5, temporal=0.0, seed=4)
    assert TrainConfig.from_dict(config.to_dict()) == config
    for bad in [
        {"steps": 0},
        {"patch": 4},
        {"batch": 1.5},
        {"lr": 0},
        {"lr": float("nan")},
        {"temporal": -1},
        {"shift": float("nan")},
        {"perceptual": float("inf")},
        {"l1": 0, "perceptual": 0, "style": 0},
        {"seed": True},
        {"epochs": 3},
    ]:
        with pytest.raises(ReverieError) as err:
            TrainConfig.from_dict(bad)
        assert "\n" not in str(err.value)


def test_mismatched_data_is_one_line():
    x, y = keyframes(1).inputs, keyframes(1).targets
    flows, masks = torch.zeros(1, 2, H, W), torch.ones(1, 1, H, W)
    cases = [
        lambda: TrainingData(x, y[..., :-1]),
        lambda: TrainingData(x, torch.cat([y, y])),
        lambda: TrainingData(x[:, :2], y),
        lambda: TrainingData(x.double().numpy(), y),  # type: ignore[arg-type]
        lambda: TrainingData(x, y, previous=x),
        lambda: TrainingData(x, y, previous=x, current=x, flows=flows[:, :1], masks=masks),
        lambda: TrainingData(x, y, previous=x, current=x[..., :-1], flows=flows, masks=masks),
        lambda: TrainingData(x, y, previous=x[:, :3], current=x[:, :3], flows=flows, masks=masks),
        lambda: TrainingData(x[:0], y[:0]),
    ]
    for case in cases:
        with pytest.raises(ReverieError) as err:
            case()
        assert "\n" not in str(err.value)
    with pytest.raises(ReverieError, match="takes 4 input channels"):
        train(fresh(), TrainingData(x[:, :3], y), QUICK)


def test_warp_follows_the_flow():
    image = torch.arange(24.0).view(1, 1, 4, 6)
    assert torch.allclose(warp(image, torch.zeros(1, 2, 4, 6)), image, atol=1e-5)
    shifted = warp(image, torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 4, 6))
    assert torch.allclose(shifted[0, 0, :3, :4], image[0, 0, 1:, 2:])  # out(x) = image(x + flow)
    assert torch.allclose(shifted[0, 0, :, -1], shifted[0, 0, :, -2])  # border replicated


def test_perceptual_loss_is_relative_to_the_targets_scale():
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)

    def scaled(image: torch.Tensor) -> list[torch.Tensor]:
        return [1000 * f for f in tiny_features(image)]

    assert torch.allclose(perceptual_loss(scaled, a, b), perceptual_loss(tiny_features, a, b), rtol=1e-4)
    assert perceptual_loss(tiny_features, a, a) == 0
    style = feature_losses(scaled, a, b)["style"]
    assert torch.allclose(style, feature_losses(tiny_features, a, b)["style"], rtol=1e-4)
    assert style > 0 and feature_losses(tiny_features, a, a)["style"] == 0


def pan_pair(seed: int, pan: int = 3) -> tuple[torch.Tensor, ...]:
    """Two plates of a camera panning right by `pan` px (previous, current) with the exact backward
    flow (+pan px in x) and the stripe guide (fixed to the screen, as a positional guide is not)."""
    wide = plate(seed, H, W + pan)
    previous, current = wide[..., :W], wide[..., pan:]
    flow = torch.zeros(2, H, W)
    flow[0] = pan
    with_guide = [torch.cat([p, STRIPE]) for p in (previous, current)]
    return (*with_guide, flow, torch.ones(1, H, W))


def test_the_temporal_term_steadies_a_pan():
    """The stripes are tied to the screen (the guide), so a network that learnt them paints them still
    while the scene pans: flicker under the pan's motion. The temporal term trades some of them for
    paint that moves with the scene."""
    pairs = [pan_pair(s) for s in (3, 4)]
    previous, current, flows, masks = (torch.stack(t) for t in zip(*pairs, strict=True))
    base = keyframes(1, 2)
    data = TrainingData(base.inputs, base.targets, previous, current, flows, masks)
    errors = {}
    for weight in (0.0, 3.0):
        net = fresh()
        config = TrainConfig(steps=60, patch=32, batch=4, lr=2e-3, temporal=weight)
        report = train(net, data, config)
        assert ("temporal" in report.terms) == (weight > 0)
        test = [t[None] for t in pan_pair(9)]
        with torch.no_grad():
            errors[weight] = float(temporal_term(net, *test))
    assert errors[3.0] < 0.6 * errors[0.0]


def shift_error(net: FastNet, seed: int = 9, dx: float = 0.5) -> float:
    """How differently the network paints a plate and the same plate moved by dx px (a subpixel pan)."""
    x = plate(seed)[None]
    flows = torch.zeros(1, 2, H, W)
    flows[:, 0] = dx
    with torch.no_grad():
        return float((net(warp(x, flows)) - warp(net(x), flows))[..., :, 1:-1].abs().mean())


def test_the_shift_term_steadies_the_strokes_under_a_subpixel_pan():
    """A 3-level network subsamples by 8, so what it paints depends on where the plate falls on that
    grid. The shift term trains it to paint a moved plate as the moved painting, on keyframe patches
    alone (no frame pairs): the target is a fine-grained nonlinear map of the plate, which a network
    that aliases gets wrong differently at each subpixel position."""
    config = FastNetConfig(width=16, levels=3, blocks=1)
    rgb = torch.stack([plate(s) for s in (1, 2)])
    edges = (rgb - torch.nn.functional.avg_pool2d(rgb, 3, 1, 1, count_include_pad=False)).abs() * 6
    data = TrainingData(rgb, (0.3 * rgb + edges).clamp(0, 1))
    errors, fits = {}, {}
    for weight in (0.0, 3.0):
        net = fresh(config)
        report = train(net, data, TrainConfig(steps=60, patch=32, batch=4, lr=2e-3, shift=weight))
        assert ("shift" in report.terms) == (weight > 0)
        errors[weight], fits[weight] = shift_error(net), report.terms["l1"]
    assert errors[3.0] < 0.6 * errors[0.0], errors
    assert fits[3.0] < 1.5 * fits[0.0], fits  # steadier, not by painting nothing


class FunctionNet(torch.nn.Module):
    """A stand-in network: any image function, with the config the shift term reads."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function, self.config = function, FastNetConfig(levels=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def test_the_shift_term_is_zero_only_for_a_painter_that_commutes_with_shifts():
    x, generator = plate(3)[None], torch.Generator().manual_seed(0)
    for function, commutes in [(lambda t: 1 - t, True), (lambda t: t.flip(-1), False)]:
        net = FunctionNet(function)
        with torch.no_grad():
            term = float(shift_term(net, x, net(x), generator))
        assert (term < 1e-5) == commutes, term


def test_learning_rate_warms_up_then_decays():
    factors = [lr_factor(step, 100) for step in range(100)]
    assert factors[0] < factors[4] == 1.0
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))
