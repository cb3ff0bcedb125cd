"""The farm's driver: plans every shot of a batch, hands the steps to an executor, records what finishes.

Workers write frames straight to the output; the driver only receives small records and is the one
writer of each shot's manifest, so a finished frame is recorded exactly once. A chain's next step is
handed out when the one before it returns; chunks, shots and independent frames run side by side as
wide as the farm is. A step whose worker died is retried by the executor; one that fails for good (an
error, on any farm) is reported with its error and the rest of the shot goes on (its chain restarts
after it). Killed and run again, the driver renders only what no manifest lists, picking chains up from
the work folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reverie.core.transfer import IterationEvent
from reverie.engine.still import planned_iterations
from reverie.errors import ReverieError
from reverie.farm.executors import Executor, InProcess
from reverie.io.images import atomic_write_bytes
from reverie.io.outputs import check_new, output_lock
from reverie.io.video import encode_video
from reverie.look import Look
from reverie.pipeline.fastmodel import FastModel
from reverie.pipeline.manifest import Manifest, open_manifest
from reverie.pipeline.plan import Blend, Plan, Step, plan_shot
from reverie.pipeline.shot import (
    Clip,
    ShotEvents,
    ShotReport,
    ShotSpec,
    check_not_over_inputs,
    display_frames,
    existing_frames,
    open_clip,
    plan_target,
    render_key,
    shot_rate,
    stem,
)
from reverie.pipeline.steps import (
    ShotJob,
    Worker,
    blend_step,
    fast_step,
    measure_step,
    paint_step,
    step_look,
    video_tags,
)
from reverie.runtime import Runtime

_REFRESH_SECONDS = 2.0  # how often the workers-alive count is refreshed while waiting


class FarmEvents(Protocol):
    """What a shell (progress bar, web page) hears of a batch."""

    def batch_started(self, shots: int, frames: int, finished: int) -> None: ...
    def step_started(self, shot: str, number: int, iterations: int) -> None:
        """Only from work that runs in the driver's process, as do `iteration` events."""

    def iteration(self, event: IterationEvent) -> None: ...
    def frame_finished(self, shot: str, number: int, entry: dict[str, Any]) -> None: ...
    def frame_failed(self, shot: str, number: int, error: str) -> None: ...
    def workers(self, alive: int) -> None: ...


@dataclass
class FarmShot:
    """One shot of a batch while it renders."""

    name: str
    job: ShotJob
    clip: Clip
    manifest: Manifest
    plan: Plan
    report: ShotReport
    finished: set[int]
    failed: dict[int, str] = field(default_factory=dict)
    cursor: list[int] = field(default_factory=list)
    measured: set[int] = field(default_factory=set)
    blending: set[int] = field(default_factory=set)
    painted_now: list[int] = field(default_factory=list)
    """Frames painted (not cross-faded) in this run, in the order they finished."""

    def previous_frame(self, number: int) -> int | None:
        """The plate frame just before `number`, if the shot has it. Flicker is measured between
        consecutive frames only: across a gap (--frames 1-5,9, fast mode's far-apart keyframes) the
        plate moves several frames' worth, and the figure would be another measure."""
        at = self.clip.frames.index(number)
        return self.clip.frames[at - 1] if at and self.clip.frames[at - 1] == number - 1 else None

    def raw_exists(self, chain: int, number: int) -> bool:
        return self.job.raw_path(chain, number).is_file()


@dataclass
class FarmReport:
    """The end of a batch: per shot its report, per frame who rendered it and how long it took."""

    shots: list[FarmShot]
    seconds: float = 0.0

    @property
    def failed(self) -> list[tuple[str, int, str]]:
        return [(s.name, n, e) for s in self.shots for n, e in sorted(s.failed.items())]

    def to_dict(self) -> dict[str, Any]:
        rendered = [_rendered(s) for s in self.shots]  # shots may share a name (plate.%04d.exr)
        frames = [entry for entries in rendered for entry in entries]
        gpu = sum(e["seconds"] for e in frames if str(e.get("device", "")).startswith("cuda"))
        cpu = sum(e["seconds"] for e in frames if str(e.get("device", "")) == "cpu")
        return {
            "shots": [
                {"name": s.name, **s.report.to_dict(), "frames_rendered": r}
                for s, r in zip(self.shots, rendered, strict=True)
            ],
            "failed": [{"shot": s, "frame": n, "error": e} for s, n, e in self.failed],
            "wall_seconds": round(self.seconds, 3),
            "gpu_seconds": round(gpu, 3),
            "cpu_seconds": round(cpu, 3),
            "workers": sorted({e["worker"] for e in frames if "worker" in e}),
        }


def render_batch(
    shots: Sequence[tuple[ShotSpec, Look]],
    runtime: Runtime,
    executor: Executor,
    events: FarmEvents,
    clips: Sequence[Clip | None] | None = None,
    *,
    fast: Sequence[FastModel | None] | None = None,
    locks_held: bool = False,
) -> FarmReport:
    """Render every unfinished frame of every shot on the executor; then encode videos and write each
    shot's report beside its frames. All shots are checked before any work starts.

    fast: per shot, the fast-mode network that paints all its frames (None: the look paints them).
    locks_held: the caller holds the outputs' locks already (fast mode holds them across its stages).
    """
    started = time.perf_counter()
    none: list[None] = [None] * len(shots)
    with contextlib.ExitStack() as locks:  # every shot's output is this batch's until it returns
        farm = [
            _prepare(spec, look, runtime, clip, None if locks_held else locks, model)
            for (spec, look), clip, model in zip(shots, clips or none, fast or none, strict=True)
        ]
        total = sum(len(s.clip.frames) for s in farm)
        events.batch_started(len(farm), total, sum(len(s.finished) for s in farm))
        _Driver(farm, executor, events).run()
        for shot in farm:
            _finish(shot)
    return FarmReport(farm, time.perf_counter() - started)


def render_shot(
    spec: ShotSpec,
    look: Look,
    runtime: Runtime,
    events: ShotEvents,
    clip: Clip | None = None,
    worker: Worker | None = None,
) -> ShotReport:
    """Render every unfinished frame of one shot in this process, then encode the video and measure the
    flicker: the batch driver with the in-process executor. A frame that fails stops the shot with its
    error. clip: the input, if the caller opened it already (`open_clip(spec)`); worker: one to reuse
    (its Painter keeps the network and the painting's targets)."""
    report = render_batch([(spec, look)], runtime, InProcess(worker), _OneShot(events), [clip])
    return report.shots[0].report


class _OneShot:
    """A single shot's `ShotEvents` heard through the farm's events."""

    def __init__(self, events: ShotEvents) -> None:
        self.events, self.index, self.todo = events, 0, 0

    def batch_started(self, shots: int, frames: int, finished: int) -> None:
        self.todo = frames - finished
        self.events.shot_started(frames, finished)

    def step_started(self, shot: str, number: int, iterations: int) -> None:
        self.events.frame_started(number, self.index, self.todo, iterations)
        self.index += 1

    def iteration(self, event: IterationEvent) -> None:
        self.events.iteration(event)

    def frame_finished(self, shot: str, number: int, entry: dict[str, Any]) -> None:
        self.events.frame_finished(number, entry)

    def frame_failed(self, shot: str, number: int, error: str) -> None:
        raise ReverieError(f"frame {number}: {error}")

    def workers(self, alive: int) -> None:
        pass


def _prepare(
    spec: ShotSpec,
    look: Look,
    runtime: Runtime,
    clip: Clip | None,
    locks: contextlib.ExitStack | None,
    fast: FastModel | None,
) -> FarmShot:
    if not look.styles and fast is None:
        raise ReverieError("no style image: give one with --style PAINTING (or a look that names one)")
    clip = clip or open_clip(spec)
    target = plan_target(spec, clip)
    check_not_over_inputs(spec, look, clip, target)
    if locks is not None:
        locks.enter_context(output_lock(target.lock_path, str(target.video or spec.output)))
    key = render_key(spec, look, target, runtime)
    if fast is not None:  # frames of one network never mix with another's
        key["fast"] = fast.digest
    manifest = open_manifest(target.manifest_path, key, existing_frames(target, clip), force=spec.force)
    if target.video is not None and not manifest.path.exists():
        # No manifest of this render vouches for a video already there: someone else's file.
        check_new(target.video, force=spec.force)
    manifest.save()  # before the first frame, so that every state a kill can leave resumes
    # The work folder is named after the render's key, so raw frames of another look never mix in.
    work = target.manifest_path.with_name(f"{stem(target.pattern)}.work-{_digest(key)}")
    if spec.force and work.exists():
        shutil.rmtree(work)
    job = ShotJob(spec, look, runtime, target, work, os.getcwd(), fast)
    temporal = look.temporal_weight > 0 and fast is None  # a network's frames are independent
    plan = plan_shot(clip.frames, temporal=temporal, chunk=spec.chunk, overlap=spec.chunk_overlap)
    finished = manifest.finished(target.pattern.path)
    report = ShotReport(len(clip.frames), 0, len(finished), look_hash=look.hash())
    name = Path(spec.input).name
    return FarmShot(name, job, clip, manifest, plan, report, finished, cursor=[0] * len(plan.chains))


class _Driver:
    """The loop: keep every chain's next step in flight, record results as they come."""

    def __init__(self, shots: list[FarmShot], executor: Executor, events: FarmEvents) -> None:
        self.shots, self.executor, self.events = shots, executor, events
        self.pending: dict[Future, tuple[FarmShot, str, Any]] = {}

    def run(self) -> None:
        for shot in self.shots:
            for chain in range(len(shot.plan.chains)):
                self._advance(shot, chain)
            for blend in shot.plan.blends:  # both sides may be on disk from an interrupted run
                self._maybe_blend(shot, blend)
            for number in sorted(shot.finished):
                self._maybe_measure(shot, number)
        self.events.workers(self.executor.workers())
        while self.pending:
            done = self.executor.wait(list(self.pending), _REFRESH_SECONDS)
            if not done:
                self.events.workers(self.executor.workers())
            for future in done:
                shot, kind, item = self.pending.pop(future)
                self._handle(shot, kind, item, future)

    def _submit(self, shot: FarmShot, kind: str, item: Any, fn: Any, *args: Any) -> None:
        self.pending[self.executor.submit(fn, *args)] = (shot, kind, item)

    def _advance(self, shot: FarmShot, chain: int) -> None:
        """Hand out the chain's next step that still has something to do."""
        steps = shot.plan.chains[chain]
        while shot.cursor[chain] < len(steps):
            step = steps[shot.cursor[chain]]
            shot.cursor[chain] += 1
            if self._needed(shot, step):
                self._paint(shot, step)
                return

    def _needed(self, shot: FarmShot, step: Step) -> bool:
        if step.number in shot.finished:
            return False
        return step.final or not shot.raw_exists(step.chain, step.number)

    def _paint(self, shot: FarmShot, step: Step) -> None:
        if shot.job.fast is not None:
            if self.executor.in_process:
                self._submit(shot, "paint", step, _fast_here, self.events, shot.name, shot.job, step.number)
            else:
                self._submit(shot, "paint", step, fast_step, shot.job, step.number)
            return
        previous_from = self._previous_from(shot, step)
        if not self.executor.in_process:
            self._submit(shot, "paint", step, paint_step, shot.job, step, previous_from)
            return
        job = shot.job
        look = step_look(job.look, chained=previous_from is not None)
        width, height = shot.clip.size
        iterations = planned_iterations(look, width, height, job.spec.output_size, job.runtime)
        args = (self.events, shot.name, iterations, job, step, previous_from)
        self._submit(shot, "paint", step, _paint_here, *args)

    def _previous_from(self, shot: FarmShot, step: Step) -> str | None:
        """Where the chain's previous painted frame can be read, if anywhere (else the chain restarts)."""
        if step.previous is None:
            return None
        if shot.raw_exists(step.chain, step.previous):
            return "raw"
        if _step_before(shot, step).final and step.previous in shot.finished:
            return "output"
        return None

    def _handle(self, shot: FarmShot, kind: str, item: Any, future: Future) -> None:
        error = future.exception()
        if kind == "measure":
            self._measured(shot, item, None if error else future.result())
            return
        number = item.number
        if error is not None:
            self._failed(shot, number, error)
        elif kind == "blend" or item.final:
            self._finished(shot, number, future.result())
        else:
            for blend in shot.plan.blends:
                if blend.number == number:
                    self._maybe_blend(shot, blend)
        if kind == "paint":
            if error is None:
                _drop_used_raw(shot, item)
            self._advance(shot, item.chain)

    def _finished(self, shot: FarmShot, number: int, entry: dict[str, Any]) -> None:
        shot.manifest.record(number, entry)
        shot.finished.add(number)
        shot.report.rendered += 1
        if "seconds" in entry:
            shot.painted_now.append(number)
            shot.report.seconds.append(entry["seconds"])
            shot.report.device = entry["device"]
        self.events.frame_finished(shot.name, number, entry)
        self._maybe_measure(shot, number)
        at = shot.clip.frames.index(number)
        if at + 1 < len(shot.clip.frames):
            self._maybe_measure(shot, shot.clip.frames[at + 1])

    def _failed(self, shot: FarmShot, number: int, error: BaseException) -> None:
        message = _one_line(error)
        shot.failed[number] = message
        self.events.frame_failed(shot.name, number, message)

    def _maybe_blend(self, shot: FarmShot, blend: Blend) -> None:
        if blend.number in shot.finished | shot.blending or blend.number in shot.failed:
            return
        if all(shot.raw_exists(c, blend.number) for c in blend.chains):
            shot.blending.add(blend.number)
            self._submit(shot, "blend", blend, blend_step, shot.job, blend)

    def _maybe_measure(self, shot: FarmShot, number: int) -> None:
        """Flicker of a frame once it and the frame before it are final (and not measured yet)."""
        previous = shot.previous_frame(number)
        if previous is None or number in shot.measured or "flicker" in shot.manifest.frames.get(number, {}):
            return
        if number in shot.finished and previous in shot.finished:
            shot.measured.add(number)
            self._submit(shot, "measure", number, measure_step, shot.job, number, previous)

    def _measured(self, shot: FarmShot, number: int, value: float | None) -> None:
        shot.manifest.frames[number]["flicker"] = value
        shot.manifest.save()


def _drop_used_raw(shot: FarmShot, step: Step) -> None:
    """The chain's previous raw frame once this one is painted from it, if no cross-fade needs it: a
    long shot at film size would otherwise keep gigabytes of them (a resumed chain reads the output)."""
    if step.previous is not None and _step_before(shot, step).final:
        shot.job.raw_path(step.chain, step.previous).unlink(missing_ok=True)


def _step_before(shot: FarmShot, step: Step) -> Step:
    """The step of the same chain that `step` continues from (step.previous must be set)."""
    return next(s for s in shot.plan.chains[step.chain] if s.number == step.previous)


def _paint_here(
    worker: Worker,
    events: FarmEvents,
    name: str,
    iterations: int,
    job: ShotJob,
    step: Step,
    previous_from: str | None,
) -> dict[str, Any]:
    """A step painted in the driver's process, heard iteration by iteration (`iterations`: all of its
    passes and tiles, for a progress bar's total)."""
    events.step_started(name, step.number, iterations)
    return paint_step(worker, job, step, previous_from, events.iteration)


def _fast_here(worker: Worker, events: FarmEvents, name: str, job: ShotJob, number: int) -> dict[str, Any]:
    """A fast-mode frame painted in the driver's process: one step of progress, no iterations."""
    events.step_started(name, number, 1)
    return fast_step(worker, job, number)


def _finish(shot: FarmShot) -> None:
    """Encode the video and clear the work folder once every frame is there; write the report."""
    target, report = shot.job.target, shot.report
    complete = all(n in shot.finished for n in shot.clip.frames)
    if complete and target.video is not None:
        encode_video(
            display_frames(target, shot.clip),
            target.video,
            fps=shot_rate(shot.clip),
            codec=target.codec or "",
            tags=video_tags(shot.job, shot.clip),
        )
    if complete and shot.job.work.exists():
        shutil.rmtree(shot.job.work, ignore_errors=True)
    values = {
        n: shot.manifest.frames[n].get("flicker") for n in shot.clip.frames if n in shot.manifest.frames
    }
    report.flicker_per_frame = {n: v for n, v in values.items() if v is not None}
    report.flicker = statistics.fmean(report.flicker_per_frame.values()) if report.flicker_per_frame else None
    report.output = target.pattern.text
    report.video = str(target.video) if complete and target.video else None
    report.path = target.report_path
    report.failed = dict(shot.failed)
    atomic_write_bytes(target.report_path, json.dumps(report.to_dict(), indent=2).encode())


def _rendered(shot: FarmShot) -> list[dict[str, Any]]:
    """This run's painted frames: number, worker, device, seconds."""
    keys = ("worker", "device", "seconds", "chain")
    frames = shot.manifest.frames
    return [
        {"frame": n, **{k: frames[n][k] for k in keys if k in frames[n]}} for n in sorted(shot.painted_now)
    ]


def _one_line(error: BaseException) -> str:
    """A worker's error as one line: Ray wraps the cause in a traceback; the cause's message is enough."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return text[-1] if text else type(cause).__name__


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
