"""An edit as a batch: the clips of an OpenTimelineIO timeline (``reverie render --batch cut.otio``).

Resolve, Premiere, Avid and Nuke exchange an edit through OTIO's adapters. Each clip of a video track
whose media is an image sequence or a video becomes a shot: its source range (plus `handles` frames on
each side, as far as the media has them) painted with the look named on the command line, or in the
clip's ``reverie`` metadata (``{"reverie": {"look": "looks/warm.toml", "u": 5}}``: any setting of a
batch file's shot, paths relative to the timeline's folder). Outputs follow a pattern in which
``{clip}`` is the clip's name (``paint/{clip}/{clip}.%04d.exr``).

Everything a TOML batch checks is checked (`reverie.farm.batch.batch_shots`), and the edit's own
problems too (a clip without media, a source range beyond its media), all listed in one line. Gaps,
transitions and effects are reported and skipped, not guessed: the source frames are painted as they
are, and the dissolves, speed changes and the rest are left to the conform.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reverie.errors import ReverieError
from reverie.farm.batch import BatchShot, batch_shots, checked_overrides
from reverie.io.video import is_video
from reverie.look import Look
from reverie.textfile import MB

MAX_EDIT_BYTES = 64 * MB
"""A feature's edit with its metadata; more is not a timeline."""


@dataclass(frozen=True)
class Edit:
    """The shots of a timeline, and what of it is not painted (gaps, transitions, effects), for a person."""

    shots: list[BatchShot]
    skipped: list[str]


_NUMBER = "REVIERE-FRAME-NUMBER"


@dataclass(frozen=True)
class _Media:
    input: str
    first: int
    last: int  # the frames the media has, in the numbers a render reads them by


def load_edit(
    path: str | Path,
    output_pattern: str,
    base: Look | None = None,
    handles: int = 0,
    fallback: dict[str, Any] | None = None,
    **spec_overrides: Any,
) -> Edit:
    """The shots of OTIO timeline `path`, every one checked; one `ReverieError` lists all problems.

    output_pattern: where each clip's frames go, ``{clip}`` its name (relative to the working folder).
    base, fallback and spec_overrides: as for `load_batch`.
    """
    path = Path(path)
    if isinstance(handles, bool) or not isinstance(handles, int) or not 0 <= handles <= 10_000:
        raise ReverieError(f"--handles must be a whole number of frames from 0 to 10000, got {handles!r}")
    entries, labels, skipped = _clip_entries(path, _read(path), output_pattern, handles)
    overrides = checked_overrides(spec_overrides)
    shots = batch_shots(path, {}, entries, base, overrides, labels, fallback)
    named = [replace(shot, name=label) for shot, label in zip(shots, labels, strict=True)]
    return Edit(named, skipped)


def _clip_entries(
    path: Path, timeline: Any, output_pattern: str, handles: int
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(a batch file's shot table per usable clip, the clips' labels, what is skipped); the unusable
    clips all in one `ReverieError`, as is an edit with no clip to paint."""
    entries: list[dict[str, Any]] = []
    labels: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []
    for label, item in _items(timeline, skipped):
        entry, trouble = _entry(item, label, path.absolute().parent, output_pattern, handles, skipped)
        if entry is None:
            problems.append(f"{label}: {trouble}")
        else:
            entries.append(entry)
            labels.append(label)
    if problems:
        s = "s" if len(problems) > 1 else ""
        raise ReverieError(
            " ".join(f"{path} has {len(problems)} unusable clip{s}: {'; '.join(problems)}".split())
        )
    if not entries:
        found = f" (found: {'; '.join(skipped)})" if skipped else ""
        raise ReverieError(f"{path} has no clip to paint: no video track holds a clip with media{found}")
    return entries, labels, skipped


def _read(path: Path) -> Any:
    otio = _otio()
    if not path.is_file():
        raise ReverieError(f"edit {path} does not exist or is not a file: give an .otio timeline")
    if path.stat().st_size > MAX_EDIT_BYTES:
        raise ReverieError(f"edit {path} is over {MAX_EDIT_BYTES // MB} MB: that is not a timeline")
    try:
        timeline = otio.adapters.read_from_file(str(path))
    except Exception as err:  # OTIO raises many kinds (JSON, schema, adapter) for a file it cannot read
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ReverieError(f"cannot read edit {path}: {reason}; export it again as OTIO") from None
    if not isinstance(timeline, otio.schema.Timeline):
        raise ReverieError(f"edit {path} holds a {type(timeline).__name__}, not a timeline")
    return timeline


def _otio() -> Any:
    try:
        import opentimelineio
    except ImportError:
        raise ReverieError(
            "reading an edit needs OpenTimelineIO: pip install -e '.[shots]' (or the opentimelineio package)"
        ) from None
    return opentimelineio


def _items(timeline: Any, skipped: list[str]) -> list[tuple[str, Any]]:
    """(label, clip) of every clip on the video tracks, in track order; the rest reported in `skipped`."""
    otio = _otio()
    found: list[tuple[str, Any]] = []
    names: set[str] = set()
    for track_number, track in enumerate(timeline.tracks, 1):
        if track.kind != otio.schema.TrackKind.Video:
            continue
        for item in track:
            where = f"track {track_number} ({track.name or 'unnamed'})"
            if isinstance(item, otio.schema.Clip):
                label = _unique(_clip_name(item.name or f"clip{len(found) + 1}"), names)
                found.append((label, item))
            elif isinstance(item, otio.schema.Gap):
                skipped.append(f"a gap of {item.duration().to_frames()} frames on {where}")
            elif isinstance(item, otio.schema.Transition):
                skipped.append(
                    f"transition {item.name or item.transition_type} on {where}: the clips either "
                    "side are painted, the transition is left to the conform"
                )
            else:
                skipped.append(f"a nested {type(item).__name__} on {where}: flatten it to paint it")
    return found


def _clip_name(name: str) -> str:
    """A clip's name as a file name: what is not a letter, digit, dot, dash or underscore becomes _."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "clip"


def _unique(name: str, names: set[str]) -> str:
    """Clips of one name (a shot used twice) each get their own output: sh010, sh010_2, ..."""
    label, n = name, 1
    while label in names:
        n += 1
        label = f"{name}_{n}"
    names.add(label)
    return label


def _entry(
    clip: Any, label: str, folder: Path, output_pattern: str, handles: int, skipped: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """A batch file's shot table for `clip`, or what makes it unusable."""
    media, trouble = _media(clip, folder)
    if media is None:
        return None, trouble
    first, last = _source_frames(clip, media)
    if first < media.first or last > media.last:
        return None, (
            f"its source range, frames {first}-{last}, goes beyond its media {media.input} "
            f"(frames {media.first}-{media.last}): relink the clip or trim it"
        )
    start, end = max(first - handles, media.first), min(last + handles, media.last)
    if (first - start, end - last) != (handles, handles):
        skipped.append(f"{label}: the media holds {first - start} and {end - last} of the {handles} handles")
    if clip.effects:
        names = ", ".join(e.effect_name or type(e).__name__ for e in clip.effects)
        skipped.append(f"{label}: its effects ({names}) are left to the conform")
    metadata = _plain(clip.metadata.get("reverie", {}))
    if not isinstance(metadata, dict):
        return None, 'its reverie metadata must be a table of settings, e.g. {"look": "warm.toml"}'
    output = output_pattern.replace("{clip}", label)
    settings = {k: v for k, v in metadata.items() if k not in ("input", "output", "frames")}
    entry = {**settings, "input": media.input, "output": str(Path(output).absolute())}
    return entry | {"frames": f"{start}-{end}"}, None


def _plain(value: Any) -> Any:
    """OTIO's metadata (AnyDictionary, AnyVector) as plain dicts and lists, as a batch file's TOML."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _media(clip: Any, folder: Path) -> tuple[_Media | None, str | None]:
    otio = _otio()
    ref = clip.media_reference
    available = ref.available_range if ref is not None else None
    if isinstance(ref, otio.schema.ImageSequenceReference):
        # A placeholder for the number while the URL is decoded: "%04d" would read as the byte %04.
        url = _local(ref.abstract_target_url(_NUMBER), folder)
        pattern = url.replace(_NUMBER, f"%0{max(ref.frame_zero_padding, 1)}d")
        if available is None:
            return None, "its image sequence has no available range: relink it"
        count = round(available.duration.to_frames(ref.rate)) // max(ref.frame_step, 1)
        return _Media(pattern, ref.start_frame, ref.start_frame + count - 1), None
    if isinstance(ref, otio.schema.ExternalReference) and is_video(ref.target_url):
        if available is None:
            return None, f"its video {ref.target_url} has no available range: relink it"
        count = round(available.duration.to_frames())
        return _Media(_local(ref.target_url, folder), 1, count), None  # a video's frames count from 1
    if ref is None or isinstance(ref, otio.schema.MissingReference):
        return None, "it has no media (a missing reference): relink it"
    return (
        None,
        f"its media {getattr(ref, 'target_url', type(ref).__name__)} is neither an image sequence nor "
        "a video",
    )


def _source_frames(clip: Any, media: _Media) -> tuple[int, int]:
    """The clip's first and last frame, in the numbers `media` is read by."""
    source = clip.source_range or clip.available_range()
    ref = clip.media_reference
    otio = _otio()
    offset = source.start_time - ref.available_range.start_time
    if isinstance(ref, otio.schema.ImageSequenceReference):  # frame_for_time refuses a time outside
        step, rate = max(ref.frame_step, 1), ref.rate
        first = ref.start_frame + round(offset.to_frames(rate)) // step
        return first, first + round(source.duration.to_frames(rate)) // step - 1
    first = media.first + round(offset.to_frames())
    return first, first + round(source.duration.to_frames()) - 1


def _local(url: str, folder: Path) -> str:
    """A media URL as a path: file:// URLs decoded, relative paths from the timeline's folder."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # http://...: not a file this machine can read
        return url
    return str(folder / url)
