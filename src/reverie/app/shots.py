"""Rendering shots with progress on the terminal: `reverie render` and `reverie flicker`.

A thin shell over `reverie.farm` and `reverie.pipeline`: a progress bar for the batch (and one for the
current frame's iterations when frames are painted in this process), each shot's report as a table and
JSON, the farm's report as JSON. The shot modules need the `shots` extra (PyAV, OpenCV, OpenImageIO,
OpenColorIO); without it these commands stop with the install command, and stills keep working.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from reverie.core.transfer import IterationEvent
from reverie.errors import ReverieError
from reverie.farm.executors import DEFAULT_RETRIES
from reverie.io.extras import require_shots_extra
from reverie.io.images import atomic_write_bytes, image_size
from reverie.look import INIT_MODES, Look, crop_box
from reverie.runtime import Runtime

if TYPE_CHECKING:  # the shot modules import the shots extra's packages
    from reverie.farm.driver import FarmReport
    from reverie.farm.fast import FastOptions, FastReport
    from reverie.pipeline.flow import FlickerReport
    from reverie.pipeline.shot import Clip, ShotReport, ShotSpec


class _FarmProgress:
    """One Rich bar for the whole batch (frames done, frames per minute, workers alive, ETA) and, when
    frames are painted in this process, one for the current frame's iterations. Implements
    `reverie.farm.driver.FarmEvents`. The heading and bars show once the batch starts: a shot the farm
    refuses (its output, a manifest) is then the only line printed. An error that ends them clears
    the bars."""

    def __init__(self, console: Console, in_process: bool, heading: list[str]) -> None:
        self.console, self.heading, self.shown = console, heading, False
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self.frames = self.progress.add_task("frames", total=1, info="")
        self.iterations = self.progress.add_task("  frame", total=1, info="", visible=in_process)
        self.started = time.monotonic()
        self.done, self.alive, self.last = 0, 0, ""

    def _show(self) -> None:
        if not self.shown:
            for line in self.heading:
                self.console.print(line)
            self.progress.start()
            self.shown = True

    def batch_started(self, shots: int, frames: int, finished: int) -> None:
        self._show()  # fast mode starts two batches: the keyframes, then every frame
        label = f"frames of {shots} shots" if shots > 1 else "frames"
        self.progress.update(self.frames, total=frames, completed=finished, description=label)

    def step_started(self, shot: str, number: int, iterations: int) -> None:
        self.progress.reset(self.iterations, total=iterations, description=f"  frame {number}", info="")

    def iteration(self, event: IterationEvent) -> None:
        losses = f"content {event.losses.content:.3g} style {event.losses.style:.3g}"
        self.progress.advance(self.iterations)
        self.progress.update(self.iterations, info=losses)

    def frame_finished(self, shot: str, number: int, entry: dict) -> None:
        self.done += 1
        if "seconds" in entry:
            self.last = f" · last {entry['seconds']:.1f} s/frame"
        self.progress.advance(self.frames)
        self._info()

    def frame_failed(self, shot: str, number: int, error: str) -> None:
        self.console.print(f"[red]{escape(shot)} frame {number} failed:[/red] {escape(error)}")

    def workers(self, alive: int) -> None:
        self.alive = alive
        self._info()

    def _info(self) -> None:
        minutes = max(time.monotonic() - self.started, 1e-6) / 60
        rate = f"{self.done / minutes:.2f} frames/min · " if self.done else ""
        self.progress.update(self.frames, info=f"{rate}{self.alive} workers{self.last}")

    def stage(self, stage: str, text: str) -> None:
        """Fast mode: what it does now (keyframes, training, frames), printed above the bars."""
        self.console.print(escape(text))

    def training(self, step: int, total: int, loss: float) -> None:
        """Fast mode: the network's training, on the second bar (its ETA is the training's)."""
        if step <= 1:
            self._show()
            self.progress.reset(self.iterations, total=total, description="  training", info="")
            self.progress.update(self.iterations, visible=True)
        self.progress.update(self.iterations, completed=step, info=f"loss {loss:.4g}")

    def __enter__(self) -> _FarmProgress:
        return self

    def __exit__(self, error: type[BaseException] | None, *exc: object) -> None:
        if not self.shown:  # (a stopped Progress still prints a line to a file)
            return
        if error is None:
            self.progress.stop()
        else:  # cleared: the error's line says what happened, frozen bars would not
            self.progress.live.transient = True
            self.progress.live.stop()


@dataclass(frozen=True)
class FarmOptions:
    """`--farm`, `--workers`, `--address`, `--retries`: where the frames are painted."""

    farm: str = "local"
    workers: int | None = None
    address: str | None = None
    retries: int = DEFAULT_RETRIES
    threads: int | None = None


def render_cli(
    shots: list[tuple[ShotSpec, Look]],
    runtime: Runtime,
    farm: FarmOptions,
    *,
    save_look: Path | None = None,
    report: Path | None = None,
    quiet: bool = False,
) -> FarmReport:
    """`reverie render`: one shot or a batch on the chosen farm, with progress, then the reports
    (a table per shot, each shot's JSON beside its frames, the farm's JSON at `report`)."""
    require_shots_extra()
    from reverie.farm.driver import render_batch
    from reverie.farm.executors import make_executor
    from reverie.pipeline.shot import open_clip

    if save_look is not None and save_look.suffix.lower() != ".toml":
        raise ReverieError(f"--save-look {save_look}: a look file must end in .toml")
    console = Console(stderr=True, quiet=quiet)
    clips = [open_clip(spec) for spec, _ in shots]
    heading = []
    for (spec, look), clip in zip(shots, clips, strict=True):
        _check_look_inputs(look, clip)
        heading.append(
            f"{spec.input}: {len(clip.frames)} frames, {clip.size[0]}x{clip.size[1]}, {clip.fps:g} fps, "
            f"{clip.colorspace} · {look.describe_u()} · {look.network} · {look.size} px · "
            f"temporal weight {look.temporal_weight:g}"
        )
    if save_look is not None:
        atomic_write_bytes(save_look, shots[0][1].to_toml().encode())
    executor = make_executor(
        farm.farm, workers=farm.workers, address=farm.address, threads=farm.threads, retries=farm.retries
    )
    try:
        with _FarmProgress(console, executor.in_process, heading) as events:
            result = render_batch(shots, runtime, executor, events, clips)
    finally:
        executor.close()
    for shot in result.shots:
        console.print(_shot_table(shot.report))
    _farm_summary(console, result, report or _farm_report_path(result))
    if result.failed:
        shown = "; ".join(f"{s} frame {n}: {e}" for s, n, e in result.failed[:3])
        more = f" (and {len(result.failed) - 3} more)" if len(result.failed) > 3 else ""
        raise ReverieError(f"{len(result.failed)} frame(s) failed, the others are done: {shown}{more}")
    return result


def _check_look_inputs(look: Look, clip: Clip) -> None:
    """What would fail every frame fails now, once: the look's paintings (and a crop that must fit
    them), its init image, its masks and u-map (the plate's aspect ratio; a grey u-map)."""
    from reverie.engine.still import read_guides

    for path in look.styles:
        width, height = image_size(path)
        if look.style_crop is not None:
            crop_box(look.style_crop, width, height)
    if look.init not in INIT_MODES:
        image_size(look.init)
    read_guides(look, (clip.size[1], clip.size[0]))


def render_fast_cli(
    shot: tuple[ShotSpec, Look],
    runtime: Runtime,
    farm: FarmOptions,
    options: FastOptions,
    *,
    save_look: Path | None = None,
    report: Path | None = None,
    quiet: bool = False,
) -> FastReport:
    """`reverie render --fast`: keyframes, training and every frame, with progress, then the reports."""
    require_shots_extra()
    from reverie.farm.executors import make_executor
    from reverie.farm.fast import render_fast
    from reverie.pipeline.shot import open_clip

    spec, look = shot
    if save_look is not None and save_look.suffix.lower() != ".toml":
        raise ReverieError(f"--save-look {save_look}: a look file must end in .toml")
    console = Console(stderr=True, quiet=quiet)
    clip = open_clip(spec)
    if options.keyframe_images is None:  # the look paints the keyframes: what would fail them fails now
        _check_look_inputs(look, clip)
    if save_look is not None:
        atomic_write_bytes(save_look, look.to_toml().encode())
    executor = make_executor(
        farm.farm, workers=farm.workers, address=farm.address, threads=farm.threads, retries=farm.retries
    )
    try:
        heading = [
            f"{spec.input}: {len(clip.frames)} frames, {clip.size[0]}x{clip.size[1]} · fast mode · "
            f"{look.describe_u()} · {look.network}"
        ]
        with _FarmProgress(console, executor.in_process, heading) as events:
            result = render_fast(spec, look, runtime, executor, events, options, clip)
    finally:
        executor.close()
    frames = result.frames
    for farm_shot in frames.shots:
        console.print(_shot_table(farm_shot.report))
    how = f"trained in {result.training_seconds:.0f} s" if result.trained else "reused"
    numbers = ", ".join(str(k.number) for k in result.keyframes)
    console.print(f"network: {result.model.path} ({how}); keyframes {numbers}")
    _farm_summary(console, frames, report or _farm_report_path(frames))
    if frames.failed:
        shown = "; ".join(f"{s} frame {n}: {e}" for s, n, e in frames.failed[:3])
        raise ReverieError(f"{len(frames.failed)} frame(s) failed, the others are done: {shown}")
    return result


def _farm_report_path(result: FarmReport) -> Path:
    """Beside the first shot's frames: paint.%04d.exr -> paint.farm.json."""
    from reverie.pipeline.shot import stem

    target = result.shots[0].job.target
    return target.manifest_path.with_name(f"{stem(target.pattern)}.farm.json")


def _farm_summary(console: Console, result: FarmReport, path: Path) -> None:
    data = result.to_dict()
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())
    console.print(
        f"farm: {data['wall_seconds']:.1f} s wall · {data['gpu_seconds']:.1f} GPU-s · "
        f"{data['cpu_seconds']:.1f} CPU-s · {len(data['workers'])} workers · report {path}"
    )


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


def ocio_from_environment() -> str | None:
    """``$OCIO``, as every OCIO application reads it: the config of a shot that names none."""
    return os.environ.get("OCIO", "").strip() or None


def flicker_cli(
    output: str, input: str, frames: str | None, json_out: Path | None, color: dict[str, str] | None = None
) -> FlickerReport:
    """`reverie flicker`: per-frame and overall warping error of painted frames against their shot.
    color: the OCIO settings of `ShotSpec` (config, display, view) the render used; `$OCIO` otherwise."""
    require_shots_extra()
    from reverie.io.video import is_video
    from reverie.pipeline.flow import measure_flicker
    from reverie.pipeline.shot import ShotSpec, open_clip, written_colorspace

    settings: dict[str, Any] = {"ocio_config": ocio_from_environment(), **(color or {})}
    plates = open_clip(ShotSpec(input=input, output=output, frames=frames, **settings))
    # A painted video is numbered from 1 whatever the plates' numbers: frames then pair by position.
    chosen = None if is_video(output) and not is_video(input) else frames
    written = written_colorspace(output)
    painted = open_clip(ShotSpec(output, output, chosen, input_colorspace=written, **settings))
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
            frame = self.clip.read(self.numbers[index])
            self.cache[index] = cs.to_display(frame, self.clip.colorspace, self.clip.color)
        return self.cache[index]
