import pytest
import torch

from conftest import photo
from reverie.app.samples import sample_painting
from reverie.core.losses import temporal_loss
from reverie.core.transfer import (
    IterationEvent,
    Objective,
    Temporal,
    _run_lbfgs_device,
    _run_lbfgsb,
    precision_phases,
    transfer,
)
from reverie.look import Look


def _t(image) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous() * 255


@pytest.fixture(scope="module")
def pair():
    return _t(photo(48, 64)), _t(sample_painting(64))


def _raw_losses(vgg16, content, style, image, look):
    """Unweighted content and style terms of an image, with one fixed definition for every run."""
    objective = Objective(vgg16, content, [style], look.replace(u=0))
    c, s = objective(image).tolist()[:2]
    return c, s


def test_larger_u_gives_more_style_and_less_content(vgg16, pair):
    content, style = pair
    results = {u: transfer(content, [style], Look(u=u, iterations=25), vgg16).image for u in (1, 4)}
    c1, s1 = _raw_losses(vgg16, content, style, results[1], Look())
    c4, s4 = _raw_losses(vgg16, content, style, results[4], Look())
    assert s4 < 0.5 * s1
    assert c4 > 2 * c1


def test_iterations_events_bounds_and_stop(vgg16, pair):
    content, style = pair
    events: list[IterationEvent] = []
    result = transfer(
        content,
        [style],
        Look(iterations=10),
        vgg16,
        callback=events.append,
        should_stop=lambda: len(events) >= 4,
    )
    assert [e.iteration for e in events] == [1, 2, 3, 4]
    assert result.stopped and result.iterations == 4
    assert 0 <= result.image.min() and result.image.max() <= 255
    assert events[-1].losses.total < events[0].losses.total


def test_precision_phases():
    bf16 = torch.bfloat16
    assert precision_phases(10, bf16, 3) == [(7, bf16), (3, None)]
    assert precision_phases(10, bf16, 0) == [(10, bf16)]
    assert precision_phases(10, bf16, 50) == [(10, None)]
    assert precision_phases(10, None, 3) == [(10, None)]  # already float32: one phase
    assert precision_phases(0, bf16, 3) == [(0, bf16)]


def test_fp32_finish_counts_on_and_runs_in_float32(vgg16, pair, monkeypatch):
    content, style = pair
    dtypes, events = [], []
    original = Objective.__call__

    def recorded(self, image):
        dtypes.append(self.autocast_dtype)
        return original(self, image)

    monkeypatch.setattr(Objective, "__call__", recorded)
    look, released = Look(iterations=8), []
    result = transfer(
        content, [style], look, vgg16, autocast_dtype=torch.bfloat16, fp32_finish=3, callback=events.append,
        release_memory=lambda: released.append(len(events)),
    )  # fmt: skip
    assert released == [0, 5]  # as each phase starts: the bf16 one, then the float32 finish
    assert [e.iteration for e in events] == list(range(1, 9))
    assert {e.total for e in events} == {8}
    assert result.iterations == 8 and not result.stopped
    assert torch.bfloat16 in dtypes and dtypes[-1] is None  # bf16 first, float32 at the end
    assert dtypes.index(None) > dtypes.index(torch.bfloat16)
    assert events[-1].losses.total < events[0].losses.total


def test_a_stop_in_the_bf16_phase_skips_the_finish(vgg16, pair):
    content, style = pair
    events: list[IterationEvent] = []
    result = transfer(
        content, [style], Look(iterations=8), vgg16, autocast_dtype=torch.bfloat16, fp32_finish=3,
        callback=events.append, should_stop=lambda: len(events) >= 2,
    )  # fmt: skip
    assert result.stopped and result.iterations == 2
    assert [e.iteration for e in events] == [1, 2]


def test_same_seed_same_pixels(vgg16, pair):
    content, style = pair
    look = Look(init="noise", iterations=3, seed=7)
    a = transfer(content, [style], look, vgg16).image
    b = transfer(content, [style], look, vgg16).image
    c = transfer(content, [style], look.replace(seed=8), vgg16).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimizers_lower_the_loss(vgg16, pair, optimizer):
    content, style = pair
    events: list[IterationEvent] = []
    result = transfer(
        content, [style], Look(optimizer=optimizer, iterations=8), vgg16, callback=events.append
    )
    assert result.losses.total < 0.7 * events[0].losses.total


def test_mixed_init_starts_between_content_and_style(vgg16, pair):
    content, style = pair
    seen: list[torch.Tensor] = []
    look = Look(init="mixed", iterations=1, optimizer="adam", adam_lr=1e-6)
    transfer(content, [style], look, vgg16, callback=lambda e: seen.append(e.image.clone()))
    assert 0 < (seen[0] - content).abs().mean() < 0.1 * (style - content).abs().mean()


def test_temporal_term_holds_trusted_pixels_and_frees_the_rest(vgg16, pair):
    """Where the mask trusts the flow the frame stays at the warped previous frame; elsewhere it paints."""
    content, style = pair
    look = Look(u=4, iterations=15)
    free = transfer(content, [style], look, vgg16).image
    target = content.flip(-1)  # a 'previous frame' far from what the style term alone would paint
    mask = torch.zeros(1, 1, *content.shape[-2:])
    mask[..., :, : content.shape[-1] // 2] = 1
    held = transfer(content, [style], look, vgg16, temporal=Temporal(target, mask, weight=100.0)).image
    left, right = (slice(None), slice(None), slice(None), slice(0, 24)), (..., slice(40, None))
    assert (held[left] - target[left]).abs().mean() < 0.25 * (free[left] - target[left]).abs().mean()
    # Far from the trusted half the frame paints as if unconstrained (the receptive fields overlap).
    assert (held[right] - free[right]).abs().mean() < 0.5 * (held[left] - free[left]).abs().mean()


def test_temporal_loss_is_a_masked_mean():
    image, target = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 2.0)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    assert temporal_loss(image, target, mask).item() == pytest.approx(4.0 * 0.5)
    assert temporal_loss(image, target, torch.zeros_like(mask)).item() == 0.0


def test_device_lbfgs_keeps_up_with_scipys(vgg16, pair):
    """The device-resident L-BFGS (used on GPUs) reaches about SciPy's loss, within the pixel bounds,
    also at a high u where the raw loss (~1e15) would overflow its float32 line search."""
    content, style = pair
    for u in (4.0, 7.0):
        look = Look(u=u, iterations=15)
        objective = Objective(vgg16, content, [style], look)
        start = float(objective(content).sum())
        finals = {}
        for name, run in (("scipy", _run_lbfgsb), ("device", _run_lbfgs_device)):
            losses: list[float] = []
            record = losses.append
            image = run(
                objective, content.clone(), look, lambda i, terms, im, record=record: record(terms.total)
            )
            assert len(losses) == 15 and 0 <= image.min() and image.max() <= 255
            finals[name] = losses[-1]
        assert finals["device"] < 1.3 * finals["scipy"] and finals["device"] < 0.5 * start, (u, finals)
