"""stylize() end to end at tiny sizes: the creative controls do what a director expects."""

import numpy as np
import pytest
import torch

from conftest import photo, stripes
from reverie import Look, ReverieError, Runtime, stylize
from reverie.app.samples import sample_painting
from reverie.core.color import rgb_to_yiq

FAST = {"size": 48, "iterations": 15}


def _orientation(image: np.ndarray) -> float:
    """Vertical over horizontal gradient energy: > 1 for horizontal stripes, < 1 for vertical ones."""
    grey = image.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() / np.abs(np.diff(grey, axis=1)).mean())


@pytest.mark.vgg
def test_style_crop_chooses_the_texture_that_is_transferred():
    # Left half of the painting: horizontal strokes; right half: vertical strokes.
    painting = np.concatenate([stripes(64, 64), stripes(64, 64, vertical=True)], axis=1)
    plate = photo(48, 48)
    look = Look(u=5, **FAST)
    left = stylize(plate, painting, look.replace(style_crop=(0, 0, 0.5, 1))).image
    right = stylize(plate, painting, look.replace(style_crop=(0.5, 0, 0.5, 1))).image
    assert _orientation(left) > 1.5 * _orientation(right)


def _chroma(image: np.ndarray) -> torch.Tensor:
    return rgb_to_yiq(torch.from_numpy(image).permute(2, 0, 1)[None] * 255)[:, 1:]


@pytest.mark.vgg
def test_color_content_keeps_the_plates_chroma():
    plate, painting = photo(48, 64), sample_painting(64)
    look = Look(u=5, **FAST)
    kept = stylize(plate, painting, look.replace(color="content")).image
    painted = stylize(plate, painting, look).image
    drift_kept = (_chroma(kept) - _chroma(plate)).abs().mean().item()
    drift_painted = (_chroma(painted) - _chroma(plate)).abs().mean().item()
    assert drift_kept < 2.0  # of a 0-255 scale
    assert drift_kept < 0.2 * drift_painted


@pytest.mark.vgg
def test_color_match_brings_the_palette_to_the_plate():
    plate, painting = photo(48, 64), sample_painting(64)
    look = Look(u=5, **FAST)
    matched = stylize(plate, painting, look.replace(color="match")).image
    painted = stylize(plate, painting, look).image
    plate_mean = plate.reshape(-1, 3).mean(0)
    assert (
        np.abs(matched.reshape(-1, 3).mean(0) - plate_mean).sum()
        < 0.5 * np.abs(painted.reshape(-1, 3).mean(0) - plate_mean).sum()
    )


def test_output_size_and_default_size():
    plate, painting = photo(60, 80), sample_painting(64)
    look = Look(iterations=2, size=40, refine_iterations=2)
    assert stylize(plate, painting, look).image.shape == (60, 80, 3)
    result = stylize(plate, painting, look, output_size=200)
    assert result.image.shape == (150, 200, 3)
    assert result.working_size == (40, 30)
    assert result.metadata()["look_hash"] == look.hash()


def test_blend_weights_must_match_styles():
    with pytest.raises(ReverieError, match="one per style"):
        stylize(
            photo(),
            [sample_painting(64)],
            Look(iterations=1, size=32, styles=("a", "b"), style_weights=(1, 1)),
        )


def test_a_size_that_does_not_fit_is_refused_before_allocating():
    with pytest.raises(ReverieError, match=r"use --size \d+ or less"):
        stylize(photo(), sample_painting(64), Look(size=4096), runtime=Runtime(max_memory=2**30))


def test_deterministic_on_cpu():
    plate, painting = photo(40, 40), sample_painting(64)
    look = Look(init="noise", seed=3, iterations=4, size=40)
    assert np.array_equal(stylize(plate, painting, look).image, stylize(plate, painting, look).image)


def _random_googlenet_checkpoint(folder):
    from reverie.nets.googlenet import CHECKPOINT_NAME, state_shapes

    g = torch.Generator().manual_seed(0)
    state = {
        k: torch.ones(s) if k.endswith(("running_var", "bn.weight")) else torch.randn(s, generator=g) * 0.05
        for k, s in state_shapes().items()
    }
    (folder / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, folder / "hub" / "checkpoints" / CHECKPOINT_NAME)


@pytest.mark.vgg
def test_googlenet_from_the_torch_hub_cache_and_its_absence(tmp_path, monkeypatch):

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    look = Look(network="googlenet", size=48, iterations=3)
    with pytest.raises(ReverieError, match="--weights"):
        stylize(photo(), sample_painting(64), look)
    _random_googlenet_checkpoint(tmp_path)
    result = stylize(photo(), sample_painting(64), look)
    assert result.image.shape == (48, 64, 3) and np.isfinite(result.losses.total)
    assert "googlenet" in result.weights
