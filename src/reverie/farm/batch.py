"""Batch files: several shots rendered by one `reverie render --batch SHOTS.toml`.

A batch file is TOML with an optional ``[defaults]`` table and one ``[[shot]]`` table per shot::

    # optional: applies to every shot unless the shot overrides it
    [defaults]
    look = "looks/warm.toml"      # a look file saved with --save-look
    iterations = 200              # any Look field (u, iterations, size, styles, temporal_weight, ...)
    output_size = 1920            # any shot setting below

    [[shot]]
    input = "plates/a.%04d.exr"   # required: a video or a frame pattern (%04d or ####)
    output = "out/a.%04d.exr"     # required: a frame pattern or a video
    frames = "1001-1100"          # optional: a string, as --frames
    look = "looks/cold.toml"      # optional: replaces defaults.look for this shot
    u = 5                         # optional: any Look field

Shot settings (the fields of `ShotSpec`): input, output, frames, allow_gaps, fps, input_colorspace,
output_colorspace, encode, output_size, bit_depth, force, chunk, chunk_overlap, ocio_config, display,
view, layer. Look settings: every field of `Look` but ``version``; ``style`` (a path or a list of
paths) is another name for ``styles``.

Which look a shot gets: its look file (``look``), else the defaults' look file, else the look of the
command-line flags (`base`); a look file replaces that look entirely, every field of it. Then the
``[defaults]`` look settings are applied, then the shot's own, so ``iterations = 200`` in ``[defaults]``
holds for every shot, also one with its own look file, unless the shot sets ``iterations`` itself. Shot
settings work the same way (defaults, then the shot), and the ones given on the command line win over
both.

Relative paths written in the batch file (input, output, look, styles, style_masks, u_map, an init
image and an OCIO config file) are relative to the batch file's folder, so a batch renders the same
from any working directory (and on any farm worker that sees the same paths). Paths inside a look file
are left as `Look.load` reads them: as written, relative to the working directory.

`load_batch` checks everything a render would stop on that can be checked without rendering: the file,
every key and value, that each input opens (only headers are read) and that no two shots write to the
same place. It reports every problem of every shot in one line, and renders and writes nothing.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from types import NoneType
from typing import Any, get_args, get_type_hints

from reverie.errors import ReverieError
from reverie.io import colorspace as cs
from reverie.io.images import check_input_file
from reverie.io.sequences import parse_frame_range, parse_pattern, require_pattern
from reverie.io.video import check_codec, default_video_codec, is_video
from reverie.look import INIT_MODES, Look
from reverie.pipeline.plan import check_chunking
from reverie.pipeline.shot import ShotSpec, manifest_path, open_clip
from reverie.textfile import MB, load_toml

SPEC_KEYS = frozenset(f.name for f in fields(ShotSpec))
LOOK_KEYS = frozenset(f.name for f in fields(Look)) - {"version"}  # a file format's concern, not a choice
ALIASES = {"style": "styles"}
_KNOWN = sorted(SPEC_KEYS | LOOK_KEYS | {"look", *ALIASES})
_TUPLE_KEYS = frozenset(f.name for f in fields(Look) if str(f.type).startswith("tuple"))
_SPEC_TYPES = get_type_hints(ShotSpec)
_TYPE_WORDS = {str: "a string", bool: "true or false", int: "a whole number", float: "a number"}
_ENCODERS = ("prores", "h264")
_TABLES = ("defaults", "shot")
MAX_BATCH_BYTES = 4 * MB
"""Thousands of shots; a batch is written by hand or by a script, not a dump of data."""


@dataclass(frozen=True)
class BatchShot:
    """One shot of a batch, checked: what to render and how it should look."""

    spec: ShotSpec
    look: Look
    name: str
    """A short label for reports: the input's file name, e.g. ``a.%04d.exr``."""


def load_batch(
    path: str | Path,
    base: Look | None = None,
    fallback: dict[str, Any] | None = None,
    **spec_overrides: Any,
) -> list[BatchShot]:
    """The shots of batch file `path`, every one checked; one `ReverieError` lists all problems.

    base: the look of the command-line flags (None: `Look()`), for shots whose batch names no look file.
    fallback: `ShotSpec` fields for shots whose batch does not set them (``$OCIO``'s config), paths
    absolute. spec_overrides: `ShotSpec` fields given on the command line (e.g. ``force=True``), applied
    to every shot over the batch's own settings; None values count as not given.
    """
    path = Path(path)
    overrides = checked_overrides(spec_overrides)
    defaults, entries = _structure(_read(path), path)
    return batch_shots(path, defaults, entries, base, overrides, fallback=fallback)


def batch_shots(
    path: Path,
    defaults: dict[str, Any],
    entries: list[dict[str, Any]],
    base: Look | None,
    overrides: dict[str, Any],
    labels: list[str] | None = None,
    fallback: dict[str, Any] | None = None,
) -> list[BatchShot]:
    """The shots of `entries` (tables of a batch file, or the clips of an edit), checked as a batch
    file's are: relative paths are relative to `path`'s folder. labels: how to name each entry in
    problems (default: ``shot N`` and its input). fallback: as for `load_batch`."""
    batch = _Batch(path.absolute().parent, base or Look(), overrides)
    batch.set_defaults(defaults, path)
    batch.defaults = {**checked_overrides(fallback or {}), **batch.defaults}
    shots, invalid = [], []
    for number, entry in enumerate(entries, 1):
        label = labels[number - 1] if labels else _label(number, entry)
        shot, problems = batch.shot(number, entry, label)
        if problems:
            invalid.append(f"{label}: {'; '.join(problems)}")
        elif shot is not None:
            shots.append(shot)
    if invalid:
        s = "s" if len(invalid) > 1 else ""
        raise _one_line(f"{path} has {len(invalid)} invalid shot{s}: {'; '.join(invalid)}")
    return shots


# ------------------------------------------------------------------------------------------ the file


def _read(path: Path) -> dict[str, Any]:
    try:
        return load_toml(path, "batch file", "give a TOML file of shots", limit=MAX_BATCH_BYTES)
    except ReverieError as err:
        raise _one_line(str(err)) from None


def _structure(data: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The [defaults] table and the [[shot]] tables; problems of the file's shape stop here."""
    problems = [_unknown(key, _TABLES, "table") for key in data if key not in _TABLES]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults must be a table: write [defaults] above its settings")
    entries = data.get("shot", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append("shot must be an array of tables: write [[shot]] (double brackets) above each shot")
    elif not entries:
        problems.append("no [[shot]] entries: add a [[shot]] table with input and output for each shot")
    if problems:
        raise _one_line(f"batch file {path}: {'; '.join(problems)}")
    return defaults, entries


def _label(number: int, entry: dict[str, Any]) -> str:
    given = entry.get("input")
    return f"shot {number} ({given})" if isinstance(given, str) and given else f"shot {number}"


def _unknown(key: str, known: list[str] | tuple[str, ...], what: str = "key") -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown {what} {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _one_line(message: str) -> ReverieError:
    # The CLI prints the message on one line; TOML's errors and user paths must not break that.
    return ReverieError(" ".join(message.split()))


# ------------------------------------------------------------------------------------------ one shot


class _Batch:
    """Builds shots: the batch's folder, base look, defaults and command-line settings, and the shots'
    outputs so far (to find two shots writing to the same place)."""

    def __init__(self, folder: Path, base: Look, overrides: dict[str, Any]) -> None:
        self.folder, self.base, self.overrides = folder, base, overrides
        self.defaults: dict[str, Any] = {}
        self.looks: dict[str, Look] = {}
        self.outputs: dict[str, tuple[str, str]] = {}  # manifest path -> (shot label, output as given)

    def set_defaults(self, table: dict[str, Any], path: Path) -> None:
        """Check [defaults] once: its problems would otherwise repeat for every shot."""
        values, problems = _normalise(table, self.folder)
        problems += [f"{key} belongs in each [[shot]]" for key in ("input", "output") if key in values]
        problems += _spec_problems(values)[1]
        if "look" in values:
            problems += _caught(lambda: self.look_file(values["look"]))
        if problems:
            raise _one_line(f"batch file {path}: [defaults]: {'; '.join(problems)}")
        self.defaults = values

    def look_file(self, path: str) -> Look:
        if path not in self.looks:  # shots usually share a few look files: read each once
            self.looks[path] = Look.load(path)
        return self.looks[path]

    def shot(self, number: int, entry: dict[str, Any], label: str) -> tuple[BatchShot | None, list[str]]:
        values, problems = _normalise(entry, self.folder)
        bad, spec_problems = _spec_problems(values)
        # Settings with a wrong value are dropped, so that the input and the look are still checked.
        valid = {k: v for k, v in values.items() if k not in bad}
        merged = {**self.defaults, **valid, **self.overrides}
        spec, whole_problems = _spec(merged, reported=bad)
        look, look_problems = self.look(merged)
        problems += spec_problems + whole_problems + look_problems
        if spec is not None:
            problems += self.clash(spec, entry.get("output", spec.output), label)
        if spec is None or look is None or problems:
            return None, problems
        return BatchShot(spec, look, Path(spec.input).name), []

    def look(self, values: dict[str, Any]) -> tuple[Look | None, list[str]]:
        file = values.get("look")
        changes = {k: v for k, v in values.items() if k in LOOK_KEYS}
        try:
            start = self.look_file(file) if file else self.base
            look = start.replace(**changes)
        except ReverieError as err:
            return None, [str(err)]
        except (TypeError, ValueError) as err:  # Look.from_dict's own net for values of odd types
            return None, [f"invalid look setting: {err}"]
        return look, _look_problems(look)

    def clash(self, spec: ShotSpec, given: str, label: str) -> list[str]:
        """Two shots writing one manifest would each take the other's frames for their own."""
        try:
            manifest = _manifest(spec.output)
        except ReverieError:
            return []  # already reported by _spec
        key = os.path.realpath(manifest)
        if key not in self.outputs:
            self.outputs[key] = (label, given)
            return []
        other, other_given = self.outputs[key]
        if other_given == given:
            return [f"output {given} is also the output of {other}: give each shot its own output"]
        return [
            f"output {given} writes to the same place as the output {other_given} of {other} "
            f"(both keep {Path(manifest).name} in one folder): give each shot its own output"
        ]


def _normalise(table: dict[str, Any], folder: Path) -> tuple[dict[str, Any], list[str]]:
    """Known keys only, `style` renamed, paths made relative to the batch's folder; and the problems."""
    values, problems = {}, []
    for key, value in table.items():
        if key not in _KNOWN:
            problems.append(_unknown(key, _KNOWN))
            continue
        if key in ALIASES:
            if ALIASES[key] in table or not isinstance(value, str | list):
                problems.append(f"give {key} (a path or a list of paths) or {ALIASES[key]}, not both")
                continue
            key, value = ALIASES[key], [value] if isinstance(value, str) else value
        if key == "look" and not isinstance(value, str):
            problems.append(f"look must be the path of a look file (a string), got {value!r}")
            continue
        if key in _TUPLE_KEYS and not isinstance(value, list):
            # Look would take a string as a tuple of its letters: "a.png" -> ("a", ".", ...).
            problems.append(f"{key} must be a list, e.g. {key} = [...], got {value!r}")
            continue
        values[key] = _relative(key, value, folder)
    return values, problems


def _relative(key: str, value: Any, folder: Path) -> Any:
    def resolve(v: Any) -> Any:
        return str(folder / v) if isinstance(v, str) and v else v

    if key in ("input", "output", "look", "u_map"):
        return resolve(value)
    if key == "ocio_config":
        return value if isinstance(value, str) and value.startswith("ocio://") else resolve(value)
    if key == "init":
        return value if value in INIT_MODES else resolve(value)
    if key in ("styles", "style_masks"):
        return [resolve(v) for v in value]
    return value


# --------------------------------------------------------------------------------------- shot settings


def _spec_problems(values: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The shot settings among `values` with a wrong value, and what is wrong with each."""
    found = {k: problem for k, v in values.items() if k in SPEC_KEYS and (problem := _spec_problem(k, v))}
    return set(found), list(found.values())


def _spec_problem(key: str, value: Any) -> str | None:
    """What is wrong with one shot setting on its own, or None."""
    allowed = tuple(t for t in get_args(_SPEC_TYPES[key]) or (_SPEC_TYPES[key],) if t is not NoneType)
    numbers = (int, float) if float in allowed else allowed
    if isinstance(value, bool) != (bool in allowed) or not isinstance(value, numbers):
        example = ' like "1001-1100"' if key == "frames" else ""
        return f"{key} must be {' or '.join(_TYPE_WORDS[t] for t in allowed)}{example}, got {value!r}"
    check = _CHECKS.get(key)
    return _first(_caught(lambda: check(value))) if check else None


def _first(problems: list[str]) -> str | None:
    return problems[0] if problems else None


def _caught(step: Callable[[], object]) -> list[str]:
    try:
        step()
    except ReverieError as err:
        return [str(err)]
    return []


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ReverieError(message)


_CHECKS: dict[str, Callable[[Any], object]] = {
    "input": lambda v: _require(bool(v), "input must not be empty"),
    "output": lambda v: _require(bool(v), "output must not be empty"),
    "frames": parse_frame_range,
    "fps": lambda v: _require(math.isfinite(v) and v > 0, f"fps must be a positive number, got {v!r}"),
    "encode": lambda v: _require(v in _ENCODERS, f"encode {v!r} is not known: use prores or h264"),
    "output_size": lambda v: _require(16 <= v <= 32768, f"output_size {v} must be from 16 to 32768 px"),
    "bit_depth": lambda v: _require(v in (8, 10, 16, 32), f"bit_depth {v} must be 8, 10, 16 or 32"),
    "chunk": lambda v: check_chunking(v, 0),
    "chunk_overlap": lambda v: check_chunking(0, v),
}


def checked_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in overrides.items() if v is not None}
    wrong = sorted((given.keys() - SPEC_KEYS) | (given.keys() & {"input", "output"}))
    if wrong:
        raise TypeError(f"load_batch() takes ShotSpec settings but input and output, not {', '.join(wrong)}")
    problems = _spec_problems(given)[1]
    if problems:
        raise _one_line(f"command line: {'; '.join(problems)}")
    return given


def _spec(values: dict[str, Any], reported: set[str]) -> tuple[ShotSpec | None, list[str]]:
    """The shot's ShotSpec, once it has an input and an output; and what is wrong with the shot as a whole.

    reported: settings whose wrong values are already reported (and left out of `values`).
    """
    missing = [f"{key} is missing" for key in ("input", "output") if key not in {*values, *reported}]
    if "input" not in values or "output" not in values:
        return None, missing
    spec = ShotSpec(**{k: v for k, v in values.items() if k in SPEC_KEYS})
    problems = _caught(lambda: check_chunking(spec.chunk, spec.chunk_overlap))
    problems += _caught(lambda: _check_output(spec))
    # Opening reads the headers of the input's frames (or the video's index) and decodes no pixels.
    return spec, [*problems, *_caught(lambda: _check_colour(spec))]


def _check_colour(spec: ShotSpec) -> None:
    """The input opens and the output's colourspace is in the shot's OCIO config, with a view that
    takes a painting back to it (names are only known once the config is)."""
    clip = open_clip(spec)
    if not is_video(spec.output):
        colour = cs.resolve_colorspace(spec.output_colorspace or clip.colorspace, clip.color)
        cs.check_invertible(colour, clip.color)


def _check_output(spec: ShotSpec) -> None:
    if _files(spec.output) == _files(spec.input):
        raise ReverieError(f"output {spec.output} is the input: it would paint over the plates")
    if is_video(spec.output):
        check_codec(spec.encode or default_video_codec(spec.output), spec.output)
    _manifest(spec.output)


def _files(path: str) -> tuple[object, ...]:
    """The files `path` names, whatever its spelling: a.%04d.png and ./a.####.png are the same frames."""
    pattern = parse_pattern(path)
    if pattern is None:
        return (os.path.realpath(path),)
    return (os.path.realpath(pattern.prefix), pattern.digits, pattern.suffix)


def _manifest(output: str) -> str:
    """Where the shot's manifest goes; two shots with one manifest write to the same place."""
    if is_video(output):
        # As `plan_target`: a video's frames are PNGs in a folder beside it, named after it.
        video = Path(output)
        output = str(video.with_name(f"{video.stem}.frames") / f"{video.stem}.%04d.png")
    return str(manifest_path(require_pattern(output)))


# ------------------------------------------------------------------------------------------ the look


def _look_problems(look: Look) -> list[str]:
    """A look that names no painting, or images that are not there, would stop the render."""
    if not look.styles:
        return ['no style image: give style = "painting.png" (in the shot or [defaults]) or a look file']
    images = [("style", p) for p in look.styles] + [("mask", p) for p in look.style_masks]
    if look.u_map is not None:
        if not isinstance(look.u_map, str):
            return [f"u_map must be the path of an image, got {look.u_map!r}"]
        images.append(("u_map", look.u_map))
    if look.init not in INIT_MODES:
        images.append(("init image", look.init))
    return [f"{kind} {problem}" for kind, image in images for problem in _image_problems(image)]


def _image_problems(path: str) -> list[str]:
    return _caught(lambda: check_input_file(path, Path(path)))
