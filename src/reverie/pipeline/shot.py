"""Rendering a shot: frames in, painted frames out, stable in time and safe to interrupt.

Each frame is painted by `reverie.api.stylize` on the display-referred image a director sees (the plate
through OpenColorIO), then brought back to the plate's colourspace and written atomically. With a
temporal weight, a frame starts from the previous painted frame warped by the optical flow between the
plates, and a temporal loss keeps it there where the flow is trusted (Ruder et al. 2016). The manifest
(`reverie.pipeline.manifest`) lists finished frames, so a re-run renders only what is missing and a
temporal chain resumes from the last finished frame. This module prints nothing: it reports through
`ShotEvents`.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reverie.api import Continuity, StylizeResult, stylize
from reverie.core.transfer import IterationEvent
from reverie.errors import ReverieError
from reverie.io import colorspace as cs
from reverie.io.images import atomic_write_bytes, check_location, read_image
from reverie.io.sequences import (
    SequencePattern,
    check_frame_writable,
    open_sequence,
    parse_frame_range,
    parse_pattern,
    read_frame,
    require_pattern,
    write_frame,
)
from reverie.io.video import check_codec, default_video_codec, encode_video, is_video, open_video
from reverie.look import Look
from reverie.pipeline.flow import Motion, motion, warp, warping_error
from reverie.pipeline.manifest import Manifest, load_manifest, open_manifest
from reverie.runtime import Runtime


class Clip(Protocol):
    """Frames of a shot: an image sequence or a video."""

    frames: tuple[int, ...]
    fps: float
    colorspace: str
    size: tuple[int, int]

    def read(self, number: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ShotSpec:
    """What to render, apart from the look: the command line of `reverie render`."""

    input: str
    output: str
    frames: str | None = None
    allow_gaps: bool = False
    fps: float | None = None
    input_colorspace: str | None = None
    output_colorspace: str | None = None
    encode: str | None = None
    output_size: int | None = None
    bit_depth: int | None = None
    force: bool = False


@dataclass(frozen=True)
class Target:
    """Where a shot's frames (and video) go, and in which colourspace the frames are written."""

    pattern: SequencePattern
    colorspace: str
    video: Path | None
    codec: str | None
    bit_depth: int | None = None

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.pattern)

    @property
    def report_path(self) -> Path:
        return self.pattern.path(0).with_name(f"{_stem(self.pattern)}.report.json")


class ShotEvents(Protocol):
    """What a shell (progress bar, web page, farm driver) hears of a render."""

    def shot_started(self, frames: int, finished: int) -> None: ...
    def frame_started(self, number: int, index: int, todo: int, iterations: int) -> None: ...
    def iteration(self, event: IterationEvent) -> None: ...
    def frame_finished(self, number: int, entry: dict[str, Any]) -> None: ...


@dataclass
class ShotReport:
    """The end of a render: what was done, how fast and how steady."""

    frames: int
    rendered: int
    skipped: int
    seconds: list[float] = field(default_factory=list)
    flicker: float | None = None
    flicker_per_frame: dict[int, float] = field(default_factory=dict)
    device: str = ""
    look_hash: str = ""
    output: str = ""
    video: str | None = None
    path: Path | None = None
    """Where the report is kept (beside the frames)."""

    def to_dict(self) -> dict[str, Any]:
        per_frame = statistics.median(self.seconds) if self.seconds else None
        return {
            "frames": self.frames,
            "rendered": self.rendered,
            "skipped_finished": self.skipped,
            "seconds_per_frame_median": per_frame,
            "seconds_total": round(sum(self.seconds), 3),
            "flicker": self.flicker,
            "flicker_per_frame": {str(k): v for k, v in self.flicker_per_frame.items()},
            "device": self.device,
            "look_hash": self.look_hash,
            "output": self.output,
            "video": self.video,
        }


def manifest_path(pattern: SequencePattern) -> Path:
    """paint.%04d.exr -> paint.manifest.json beside the frames."""
    return pattern.path(0).with_name(f"{_stem(pattern)}.manifest.json")


def written_colorspace(output: str) -> str | None:
    """The colourspace a Reverie render wrote frames in (from their manifest), if one did."""
    pattern = parse_pattern(output)
    if pattern is None:
        return None
    found = load_manifest(manifest_path(pattern))
    return found.key.get("colorspace") if found is not None else None


def open_clip(spec: ShotSpec) -> Clip:
    """The input shot: a video file, or an image sequence (pattern with %04d or ####)."""
    if is_video(spec.input):
        frames = parse_frame_range(spec.frames) if spec.frames else None
        clip: Clip = open_video(spec.input, frames)
        if spec.input_colorspace:
            clip.colorspace = cs.resolve_colorspace(spec.input_colorspace)  # type: ignore[misc]
        return clip
    if parse_pattern(spec.input) is None:
        raise ReverieError(
            f"{spec.input} is neither a video (.mov, .mp4, .mkv) nor a frame pattern like plate.%04d.exr "
            "or plate.####.png: give one of those (or paint a single image with `reverie stylize`)"
        )
    return open_sequence(
        spec.input,
        spec.frames,
        allow_gaps=spec.allow_gaps,
        fps=spec.fps or 24.0,
        colorspace=spec.input_colorspace,
    )


def plan_target(spec: ShotSpec, clip: Clip) -> Target:
    """Frames pattern, colourspace and video of the output; checked before any work is done."""
    if spec.encode is not None and spec.encode not in ("prores", "h264"):
        raise ReverieError(f"--encode {spec.encode!r} is not known: use prores or h264")
    if is_video(spec.output):
        video = Path(spec.output)
        codec = spec.encode or default_video_codec(video)
        # A video alone is not resumable: its frames live beside it as 16-bit display PNGs.
        folder = video.with_name(f"{video.stem}.frames")
        pattern = require_pattern(str(folder / f"{video.stem}.%04d.png"))
        colour = cs.NETWORK_COLORSPACE
    else:
        pattern = require_pattern(spec.output)
        codec = spec.encode
        video = _video_beside(pattern, codec) if codec else None
        colour = cs.resolve_colorspace(spec.output_colorspace or clip.colorspace)
    if video is not None:
        check_codec(codec, video)
    pattern.path(clip.frames[0]).parent.mkdir(parents=True, exist_ok=True)
    check_frame_writable(pattern.path(clip.frames[0]))
    if video is not None:
        check_location(video)
    return Target(pattern, colour, video, codec, spec.bit_depth)


def render_shot(
    spec: ShotSpec, look: Look, runtime: Runtime, events: ShotEvents, clip: Clip | None = None
) -> ShotReport:
    """Render every unfinished frame of the shot, then encode the video and measure the flicker.

    clip: the input, if the caller opened it already (`open_clip(spec)`).
    """
    if not look.styles:
        raise ReverieError("no style image: give one with --style PAINTING (or a look that names one)")
    styles = [read_image(p) for p in look.styles]
    clip = clip or open_clip(spec)
    target = plan_target(spec, clip)
    key = _key(spec, look, target)
    manifest = open_manifest(target.manifest_path, key, _existing(target, clip), force=spec.force)
    done = manifest.finished(target.pattern.path)
    todo = [n for n in clip.frames if n not in done]
    report = ShotReport(len(clip.frames), 0, len(clip.frames) - len(todo), look_hash=look.hash())
    events.shot_started(report.frames, report.skipped)
    painter = _Painter(clip, target, look, runtime, styles, spec.output_size, events)
    for index, number in enumerate(todo):
        entry = painter.paint(number, index, len(todo), manifest)
        manifest.record(number, entry)
        report.seconds.append(entry["seconds"])
        report.device = entry["device"]
        report.rendered += 1
        events.frame_finished(number, entry)
    if target.video is not None:
        encode_video(_display_frames(target, clip), target.video, fps=_rate(clip), codec=target.codec or "")
    _finish_report(report, manifest, clip, target)
    atomic_write_bytes(target.report_path, json.dumps(report.to_dict(), indent=2).encode())
    return report


class _Painter:
    """Paints frames in order, keeping the previous plate and painted frame for the temporal chain."""

    def __init__(
        self,
        clip: Clip,
        target: Target,
        look: Look,
        runtime: Runtime,
        styles: list[np.ndarray],
        output_size: int | None,
        events: ShotEvents,
    ) -> None:
        self.clip, self.target, self.look, self.runtime = clip, target, look, runtime
        self.styles, self.output_size, self.events = styles, output_size, events
        self.previous: tuple[int, np.ndarray, np.ndarray] | None = None  # number, plate, painted (display)

    def paint(self, number: int, index: int, todo: int, manifest: Manifest) -> dict[str, Any]:
        started = time.perf_counter()
        stored = self.clip.read(number)
        plate = cs.to_display(stored, self.clip.colorspace)
        before = self._previous(number, manifest)
        # The flow serves the temporal chain and the flicker measure, so it is computed either way.
        moved = motion(before[0], plate) if before is not None else None
        continuity = self._continuity(before, moved) if self.look.temporal_weight > 0 else None
        look = self._frame_look(continuity is not None)
        self.events.frame_started(number, index, todo, look.iterations)
        result = stylize(
            plate,
            self.styles,
            look,
            runtime=self.runtime,
            output_size=self.output_size,
            callback=self.events.iteration,
            continuity=continuity,
        )
        self._write(number, result.image, plate, stored)
        flicker = _flicker(before, moved, result.image)
        self.previous = (number, plate, result.image)
        return _entry(self.target.pattern.path(number), result, time.perf_counter() - started, flicker, moved)

    def _frame_look(self, chained: bool) -> Look:
        """A chain's first frame starts from scratch and gets more iterations; with the temporal weight
        at 0 every frame is a still of its own, with the look's iterations."""
        if chained or self.look.temporal_weight == 0:
            return self.look
        return self.look.replace(iterations=self.look.shot_first_iterations)

    def _previous(self, number: int, manifest: Manifest) -> tuple[np.ndarray, np.ndarray] | None:
        """The plate and painted frame just before `number` in the shot: in memory, or from disk."""
        at = self.clip.frames.index(number)
        if at == 0:
            return None
        prev = self.clip.frames[at - 1]
        if self.previous is not None and self.previous[0] == prev:
            return self.previous[1], self.previous[2]
        if prev not in manifest.frames or not self.target.pattern.path(prev).is_file():
            return None  # the chain restarts, as at a shot's first frame
        painted = cs.to_display(read_frame(self.target.pattern.path(prev)), self.target.colorspace)
        return cs.to_display(self.clip.read(prev), self.clip.colorspace), painted

    def _continuity(
        self, before: tuple[np.ndarray, np.ndarray] | None, moved: Motion | None
    ) -> Continuity | None:
        if before is None or moved is None:
            return None
        painted = before[1]
        at_size = moved.resized(painted.shape[1], painted.shape[0])
        return Continuity(warped=warp(painted, at_size.flow), mask=at_size.mask)

    def _write(self, number: int, painted: np.ndarray, plate: np.ndarray, stored: np.ndarray) -> None:
        colour = self.target.colorspace
        out = cs.from_display(painted, colour, None if cs.is_display_referred(colour) else float(plate.max()))
        if colour == self.clip.colorspace and not cs.is_display_referred(colour):
            # Scene-referred: painted highlights may not exceed the plate's own range (a saturated
            # stroke near display white would otherwise invert to a value far above anything shot).
            out = np.clip(out, min(float(stored.min()), 0.0), float(stored.max()))
        write_frame(self.target.pattern.path(number), out, bit_depth=self.target.bit_depth)


def _flicker(
    before: tuple[np.ndarray, np.ndarray] | None, moved: Motion | None, painted: np.ndarray
) -> float | None:
    """Warping error between this painted frame and the previous one (flow from the plates)."""
    if before is None or moved is None:
        return None
    value = warping_error(before[1], painted, moved)
    return None if np.isnan(value) else float(value)


def _entry(
    path: Path, result: StylizeResult, seconds: float, flicker: float | None, moved: Motion | None
) -> dict[str, Any]:
    meta = result.metadata()
    return {
        "file": path.name,
        "look_hash": meta["look_hash"],
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "device": meta["device"],
        "precision": meta["precision"],
        "iterations": result.iterations,
        "losses": meta["losses"],
        "chained": moved is not None,
        "flicker": flicker,
    }


def _finish_report(report: ShotReport, manifest: Manifest, clip: Clip, target: Target) -> None:
    values = {n: manifest.frames[n].get("flicker") for n in clip.frames if n in manifest.frames}
    report.flicker_per_frame = {n: v for n, v in values.items() if v is not None}
    report.flicker = statistics.fmean(report.flicker_per_frame.values()) if report.flicker_per_frame else None
    report.output = target.pattern.text
    report.video = str(target.video) if target.video else None
    report.path = target.report_path


def _display_frames(target: Target, clip: Clip) -> Iterator[np.ndarray]:
    for number in clip.frames:
        yield cs.to_display(read_frame(target.pattern.path(number)), target.colorspace)


def _rate(clip: Clip) -> Any:
    return getattr(clip, "rate", None) or clip.fps


def _key(spec: ShotSpec, look: Look, target: Target) -> dict[str, Any]:
    """Everything that changes a frame's pixels: frames made under another key must not mix in."""
    return {
        "look": look.hash(),
        "input": str(Path(spec.input).resolve()),
        "output_size": spec.output_size,
        "colorspace": target.colorspace,
        "bit_depth": spec.bit_depth,
    }


def _existing(target: Target, clip: Clip) -> list[Path]:
    paths = (target.pattern.path(n) for n in clip.frames)
    return [p for p in paths if p.exists()]


def _video_beside(pattern: SequencePattern, codec: str) -> Path:
    suffix = ".mov" if codec == "prores" else ".mp4"
    return pattern.path(0).with_name(_stem(pattern) + suffix)


def _stem(pattern: SequencePattern) -> str:
    """paint.%04d.exr -> paint; %04d.png -> shot."""
    return Path(pattern.prefix).name.rstrip("._- ") or "shot"
