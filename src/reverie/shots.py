"""Rendering shots with progress on the terminal: `reverie render` and `reverie flicker`.

A thin shell over `reverie.pipeline.shot`: two progress bars, the shot report as a table and JSON. The
shot modules need the `shots` extra (PyAV, OpenCV, OpenImageIO, OpenColorIO); without it these commands
stop with the install command, and stills keep working.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from reverie.core.transfer import IterationEvent
from reverie.errors import ReverieError
from reverie.io.images import atomic_write_bytes
from reverie.look import Look
from reverie.runtime import Runtime

if TYPE_CHECKING:  # the shot modules import the shots extra's packages
    from reverie.pipeline.flow import FlickerReport
    from reverie.pipeline.shot import Clip, ShotReport, ShotSpec

_EXTRA_MODULES = {"av": "PyAV", "cv2": "OpenCV", "OpenImageIO": "OpenImageIO", "PyOpenColorIO": "OpenColorIO"}


def require_shots_extra() -> None:
    """One line with the install command when a package of the shots extra is missing."""
    missing = [name for module, name in _EXTRA_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ReverieError(
            f"shots need {', '.join(missing)}: install them with pip install 'reverie[shots]' "
            "(or pip install -e '.[shots]' in a checkout)"
        )


class _ShotProgress:
    """Two Rich bars: frames of the shot (with the last frame's time and an ETA) and the current frame's
    iterations. Implements `reverie.pipeline.shot.ShotEvents`."""

    def __init__(self, console: Console, frames: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self.frames = self.progress.add_task("frames", total=frames, info="")
        self.iterations = self.progress.add_task("  frame", total=1, info="")

    def shot_started(self, frames: int, finished: int) -> None:
        self.progress.update(self.frames, total=frames, completed=finished)

    def frame_started(self, number: int, index: int, todo: int, iterations: int) -> None:
        self.progress.reset(self.iterations, total=iterations, description=f"  frame {number}", info="")

    def iteration(self, event: IterationEvent) -> None:
        losses = f"content {event.losses.content:.3g} style {event.losses.style:.3g}"
        self.progress.advance(self.iterations)
        self.progress.update(self.iterations, info=losses)

    def frame_finished(self, number: int, entry: dict) -> None:
        flicker = f" · flicker {entry['flicker']:.2e}" if entry.get("flicker") is not None else ""
        self.progress.update(self.frames, info=f"last {entry['seconds']:.1f} s/frame{flicker}")
        self.progress.advance(self.frames)

    def __enter__(self) -> _ShotProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def render_shot_cli(
    spec: ShotSpec, look: Look, runtime: Runtime, *, save_look: Path | None = None, quiet: bool = False
) -> ShotReport:
    """`reverie render`: the shot with progress bars, then its report (table + JSON beside the frames)."""
    require_shots_extra()
    from reverie.pipeline.shot import open_clip, render_shot

    if save_look is not None and save_look.suffix.lower() != ".toml":
        raise ReverieError(f"--save-look {save_look}: a look file must end in .toml")
    console = Console(stderr=True, quiet=quiet)
    clip = open_clip(spec)
    console.print(
        f"{spec.input}: {len(clip.frames)} frames, {clip.size[0]}x{clip.size[1]}, {clip.fps:g} fps, "
        f"{clip.colorspace} · {look.describe_u()} · {look.network} · {look.size} px · "
        f"temporal weight {look.temporal_weight:g}"
    )
    if save_look is not None:
        atomic_write_bytes(save_look, look.to_toml().encode())
    with _ShotProgress(console, len(clip.frames)) as events:
        report = render_shot(spec, look, runtime, events, clip)
    console.print(_shot_table(report))
    return report


def _shot_table(report: ShotReport) -> Table:
    data = report.to_dict()
    table = Table(title=f"shot report ({report.path})", show_header=False)
    per_frame = data["seconds_per_frame_median"]
    rows = [
        ("frames", f"{report.frames} ({report.rendered} rendered, {report.skipped} already finished)"),
        ("seconds per frame", f"{per_frame:.1f} (median)" if per_frame is not None else "-"),
        ("flicker", f"{report.flicker:.3e} (mean warping error)" if report.flicker is not None else "-"),
        ("device", report.device or "-"),
        ("look", report.look_hash),
        ("frames written", report.output),
    ]
    if report.video:
        rows.append(("video", report.video))
    for name, value in rows:
        table.add_row(name, value)
    return table


def flicker_cli(output: str, input: str, frames: str | None, json_out: Path | None) -> FlickerReport:
    """`reverie flicker`: per-frame and overall warping error of painted frames against their shot."""
    require_shots_extra()
    from reverie.io.video import is_video
    from reverie.pipeline.flow import measure_flicker
    from reverie.pipeline.shot import ShotSpec, open_clip, written_colorspace

    plates = open_clip(ShotSpec(input=input, output=output, frames=frames))
    # A painted video is numbered from 1 whatever the plates' numbers: frames then pair by position.
    chosen = None if is_video(output) and not is_video(input) else frames
    painted = open_clip(ShotSpec(output, output, chosen, input_colorspace=written_colorspace(output)))
    if len(painted.frames) != len(plates.frames):
        raise ReverieError(
            f"{output} has {len(painted.frames)} frames but {input} has {len(plates.frames)}: measure the "
            "frames both have with --frames, or finish the render"
        )
    report = measure_flicker(_Frames(plates, plates.frames), _Frames(painted, painted.frames))
    for number, value in zip(plates.frames[1:], report.per_frame, strict=True):
        print(f"frame {number}: {value:.4e}")
    print(f"flicker (mean warping error over {len(report.per_frame)} frame pairs): {report.mean:.4e}")
    if json_out is not None:
        atomic_write_bytes(json_out, json.dumps(report.to_dict(), indent=2).encode())
    return report


class _Frames(Sequence[np.ndarray]):
    """A clip's frames in display colours, read when indexed: a long shot never sits in memory whole
    (measuring reads each frame as the second of one pair and the first of the next, hence the cache)."""

    def __init__(self, clip: Clip, numbers: tuple[int, ...]) -> None:
        self.clip, self.numbers = clip, numbers
        self.cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        from reverie.io import colorspace as cs

        if index not in self.cache:
            self.cache = {k: v for k, v in self.cache.items() if k == index - 1}
            self.cache[index] = cs.to_display(self.clip.read(self.numbers[index]), self.clip.colorspace)
        return self.cache[index]
