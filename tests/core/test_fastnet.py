"""Fast mode's network: shapes, the config's round trip and checks, tiled painting and its memory plan."""

from __future__ import annotations

import itertools

import pytest
import torch

from reverie.core.fastnet import (
    FastNet,
    FastNetConfig,
    paint,
    paint_bytes,
    tile_for_memory,
    tile_spans,
)
from reverie.errors import ReverieError

SMALL = FastNetConfig(width=8, levels=2, blocks=1)


def shaken(config: FastNetConfig, scale: float = 0.02, seed: int = 0) -> FastNet:
    """A network whose every layer is non-zero (a fresh one starts as the identity on the plate)."""
    torch.manual_seed(seed)
    net = FastNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * scale)
    return net.eval()


def smooth_frame(h: int, w: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    noise = torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(noise, 5, 1, 2, count_include_pad=False)


def test_config_round_trip():
    config = FastNetConfig(guides=2, width=16, levels=4, blocks=3)
    assert FastNetConfig.from_dict(config.to_dict()) == config
    assert FastNetConfig.from_dict({}) == FastNetConfig()


@pytest.mark.parametrize(
    "record",
    [
        {"width": 0},
        {"levels": -1},
        {"levels": 7},
        {"blocks": 2.0},
        {"guides": True},
        {"width": "32"},
        {"depth": 3},
        {"antialias": 1},
        {"dilated": "yes"},
        {"antialias": True, "dilated": True},
    ],
)
def test_bad_config_is_one_line(record):
    with pytest.raises(ReverieError) as err:
        FastNetConfig.from_dict(record)
    assert "\n" not in str(err.value)


def test_a_config_that_is_not_a_table_is_one_line():
    with pytest.raises(ReverieError, match="table"):
        FastNetConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_a_fresh_network_paints_the_plate():
    """Residual branches and the head start at zero: training starts from the plate, not from grey."""
    x = torch.rand(2, 3, 24, 32)
    assert torch.equal(FastNet(SMALL)(x), x)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (17, 23), (8, 40), (3, 64)])
def test_any_size(h, w):
    net = shaken(FastNetConfig(guides=1, width=8, levels=3, blocks=1))
    out = paint(net, torch.rand(1, 4, h, w))
    assert out.shape == (1, 3, h, w)
    assert out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1


def test_wrong_channels_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 5, H, W\)"):
        FastNet(FastNetConfig(guides=2, width=8, levels=1, blocks=0))(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        paint(FastNet(SMALL), torch.rand(2, 3, 8, 8))


def test_tiled_paint_matches_whole():
    net = shaken(SMALL)
    image = smooth_frame(96, 128)
    whole = paint(net, image)
    tiled = paint(net, image, tile=64, overlap=16)
    assert (whole - image).abs().mean() > 0.02  # the network does change the frame
    assert (tiled - whole).abs().max() < 0.02
    assert (tiled - whole).abs().mean() < 0.002


def test_a_tile_larger_than_the_frame_paints_it_whole():
    net = shaken(SMALL)
    image = smooth_frame(40, 56)
    assert torch.equal(paint(net, image, tile=64), paint(net, image))


def test_a_tile_too_small_for_its_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        paint(FastNet(SMALL), torch.rand(1, 3, 64, 64), tile=20, overlap=18)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "align"), [(128, 64, 16, 4), (1000, 256, 64, 8), (97, 40, 8, 8)]
)
def test_tiles_cover_the_frame_aligned_and_overlapping(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert start % align == 0 and end - start <= tile
        assert end - next_start >= overlap
    assert spans[-1][1] - spans[-1][0] <= tile


def test_bf16_paints_close_to_fp32():
    net = shaken(SMALL)
    image = smooth_frame(32, 48)
    assert (paint(net, image, autocast_dtype=torch.bfloat16) - paint(net, image)).abs().max() < 0.03


def test_the_clamp_still_teaches_a_pixel_out_of_range():
    """Straight-through clamp: a pixel pushed past 1 still gets the gradient that brings it back."""
    net = FastNet(FastNetConfig(width=4, levels=0, blocks=0))
    x = torch.full((1, 3, 4, 4), 0.99)
    with torch.no_grad():
        net.head.bias.fill_(0.5)  # output 1.49 -> clamped to 1
    out = net(x)
    assert out.max() == 1.0
    (out - 0.5).abs().mean().backward()
    assert net.head.bias.grad is not None and (net.head.bias.grad > 0).all()


def test_tile_for_memory():
    config = FastNetConfig()
    assert tile_for_memory(config, 1080, 1920, 64 * 2**30) is None
    budget = 2 * 2**30
    tile = tile_for_memory(config, 2160, 3840, budget)
    assert tile is not None and tile % config.multiple == 0 and tile >= 512
    assert paint_bytes(config, tile, tile) + 16 * 2160 * 3840 <= budget
    assert paint_bytes(config, tile + 64, tile + 64) + 16 * 2160 * 3840 > budget
    with pytest.raises(ReverieError, match="allow more memory"):
        tile_for_memory(config, 2160, 3840, 100 * 2**20)


def test_antialias_paints_a_pan_as_the_same_strokes_moved():
    """With antialias, a 1-px pan (not on the 2**levels grid) changes the painting less than without."""
    image = smooth_frame(64, 80)

    def shift_error(config: FastNetConfig) -> float:
        net = shaken(config, scale=0.05)
        whole = paint(net, image)
        moved = paint(net, image[..., :, 1:])
        return float((moved[..., 8:-8, 8:-8] - whole[..., 8:-8, 9:-8]).abs().mean())

    plain = shift_error(FastNetConfig(width=8, levels=2, blocks=1))
    smooth = shift_error(FastNetConfig(width=8, levels=2, blocks=1, antialias=True))
    assert smooth < 0.5 * plain, (smooth, plain)


def test_antialias_tiles_match_whole():
    net = shaken(FastNetConfig(width=8, levels=2, blocks=1, antialias=True))
    image = smooth_frame(96, 128)
    whole, tiled = paint(net, image), paint(net, image, tile=64, overlap=16)
    assert (whole - image).abs().mean() > 0.02
    assert (tiled - whole).abs().max() < 0.02


def test_dilated_paints_any_whole_pixel_pan_as_the_same_painting_moved():
    """Dilated, the network never subsamples: away from the frame's edges a pan by any whole number of
    pixels moves the painting exactly, where the strided network paints other strokes."""
    image = smooth_frame(64, 120)
    small = {"width": 8, "levels": 2, "blocks": 1}
    reach = 2 * (1 + 2 + 4 + 4 + 2 + 1) + 4  # each dilated level's taps, down and up, and the body

    def shift_error(config: FastNetConfig, shift: int) -> float:
        net = shaken(config, scale=0.05)
        whole = paint(net, image[..., :100])
        moved = paint(net, image[..., shift : shift + 100])
        return float(
            (moved[..., reach : 100 - reach - shift] - whole[..., reach + shift : 100 - reach]).abs().max()
        )

    for shift in (1, 2, 3):
        assert shift_error(FastNetConfig(**small, dilated=True), shift) < 1e-5
        assert shift_error(FastNetConfig(**small), shift) > 1e-3


def test_dilated_keeps_every_level_at_full_resolution_and_width():
    config = FastNetConfig(width=8, levels=3, blocks=1, dilated=True)
    assert config.multiple == 1
    assert config.channels() == [8, 8, 8, 8]
    net = shaken(config)
    out = paint(net, torch.rand(1, 3, 13, 21))  # no padding to a grid: any size paints as it is
    assert out.shape == (1, 3, 13, 21)


def test_dilated_tiles_match_whole():
    """The dilated network's taps reach zeros at a tile's edge from further in: it needs 24 px of overlap
    here where the strided one needs 16 for the same largest difference."""
    net = shaken(FastNetConfig(width=8, levels=2, blocks=1, dilated=True))
    image = smooth_frame(96, 128)
    whole, tiled = paint(net, image), paint(net, image, tile=64, overlap=24)
    assert (whole - image).abs().mean() > 0.02
    assert (tiled - whole).abs().max() < 0.02
