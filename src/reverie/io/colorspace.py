"""Colour management for shots: plate colourspaces to and from the display-referred sRGB the network sees.

The networks were trained on display-referred sRGB photos (0..1), so every plate is brought into that
space before stylising and the painting is taken back to the plate's own colourspace afterwards. All
colourspace knowledge comes from OpenColorIO's built-in ``studio-config-latest`` (ACES 2.0), so names,
aliases and transforms match what Nuke, Resolve and other OCIO tools use.

Three kinds of colourspace, three rules:
- display-referred / video-encoded spaces (sRGB, Rec.709 video, display spaces): colourimetric
  conversion to ``sRGB Encoded Rec.709 (sRGB)``;
- data (``Raw``): passed through, clipped to 0..1;
- scene-referred spaces (scene-linear such as ACEScg, camera log such as ARRI LogC4, ACEScct): the ACES
  2.0 SDR output transform (display ``sRGB - Display``, view ``ACES 2.0 - SDR 100 nits (Rec.709)``),
  whose inverse takes the painting back to scene values.
"""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio

from reverie.errors import ReverieError

__all__ = [
    "DISPLAY",
    "NETWORK_COLORSPACE",
    "SCENE_CEILING",
    "VIEW",
    "default_colorspace",
    "from_display",
    "is_display_referred",
    "resolve_colorspace",
    "to_display",
]

CONFIG_NAME = "studio-config-latest"
# The space the networks work in, and the display/view that renders scene-referred plates into it.
NETWORK_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"
DISPLAY = "sRGB - Display"
VIEW = "ACES 2.0 - SDR 100 nits (Rec.709)"
# Highest display value inverted by default for scene-referred spaces. Measured on the ACES 2.0 SDR
# inverse (ACEScg): 0.99 -> 34.5, 0.995 -> 54.6, 0.999 -> 101, 1.0 -> 128 scene-linear. The inverse stays
# finite over the whole 0..1 cube, but above ~0.995 one 10-bit display code is worth >10% of scene value,
# so painted near-white would turn into blown highlights far above anything a real plate holds.
SCENE_CEILING = 0.995

# Our own short names, for what people type on a command line; OCIO's names and aliases come first.
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


@functools.cache
def _config() -> ocio.Config:
    return ocio.Config.CreateFromBuiltinConfig(CONFIG_NAME)


def _fail(message: str) -> ReverieError:
    return ReverieError(" ".join(message.split()))


@functools.cache
def _spellings() -> dict[str, str]:
    """Every accepted spelling, casefolded -> canonical name: names, OCIO aliases, our friendly names."""
    config = _config()
    out = dict(_FRIENDLY)
    for cs in config.getColorSpaces(ocio.SEARCH_REFERENCE_SPACE_ALL, ocio.COLORSPACE_ALL):
        for spelling in (cs.getName(), *cs.getAliases()):
            out[spelling.casefold()] = cs.getName()
    return out


def resolve_colorspace(name: str) -> str:
    """The canonical name of colourspace `name` in the studio config.

    Accepts exact names, OCIO aliases and roles (``acescg``, ``lin_rec709``, ``scene_linear``), any case,
    and our short names (``sRGB``, ``linear``, ``LogC4``, ``LogC3``, ``Rec.709``, ``S-Log3``...).
    """
    key = " ".join(str(name).split())
    cs = _config().getColorSpace(key) if key else None  # OCIO: names, aliases, roles; case-insensitive
    if cs is not None:
        return cs.getName()
    if key.casefold() in _FRIENDLY:
        return _FRIENDLY[key.casefold()]
    raise _fail(_unknown_message(name, key))


def _unknown_message(name: str, key: str) -> str:
    spellings = _spellings()
    close = difflib.get_close_matches(key.casefold(), spellings, n=20, cutoff=0.5)
    names = list(dict.fromkeys(spellings[c] for c in close))[:5]
    if names:
        shown = ", ".join(names)
        return f"unknown colourspace {name!r}: did you mean {shown}? (OpenColorIO studio config names)"
    return (
        f"unknown colourspace {name!r}: use an OpenColorIO studio config name, e.g. ACEScg, ARRI LogC4, "
        f"ACEScct or {NETWORK_COLORSPACE}"
    )


def default_colorspace(path: str | os.PathLike) -> str:
    """The colourspace assumed for a file when none is given: ACEScg for EXR/HDR, else sRGB-encoded.

    DPX holds log or video footage with no reliable marker of which; sRGB is the safe guess and the user
    names the camera log (e.g. ``LogC4``) when it is one.
    """
    suffix = Path(path).suffix.lower()
    return "ACEScg" if suffix in _SCENE_SUFFIXES else NETWORK_COLORSPACE


def is_display_referred(colorspace: str) -> bool:
    """True when `colorspace` needs no tone mapping to be viewed: display spaces, video encodings and data.

    Decided from the OCIO encoding, or from the reference space type when the encoding is not set.
    """
    cs = _config().getColorSpace(resolve_colorspace(colorspace))
    if cs.isData():
        return True
    encoding = cs.getEncoding()
    if encoding:
        return encoding in _DISPLAY_ENCODINGS
    return cs.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY


@functools.lru_cache(maxsize=64)
def _processor(colorspace: str, inverse: bool) -> ocio.CPUProcessor:
    """Forward: `colorspace` -> network sRGB; inverse: back. `colorspace` is canonical and not data."""
    config = _config()
    if is_display_referred(colorspace):
        src, dst = (NETWORK_COLORSPACE, colorspace) if inverse else (colorspace, NETWORK_COLORSPACE)
        return config.getProcessor(src, dst).getDefaultCPUProcessor()
    transform = ocio.DisplayViewTransform(src=colorspace, display=DISPLAY, view=VIEW)
    direction = ocio.TRANSFORM_DIR_INVERSE if inverse else ocio.TRANSFORM_DIR_FORWARD
    return config.getProcessor(transform, direction).getDefaultCPUProcessor()


def _rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy of an (H, W, 3) array, safe to process in place."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a float array (H, W, 3), got {getattr(image, 'shape', type(image))}")
    return np.array(image, dtype=np.float32, order="C", copy=True)


def _apply(processor: ocio.CPUProcessor, pixels: np.ndarray) -> np.ndarray:
    if pixels.size:
        processor.applyRGB(pixels)  # in place
    return pixels


def _is_passthrough(colorspace: str) -> bool:
    return colorspace == NETWORK_COLORSPACE or _config().getColorSpace(colorspace).isData()


def to_display(image: np.ndarray, colorspace: str) -> np.ndarray:
    """(H, W, 3) pixels in `colorspace` -> float32 display-referred sRGB, 0..1, for the network.

    NaN becomes 0 and infinities the largest half float first, so a damaged pixel cannot spread NaN
    through the network.
    """
    name = resolve_colorspace(colorspace)
    pixels = _rgb(image)
    np.nan_to_num(pixels, copy=False, nan=0.0, posinf=65504.0, neginf=-65504.0)
    if not _is_passthrough(name):
        _apply(_processor(name, False), pixels)
    return np.clip(pixels, 0.0, 1.0, out=pixels)


def from_display(image: np.ndarray, colorspace: str, ceiling: float | None = None) -> np.ndarray:
    """Display-referred sRGB (H, W, 3) -> float32 pixels in `colorspace`: the inverse of `to_display`.

    Display values are first clipped to [0, ceiling]. `ceiling` defaults to 1.0 for display-referred
    spaces and to `SCENE_CEILING` for scene-referred ones; pass the plate's own display maximum so that
    painted pixels never go beyond the plate's range. No channel of the result exceeds the inverse of a
    grey at `ceiling` (clipped to it: the ACES 2.0 inverse overshoots it by ~1e-4 for some colours).
    """
    name = resolve_colorspace(colorspace)
    if ceiling is None:
        ceiling = 1.0 if is_display_referred(name) else SCENE_CEILING
    ceiling = float(np.clip(np.nan_to_num(ceiling), 0.0, 1.0))
    pixels = _rgb(image)
    np.nan_to_num(pixels, copy=False, nan=0.0)
    np.clip(pixels, 0.0, ceiling, out=pixels)
    if _is_passthrough(name):
        return pixels
    inverse = _processor(name, True)
    top = _apply(inverse, np.full((1, 1, 3), ceiling, np.float32)).reshape(3)
    return np.minimum(_apply(inverse, pixels), top, out=pixels)
