"""A `Look`: every creative choice of a render, in one frozen, validated value.

The *Come Swim* paper (Joshi, Stewart, Shapiro 2017) found that Gatys-style transfer collapses into a few
controls a director can drive: the degree of unrealism ``u`` (style:content weight ratio ``10**u``), a
tight crop of the style image (texture transfer), colour, iterations, working resolution and the network.
This module is the single source of truth for their defaults: the CLI and every other shell derive their
options from the field defaults below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from reverie.errors import ReverieError
from reverie.textfile import KB, parse_toml, read_text

NETWORKS = ("vgg16", "vgg19", "googlenet")
OPTIMIZERS = ("lbfgs", "adam")
COLOR_MODES = ("style", "content", "match")
INIT_MODES = ("content", "mixed", "noise")
POOLING = ("max", "avg")
UPSCALES = ("refine", "plain")

# u outside this range is a typo or a misunderstanding, not a look: at u=-2 the style is invisible and
# beyond u=10 the photo is gone entirely. The useful range, per the paper, is about 1 to 6.
U_RANGE = (-2.0, 10.0)
U_USEFUL = "1 (a photo with a hint of paint) to 6 (the painting's texture everywhere)"

LOOK_VERSION = 1

MAX_LOOK_BYTES = 64 * KB
"""A look is about 1 KB of TOML; the web page's uploads have the same limit."""
_LOOK_FIX = "give a TOML look file saved with --save-look"


@dataclass(frozen=True)
class Layers:
    """The layers a look's losses are measured on, with each style layer's weight."""

    content: tuple[str, ...]
    style: tuple[str, ...]
    style_weights: tuple[float, ...]


DEFAULT_LAYERS: dict[str, Layers] = {
    # The film's (Gatys et al.): conv4_2 for content; conv1_1 ... conv5_1 for style, 0.2 each.
    "vgg16": Layers(("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), (0.2,) * 5),
    "vgg19": Layers(("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"), (0.2,) * 5),
    # GoogLeNet. Content: inception3b is the last layer at stride 8, the stride of Gatys' conv4_2, so the
    # shot's layout is held at the same granularity as with VGG; its receptive field (59 px) is the
    # closest of the stride-8 layers to conv4_2's (76 px in VGG16, 84 px in VGG19). Deeper layers
    # (stride 16, e.g. inception4c, 171 px) let edges and faces drift, which flickers in a film.
    # Style: as Gatys' conv1_1..conv5_1, the first layer that sees each scale (strides 2, 4, 8, 16, 32),
    # equally weighted. conv3 stands for stride 4 rather than conv2 because conv2 is a 1x1 conv, a mere
    # channel mix of conv1's pooled output; conv3 is the first 3x3 filter at that scale. This is also
    # the set of Frank Liu's Caffe style-transfer (conv1/7x7_s2, conv2/3x3, inception_3a, _4a, _5a).
    "googlenet": Layers(
        ("inception3b",), ("conv1", "conv3", "inception3a", "inception4a", "inception5a"), (0.2,) * 5
    ),
}
"""Each network's default layers; a look's own `content_layers`, `style_layers` override them."""


def _vgg(blocks: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"conv{b}_{c}" for b, n in enumerate(blocks, 1) for c in range(1, n + 1))


NETWORK_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg16": _vgg((2, 2, 3, 3, 3)),
    "vgg19": _vgg((2, 2, 4, 4, 4)),
    "googlenet": (
        "conv1",
        "conv2",
        "conv3",
        *(f"inception{n}" for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")),
    ),
}
"""Each network's layer names, in network order: a look is checked against them before any network is
loaded (`reverie.nets` builds the networks; a test holds the two to the same names)."""


@dataclass(frozen=True)
class Look:
    """The artistic choices of a render; paths and devices live elsewhere (see `Runtime`)."""

    u: float = 4.0
    """Degree of unrealism: the style term is weighted 10**u times the content term (film default 4)."""
    iterations: int = 512
    """Optimiser iterations at the working size."""
    size: int = 512
    """Working resolution: the long side, in pixels, that the optimisation runs at."""
    upscale: str = "refine"
    """How an --output-size larger than the working size is reached: refine (coarse-to-fine, Gatys et
    al. 2017: keep optimising at doubling sizes so strokes keep their size relative to the frame) or
    plain (the film's: resample the working result)."""
    refine_iterations: int = 64
    """Iterations at each refine scale (the texture is already there; this sharpens it)."""
    network: str = "vgg16"
    """Feature network: vgg16 (the film's choice), vgg19, or googlenet (a torchvision checkpoint)."""
    styles: tuple[str, ...] = ()
    """Style image paths (a look refers to its paintings; they are read by the caller)."""
    style_weights: tuple[float, ...] = ()
    """Blend weights of the styles; empty means equal weights."""
    style_masks: tuple[str, ...] = ()
    """Spatial control: per style, a mask image of the plate's shape (white = this style goes here)."""
    u_map: str | None = None
    """Local degree of unrealism: a grey image of the plate's shape that weighs the style term by its grey
    g and the content term by 1/g (white = the look's u, black = the plate kept). The local
    style:content ratio is 10**u * g**2, so a grey of 0.3 is about one step of u less."""
    style_crop: tuple[float, float, float, float] | None = None
    """Texture transfer: X, Y, W, H of the style image, in pixels or as 0-1 fractions (all <= 1)."""
    style_scale: float = 1.2
    """The style image is resized so that its long side is style_scale x the working size."""
    color: str = "style"
    """style: the painting's colours; content: keep the plate's colours; match: recolour the painting."""
    init: str = "content"
    """content, mixed (0.95 content + 0.05 style), noise, or a path to an image to start from."""
    optimizer: str = "lbfgs"
    """lbfgs (the film's) or adam."""
    seed: int = 0
    """Seeds noise init and anything random: the same look renders the same pixels on a CPU."""
    tv_weight: float = 0.0
    """Total-variation smoothing weight (the film used none)."""
    temporal_weight: float = 1.0
    """Shots: how strongly each frame keeps the previous painted frame where the optical flow is
    trusted (Ruder et al. 2016); 0 renders every frame on its own. Scaled with 10**u, so it holds at
    every u."""
    first_iterations: int | None = None
    """Shots: iterations of a shot's first frame, which starts from scratch (later frames start from the
    previous one, warped). None: twice `iterations`."""
    content_layers: tuple[str, ...] = ()
    """Empty: the network's defaults (VGG: conv4_2, as the film)."""
    style_layers: tuple[str, ...] = ()
    """Empty: the network's defaults (VGG: conv1_1, conv2_1, conv3_1, conv4_1, conv5_1)."""
    style_layer_weights: tuple[float, ...] = ()
    """One per style layer; empty: the network's defaults (VGG: 0.2 each)."""
    pooling: str = "max"
    """max (as trained) or avg (smoother gradients, softer look)."""
    lbfgs_history: int = 8
    """L-BFGS memory; the film's implementation kept 8 steps."""
    adam_lr: float = 8.0
    """Adam step size in pixel units (0-255)."""
    version: int = field(default=LOOK_VERSION, repr=False)

    def __post_init__(self) -> None:
        for name, value in _coerce(self.__dict__).items():  # lists from Python callers, as from TOML
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)
        _validate(self)
        _normalise_numbers(self)

    def files(self) -> tuple[str, ...]:
        """The files the look reads: its paintings, their masks, the u map."""
        return (*self.styles, *self.style_masks, *((self.u_map,) if self.u_map else ()))

    def layers(self) -> Layers:
        """The content and style layers in use: the look's own, or its network's defaults."""
        defaults = DEFAULT_LAYERS[self.network]
        return Layers(
            self.content_layers or defaults.content,
            self.style_layers or defaults.style,
            self.style_layer_weights or defaults.style_weights,
        )

    @property
    def ratio(self) -> float:
        """Style-to-content weight ratio, 10**u."""
        return 10.0**self.u

    def describe_u(self) -> str:
        """The film's way of stating the degree of unrealism, e.g. ``u=4 (style:content 1e4)``."""
        return f"u={_fmt(self.u)} (style:content 1e{_fmt(self.u)})"

    @property
    def shot_first_iterations(self) -> int:
        """Iterations of a shot's first frame."""
        return self.first_iterations or 2 * self.iterations

    def replace(self, **changes: Any) -> Look:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **_coerce(changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain data; None values are left out (TOML has no null)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "look") -> Look:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReverieError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**_coerce(data))
        except (TypeError, ValueError, ReverieError) as err:
            raise ReverieError(f"{source}: {err}") from None

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, *, source: str = "look") -> Look:
        """A look from TOML text; nothing in it (nesting, huge or non-finite numbers) gets past one line."""
        return cls.from_dict(parse_toml(text, source, _LOOK_FIX), source=source)

    @classmethod
    def load(cls, path: str | Path) -> Look:
        text = read_text(path, "look file", _LOOK_FIX, limit=MAX_LOOK_BYTES)
        return cls.from_toml(text, source=str(path))

    def hash(self) -> str:
        """A stable content hash: the same choices give the same hash on every machine and version."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_FLOAT_FIELDS = ("u", "style_scale", "tv_weight", "adam_lr", "temporal_weight")
_FLOAT_TUPLES = ("style_weights", "style_layer_weights", "style_crop")


def _normalise_numbers(look: Look) -> None:
    """Store 3 as 3.0 so that Look(u=3) and Look(u=3.0) are equal and hash alike."""
    for name in _FLOAT_FIELDS:
        object.__setattr__(look, name, float(getattr(look, name)))
    for name in _FLOAT_TUPLES:
        value = getattr(look, name)
        if value is not None:
            object.__setattr__(look, name, tuple(float(v) for v in value))


def _fmt(x: float) -> str:
    return f"{x:g}"


_TUPLE_FIELDS = {f.name for f in fields(Look) if str(f.type).startswith("tuple")}


def _coerce(data: dict[str, Any]) -> dict[str, Any]:
    """TOML and JSON give lists; the frozen dataclass wants (hashable) tuples."""
    return {k: tuple(v) if k in _TUPLE_FIELDS and isinstance(v, list) else v for k, v in data.items()}


def _validate(look: Look) -> None:
    _check_number(look.u, "u")
    if not U_RANGE[0] <= look.u <= U_RANGE[1]:
        raise ReverieError(
            f"u={look.u:g} is outside {U_RANGE[0]:g}..{U_RANGE[1]:g} (style:content 1e{look.u:g}); "
            f"the useful range is {U_USEFUL}"
        )
    _check_int(look.iterations, "iterations", 1, 100_000)
    _check_int(look.size, "size", 16, 16_384)
    _check_int(look.seed, "seed", 0, 2**63 - 1)
    _check_int(look.lbfgs_history, "lbfgs_history", 1, 1000)
    _check_choice(look.network, "network", NETWORKS)
    _check_choice(look.optimizer, "optimizer", OPTIMIZERS)
    _check_choice(look.color, "color", COLOR_MODES)
    _check_choice(look.pooling, "pooling", POOLING)
    _check_choice(look.upscale, "upscale", UPSCALES)
    _check_int(look.refine_iterations, "refine_iterations", 1, 100_000)
    if not isinstance(look.init, str) or not look.init:
        raise ReverieError(f"init must be one of {', '.join(INIT_MODES)} or an image path")
    _check_lists(look)
    for name in ("style_scale", "tv_weight", "adam_lr", "temporal_weight"):
        _check_number(getattr(look, name), name)
    if look.first_iterations is not None:
        _check_int(look.first_iterations, "first_iterations", 1, 100_000)
    if not 0 <= look.temporal_weight <= 1e6:
        raise ReverieError(f"temporal_weight={look.temporal_weight:g} must be from 0 (off) to 1e6")
    if not 0.05 <= look.style_scale <= 8:
        raise ReverieError(f"style_scale={look.style_scale:g} is outside 0.05..8; 1.2 is the film's")
    if look.tv_weight < 0 or look.adam_lr <= 0:
        raise ReverieError("tv_weight must be >= 0 and adam_lr > 0")
    _validate_styles(look)
    _validate_layers(look)
    if look.style_crop is not None:
        _validate_crop(look.style_crop)


def _check_number(value: Any, name: str) -> None:
    # abs() <= the largest float: refuses nan, inf and an int too large to become a float.
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= sys.float_info.max:
        raise ReverieError(f"{name} must be a finite number, got {_shown(value)}")


def _check_int(value: Any, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ReverieError(f"{name} must be a whole number from {lo} to {hi}, got {_shown(value)}")


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ReverieError(f"unknown {name} {_shown(value)}: choose {' or '.join(choices)}")


def _check_lists(look: Look) -> None:
    """A list setting given one value (styles = "a.png") would otherwise be read letter by letter."""
    for name in _TUPLE_FIELDS:
        value = getattr(look, name)
        if not isinstance(value, tuple) and not (value is None and name == "style_crop"):
            raise ReverieError(f"{name} must be a list, e.g. {name} = [...], got {_shown(value)}")


def _check_paths(values: tuple[Any, ...], name: str, what: str = "image paths") -> None:
    for value in values:
        if not isinstance(value, str) or not value:
            raise ReverieError(f"{name} must be {what} (text in quotes), got {_shown(value)}")


def _shown(value: Any) -> str:
    """A user's value in a message, at most one short line of it."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."


def _validate_styles(look: Look) -> None:
    _check_paths(look.styles, "styles")
    _check_paths(look.style_masks, "style_masks")
    if look.u_map is not None:
        _check_paths((look.u_map,), "u_map", "an image path")
    if look.style_masks and look.styles and len(look.style_masks) != len(look.styles):
        n, m = len(look.style_masks), len(look.styles)
        raise ReverieError(f"{n} masks for {m} styles: give one --mask per --style, in the same order")
    if look.style_weights:
        # A look used from Python may carry weights for style arrays it does not name.
        if look.styles and len(look.style_weights) != len(look.styles):
            n, m = len(look.style_weights), len(look.styles)
            raise ReverieError(f"{n} style weights for {m} styles: give one weight per style")
        for w in look.style_weights:
            _check_number(w, "style weight")
        if min(look.style_weights) < 0 or sum(look.style_weights) <= 0:
            raise ReverieError("style weights must be >= 0 and not all zero")


def _validate_layers(look: Look) -> None:
    if len(look.style_layer_weights) != len(look.style_layers):
        raise ReverieError("style_layer_weights must give one weight per style layer (or leave both empty)")
    known = NETWORK_LAYERS[look.network]
    for name in (*look.content_layers, *look.style_layers):
        if not isinstance(name, str) or not name:
            example = DEFAULT_LAYERS[look.network].content[0]
            raise ReverieError(f"layer {_shown(name)} is not a layer name like {example}")
        if name not in known:
            raise ReverieError(f"{look.network} has no layer {_shown(name)}; its layers: {', '.join(known)}")
    for w in look.style_layer_weights:
        _check_number(w, "style layer weight")
    if look.style_layer_weights and (min(look.style_layer_weights) < 0 or sum(look.style_layer_weights) <= 0):
        raise ReverieError("style layer weights must be >= 0 and not all zero")


def _validate_crop(crop: tuple[float, ...]) -> None:
    if len(crop) != 4:
        raise ReverieError("style crop must be X,Y,W,H")
    for v in crop:
        _check_number(v, "style crop value")
    x, y, w, h = crop
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ReverieError(f"style crop {format_crop(crop)} must have X,Y >= 0 and W,H > 0")


def format_crop(crop: tuple[float, ...]) -> str:
    return ",".join(_fmt(v) for v in crop)


def parse_crop(text: str) -> tuple[float, float, float, float]:
    """Parse ``X,Y,W,H`` (pixels, or 0-1 fractions of the style image when all four are <= 1)."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise ReverieError(
            f"--style-crop {text!r} must be four numbers X,Y,W,H, e.g. 120,40,300,300 or 0.1,0.1,0.4,0.4"
        )
    _validate_crop(values)
    return values[0], values[1], values[2], values[3]


def crop_box(crop: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) of a crop on a width x height style image; errors if outside."""
    x, y, w, h = crop
    if max(crop) <= 1:
        x, y, w, h = x * width, y * height, w * width, h * height
    box = (round(x), round(y), round(x + w), round(y + h))
    if box[2] > width or box[3] > height or box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise ReverieError(
            f"style crop {format_crop(crop)} does not fit the {width}x{height} style image "
            "(it must lie inside it and be at least 8x8 px)"
        )
    return box
