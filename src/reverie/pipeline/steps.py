"""The per-frame pipeline: paint one step of a plan, cross-fade a frame, measure a frame's flicker.

Each step takes the `Worker` that runs it (what it keeps from one step to the next: a `Painter` with its
network and style targets, the shots it opened, the paintings it read) and a `ShotJob` (everything about
a shot that does not change from frame to frame), and writes its frame straight to the shot's output or
work folder; only a small record returns to the driver. The farm runs them in the driver's process, in
local worker processes or in Ray actors alike, each with one Worker, so a shot renders to the same
frames on any farm.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reverie.core.transfer import Callback
from reverie.engine.fast import paint_frame
from reverie.engine.painter import NetworkBuilder, Painter, trim_oldest
from reverie.engine.still import Continuity
from reverie.io import colorspace as cs
from reverie.io.images import atomic_path, output_dimensions, read_image, resize
from reverie.io.sequences import read_frame, write_frame
from reverie.look import Look
from reverie.pipeline.fastmodel import FastModel, LoadedModel, load_model
from reverie.pipeline.flow import motion, warp, warping_error
from reverie.pipeline.plan import Blend, Step
from reverie.pipeline.shot import Clip, ShotSpec, Target, open_clip
from reverie.runtime import Runtime
from reverie.version import __version__


class Worker:
    """What a farm worker keeps from one step to the next: a Painter per runtime (its network and the
    paintings' Gram targets), the shots it opened (a video's index is read once) and the paintings it
    read. One per process: the driver's, a local worker process's or a Ray actor's."""

    KEPT = 8  # shots and paintings kept; a batch worker moves on from shot to shot

    def __init__(self, painter: Painter | None = None, build_network: NetworkBuilder | None = None) -> None:
        self.painters: dict[Runtime, Painter] = {painter.runtime: painter} if painter else {}
        self.build_network = build_network
        self.clips: OrderedDict[ShotSpec, Clip] = OrderedDict()
        self.paintings: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self.fast_nets: OrderedDict[tuple[str, Runtime], LoadedModel] = OrderedDict()

    def painter(self, runtime: Runtime) -> Painter:
        if runtime not in self.painters:
            self.painters[runtime] = Painter(runtime, build_network=self.build_network)
        return self.painters[runtime]

    def clip(self, spec: ShotSpec) -> Clip:
        if spec not in self.clips:
            self.clips[spec] = open_clip(spec)
            trim_oldest(self.clips, self.KEPT)
        return self.clips[spec]

    def fast_net(self, model: FastModel, runtime: Runtime) -> LoadedModel:
        """A shot's fast-mode network, read once per worker (a frame is a fraction of a second)."""
        key = (model.digest, runtime)
        if key not in self.fast_nets:
            self.fast_nets[key] = load_model(model, self.painter(runtime).device)
            trim_oldest(self.fast_nets, 2)  # each holds its weights on the device
        return self.fast_nets[key]

    def styles(self, paths: tuple[str, ...]) -> list[np.ndarray]:
        """The look's paintings, read again only when a file changes (its size or modification time)."""
        return [self._painting(path) for path in paths]

    def _painting(self, path: str) -> np.ndarray:
        try:
            stat = Path(path).stat()
        except OSError:
            return read_image(path)  # which says what is wrong with the path, in one line
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self.paintings:
            self.paintings[key] = read_image(path)
            trim_oldest(self.paintings, self.KEPT)
        return self.paintings[key]


@dataclass(frozen=True)
class ShotJob:
    """A shot as the workers see it: what to read, how to paint it and where to write."""

    spec: ShotSpec
    look: Look
    runtime: Runtime
    target: Target
    work: Path
    """The shot's work folder: each chain's painted frames, raw, for the next frame and cross-fades."""
    cwd: str
    """The driver's working folder: relative paths (plates, output, styles) mean the same on a worker,
    which needs the shot's storage mounted at the same path (as render farms do)."""
    fast: FastModel | None = None
    """Fast mode: the shot's trained network, which paints every frame (`fast_step`)."""

    def raw_path(self, chain: int, number: int) -> Path:
        return self.work / f"chain{chain:04d}.{number:08d}.npy"


def step_look(look: Look, chained: bool) -> Look:
    """The look a step paints with: a temporally coherent chain's first frame, which starts from
    scratch, gets the look's `shot_first_iterations`."""
    if chained or look.temporal_weight == 0:
        return look
    return look.replace(iterations=look.shot_first_iterations)


def paint_step(
    worker: Worker, job: ShotJob, step: Step, previous_from: str | None, callback: Callback | None = None
) -> dict:
    """Paint one frame of a chain; write it raw to the work folder, and to the output if it is final.

    previous_from: where the chain's previous painted frame is: "raw" (the work folder), "output" (the
    finished output frame) or None, which starts the chain here.
    """
    _enter(job)
    started = datetime.datetime.now(datetime.UTC)
    clip = worker.clip(job.spec)
    stored = clip.read(step.number)
    plate = cs.to_display(stored, clip.colorspace, clip.color)
    before = _painted_before(job, clip, step, previous_from)
    continuity = None
    if before is not None and job.look.temporal_weight > 0:
        moved = motion(before[0], plate)
        at_size = moved.resized(before[1].shape[1], before[1].shape[0])
        continuity = Continuity(warped=warp(before[1], at_size.flow), mask=at_size.mask)
    look = step_look(job.look, chained=continuity is not None)
    result = worker.painter(job.runtime).stylize(
        plate,
        worker.styles(look.styles),
        look,
        output_size=job.spec.output_size,
        callback=callback,
        continuity=continuity,
    )
    _save_raw(job.raw_path(step.chain, step.number), result.image)
    if step.final:
        write_output(job, clip, step.number, result.image, stored, plate)
    meta = result.metadata()
    return {
        "file": job.target.pattern.path(step.number).name,
        "look_hash": meta["look_hash"],
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 3),
        "device": meta["device"],
        "precision": meta["precision"],
        "iterations": result.iterations,
        "losses": meta["losses"],
        "chained": continuity is not None,
        "chain": step.chain,
        "worker": worker_name(),
    }


def fast_step(worker: Worker, job: ShotJob, number: int) -> dict:
    """Paint one frame with the shot's fast-mode network and write it to the output: frames are
    independent, so any worker paints any frame, in any order."""
    assert job.fast is not None, "a fast step belongs to a fast job"
    _enter(job)
    started = datetime.datetime.now(datetime.UTC)
    clip = worker.clip(job.spec)
    stored = clip.read(number)
    plate = cs.to_display(stored, clip.colorspace, clip.color)
    loaded = worker.fast_net(job.fast, job.runtime)
    painter = worker.painter(job.runtime)
    began = time.perf_counter()
    sized = plate if (plate.shape[1], plate.shape[0]) == loaded.size else resize(plate, loaded.size)
    painted = paint_frame(loaded.net, sized, painter)
    size = output_dimensions(plate.shape[1], plate.shape[0], job.spec.output_size)
    if (painted.shape[1], painted.shape[0]) != size:  # trained at another size (the artist's keyframes)
        painted = resize(painted, size)
    seconds = time.perf_counter() - began
    write_output(job, clip, number, painted, stored, plate)
    return {
        "file": job.target.pattern.path(number).name,
        "look_hash": job.look.hash(),
        "fast": job.fast.digest[:16],
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "device": str(painter.device),
        "chained": False,
        "worker": worker_name(),
    }


def blend_step(worker: Worker, job: ShotJob, blend: Blend) -> dict:
    """Cross-fade two chains' paintings of a frame into the output frame."""
    _enter(job)
    a, b = (np.load(job.raw_path(c, blend.number)) for c in blend.chains)
    mixed = ((1.0 - blend.weight) * a + blend.weight * b).astype(np.float32)
    clip = worker.clip(job.spec)
    stored = clip.read(blend.number)
    write_output(job, clip, blend.number, mixed, stored, cs.to_display(stored, clip.colorspace, clip.color))
    return {
        "file": job.target.pattern.path(blend.number).name,
        "look_hash": job.look.hash(),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "blend": {"chains": list(blend.chains), "weight": round(blend.weight, 6)},
        "chained": True,
        "worker": worker_name(),
    }


def measure_step(worker: Worker, job: ShotJob, number: int, previous: int) -> float | None:
    """Flicker of an output frame: the warping error against the output frame before it, along the
    plates' motion (what `reverie flicker` measures)."""
    _enter(job)
    clip = worker.clip(job.spec)
    plates = [cs.to_display(clip.read(n), clip.colorspace, clip.color) for n in (previous, number)]
    painted = [
        cs.to_display(read_frame(job.target.pattern.path(n)), job.target.colorspace, job.target.color)
        for n in (previous, number)
    ]
    value = warping_error(painted[0], painted[1], motion(plates[0], plates[1]))
    return None if np.isnan(value) else float(value)


def write_output(
    job: ShotJob, clip: Clip, number: int, painted: np.ndarray, stored: np.ndarray, plate: np.ndarray
) -> None:
    """A painted display-referred frame, back in the output's colourspace, written atomically.

    stored: the plate as read; plate: the same in display colours.
    """
    colour, color = job.target.colorspace, job.target.color
    scene = not cs.is_display_referred(colour, color)
    out = cs.from_display(painted, colour, float(plate.max()) if scene else None, config=color)
    if colour == clip.colorspace and scene:
        # Scene-referred: painted highlights may not exceed the plate's own range (a saturated stroke
        # near display white would otherwise invert to a value far above anything shot).
        out = np.clip(out, min(float(stored.min()), 0.0), float(stored.max()))
    write_frame(
        job.target.pattern.path(number),
        out,
        bit_depth=job.target.bit_depth,
        tags=frame_tags(job, clip, number),
    )


def frame_tags(job: ShotJob, clip: Clip, number: int) -> dict[str, str]:
    """Where an output frame came from, for its header: a compositor holding one frame can tell which
    look, version, plate and colour made it (`reverie look show FRAME`)."""
    return _tags(job, clip.source(number)) | {"frame": str(number)}


def video_tags(job: ShotJob, clip: Clip) -> dict[str, str]:
    """Where a shot's video came from, for its metadata: the first frame's source stands for the shot."""
    return _tags(job, clip.source(clip.frames[0])) | {"frames": f"{clip.frames[0]}-{clip.frames[-1]}"}


def _tags(job: ShotJob, source: str) -> dict[str, str]:
    tags = {
        "look": job.look.hash(),
        "version": __version__,
        "source": source,
        "colorspace": job.target.colorspace,
    }
    if job.target.color.key() is not None:
        tags |= {"ocio_config": job.target.color.source, "display": job.target.color.display}
        tags["view"] = job.target.color.view
    if job.fast is not None:
        tags["fast"] = job.fast.digest[:16]  # the network that painted it (its file's checksum)
    return tags


def _enter(job: ShotJob) -> None:
    if os.getcwd() != job.cwd:
        os.chdir(job.cwd)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _painted_before(
    job: ShotJob, clip: Clip, step: Step, previous_from: str | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The previous frame's plate and painted frame (display colours), if the chain goes on."""
    if step.previous is None or previous_from is None:
        return None
    if previous_from == "raw":
        painted = np.load(job.raw_path(step.chain, step.previous))
    else:
        stored = read_frame(job.target.pattern.path(step.previous))
        painted = cs.to_display(stored, job.target.colorspace, job.target.color)
    return cs.to_display(clip.read(step.previous), clip.colorspace, clip.color), painted


def _save_raw(path: Path, image: np.ndarray) -> None:
    """float32, exactly as painted: the next frame of the chain must see what an unbroken run would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, image.astype(np.float32, copy=False))
