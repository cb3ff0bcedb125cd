"""Painting a still or a frame: a `Look` and images (paths or arrays) in, an image array out.

This layer turns a `Look` and images into tensors for the core (cropping, scaling, colour modes, the
memory check), runs the optimisation with a `Painter`'s network and style targets, and brings the
result to the output size, refining (in tiles when needed) on the way. It writes no files.
`stylize` is the one-call public entry point; a caller painting many frames holds a `Painter`.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reverie.core import color
from reverie.core.strips import Grams
from reverie.core.tiles import run_tiled, tile_count
from reverie.core.transfer import Callback, Guidance, Losses, Objective, Temporal, TransferResult, transfer
from reverie.engine.memory import estimate_bytes, frame_bytes, largest_fitting_side
from reverie.engine.painter import to_tensor as _to_tensor
from reverie.engine.process import available_memory, release_freed_memory
from reverie.errors import ReverieError
from reverie.io.images import fit_long_side, output_dimensions, read_image, resize
from reverie.look import INIT_MODES, Look, crop_box
from reverie.nets import check_layers
from reverie.runtime import Runtime, autocast_dtype, fp32_finish, resolve_device
from reverie.version import __version__

if TYPE_CHECKING:
    from reverie.engine.painter import Painter

ImageInput = str | os.PathLike[str] | np.ndarray


@dataclass(frozen=True)
class StylizeResult:
    image: np.ndarray
    """(H, W, 3) float32 RGB in 0..1, at the output size."""
    look: Look
    losses: Losses
    iterations: int
    stopped: bool
    seconds: float
    device: str
    precision: str
    working_size: tuple[int, int]
    output_size: tuple[int, int]
    weights: str

    def metadata(self) -> dict[str, Any]:
        """What a sidecar records: enough to know how an image was made and to make it again."""
        return {
            "look": self.look.to_dict(),
            "look_hash": self.look.hash(),
            "u": self.look.describe_u(),
            "losses": {**asdict(self.losses), "total": self.losses.total},
            "iterations": self.iterations,
            "stopped_early": self.stopped,
            "seconds": round(self.seconds, 3),
            "seconds_per_iteration": round(self.seconds / max(self.iterations, 1), 4),
            "device": self.device,
            "precision": self.precision,
            "working_size": list(self.working_size),
            "output_size": list(self.output_size),
            "weights": self.weights,
            "versions": {
                "reverie": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        }


@dataclass(frozen=True)
class Continuity:
    """What a frame of a shot keeps from the one before (Ruder et al. 2016); made by the shot pipeline.

    warped: (H, W, 3) float32 RGB 0..1, the previous painted frame warped into this one by the optical
    flow, at any size of the plate's shape (it is resized to each pass). mask: (H, W) float32 0..1,
    where the flow is trusted. The frame starts from `warped` where trusted and from the plate elsewhere,
    and a temporal loss of the look's `temporal_weight` keeps it there.
    """

    warped: np.ndarray
    mask: np.ndarray


def stylize(
    content: ImageInput,
    style: ImageInput | Sequence[ImageInput] | None = None,
    look: Look | None = None,
    *,
    runtime: Runtime | None = None,
    output_size: int | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    continuity: Continuity | None = None,
) -> StylizeResult:
    """Paint `content` in the style of `style` (one or several images; default: the look's styles).

    A one-off `Painter(runtime)` paints it (see `paint`); to paint many frames, hold a Painter and call
    its `stylize`, which keeps the network and the painting's targets from one frame to the next.
    """
    from reverie.engine.painter import Painter

    painter = Painter(runtime)
    return painter.stylize(
        content,
        style,
        look,
        output_size=output_size,
        callback=callback,
        should_stop=should_stop,
        continuity=continuity,
    )


def paint(
    painter: Painter,
    content: ImageInput,
    style: ImageInput | Sequence[ImageInput] | None,
    look: Look,
    *,
    output_size: int | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    continuity: Continuity | None = None,
) -> StylizeResult:
    """Paint `content` after `style` with the painter's network and runtime.

    output_size is the long side of the returned image. Given and larger than the working size, it is
    reached as the look's `upscale` says (refine: coarse-to-fine optimisation; plain: resampling). By
    default the image has the content's own size, resampled (Lanczos) from the working size.
    continuity: for a frame of a shot, the previous painted frame warped into this one (see
    `Continuity`). Raises ReverieError for anything the user can fix.
    """
    started = time.perf_counter()
    plate = _as_array(content, "content")
    styles = [_as_array(s, "style") for s in _style_list(style, look)]
    work_w, work_h = fit_long_side(plate.shape[1], plate.shape[0], look.size)
    check_memory(look, painter.runtime, painter.device, work_w, work_h)
    net, weights_source = painter.network(look.network, look.pooling)
    check_layers(look.network, _layer_names(net), look.layers())
    guides = read_guides(look, plate.shape)  # once: every pass and tile resizes these
    optimise = _Pass(painter, plate, styles, guides, net, callback, should_stop, continuity)

    start = _init_image(look, (work_w, work_h), painter.device) if continuity is None else None
    result = optimise(look, start)
    image, iterations = result.image, result.iterations
    for long_side in refine_sizes(look, output_size) if not result.stopped else []:
        stage = look.replace(size=long_side, iterations=look.refine_iterations, init="content")
        start = _upsample(image, fit_long_side(plate.shape[1], plate.shape[0], long_side))
        result = _refine(optimise, stage, start)
        image, iterations = result.image, iterations + result.iterations
        if result.stopped:
            break
    out = finish(image, plate, look.color, output_size)
    return StylizeResult(
        image=out,
        look=look,
        losses=result.losses,
        iterations=iterations,
        stopped=result.stopped,
        seconds=time.perf_counter() - started,
        device=str(painter.device),
        precision=painter.runtime.precision,
        working_size=(work_w, work_h),
        output_size=(out.shape[1], out.shape[0]),
        weights=weights_source,
    )


def _layer_names(net: torch.nn.Module) -> list[str]:
    names = getattr(net, "names", None)
    if not isinstance(names, list):
        raise TypeError(f"{type(net).__name__} must list its layers in .names, as Reverie's networks do")
    return names


def refine_sizes(look: Look, output_size: int | None) -> list[int]:
    """Long sides of the coarse-to-fine passes after the working size: doubling up to the output size."""
    if look.upscale != "refine" or not output_size or output_size <= look.size:
        return []
    sizes, side = [], look.size
    while side * 2 < output_size:
        side *= 2
        sizes.append(side)
    return [*sizes, output_size]


def planned_iterations(look: Look, width: int, height: int, output_size: int | None, runtime: Runtime) -> int:
    """Iterations `stylize` will report for a width x height plate: the working pass, then each refine
    pass once per tile (for a progress bar's total)."""
    device = resolve_device(runtime.device)
    total = look.iterations
    for long_side in refine_sizes(look, output_size):
        w, h = fit_long_side(width, height, long_side)
        tile = _tile_side(look.replace(size=long_side), runtime, device, w, h)
        tiles = 1 if tile is None else tile_count(h, w, tile, _overlap(tile))
        total += tiles * look.refine_iterations
    return total


@dataclass(frozen=True)
class _Inputs:
    """What every optimisation at one size shares, made once per size (not per tile or phase)."""

    content: torch.Tensor
    """The plate as the network sees it (luminance only with colour mode "content")."""
    styles: list[torch.Tensor]
    grams: list[Grams]
    guidance: Guidance | None
    temporal: Temporal | None


class _Pass:
    """Optimisations of the plate at a look's working size, or of a tile of it, with what each size
    needs made once."""

    def __init__(
        self,
        painter: Painter,
        plate: np.ndarray,
        styles: list[np.ndarray],
        guides: _Guides,
        net: torch.nn.Module,
        callback: Callback | None,
        should_stop: Callable[[], bool] | None,
        continuity: Continuity | None,
    ) -> None:
        self.painter, self.plate, self.styles, self.guides, self.net = painter, plate, styles, guides, net
        self.callback, self.should_stop, self.continuity = callback, should_stop, continuity
        self._made: tuple[int, _Inputs] | None = None

    def inputs(self, look: Look) -> _Inputs:
        """The content, styles, Grams, guidance and continuity at the look's size (the last size kept)."""
        if self._made is None or self._made[0] != look.size:
            self._made = None  # the last size's tensors go before this size's are made
            release_freed_memory()  # the last pass's buffers, which this one cannot all reuse
            self._made = (look.size, self._make(look))
        return self._made[1]

    def _make(self, look: Look) -> _Inputs:
        size = fit_long_side(self.plate.shape[1], self.plate.shape[0], look.size)
        device = self.painter.device
        content = _to_tensor(resize(self.plate, size), device)
        styles = [_to_tensor(prepare_style(s, look), device) for s in self.styles]
        net_content, net_styles = _apply_color_mode(look.color, content, styles)
        grams = [self.painter.style_grams(look, s) for s in net_styles]
        guidance, temporal = self.guides.at(size, device), self._temporal(look, size)
        return _Inputs(net_content, net_styles, grams, guidance, temporal)

    def __call__(
        self, look: Look, init: torch.Tensor | None, box: tuple[int, int, int, int] | None = None
    ) -> TransferResult:
        made = self.inputs(look)
        if box is not None:
            release_freed_memory()  # the last tile's buffers
        net_content, guidance, temporal = made.content, made.guidance, made.temporal
        if temporal is not None and init is None:
            # Start from the previous painted frame where the flow is trusted, from the plate elsewhere.
            init = temporal.target * temporal.mask + net_content * (1 - temporal.mask)
        if box is not None:
            top, left, bottom, right = box
            net_content = net_content[..., top:bottom, left:right]
            guidance = guidance.crop(*box) if guidance else None
            temporal = temporal.crop(*box) if temporal else None
        size = made.content.shape[-2:]
        return transfer(
            net_content,
            made.styles,
            look,
            self.net,
            init=init,
            style_weights=look.style_weights or None,
            autocast_dtype=autocast_dtype(self.painter.runtime),
            fp32_finish=fp32_finish(self.painter.runtime, look.iterations),
            guidance=guidance,
            frame_size=(size[0], size[1]),
            temporal=temporal,
            callback=self.callback,
            should_stop=self.should_stop,
            release_memory=release_freed_memory,
            grams=made.grams,
        )

    def measure(self, look: Look, image: torch.Tensor) -> Losses:
        """The losses of a whole frame at the look's size, as one optimisation of it would report them:
        a frame too large to optimise whole is measured whole, in strips (no gradients)."""
        made = self.inputs(look)
        dtype = autocast_dtype(self.painter.runtime) if self.painter.runtime.precision == "bf16" else None
        objective = Objective(
            self.net,
            made.content,
            made.styles,
            look,
            look.style_weights or None,
            dtype,
            made.guidance,
            None,
            made.temporal,
            made.grams,
        )
        return objective.measure(image)

    def _temporal(self, look: Look, size: tuple[int, int]) -> Temporal | None:
        """The continuity constraint at this pass's size, in the colours the network sees."""
        if self.continuity is None:
            return None
        target = _to_tensor(resize(self.continuity.warped, size), self.painter.device)
        if look.color == "content":
            target = color.luminance_image(target)
        mask = resize(self.continuity.mask[..., None].astype(np.float32), size)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask)).permute(2, 0, 1)[None]
        return Temporal(target, mask_t.to(self.painter.device), look.temporal_weight)


def _refine(optimise: _Pass, look: Look, start: torch.Tensor) -> TransferResult:
    """One refine pass, whole or, when the frame does not fit (or runtime.tile_size asks), in tiles.

    A tiled pass reports the losses of the whole blended frame, measured once, and the iterations of
    all its tiles (what ran, and what the progress bar counted)."""
    height, width = start.shape[-2:]
    runtime = optimise.painter.runtime
    tile = _tile_side(look, runtime, optimise.painter.device, width, height)
    if tile is None:
        return optimise(look, start)
    results: list[TransferResult] = []

    def run(box: tuple[int, int, int, int]) -> torch.Tensor:
        top, left, bottom, right = box
        result = optimise(look, start[..., top:bottom, left:right], box)
        results.append(replace(result, image=torch.empty(0)))  # the blended frame holds the pixels
        return result.image

    image = run_tiled(run, start.shape, tile, _overlap(tile))
    release_freed_memory()
    losses = optimise.measure(look, image)
    stopped = any(r.stopped for r in results)
    return TransferResult(image, losses, sum(r.iterations for r in results), stopped)


def _overlap(tile: int) -> int:
    """Tiles overlap by an eighth of their side: wide enough a cross-fade to hide any seam."""
    return max(16, tile // 8)


_HEAP_SLACK = 0.15
"""Share of a tiled pass's budget left to the heap's fragmentation within a phase (glibc keeps freed
buffers there for speed; see `keep_freed_memory`). A 3840x2160 frame in 16 GiB, its 1920-px tiles
sized to the whole budget, peaked at 16.45 GiB in its first tile and 17.3 GiB in its fourth: 4.5 KB
per tile pixel where the estimate counts 4.1. With this share the tiles are 1728 px."""


def _tile_side(look: Look, runtime: Runtime, device: torch.device, width: int, height: int) -> int | None:
    """None when the pass runs whole, else its tile side: runtime.tile_size, or the largest square tile
    that fits beside the frame's own buffers when the whole frame does not fit."""
    if runtime.tile_size is not None:
        return runtime.tile_size if runtime.tile_size < max(width, height) else None
    budget = runtime.max_memory or available_memory(device)
    layers = (*look.layers().content, *look.layers().style)
    if estimate_bytes(look.network, height, width, layers, history=look.lbfgs_history) <= budget:
        return None
    frame = frame_bytes(height, width, round(look.style_scale * look.size))
    room = round(budget * (1 - _HEAP_SLACK)) - frame
    side = largest_fitting_side(look.network, 1.0, layers, room, look.lbfgs_history)
    return side if side < max(width, height) else None


def _upsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The previous pass's result at the next size, as the next pass's start."""
    return _to_tensor(resize(_to_array(image), size), image.device)


def prepare_style(style: np.ndarray, look: Look) -> np.ndarray:
    """Crop (texture transfer) then scale so the long side is style_scale x the working size."""
    if look.style_crop is not None:
        left, top, right, bottom = crop_box(look.style_crop, style.shape[1], style.shape[0])
        style = style[top:bottom, left:right]
    long_side = max(16, round(look.style_scale * look.size))
    return resize(style, fit_long_side(style.shape[1], style.shape[0], long_side))


def finish(image: torch.Tensor, plate: np.ndarray, mode: str, output_size: int | None) -> np.ndarray:
    """Working-size result (1, 3, h, w) 0-255 -> (H, W, 3) 0..1 at the output size.

    With colour mode "content" the chroma comes from the full-resolution plate, not from the upsampled
    working image, so colour edges stay as sharp as the plate's.
    """
    height, width = plate.shape[:2]
    size = output_dimensions(width, height, output_size)
    out = resize(_to_array(image), size)
    if mode == "content":
        plate_t = torch.from_numpy(resize(plate, size)).permute(2, 0, 1)[None] * 255
        out_t = torch.from_numpy(out).permute(2, 0, 1)[None] * 255
        out = _to_array(color.keep_chroma(out_t, plate_t))
    return out


@dataclass(frozen=True)
class _Guides:
    """A look's masks and u-map as read from disk, once per frame (every pass and tile resizes them)."""

    masks: tuple[np.ndarray, ...] = ()
    u_map: np.ndarray | None = None

    def at(self, size: tuple[int, int], device: torch.device) -> Guidance | None:
        """The guidance at a pass's working size, as (1, 1, h, w) maps of 0..1."""
        if not self.masks and self.u_map is None:
            return None

        def grey(image: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(resize(image, size).mean(axis=2))[None, None].to(device)

        return Guidance(tuple(grey(m) for m in self.masks), None if self.u_map is None else grey(self.u_map))


def read_guides(look: Look, plate_shape: tuple[int, ...]) -> _Guides:
    """The look's masks and u-map, read and checked against the plate's aspect ratio."""
    u_map = _guide(look.u_map, "u-map", plate_shape, grey=True) if look.u_map else None
    return _Guides(tuple(_guide(m, "mask", plate_shape) for m in look.style_masks), u_map)


def _guide(path: str, what: str, plate_shape: tuple[int, ...], grey: bool = False) -> np.ndarray:
    image = read_image(path)
    (h, w), (ph, pw) = image.shape[:2], plate_shape[:2]
    if abs(w / h - pw / ph) > 0.01 * pw / ph:
        raise ReverieError(
            f"{what} {path} is {w}x{h} but the plate is {pw}x{ph}: give a {what} of the plate's aspect ratio "
            "(Reverie does not stretch it)"
        )
    if grey and float(np.ptp(image, axis=2).max()) > 2 / 255:
        raise ReverieError(f"{what} {path} is not greyscale: save it as a grey image (white = the look's u)")
    return image


def _style_list(style: ImageInput | Sequence[ImageInput] | None, look: Look) -> list[ImageInput]:
    if style is None:
        styles: list[ImageInput] = list(look.styles)
    elif isinstance(style, str | os.PathLike | np.ndarray):
        styles = [style]
    else:
        styles = list(style)
    if not styles:
        raise ReverieError("no style image: give one with --style PAINTING (or a look that names one)")
    if look.style_weights and len(look.style_weights) != len(styles):
        raise ReverieError(
            f"{len(look.style_weights)} style weights for {len(styles)} styles: give one per style"
        )
    return styles


def _as_array(image: ImageInput, what: str) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ReverieError(f"{what} array must be (H, W, 3) RGB, got shape {image.shape}")
        return np.clip(image.astype(np.float32, copy=False), 0, 1)
    return read_image(image)


def _apply_color_mode(
    mode: str, content: torch.Tensor, styles: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if mode == "match":
        return content, [color.match_color(s, content) for s in styles]
    if mode == "content":
        # Luminance-only transfer: the network sees grey images; the plate's chroma returns in finish().
        return color.luminance_image(content), [color.match_luminance(s, content) for s in styles]
    return content, styles


def _init_image(look: Look, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """A start image read from a path; None lets the core build content, mixed or noise."""
    if look.init in INIT_MODES:
        return None
    w, h = size
    start = read_image(look.init)
    if abs(start.shape[1] / start.shape[0] - w / h) > 0.02:
        raise ReverieError(
            f"init image {look.init} is {start.shape[1]}x{start.shape[0]}: its aspect ratio differs from "
            "the content's; give an image of the content's shape"
        )
    tensor = _to_tensor(resize(start, (w, h)), device)
    return color.luminance_image(tensor) if look.color == "content" else tensor


def check_memory(look: Look, runtime: Runtime, device: torch.device, width: int, height: int) -> None:
    """Refuse, before anything is allocated, a working size of `look` that would not fit in memory; the
    message names the --size that fits. Shells that only know the plate's size call it too."""
    budget = runtime.max_memory or available_memory(device)
    layers = (*look.layers().content, *look.layers().style)
    need = estimate_bytes(look.network, height, width, layers, history=look.lbfgs_history)
    if need > budget:
        fits = largest_fitting_side(look.network, width / height, layers, budget, look.lbfgs_history)
        raise ReverieError(
            f"a {width}x{height} working size needs about {need / 2**30:.1f} GiB but "
            f"{budget / 2**30:.1f} GiB is available on {device}: use --size {fits} or less "
            "(and --output-size to upsample)"
        )


def _to_array(image: torch.Tensor) -> np.ndarray:
    return (image[0].detach().float().permute(1, 2, 0).cpu().numpy() / 255.0).clip(0, 1).astype(np.float32)
