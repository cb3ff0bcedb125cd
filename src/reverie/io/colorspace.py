"""Colour management for shots: plate colourspaces to and from the display-referred RGB the network sees.

The networks were trained on display-referred sRGB photos (0..1), so every plate is brought onto a
display before stylising and the painting is taken back to the plate's own colourspace afterwards.
Colourspace knowledge comes from an OpenColorIO config (`ColorConfig`): the show's own (``$OCIO`` or
``--ocio-config``, chosen in the app layer) or, by default, OCIO's built-in ``studio-config-latest``
(ACES 2.0), so names, aliases, roles and transforms match what Nuke, Resolve and other OCIO tools use.

Three kinds of colourspace, three rules:
- display-referred / video-encoded spaces (sRGB, Rec.709 video, display spaces): colourimetric
  conversion to the display's colourspace (``sRGB Encoded Rec.709 (sRGB)`` by default);
- data (``Raw``): passed through, clipped to 0..1;
- scene-referred spaces (scene-linear such as ACEScg, camera log such as ARRI LogC4, ACEScct): the
  config's display and view (by default display ``sRGB - Display``, view ``ACES 2.0 - SDR 100 nits
  (Rec.709)``), whose inverse takes the painting back to scene values.

Loaded configs and processors are cached by the config's source and checksum: values, not state.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio

from reverie.errors import ReverieError

__all__ = [
    "BUILTIN_CONFIG",
    "DISPLAY",
    "NETWORK_COLORSPACE",
    "SCENE_CEILING",
    "STUDIO",
    "VIEW",
    "ColorConfig",
    "check_invertible",
    "default_colorspace",
    "from_display",
    "is_display_referred",
    "network_colorspace",
    "open_color_config",
    "resolve_colorspace",
    "to_display",
]

BUILTIN_CONFIG = "ocio://studio-config-latest"
# The space the networks work in, and the display/view that renders scene-referred plates into it.
NETWORK_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"
DISPLAY = "sRGB - Display"
VIEW = "ACES 2.0 - SDR 100 nits (Rec.709)"
# Highest display value inverted by default for scene-referred spaces. Measured on the ACES 2.0 SDR
# inverse (ACEScg): 0.99 -> 34.5, 0.995 -> 54.6, 0.999 -> 101, 1.0 -> 128 scene-linear. The inverse stays
# finite over the whole 0..1 cube, but above ~0.995 one 10-bit display code is worth >10% of scene value,
# so painted near-white would turn into blown highlights far above anything a real plate holds.
SCENE_CEILING = 0.995

# Our own short names, for what people type on a command line; the config's names, aliases and roles
# come first, and a short name counts only where the config has the space it names.
_FRIENDLY = {
    "srgb": NETWORK_COLORSPACE,
    "linear": "Linear Rec.709 (sRGB)",
    "linear rec.709": "Linear Rec.709 (sRGB)",
    "linear srgb": "Linear Rec.709 (sRGB)",
    "logc4": "ARRI LogC4",
    "logc3": "ARRI LogC3 (EI800)",
    "logc": "ARRI LogC3 (EI800)",
    # Rec.709 video is graded and watched on BT.1886 (gamma 2.4) monitors: matching what was seen means
    # decoding with gamma 2.4, not inverting the camera OETF ("Camera Rec.709" stays available by name).
    "rec.709": "Gamma 2.4 Encoded Rec.709",
    "rec709": "Gamma 2.4 Encoded Rec.709",
    "slog3": "S-Log3 S-Gamut3.Cine",
    "s-log3": "S-Log3 S-Gamut3.Cine",
    "vlog": "V-Log V-Gamut",
    "v-log": "V-Log V-Gamut",
    "log3g10": "Log3G10 REDWideGamutRGB",
    "aces": "ACES2065-1",
}
# Encodings that are already meant to be looked at as they are: no tone mapping, only colourimetry.
_DISPLAY_ENCODINGS = {"sdr-video", "hdr-video", "edr-video", "display-linear", "data"}
_SCENE_SUFFIXES = {".exr", ".hdr"}


@dataclass(frozen=True)
class ColorConfig:
    """An OCIO config and the display and view the network paints through: what `open_color_config`
    checked. Plain strings, so it travels to farm workers; each process loads the config once.

    source: an ``ocio://`` built-in name or an absolute path. digest: the file's sha256 (the built-in
    name for a built-in), so a config edited between two runs is another render, and a worker that
    finds another file than the one checked stops.
    """

    source: str = BUILTIN_CONFIG
    display: str = DISPLAY
    view: str = VIEW
    digest: str = BUILTIN_CONFIG

    @property
    def is_studio(self) -> bool:
        """The built-in studio config (any display and view)."""
        return self.source == BUILTIN_CONFIG

    def key(self) -> dict[str, str] | None:
        """What a render key records: None for the default (renders made before configs could be
        chosen keep resuming), else the config's checksum, display and view."""
        if self == STUDIO:
            return None
        return {"config": self.digest, "display": self.display, "view": self.view}


STUDIO = ColorConfig()
"""The default: OCIO's built-in studio config, through the sRGB display and the ACES 2.0 SDR view."""


def open_color_config(
    source: str | os.PathLike[str] | None = None,
    display: str | None = None,
    view: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ColorConfig:
    """The config to use, checked: `source` (a file or ``ocio://`` name), else ``$OCIO`` from `environ`
    (when given), else the built-in studio config; `display` and `view` default to the config's. Every
    problem is a one-line error: an unreadable or invalid config (with OCIO's reason), or a display or
    view the config lacks (with the closest names)."""
    text = os.fspath(source) if source is not None else (environ or {}).get("OCIO", "").strip()
    where = _source(text or BUILTIN_CONFIG)
    digest = where if where.startswith("ocio://") else _sha256(Path(where))
    config = _load(where, digest)
    display = _display(config, where, display)
    view = _view(config, where, display, view)
    return ColorConfig(where, display, view, digest)


def _source(text: str) -> str:
    if text.startswith("ocio://"):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise _fail(
            f"OCIO config {text!r} does not exist or is not a file: check --ocio-config or $OCIO, "
            f"or use a built-in one such as {BUILTIN_CONFIG}"
        )
    return str(path.resolve())


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise _fail(f"cannot read OCIO config {path}: {err.strerror or err}") from None


@functools.lru_cache(maxsize=8)
def _load(source: str, digest: str) -> ocio.Config:
    """The config at `source`, validated; loaded once per process and checksum."""
    if not source.startswith("ocio://") and _sha256(Path(source)) != digest:
        raise _fail(f"OCIO config {source} changed while the render ran: run it again (it resumes)")
    try:
        config = ocio.Config.CreateFromFile(source)
        config.validate()
    except Exception as err:  # OCIO raises its own Exception types, with the reason in the message
        reason = " ".join(str(err).split()) or type(err).__name__
        raise _fail(f"OCIO config {source} cannot be used: {reason}") from None
    return config


def _display(config: ocio.Config, source: str, display: str | None) -> str:
    displays = list(config.getDisplays())
    if display is None:
        return str(config.getDefaultDisplay())
    if display in displays:
        return display
    raise _fail(f"the OCIO config {source} has no display {display!r}: {_closest(display, displays)}")


def _view(config: ocio.Config, source: str, display: str, view: str | None) -> str:
    views = list(config.getViews(display))
    if view is None:
        return str(config.getDefaultView(display))
    if view in views:
        return view
    raise _fail(f"display {display!r} of {source} has no view {view!r}: {_closest(view, views)}")


def _closest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4) or names[:5]
    return f"did you mean {', '.join(repr(n) for n in close)}?" if close else "it has none"


def _config(color: ColorConfig) -> ocio.Config:
    return _load(color.source, color.digest)


def _fail(message: str) -> ReverieError:
    return ReverieError(" ".join(message.split()))


@functools.lru_cache(maxsize=8)
def _spellings(color: ColorConfig) -> dict[str, str]:
    """Every accepted spelling, casefolded -> canonical name: names, OCIO aliases, our short names."""
    config = _config(color)
    out = dict(_friendly(color))
    for cs in config.getColorSpaces(ocio.SEARCH_REFERENCE_SPACE_ALL, ocio.COLORSPACE_ALL):
        for spelling in (cs.getName(), *cs.getAliases()):
            out[spelling.casefold()] = cs.getName()
    return out


@functools.lru_cache(maxsize=8)
def _friendly(color: ColorConfig) -> dict[str, str]:
    """Our short names that this config has the spaces of."""
    config = _config(color)
    return {k: v for k, v in _FRIENDLY.items() if config.getColorSpace(v) is not None}


def resolve_colorspace(name: str, config: ColorConfig = STUDIO) -> str:
    """The canonical name of colourspace `name` in `config`.

    Accepts exact names, OCIO aliases and roles (``acescg``, ``lin_rec709``, ``scene_linear``), any case,
    and our short names where the config has their spaces (``sRGB``, ``linear``, ``LogC4``, ``LogC3``,
    ``Rec.709``, ``S-Log3``...).
    """
    key = " ".join(str(name).split())
    cs = _config(config).getColorSpace(key) if key else None  # OCIO: names, aliases, roles; any case
    if cs is not None:
        return str(cs.getName())
    friendly = _friendly(config)
    if key.casefold() in friendly:
        return friendly[key.casefold()]
    raise _fail(_unknown_message(name, key, config))


def _unknown_message(name: str, key: str, config: ColorConfig) -> str:
    spellings = _spellings(config)
    close = difflib.get_close_matches(key.casefold(), spellings, n=20, cutoff=0.5)
    names = list(dict.fromkeys(spellings[c] for c in close))[:5]
    which = "OpenColorIO studio config" if config.is_studio else f"OCIO config {config.source}"
    if names:
        return f"unknown colourspace {name!r}: did you mean {', '.join(names)}? ({which} names)"
    if config.is_studio:
        return (
            f"unknown colourspace {name!r}: use an OpenColorIO studio config name, e.g. ACEScg, "
            f"ARRI LogC4, ACEScct or {NETWORK_COLORSPACE}"
        )
    some = [cs.getName() for cs in _config(config).getColorSpaces()][:5]
    return f"unknown colourspace {name!r}: the {which} has {', '.join(some)}"


def default_colorspace(path: str | os.PathLike[str], config: ColorConfig = STUDIO) -> str:
    """The colourspace assumed for a file when none is given. In the studio config: ACEScg for EXR/HDR,
    else sRGB-encoded (DPX holds log or video footage with no reliable marker of which; sRGB is the safe
    guess, and the user names the camera log, e.g. ``LogC4``, when it is one). In a show's config: its
    file rules, as every OCIO application reads them."""
    if not config.is_studio:
        name, _rule = _config(config).getColorSpaceFromFilepath(os.fspath(path))
        return resolve_colorspace(name, config)
    suffix = Path(path).suffix.lower()
    return "ACEScg" if suffix in _SCENE_SUFFIXES else NETWORK_COLORSPACE


def is_display_referred(colorspace: str, config: ColorConfig = STUDIO) -> bool:
    """True when `colorspace` needs no tone mapping to be viewed: display spaces, video encodings and data.

    Decided from the OCIO encoding, or from the reference space type when the encoding is not set.
    """
    cs = _config(config).getColorSpace(resolve_colorspace(colorspace, config))
    if cs.isData():
        return True
    encoding = cs.getEncoding()
    if encoding:
        return encoding in _DISPLAY_ENCODINGS
    return cs.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY


@functools.lru_cache(maxsize=16)
def network_colorspace(config: ColorConfig = STUDIO) -> str:
    """The colourspace the network paints in: the display's, for the chosen view (data for a raw view:
    then nothing is converted). The studio config's ``sRGB - Display`` is named `NETWORK_COLORSPACE`:
    the same pixels, under the name the project's files and manifests have always used."""
    name = _config(config).getDisplayViewColorSpaceName(config.display, config.view)
    name = resolve_colorspace(config.display if name == "<USE_DISPLAY_NAME>" else name, config)
    return NETWORK_COLORSPACE if config.is_studio and name == DISPLAY else name


def check_invertible(colorspace: str, config: ColorConfig = STUDIO) -> None:
    """Refuse, in one line, an output `colorspace` that the painting cannot be taken back to from the
    network's space: a view that cannot be inverted (a luma check, say), or for a display-referred space
    a display colourspace that cannot be converted from. Names the display's views that can."""
    name = resolve_colorspace(colorspace, config)
    reason = _inverse_fails(name, config)
    if reason is None:
        return
    views = [v for v in _config(config).getViews(config.display) if v != config.view]
    usable = [v for v in views if _inverse_fails(name, dataclasses.replace(config, view=v)) is None]
    offer = f"use --view {usable[0]!r}" if usable else "the display has no view that can"
    raise _fail(
        f"view {config.view!r} of display {config.display!r} cannot be inverted ({reason}), so a "
        f"painting cannot go back to {name}: {offer}, or write the view's own colourspace "
        f"{network_colorspace(config)!r}"
    )


def _inverse_fails(colorspace: str, config: ColorConfig) -> str | None:
    """Why the network's space cannot be taken back to `colorspace` (canonical), or None."""
    if _is_passthrough(colorspace, config):
        return None
    try:
        _build(colorspace, True, config)
    except Exception as err:  # OCIO's own exception types
        return " ".join(str(err).split()).rstrip(".") or type(err).__name__
    return None


@functools.lru_cache(maxsize=64)
def _processor(colorspace: str, inverse: bool, config: ColorConfig) -> ocio.CPUProcessor:
    """`_build`, once per process; a failure is the one-line error of `check_invertible`."""
    try:
        return _build(colorspace, inverse, config)
    except Exception:
        check_invertible(colorspace, config)  # says which view, and what to choose instead
        raise


def _build(colorspace: str, inverse: bool, config: ColorConfig) -> ocio.CPUProcessor:
    """Forward: `colorspace` -> the network's space; inverse: back. `colorspace` is canonical, not data."""
    ocio_config, network = _config(config), network_colorspace(config)
    if is_display_referred(colorspace, config):
        src, dst = (network, colorspace) if inverse else (colorspace, network)
        return ocio_config.getProcessor(src, dst).getDefaultCPUProcessor()
    transform = ocio.DisplayViewTransform(src=colorspace, display=config.display, view=config.view)
    direction = ocio.TRANSFORM_DIR_INVERSE if inverse else ocio.TRANSFORM_DIR_FORWARD
    return ocio_config.getProcessor(transform, direction).getDefaultCPUProcessor()


def _rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy of an (H, W, 3) array, safe to process in place."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a float array (H, W, 3), got {getattr(image, 'shape', type(image))}")
    return np.array(image, dtype=np.float32, order="C", copy=True)


def _apply(processor: ocio.CPUProcessor, pixels: np.ndarray) -> np.ndarray:
    if pixels.size:
        processor.applyRGB(pixels)  # in place
    return pixels


def _is_passthrough(colorspace: str, config: ColorConfig) -> bool:
    if colorspace == network_colorspace(config) or _config(config).getColorSpace(colorspace).isData():
        return True
    return bool(_config(config).getColorSpace(network_colorspace(config)).isData())  # a "Raw" view


def to_display(image: np.ndarray, colorspace: str, config: ColorConfig = STUDIO) -> np.ndarray:
    """(H, W, 3) pixels in `colorspace` -> float32 display-referred RGB, 0..1, for the network.

    NaN becomes 0 and infinities the largest half float first, so a damaged pixel cannot spread NaN
    through the network.
    """
    name = resolve_colorspace(colorspace, config)
    pixels = _rgb(image)
    np.nan_to_num(pixels, copy=False, nan=0.0, posinf=65504.0, neginf=-65504.0)
    if not _is_passthrough(name, config):
        _apply(_processor(name, False, config), pixels)
    return np.clip(pixels, 0.0, 1.0, out=pixels)


def from_display(
    image: np.ndarray, colorspace: str, ceiling: float | None = None, config: ColorConfig = STUDIO
) -> np.ndarray:
    """Display-referred RGB (H, W, 3) -> float32 pixels in `colorspace`: the inverse of `to_display`.

    Display values are first clipped to [0, ceiling]. `ceiling` defaults to 1.0 for display-referred
    spaces and to `SCENE_CEILING` for scene-referred ones; pass the plate's own display maximum so that
    painted pixels never go beyond the plate's range. No channel of the result exceeds the inverse of a
    grey at `ceiling` (clipped to it: the ACES 2.0 inverse overshoots it by ~1e-4 for some colours).
    """
    name = resolve_colorspace(colorspace, config)
    if ceiling is None:
        ceiling = 1.0 if is_display_referred(name, config) else SCENE_CEILING
    ceiling = float(np.clip(np.nan_to_num(ceiling), 0.0, 1.0))
    pixels = _rgb(image)
    np.nan_to_num(pixels, copy=False, nan=0.0)
    np.clip(pixels, 0.0, ceiling, out=pixels)
    if _is_passthrough(name, config):
        return pixels
    inverse = _processor(name, True, config)
    top = _apply(inverse, np.full((1, 1, 3), ceiling, np.float32)).reshape(3)
    return np.minimum(_apply(inverse, pixels), top, out=pixels)
