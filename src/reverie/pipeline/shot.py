"""A shot: what to read, where to write, what a render's key is, and the report at the end.

Frames are painted by the steps of `reverie.pipeline.steps`, which the farm's driver hands out
(`reverie.farm.driver.render_shot` runs one shot in this process). Each frame is painted by the engine
(`reverie.engine.Painter`) on the display-referred image a director sees (the plate through OpenColorIO),
then brought back to the plate's colourspace and written atomically. With a temporal weight, a frame
starts from the previous painted frame warped by the optical flow between the plates, and a temporal loss
keeps it there where the flow is trusted (Ruder et al. 2016). The manifest (`reverie.pipeline.manifest`)
lists finished frames, so a re-run renders only what is missing. This module prints nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reverie.core.transfer import IterationEvent
from reverie.errors import ReverieError
from reverie.io import colorspace as cs
from reverie.io.images import check_location, make_folder
from reverie.io.outputs import check_not_an_input
from reverie.io.sequences import (
    SequencePattern,
    check_frame_writable,
    open_sequence,
    parse_frame_range,
    parse_pattern,
    read_frame,
    require_pattern,
)
from reverie.io.video import check_codec, default_video_codec, is_video, open_video
from reverie.look import Look
from reverie.nets import weights_digest
from reverie.pipeline.manifest import load_manifest
from reverie.pipeline.plan import DEFAULT_CHUNK, DEFAULT_OVERLAP
from reverie.runtime import Runtime


class Clip(Protocol):
    """Frames of a shot: an image sequence or a video (read-only to whoever paints them)."""

    @property
    def frames(self) -> tuple[int, ...]: ...
    @property
    def fps(self) -> float: ...
    @property
    def colorspace(self) -> str: ...
    @property
    def color(self) -> cs.ColorConfig: ...
    @property
    def size(self) -> tuple[int, int]: ...

    def read(self, number: int) -> np.ndarray: ...

    def source(self, number: int) -> str:
        """Where frame `number` is read from (the file; a video's path)."""
        ...


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
    chunk: int = DEFAULT_CHUNK
    """Frames per chunk of a temporally coherent shot; chunks render in parallel on a farm (0: one
    unbroken chain). Part of the render's key: the same chunks give the same frames on any farm."""
    chunk_overlap: int = DEFAULT_OVERLAP
    """Frames that neighbouring chunks both render and cross-fade, so a chunk boundary is as steady as
    a chunk's inside (see `reverie.pipeline.plan`)."""
    ocio_config: str | None = None
    """The OCIO config the colourspaces are named in: a file or an ``ocio://`` built-in; None, OCIO's
    studio config. The app layer puts ``$OCIO`` here when no config is given."""
    display: str | None = None
    """The display the network paints through (default: the config's default display)."""
    view: str | None = None
    """The display's view (default: the config's default view of that display)."""
    layer: str | None = None
    """The EXR layer the plates are read from (a part's name or a channel prefix); None, the first
    part's RGB."""


@dataclass(frozen=True)
class Target:
    """Where a shot's frames (and video) go, and in which colourspace the frames are written."""

    pattern: SequencePattern
    colorspace: str
    video: Path | None
    codec: str | None
    bit_depth: int | None = None
    source_colorspace: str | None = None
    """The plates' colourspace (canonical name): another one paints other pixels from the same files."""
    color: cs.ColorConfig = cs.STUDIO
    """The OCIO config, display and view the colourspaces are named in and the network paints through."""

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.pattern)

    @property
    def report_path(self) -> Path:
        return self.pattern.path(0).with_name(f"{stem(self.pattern)}.report.json")

    @property
    def lock_path(self) -> Path:
        """Held by the render writing here (see `reverie.io.outputs`): paint.%04d.exr -> paint.lock."""
        return self.pattern.path(0).with_name(f"{stem(self.pattern)}.lock")


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
    failed: dict[int, str] = field(default_factory=dict)
    """Frames that could not be rendered, with their error."""

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
            "failed": {str(k): v for k, v in self.failed.items()},
        }


def manifest_path(pattern: SequencePattern) -> Path:
    """paint.%04d.exr -> paint.manifest.json beside the frames."""
    return pattern.path(0).with_name(f"{stem(pattern)}.manifest.json")


def written_colorspace(output: str) -> str | None:
    """The colourspace a Reverie render wrote frames in (from their manifest), if one did."""
    pattern = parse_pattern(output)
    if pattern is None:
        return None
    found = load_manifest(manifest_path(pattern))
    return found.key.get("colorspace") if found is not None else None


def color_config(spec: ShotSpec) -> cs.ColorConfig:
    """The shot's OCIO config, display and view, checked (one-line errors)."""
    return cs.open_color_config(spec.ocio_config, spec.display, spec.view)


def open_clip(spec: ShotSpec) -> Clip:
    """The input shot: a video file, or an image sequence (pattern with %04d or ####)."""
    color = color_config(spec)
    if is_video(spec.input):
        frames = parse_frame_range(spec.frames) if spec.frames else None
        if spec.layer is not None:
            raise ReverieError(f"--layer {spec.layer!r} is for EXR plates: {spec.input} is a video")
        video = open_video(spec.input, frames)
        video.color = color
        # A video's pictures are display-encoded: shown as they are unless the user says otherwise.
        video.colorspace = cs.network_colorspace(color)
        if spec.input_colorspace:
            video.colorspace = cs.resolve_colorspace(spec.input_colorspace, color)
        return video
    if parse_pattern(spec.input) is None:
        raise ReverieError(
            f"{spec.input} is neither a video (.mov, .mp4, .mkv) nor a frame pattern like plate.%04d.exr "
            "or plate.####.png: give one of those (or paint a single image with `reverie stylize`)"
        )
    return open_sequence(
        spec.input,
        spec.frames,
        allow_gaps=spec.allow_gaps,
        fps=24.0 if spec.fps is None else spec.fps,
        colorspace=spec.input_colorspace,
        color=color,
        layer=spec.layer,
    )


def frames_pattern(output: str) -> SequencePattern:
    """Where a render's frames go: the output's pattern, or for a video output a folder beside it (a
    video alone is not resumable: its frames live there as 16-bit display PNGs). Makes nothing."""
    if is_video(output):
        video = Path(output)
        return require_pattern(str(video.with_name(f"{video.stem}.frames") / f"{video.stem}.%04d.png"))
    return require_pattern(output)


def plan_target(spec: ShotSpec, clip: Clip) -> Target:
    """Frames pattern, colourspace and video of the output; checked before any work is done."""
    if spec.encode is not None and spec.encode not in ("prores", "h264"):
        raise ReverieError(f"--encode {spec.encode!r} is not known: use prores or h264")
    video: Path | None
    codec: str | None
    pattern = frames_pattern(spec.output)
    if is_video(spec.output):
        video = Path(spec.output)
        codec = spec.encode or default_video_codec(video)
        colour = cs.network_colorspace(clip.color)
    else:
        codec = spec.encode
        video = _video_beside(pattern, codec) if codec else None
        colour = cs.resolve_colorspace(spec.output_colorspace or clip.colorspace, clip.color)
    cs.check_invertible(colour, clip.color)  # before any frame is painted, not at the first write
    if video is not None and codec is not None:
        check_codec(codec, video)
    make_folder(pattern.path(clip.frames[0]))
    check_frame_writable(pattern.path(clip.frames[0]))
    if video is not None:
        check_location(video)
    source = cs.resolve_colorspace(clip.colorspace, clip.color)
    return Target(pattern, colour, video, codec, spec.bit_depth, source, clip.color)


def display_frames(target: Target, clip: Clip) -> Iterator[np.ndarray]:
    """A finished shot's output frames in display colours, in order (for the video)."""
    for number in clip.frames:
        yield cs.to_display(read_frame(target.pattern.path(number)), target.colorspace, target.color)


def shot_rate(clip: Clip) -> Any:
    """The exact frame rate (a Fraction for video) to encode at."""
    return getattr(clip, "rate", None) or clip.fps


def render_key(spec: ShotSpec, look: Look, target: Target, runtime: Runtime) -> dict[str, Any]:
    """Everything that changes a frame's pixels: frames made under another key must not mix in. The
    weights are named by their checksum, so a checkpoint rewritten under the same name is another key."""
    key: dict[str, Any] = {
        "look": look.hash(),
        "input": str(Path(spec.input).resolve()),
        "output_size": spec.output_size,
        "colorspace": target.colorspace,
        "input_colorspace": target.source_colorspace,
        "bit_depth": spec.bit_depth,
        "weights": weights_digest(look.network, runtime.weights),
        "precision": runtime.precision,
    }
    if look.temporal_weight > 0:  # where chunks of a chain cross-fade changes the frames there
        key["chunks"] = [spec.chunk, spec.chunk_overlap]
    if target.color.key() is not None:  # absent for the studio config: older renders keep resuming
        key["ocio"] = target.color.key()
    if spec.layer is not None:  # another layer of the same files is other pixels
        key["layer"] = spec.layer
    return key


def check_not_over_inputs(
    spec: ShotSpec, look: Look, clip: Clip, target: Target, more: Sequence[Path] = ()
) -> None:
    """Refuse, even with --force, a render whose output would write over one of its inputs: the video
    or plates it reads (under any name), a painting, mask or u map of its look, or `more` (those of
    them that are there: fast mode's painted keyframes)."""
    if is_video(spec.input):
        plates = [Path(spec.input)]
    else:
        plates = [require_pattern(spec.input).path(n) for n in clip.frames]
    inputs: list[str | Path] = [*plates, *look.files(), *more]
    outputs = [target.pattern.path(n) for n in clip.frames]
    outputs += [target.manifest_path, target.report_path, target.lock_path]
    check_not_an_input([*outputs, *([target.video] if target.video else [])], inputs)


def existing_frames(target: Target, clip: Clip) -> list[Path]:
    paths = (target.pattern.path(n) for n in clip.frames)
    return [p for p in paths if p.exists()]


def _video_beside(pattern: SequencePattern, codec: str) -> Path:
    suffix = ".mov" if codec == "prores" else ".mp4"
    return pattern.path(0).with_name(stem(pattern) + suffix)


def stem(pattern: SequencePattern) -> str:
    """paint.%04d.exr -> paint; %04d.png -> shot."""
    return Path(pattern.prefix).name.rstrip("._- ") or "shot"
