"""Fast mode's feed-forward painter: a small U-Net trained per shot (`reverie.core.distill`) that paints a
frame in one pass.

After Texler et al. (2020), "Interactive Video Stylization Using Few-Shot Patch-Based Training": an
image-to-image network with skip connections and residual blocks at the bottom, trained from scratch on
patches of a shot's painted keyframes. Departures, and why:

- No normalisation layers. The network trains on small patches and paints whole frames (or tiles of
  them): batch or instance statistics of a patch differ from a frame's, so a normalised network paints a
  frame differently from the patches it learnt on, and a tile differently from the whole. Without them
  each output pixel depends on its neighbourhood only. Training from scratch stays stable because every
  residual branch and the output layer start at zero (the network starts as the identity on the plate,
  as in Fixup/SkipInit), and the weights are He-initialised for the leaky ReLUs.
- The output is the plate's RGB plus a learnt change, clamped to 0..1. The plate's layout and colours
  are most of a painted frame, so the network learns the paint, not the picture. The clamp passes its
  gradient straight through while training: a sigmoid would compress the painting's darks and
  highlights (reaching them takes unbounded logits), and a plain clamp would stop teaching a pixel that
  overshot the range.
- Upsampling is nearest-neighbour followed by a 3x3 convolution: transposed convolutions leave
  checkerboard artefacts (Odena et al. 2016), which look like a texture and would be mistaken for paint.

Images are (N, C, H, W) float tensors in 0..1: C = 3 (RGB) + the config's guide channels in, RGB out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from reverie.errors import ReverieError

_SLOPE = 0.2  # leaky ReLU: no unit dies in a network trained briefly from scratch
_SMALLEST_TILE = 128  # below this the overlaps would cost more than the tiles
_WIDEST = 4  # channels stop doubling at 4x the top level's: the bottom levels hold few pixels anyway


@dataclass(frozen=True)
class FastNetConfig:
    """The network's architecture; `to_dict`/`from_dict` rebuild a saved network.

    guides: input channels besides the plate's RGB (e.g. positional guides). width: channels at full
    resolution (they double per level, up to 4x). levels: stride-2 downsamplings (the network's reach
    grows 2x per level). blocks: residual blocks at the bottom level.

    Defaults, from benchmarks/fast_net.py on this 2-core AVX-512 CPU: 2.69 M parameters (Texler's
    reference generator has 3.3 M) and 0.35 TMAC per 1920x1080 frame, painted in 4.6-6.2 s in float32
    or 1.0-2.0 s in bf16 (the lower figures with glibc keeping freed memory), against about 40 min for
    a Gatys frame; 3840x2160 whole takes 5.5 GiB in float32. Width 48 (6 M parameters) paints 1080p in
    7.3 s / 1.8 s: affordable, but each training step would cost about twice as much, and training is
    fast mode's real cost on a CPU. The bottom level works at 1/8 of the resolution, so its 5 blocks
    reach about 180 px, beyond the deep VGG layers' strokes.

    antialias: blur before each 2x subsampling ([1, 2, 1] binomial, after Zhang 2019, "Making
    Convolutional Networks Shift-Invariant Again") and upsample bilinearly, so a pan by a number of
    pixels that is not a multiple of 2**levels paints nearly the same strokes, moved. Same parameters and
    cost. Off by default until it is measured on the Sintel shot: on the known-motion pan (16 frames at
    256x192, keyframes 1 and 16, 800 steps, `benchmarks/fast_retrain.py`) it cut the flicker under the
    exact flow from 3.40x to 2.73x the temporal Gatys render's, at the same held-out style distance
    (2.43x against 2.45x), but the keyframes' style distance rose from 1.72x to 1.97x.

    dilated: no subsampling at all: every level works at full resolution with its taps 2**level px apart
    (the "a trous" form of the same U-Net: same reach, `width` channels at every level). A network that
    subsamples paints other strokes when the plate moves by a number of pixels that is not a multiple of
    its stride (a 4-px pan through the default network changes a frame 5.7x as much as an 8-px one):
    that is the shimmer of a pan. A dilated network commutes with every whole-pixel shift, away from the
    frame's edges. It has 0.24 M parameters at width 32 and costs about twice the default's time per
    1080p frame. Off by default: retrained (`benchmarks/fast_retrain.py`) it took
    the known-motion pan's flicker under the exact flow from 5.1x to 2.8x the temporal Gatys render's
    (style 1.92x against 2.01x), but a full `benchmarks/fast.py` Sintel run scored held-out style 2.12x
    (strided 1.85x: over the 2x bar), flicker 0.59x, training 606 s against 517 s.
    """

    guides: int = 0
    width: int = 32
    levels: int = 3
    blocks: int = 5
    antialias: bool = False
    dilated: bool = False

    def __post_init__(self) -> None:
        _check_int("guides", self.guides, 0, 64)
        _check_int("width", self.width, 4, 256)
        _check_int("levels", self.levels, 0, 6)
        _check_int("blocks", self.blocks, 0, 32)
        for name in ("antialias", "dilated"):
            if not isinstance(getattr(self, name), bool):
                raise ReverieError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.antialias and self.dilated:
            raise ReverieError("antialias and dilated exclude each other: a dilated network never subsamples")

    @property
    def in_channels(self) -> int:
        return 3 + self.guides

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this many pixels (2**levels; 1 when dilated) inside the
        network."""
        return 1 if self.dilated else 2**self.levels

    def channels(self) -> list[int]:
        """Channels at each level, full resolution first (all `width` when dilated: every level is at
        full resolution, so doubling would multiply the cost)."""
        if self.dilated:
            return [self.width] * (self.levels + 1)
        return [self.width * min(2**level, _WIDEST) for level in range(self.levels + 1)]

    def dilation(self, level: int) -> int:
        """The spacing of a level's convolution taps at full resolution: 2**level when dilated, else 1
        (the level's own grid is already 2**level times coarser)."""
        return 2**level if self.dilated else 1

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> FastNetConfig:
        return config_from_dict(cls, record, "network config")


Config = TypeVar("Config")


def config_from_dict(cls: type[Config], record: Mapping[str, Any], what: str) -> Config:
    """A frozen config dataclass from its `to_dict`: unknown keys or bad values are one-line errors."""
    if not isinstance(record, Mapping):
        raise ReverieError(f"{what} must be a table of settings, got {type(record).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in record if k not in known)
    if unknown:
        raise ReverieError(
            f"{what}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        return cls(**record)
    except TypeError as err:  # a value of the wrong kind that the checks did not name
        raise ReverieError(f"{what}: {err}") from None


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ReverieError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")


def _conv(c_in: int, c_out: int, stride: int = 1, zero: bool = False, dilation: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation)
    if zero:
        nn.init.zeros_(conv.weight)
    else:
        nn.init.kaiming_normal_(conv.weight, a=_SLOPE, nonlinearity="leaky_relu")
    assert conv.bias is not None  # made with a bias
    nn.init.zeros_(conv.bias)
    return conv


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(_SLOPE, inplace=True)


def _double(c_in: int, c_out: int, stride: int = 1, dilation: tuple[int, int] = (1, 1)) -> nn.Sequential:
    first, second = dilation
    return nn.Sequential(
        _conv(c_in, c_out, stride, dilation=first), _act(), _conv(c_out, c_out, dilation=second), _act()
    )


def _down(c_in: int, c_out: int, config: FastNetConfig, level: int) -> nn.Sequential:
    """From `level` to `level + 1`: a stride-2 convolution (blurred first with antialias) and another at
    the coarser grid; when dilated, the same two at full resolution with their taps spread out instead."""
    if config.dilated:
        return _double(c_in, c_out, dilation=(config.dilation(level), config.dilation(level + 1)))
    if not config.antialias:
        return _double(c_in, c_out, stride=2)
    return nn.Sequential(_BlurDown(), *_double(c_in, c_out))


class _BlurDown(nn.Module):
    """A binomial [1, 2, 1] blur and a 2x subsampling, per channel: no frequency the subsampled grid
    cannot hold aliases into it, so a 1-px shift of the input shifts the output smoothly."""

    kernel: Tensor

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (taps[:, None] * taps[None, :] / 16)[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, groups=channels)


class _Residual(nn.Module):
    """x + conv(act(conv(x))), the second convolution starting at zero (the block starts as identity)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            _conv(channels, channels, dilation=dilation),
            _act(),
            _conv(channels, channels, zero=True, dilation=dilation),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class _Up(nn.Module):
    """2x upsampling (nearest; bilinear with antialias; none when dilated), a convolution, then the skip
    features joined in."""

    def __init__(self, c_in: int, c_out: int, config: FastNetConfig, level: int) -> None:
        super().__init__()
        self.mode = None if config.dilated else "bilinear" if config.antialias else "nearest"
        spacing = config.dilation(level)
        self.lift = nn.Sequential(_conv(c_in, c_out, dilation=spacing), _act())
        self.merge = nn.Sequential(_conv(2 * c_out, c_out, dilation=spacing), _act())

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.mode is not None:
            x = F.interpolate(x, scale_factor=2.0, mode=self.mode)
        return self.merge(torch.cat([self.lift(x), skip], dim=1))


class FastNet(nn.Module):
    """(N, 3 + guides, H, W) plate (+ guides) in 0..1 -> (N, 3, H, W) painted RGB in 0..1, any H and W."""

    def __init__(self, config: FastNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FastNetConfig()
        widths = config.channels()
        self.stem = _double(config.in_channels, widths[0])
        self.down = nn.ModuleList(_down(widths[i], widths[i + 1], config, i) for i in range(config.levels))
        bottom = config.dilation(config.levels)
        self.body = nn.Sequential(*(_Residual(widths[-1], bottom) for _ in range(config.blocks)))
        self.up = nn.ModuleList(
            _Up(widths[i + 1], widths[i], config, i) for i in reversed(range(config.levels))
        )
        self.head = _conv(widths[0], 3, zero=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W) input, got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        padded = _pad_to(x, self.config.multiple)
        y = self.stem(padded.contiguous(memory_format=torch.channels_last))
        skips = []
        for down in self.down:
            skips.append(y)
            y = down(y)
        y = self.body(y)
        for up in self.up:
            y = up(y, skips.pop())
        # The last layer and the sum in float32: a bf16 change would quantise the painted frame's tones.
        with torch.autocast(x.device.type, enabled=False):
            out = padded[:, :3].float() + self.head(y.float())
        return _clamp01(out[..., :height, :width])

    def parameters_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    """Pad bottom and right to a multiple of `multiple` px: reflected, or replicated where the frame is
    too small to reflect (a frame narrower than the padding)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _clamp01(x: Tensor) -> Tensor:
    """Clamp to 0..1; while training, the gradient passes straight through (see the module's notes)."""
    clamped = x.clamp(0.0, 1.0)
    return x + (clamped - x).detach() if torch.is_grad_enabled() and x.requires_grad else clamped


def paint(
    net: FastNet,
    image: Tensor,
    *,
    tile: int | None = None,
    overlap: int = 64,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """One frame through the network, without gradients: (1, 3 + guides, H, W) 0..1 -> (1, 3, H, W)
    float32 0..1.

    tile: paint in overlapping tiles of at most tile x tile px (see `tile_for_memory`), blended across
    each `overlap` px (see `_ramp`), so memory stays bounded and no seam shows; None paints the frame
    whole. Tiles start on the network's 2**levels grid. overlap 64: with 32 the largest tiled-vs-whole
    difference on a trained network was 2.4x larger. autocast_dtype: e.g. torch.bfloat16, 2.4-4.6x
    faster on CPUs with bf16 instructions (within 1/100 of float32 here).
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) frame, got {tuple(image.shape)}")
    enabled = autocast_dtype is not None
    with torch.no_grad(), torch.autocast(image.device.type, dtype=autocast_dtype, enabled=enabled):
        if tile is None or max(image.shape[-2:]) <= tile:
            return net(image).float()
        return _paint_tiled(net, image, tile, overlap)


def _paint_tiled(net: FastNet, image: Tensor, tile: int, overlap: int) -> Tensor:
    align = net.config.multiple
    if tile < overlap + align or overlap < 0:
        raise ValueError(f"tile {tile} must exceed overlap {overlap} by at least {align} px")
    height, width = image.shape[-2:]
    rows, cols = tile_spans(height, tile, overlap, align), tile_spans(width, tile, overlap, align)
    total = image.new_zeros((1, 3, height, width), dtype=torch.float32)
    weight = image.new_zeros((1, 1, height, width), dtype=torch.float32)
    for top, bottom in rows:
        for left, right in cols:
            piece = net(image[..., top:bottom, left:right]).float()
            ramp = _ramp(top, bottom, height, overlap, image.device)[:, None]
            w = ramp * _ramp(left, right, width, overlap, image.device)[None, :]
            total[..., top:bottom, left:right] += piece * w
            weight[..., top:bottom, left:right] += w
    return total / weight


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) of tiles of at most `tile` px covering `length`, neighbours overlapping by at least
    `overlap` px. Starts are multiples of `align` (the network's 2**levels), so a tile sees the same
    grid of downsampled pixels as the whole frame and paints what the whole frame would."""
    if length <= tile:
        return [(0, length)]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append(-(-(length - tile) // align) * align)  # the last tile ends at the frame's edge
    return [(s, min(s + tile, length)) for s in starts]


def _ramp(start: int, end: int, length: int, overlap: int, device: torch.device) -> Tensor:
    """A tile's blending weight along one axis. From each edge inside the frame: 0 over the first
        quarter of the overlap (pixels there lack the context the whole frame gives them), then rising
        linearly to 1 over the middle half, where the neighbour's weight falls; 1 elsewhere. On a trained
        network (overlap 64) this made the tiled-vs-whole difference 2.8x smaller on average, 1.6x at most,
    than a plain ramp over the whole overlap."""
    x = torch.arange(start, end, device=device, dtype=torch.float32)
    ramp = torch.ones_like(x)
    if overlap <= 0:
        return ramp
    margin, fade = overlap // 4, overlap - 2 * (overlap // 4) + 1
    if start > 0:
        ramp = torch.minimum(ramp, ((x - start - margin + 1) / fade).clamp(0, 1))
    if end < length:
        ramp = torch.minimum(ramp, ((end - x - margin) / fade).clamp(0, 1))
    return ramp


BYTES_PER_PIXEL_PER_CHANNEL = 4 * 6
"""Peak activation memory of `paint`, per pixel of the piece and channel of the top level: the last
upsampling stage holds the full-resolution skip features, the upsampled and lifted features, their
concatenation (2x) and the merged output at once, about 5 tensors of `width` channels, plus oneDNN's
reordered copies; float32 (bf16 halves most of it). Measured by benchmarks/fast_net.py (peak RSS above
the baseline) at 3840x2160 with the default config: whole, 5.45 GiB against an estimate of 6.30; in
1568-px tiles (`tile_for_memory` for 2 GiB), 1.92 GiB including the frame's buffers."""

DILATED_BYTES_PER_PIXEL_PER_CHANNEL = 30
"""The same for a dilated network, whose every level's skip features are full-resolution. Measured at
3840x2160 (width 32): whole, 6.93 GiB against an estimate of 7.8; at 28 bytes the 2 GiB plan's tiles
peaked at 2.01 GiB."""


def paint_bytes(config: FastNetConfig, height: int, width: int) -> int:
    """Estimated peak bytes of painting a height x width piece whole (activations only)."""
    per_channel = DILATED_BYTES_PER_PIXEL_PER_CHANNEL if config.dilated else BYTES_PER_PIXEL_PER_CHANNEL
    per_pixel = per_channel * config.width + 4 * 2 * (config.in_channels + 3)
    return per_pixel * height * width


def tile_for_memory(config: FastNetConfig, height: int, width: int, max_bytes: int) -> int | None:
    """The tile side `paint` should use to stay within `max_bytes` for a height x width frame: None when
    the whole frame fits, else the largest multiple of 2**levels that fits (the frame-sized blending
    buffers, 4 float32 channels, counted first). A one-line error when even a 128-px tile does not fit."""
    if paint_bytes(config, height, width) <= max_bytes:
        return None
    frame = 4 * 4 * height * width  # the blended sum (RGB) and the weights, float32
    per_pixel = paint_bytes(config, 1, 1)
    side = int(math.sqrt(max(max_bytes - frame, 0) / per_pixel)) // config.multiple * config.multiple
    if side < _SMALLEST_TILE:
        need = frame + paint_bytes(config, _SMALLEST_TILE, _SMALLEST_TILE)
        raise ReverieError(
            f"painting a {width}x{height} frame needs at least {need / 2**30:.2f} GiB "
            f"but {max_bytes / 2**30:.2f} GiB is allowed: allow more memory"
        )
    return side
