"""Image sequences for shots: frame-number patterns, frame ranges, and frames read and written through
OpenImageIO (EXR, DPX, TIFF, PNG, JPEG).

Film work arrives as one file per frame (``plate.1001.exr``). Everything here checks a shot up front, at
`open_sequence`, so that a missing, damaged or odd-sized frame stops the run before hours of rendering
rather than in the middle of it. Frames are float32 RGB (H, W, 3) with values as stored: EXR may hold
scene-linear values above 1 or below 0 (colour management is `reverie.io.colorspace`'s job); integer
formats come back as 0..1. Every problem a user can cause is a one-line `ReverieError`, as in
`reverie.io.images`, whose atomic writing and file checks are reused here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from reverie.io.colorspace import STUDIO, ColorConfig, default_colorspace, resolve_colorspace
from reverie.io.images import (
    TAGS_MARK,
    _fail,
    _name,
    atomic_path,
    check_input_file,
    check_location,
    parse_tags_record,
    tags_record,
)

__all__ = [
    "FRAME_SUFFIXES",
    "ImageSequence",
    "SequencePattern",
    "check_frame_writable",
    "format_frame_range",
    "open_sequence",
    "parse_frame_range",
    "parse_pattern",
    "require_pattern",
    "write_frame",
]

FRAME_SUFFIXES = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class _Writer:
    format: str  # OpenImageIO's format name: the temp file's ".tmp" suffix cannot tell it
    label: str
    depths: tuple[int, ...]
    default: int


_WRITERS = {
    ".exr": _Writer("openexr", "EXR", (16, 32), 16),
    ".dpx": _Writer("dpx", "DPX", (10, 16), 10),
    ".tif": _Writer("tiff", "TIFF", (8, 16), 16),
    ".tiff": _Writer("tiff", "TIFF", (8, 16), 16),
    ".png": _Writer("png", "PNG", (8, 16), 16),
    ".jpg": _Writer("jpeg", "JPEG", (8,), 8),
    ".jpeg": _Writer("jpeg", "JPEG", (8,), 8),
}
_HALF_MAX = 65504.0
# A typo such as 1-10000000 must fail fast rather than build a list of ten million frames.
_MAX_FRAMES = 1_000_000
_RANGE_EXAMPLE = "write it like 1001-1100, 1001 or 1-5,8,10-12"

# ------------------------------------------------------------------------------------------ frame ranges

_RANGE_ITEM = re.compile(r"(\d+)(?:-(\d+))?", re.ASCII)


def parse_frame_range(text: str) -> list[int]:
    """Frame numbers from ``1001-1100``, ``1001`` or ``1-5,8,10-12``: sorted, without duplicates."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(items):
        raise _fail(f"frame range {text!r} is empty or has an empty part: {_RANGE_EXAMPLE}")
    frames: set[int] = set()
    for item in items:
        match = _RANGE_ITEM.fullmatch("".join(item.split()))  # allow "1001 - 1100"
        if match is None:
            if item.startswith("-") or "--" in item:
                raise _fail(
                    f"frame range {text!r} has a negative frame number (frames are 0 or more): "
                    f"{_RANGE_EXAMPLE}"
                )
            raise _fail(f"cannot read frame range {text!r}: {_RANGE_EXAMPLE}")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise _fail(f"frame range {item!r} runs backwards: write it as {last}-{first}")
        if len(frames) + last - first + 1 > _MAX_FRAMES:
            raise _fail(f"frame range {text!r} has over {_MAX_FRAMES:,} frames: check the numbers")
        frames.update(range(first, last + 1))
    return sorted(frames)


def format_frame_range(frames: Iterable[int], *, limit: int = 8) -> str:
    """Frames written compactly, e.g. ``1003-1005, 1010``; after `limit` runs, ``(+N more)``."""
    runs: list[list[int]] = []
    for n in sorted(set(frames)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    more = len(runs) - limit
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


# -------------------------------------------------------------------------------------------- patterns

_TOKEN = re.compile(r"%(?:0(\d+))?d|#+")


@dataclass(frozen=True)
class SequencePattern:
    """A frame-file pattern split around its frame number: `prefix` + number (`digits` wide) + `suffix`.

    `prefix` includes the directory; `digits` is the zero padding (numbers with more digits are written
    in full, as Nuke and OpenImageIO do).
    """

    text: str
    prefix: str
    digits: int
    suffix: str

    @property
    def directory(self) -> Path:
        return Path(os.path.dirname(self.prefix) or ".")

    def path(self, number: int) -> Path:
        if number < 0:
            raise ValueError(f"frame numbers are 0 or more, got {number}")
        return Path(f"{self.prefix}{number:0{self.digits}d}{self.suffix}")

    def glob_frames(self) -> list[int]:
        """The frame numbers on disk, sorted (names whose padding differs from `digits` are left out)."""
        return _scan(self)[0]


def parse_pattern(text: str | os.PathLike) -> SequencePattern | None:
    """Split `text` at its frame token (``%04d``, ``%d``, or ``####`` = 4 digits, one digit per ``#``).

    Only the file name is searched; None when it has no token. Two tokens in one name are an error.
    """
    text = os.fspath(text)
    name = os.path.basename(text)
    tokens = list(_TOKEN.finditer(name))
    if not tokens:
        return None
    if len(tokens) > 1:
        found = ", ".join(t[0] for t in tokens)
        raise _fail(f"pattern {text} has {len(tokens)} frame numbers ({found}): keep only one")
    token = tokens[0]
    digits = len(token[0]) if token[0].startswith("#") else int(token[1] or 1)
    start = len(text) - len(name)
    return SequencePattern(text, text[: start + token.start()], max(1, digits), name[token.end() :])


def require_pattern(text: str | os.PathLike) -> SequencePattern:
    """`parse_pattern` for an output path: a path without a frame number is an error."""
    pattern = parse_pattern(text)
    if pattern is None:
        raise _fail(
            f"output pattern {os.fspath(text)} has no frame number: "
            "write it like out.%04d.exr or out.####.exr"
        )
    return pattern


def _scan(pattern: SequencePattern) -> tuple[list[int], list[str]]:
    """(frame numbers on disk, names that would match with another zero padding)."""
    base = os.path.basename(pattern.prefix)
    regex = re.compile(re.escape(base) + r"(\d+)" + re.escape(pattern.suffix), re.ASCII)
    frames, misfits = [], []
    try:
        names = os.listdir(pattern.directory)
    except OSError:
        return [], []
    for name in names:
        match = regex.fullmatch(name)
        if match is None:
            continue
        digits = match[1]
        # 1001 with #### is "1001", never "01001"; a longer number is only valid without leading zeros.
        if len(digits) == pattern.digits or (len(digits) > pattern.digits and digits[0] != "0"):
            frames.append(int(digits))
        else:
            misfits.append(name)
    return sorted(frames), sorted(misfits)


# ------------------------------------------------------------------------------------------- reading


def _reason(text: str) -> str:
    """OpenImageIO's error text, shortened to its first line (it can be several lines long)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return first if len(first) <= 120 else first[:117] + "..."


def _open_input(path: Path) -> oiio.ImageInput:
    name = _name(path)
    check_input_file(name, path)  # missing, empty, directory...: clearer than OpenImageIO's words
    inp = oiio.ImageInput.open(name)
    if inp is None:
        raise _fail(f"cannot read {name}: {_reason(oiio.geterror())}; re-render or copy it again")
    return inp


def _read_spec(path: Path) -> oiio.ImageSpec:
    inp = _open_input(path)
    try:
        return oiio.ImageSpec(inp.spec())
    finally:
        inp.close()


def _display_size(spec: oiio.ImageSpec) -> tuple[int, int]:
    # EXR's display window is the frame; the data window may be cropped or hold overscan.
    return (spec.full_width or spec.width, spec.full_height or spec.height)


def _colour_channels(spec: oiio.ImageSpec) -> list[int]:
    names = list(spec.channelnames)
    if all(c in names for c in "RGB"):
        return [names.index(c) for c in "RGB"]
    return [0, 1, 2] if spec.nchannels >= 3 else [0]  # grey (+ alpha): the first channel


def _into_display_window(pixels: np.ndarray, spec: oiio.ImageSpec) -> np.ndarray:
    """Place the data window into a black frame of the display window's size, cropping overscan."""
    width, height = _display_size(spec)
    x0, y0 = spec.x - spec.full_x, spec.y - spec.full_y
    if (x0, y0) == (0, 0) and pixels.shape[:2] == (height, width):
        return pixels
    frame = np.zeros((height, width, pixels.shape[2]), np.float32)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + pixels.shape[0], height), min(x0 + pixels.shape[1], width)
    if bottom > top and right > left:
        frame[top:bottom, left:right] = pixels[top - y0 : bottom - y0, left - x0 : right - x0]
    return frame


@dataclass(frozen=True)
class ImageSequence:
    """The frames of a shot on disk, checked by `open_sequence`; `read` gives one frame at a time."""

    pattern: SequencePattern
    frames: tuple[int, ...]
    fps: float
    colorspace: str
    size: tuple[int, int]  # (width, height)
    color: ColorConfig = STUDIO
    """The OCIO config `colorspace` is named in."""
    layer: str | None = None
    """The EXR layer read (see `read_frame`); None, the first part's RGB."""

    def __len__(self) -> int:
        return len(self.frames)

    def path(self, number: int) -> Path:
        return self.pattern.path(number)

    def read(self, number: int) -> np.ndarray:
        """Frame `number` as float32 (H, W, 3), values as stored; greyscale expanded, alpha dropped."""
        return read_frame(self.path(number), expect=self.size, layer=self.layer)

    def source(self, number: int) -> str:
        """The file frame `number` is read from, absolute."""
        return str(self.path(number).absolute())


def read_frame(
    path: str | os.PathLike, *, expect: tuple[int, int] | None = None, layer: str | None = None
) -> np.ndarray:
    """One frame file as float32 (H, W, 3), values as stored; greyscale expanded, alpha dropped.

    expect: the (width, height) it must have (a frame that changed since its shot was opened). layer:
    the RGB of a named layer of an EXR (a part of that name, or channels ``LAYER.R/G/B``); None, the
    first part's RGB.
    """
    path = Path(path)
    name = _name(path)
    inp = _open_input(path)
    try:
        subimage, channels = _layer(inp, name, layer)
        spec = oiio.ImageSpec(inp.spec())
        if expect is not None and _display_size(spec) != expect:
            raise _fail(
                f"{name} is now {_size_text(_display_size(spec))}, not {_size_text(expect)} as when "
                "the shot was opened: it changed during the run; render it again"
            )
        first, last = min(channels), max(channels) + 1
        pixels = inp.read_image(subimage, 0, first, last, "float")
        # A cut-off JPEG still returns pixels (grey-filled), with an error set.
        if pixels is None or inp.has_error:
            reason = _reason(inp.geterror())
            raise _fail(f"{name} is truncated or corrupt: re-render or copy it again ({reason})")
    finally:
        inp.close()
    pixels = pixels.reshape(spec.height, spec.width, last - first)[:, :, [c - first for c in channels]]
    rgb = pixels if len(channels) == 3 else np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(_into_display_window(rgb, spec), dtype=np.float32)


def _layer(inp: oiio.ImageInput, name: str, layer: str | None) -> tuple[int, list[int]]:
    """(subimage, channels) of `layer`, the input left at that subimage; a one-line error naming the
    layers there are when the file has no such layer."""
    if layer is None:
        return 0, _colour_channels(inp.spec())
    found: list[str] = []
    subimage = 0
    while inp.seek_subimage(subimage, 0):
        spec = inp.spec()
        names, part = list(spec.channelnames), str(spec.getattribute("name") or "")
        for prefix in (f"{layer}.", f"{part}." if part == layer else None, "" if part == layer else None):
            if prefix is not None and all(f"{prefix}{c}" in names for c in "RGB"):
                return subimage, [names.index(f"{prefix}{c}") for c in "RGB"]
        found += [part] if part else []
        found += [n[:-2] for n in names if n.endswith(".R") and f"{n[:-2]}.G" in names]
        subimage += 1
    there = ", ".join(dict.fromkeys(found)) or "none: only unnamed RGB"
    raise _fail(f"{name} has no layer {layer!r} with R, G and B channels: its layers are {there}")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _sequence_pattern(text: str) -> SequencePattern:
    pattern = parse_pattern(text)
    if pattern is None:
        raise _fail(
            f"{text} has no frame number: write frame files as name.%04d.exr or name.####.exr, "
            "or give a single image to `reverie stylize`"
        )
    suffix = Path("frame" + pattern.suffix).suffix.lower()  # Path(".exr").suffix is ""
    if suffix not in FRAME_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise _fail(
            f"cannot read {text}: frames with {shown} are not supported; use {', '.join(FRAME_SUFFIXES)}"
        )
    return pattern


def _frames_on_disk(pattern: SequencePattern) -> list[int]:
    on_disk, misfits = _scan(pattern)
    if on_disk:
        return on_disk
    if not pattern.directory.is_dir():
        raise _fail(f"no frames match {pattern.text}: directory {pattern.directory} does not exist")
    hint = f" (found {misfits[0]}: the padding differs; match its digits)" if misfits else ""
    raise _fail(f"no frames match {pattern.text} in {pattern.directory}{hint}: check the path and the name")


def _select_frames(
    pattern: SequencePattern, on_disk: list[int], frames: str | None, allow_gaps: bool
) -> tuple[int, ...]:
    # Without --frames the wanted range is first..last on disk: a hole in a render is a failed frame.
    wanted = parse_frame_range(frames) if frames is not None else range(on_disk[0], on_disk[-1] + 1)
    present = set(on_disk)
    missing = [n for n in wanted if n not in present]
    chosen = tuple(n for n in wanted if n in present)
    if not chosen:
        raise _fail(
            f"none of frames {format_frame_range(wanted)} exist for {pattern.text} "
            f"(on disk: {format_frame_range(on_disk)}): check --frames"
        )
    if missing and not allow_gaps:
        raise _fail(
            f"missing frames {format_frame_range(missing)} of {format_frame_range(wanted)} "
            f"for {pattern.text}: render the missing frames or pass --allow-gaps"
        )
    return chosen


def _check_sizes(pattern: SequencePattern, frames: tuple[int, ...]) -> tuple[int, int]:
    size = _display_size(_read_spec(pattern.path(frames[0])))
    for n in frames[1:]:
        other = _display_size(_read_spec(pattern.path(n)))
        if other != size:
            raise _fail(
                f"frame {n} ({_name(pattern.path(n))}) is {_size_text(other)} but frame {frames[0]} is "
                f"{_size_text(size)}: all frames of a shot must be the same size; re-render or resize it"
            )
    return size


def open_sequence(
    pattern: str,
    frames: str | None = None,
    *,
    allow_gaps: bool = False,
    fps: float = 24.0,
    colorspace: str | None = None,
    color: ColorConfig = STUDIO,
    layer: str | None = None,
) -> ImageSequence:
    """Find and check the frames of `pattern` (``plate.%04d.exr`` or ``plate.####.exr``).

    `frames` (``1001-1100``, ``1-5,8``) picks frames, else all on disk are used. A frame missing from the
    range (also a hole between the first and last frame on disk) is an error unless `allow_gaps`, which
    drops it. Every frame's header is read now: unreadable files and frames of a different size are
    reported before any work starts. `colorspace`, a name in `color`, defaults to
    `default_colorspace(pattern, color)`. `layer`: an EXR layer to read (checked on the first frame).
    """
    text = os.fspath(pattern)
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise _fail(f"fps must be a positive number, not {fps!r}")
    if colorspace is not None:
        space = resolve_colorspace(colorspace, color)
    else:
        space = default_colorspace(text, color)
    seq = _sequence_pattern(text)
    chosen = _select_frames(seq, _frames_on_disk(seq), frames, allow_gaps)
    size = _check_sizes(seq, chosen)
    if layer is not None:
        read_frame(seq.path(chosen[0]), layer=layer)  # a layer the plates lack fails now, in one line
    return ImageSequence(seq, chosen, rate, space, size, color, layer)


# ------------------------------------------------------------------------------------------- writing


def _writer(name: str, path: str | os.PathLike) -> _Writer:
    suffix = Path(path).suffix.lower()
    if suffix not in _WRITERS:
        shown = f"'{suffix}'" if suffix else "a name without a suffix"
        raise _fail(
            f"cannot write {name}: {shown} is not supported for frames; use {', '.join(FRAME_SUFFIXES)}"
        )
    return _WRITERS[suffix]


def _pixels(image: np.ndarray, writer: _Writer, depth: int) -> tuple[np.ndarray, oiio.ImageSpec]:
    """The array to hand to OpenImageIO and the spec to open the file with."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected a float array (H, W, 3), got {getattr(image, 'shape', type(image))}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected float values, got dtype {image.dtype}")
    height, width, _ = image.shape
    if writer.format == "openexr":
        # NaN (a failed render) -> 0; out-of-range -> the largest half, which would otherwise become inf.
        top = _HALF_MAX if depth == 16 else float(np.finfo(np.float32).max)
        data = np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=top, neginf=-top), -top, top)
        spec = oiio.ImageSpec(width, height, 3, "half" if depth == 16 else "float")
        spec.attribute("compression", "zip")
        return np.ascontiguousarray(data), spec
    codes = np.rint(np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0, 1) * (2**depth - 1))
    if depth == 8:
        data, spec = codes.astype(np.uint8), oiio.ImageSpec(width, height, 3, "uint8")
    else:
        data, spec = codes.astype(np.uint16), oiio.ImageSpec(width, height, 3, "uint16")
    if depth == 10:
        data <<= 6  # OpenImageIO stores uint16 as 10 bits by dropping the low 6 bits: keep them zero
        spec.attribute("oiio:BitsPerSample", 10)
    if writer.format == "jpeg":
        spec.attribute("Compression", "jpeg:95")
        spec.attribute("jpeg:subsampling", "4:4:4")  # 4:2:0 visibly softens painted colour edges
    if writer.format == "tiff":
        spec.attribute("compression", "zip")
    return data, spec


def write_frame(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    bit_depth: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write float32 RGB (H, W, 3) atomically through OpenImageIO; the format comes from the suffix.

    Defaults: EXR half float (values kept as they are, also > 1 and < 0; zip compression; `bit_depth`
    32 for float), DPX 10-bit, TIFF and PNG 16-bit (8 allowed), JPEG 8-bit quality 95 (4:4:4). Integer
    formats clip to 0..1 and round to the nearest code; NaN becomes 0. `tags`: where the frame came
    from, in its header (see `_tag`; `read_tags` reads them back).
    """
    name = _name(path)
    writer = _writer(name, path)
    depth = writer.default if bit_depth is None else bit_depth
    if depth not in writer.depths:
        depths = " or ".join(str(d) for d in writer.depths)
        raise _fail(f"cannot write {name} at {depth} bits: {writer.label} frames take {depths} bits")
    data, spec = _pixels(image, writer, depth)
    _tag(spec, writer, tags or {})
    with atomic_path(path) as tmp:
        out = oiio.ImageOutput.create(writer.format)
        if out is None:
            raise _fail(
                f"cannot write {name}: OpenImageIO has no {writer.label} writer ({_reason(oiio.geterror())})"
            )
        if not out.open(os.fspath(tmp), spec):
            raise _fail(f"cannot write {name}: {_reason(out.geterror())}; free space or choose another path")
        try:
            written = out.write_image(data)
        finally:
            closed = out.close()
        if not (written and closed):
            raise _fail(f"cannot write {name}: {_reason(out.geterror())}; free space or choose another path")


TAG_PREFIX = "reverie/"


def _tag(spec: oiio.ImageSpec, writer: _Writer, tags: Mapping[str, str]) -> None:
    """Tags in a frame's header: the standard attributes where they exist (Software for the version,
    DocumentName for the source plate), and all of them as ``reverie/NAME`` attributes where the format
    keeps any (EXR, PNG) or as one JSON record where it does not (DPX user data; TIFF and JPEG's
    ImageDescription; DPX's own description holds 32 characters)."""
    if not tags:
        return
    if "version" in tags:
        spec.attribute("Software", f"Reverie {tags['version']}")
    if "source" in tags:
        spec.attribute("DocumentName", tags["source"])
    if writer.format in ("openexr", "png"):
        for name, value in tags.items():
            spec.attribute(TAG_PREFIX + name, str(value))
        return
    record = tags_record(tags)
    if writer.format == "dpx":
        data = np.frombuffer(record.encode(), np.uint8)
        spec.attribute("dpx:UserData", oiio.TypeDesc(f"uint8[{len(data)}]"), data)
    else:
        spec.attribute("ImageDescription", TAGS_MARK + record)


def read_tags(path: str | os.PathLike) -> dict[str, str]:
    """The tags `write_frame` put in a frame's header ({} when there are none)."""
    inp = _open_input(Path(path))
    try:
        spec = oiio.ImageSpec(inp.spec())
    finally:
        inp.close()
    tags = {
        a.name[len(TAG_PREFIX) :]: str(a.value) for a in spec.extra_attribs if a.name.startswith(TAG_PREFIX)
    }
    if tags:
        return tags
    user = spec.getattribute("dpx:UserData")
    description = str(spec.getattribute("ImageDescription") or "")
    if user is not None:
        return parse_tags_record(bytes(np.asarray(user, np.uint8)).decode("utf-8", "replace"))
    if description.startswith(TAGS_MARK):
        return parse_tags_record(description[len(TAGS_MARK) :])
    return {}


def check_frame_writable(path: str | os.PathLike) -> None:
    """Fail now, not after a long render, if `write_frame(path, ...)` cannot succeed (suffix, directory,
    permission); the directory is not created."""
    _writer(_name(path), path)
    check_location(path)
