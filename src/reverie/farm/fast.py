"""Fast mode, end to end: a few keyframes painted with the full look, a network trained on them, then
every frame of the shot painted by that network (Texler et al. 2020; see `reverie.engine.fast`).

1. Keyframes: the first and last frame plus where the plate stops being reachable from those chosen
   (`reverie.pipeline.keyframes`), or the frames given with --keyframes, or the artist's own painted
   frames (--keyframe-images).
2. The keyframes are painted by the look (refine to --output-size included) as a render of their own,
   on the same farm, into ``paint.keyframes-KEY/`` beside the output: resumable, and kept as the training
   set and for comparison.
3. The network is trained in the driver's process on (plate, painted keyframe) patches, with a
   temporal term on consecutive plates, and saved beside the output (``paint.fast.pt``) under a key:
   a run with the same key reuses it, another key trains anew (`reverie.pipeline.fastmodel`).
4. Every frame, the keyframes too, is painted by the network, as a render of independent frames on the
   farm: same manifest, report, flicker, colour path and encodes as any render. (Pasting the Gatys
   keyframes in would jump at each keyframe: all frames come from one painter.)

The output's lock is held across the four, so no other render writes there meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reverie.core.distill import TrainConfig
from reverie.core.fastnet import FastNetConfig
from reverie.engine.fast import Pair, train_network
from reverie.engine.painter import Painter
from reverie.errors import ReverieError
from reverie.farm.driver import FarmEvents, FarmReport, render_batch
from reverie.farm.executors import Executor, InProcess
from reverie.io import colorspace as cs
from reverie.io.images import resize
from reverie.io.outputs import check_new, output_lock
from reverie.io.sequences import parse_pattern, read_frame
from reverie.look import Look
from reverie.nets import weights_digest
from reverie.pipeline.fastmodel import FastModel, model_path, save_model, saved_model
from reverie.pipeline.flow import motion
from reverie.pipeline.keyframes import (
    Keyframe,
    choose_keyframes,
    describe,
    parse_keyframes,
)
from reverie.pipeline.manifest import load_manifest, open_manifest
from reverie.pipeline.plan import DEFAULT_MAX_KEYFRAMES
from reverie.pipeline.shot import (
    Clip,
    ShotSpec,
    Target,
    check_not_over_inputs,
    color_config,
    existing_frames,
    open_clip,
    plan_target,
    render_key,
    stem,
)
from reverie.pipeline.steps import Worker
from reverie.runtime import Runtime

TEMPORAL_PAIRS = 8
"""Consecutive plate pairs the temporal term trains on, spread over the shot."""


@dataclass(frozen=True)
class FastOptions:
    """`--fast` and its options."""

    keyframes: str | None = None
    """--keyframes 1001,1040,1096: chosen by hand."""
    max_keyframes: int = DEFAULT_MAX_KEYFRAMES
    keyframe_images: str | None = None
    """--keyframe-images paint.%04d.png: the artist's painted keyframes instead of the look's."""
    retrain: bool = False
    """Train anew, and repaint every frame with the new network."""
    net: FastNetConfig = field(default_factory=FastNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class FastEvents(FarmEvents, Protocol):
    """What a shell hears of a fast render, besides the farm's events of its two renders."""

    def stage(self, stage: str, text: str) -> None:
        """stage: "keyframes", "training" or "frames" when one of them begins, else "note"; text: in
        words, for the terminal."""

    def training(self, step: int, total: int, loss: float) -> None: ...


@dataclass
class FastReport:
    keyframes: list[Keyframe]
    model: FastModel
    trained: bool
    """False when a saved network was reused."""
    training_seconds: float
    frames: FarmReport


class QuietEvents:
    """FastEvents that say nothing, except that a frame failed (it raises, as `render_shot` does)."""

    def stage(self, stage: str, text: str) -> None:
        pass

    def training(self, step: int, total: int, loss: float) -> None:
        pass

    def batch_started(self, shots: int, frames: int, finished: int) -> None:
        pass

    def step_started(self, shot: str, number: int, iterations: int) -> None:
        pass

    def iteration(self, event: object) -> None:
        pass

    def frame_finished(self, shot: str, number: int, entry: dict[str, Any]) -> None:
        pass

    def frame_failed(self, shot: str, number: int, error: str) -> None:
        raise ReverieError(f"frame {number}: {error}")

    def workers(self, alive: int) -> None:
        pass


def render_shot_fast(
    spec: ShotSpec,
    look: Look,
    options: FastOptions | None = None,
    *,
    runtime: Runtime | None = None,
    events: FastEvents | None = None,
) -> FastReport:
    """`reverie render --fast` from Python, in this process: the whole of `render_fast` with one painter
    for the keyframes, the training and the frames (see the README's fast-mode example)."""
    runtime = runtime or Runtime()
    worker = Worker()
    return render_fast(
        spec,
        look,
        runtime,
        InProcess(worker),
        events or QuietEvents(),
        options or FastOptions(),
        painter=worker.painter(runtime),
    )


def render_fast(
    spec: ShotSpec,
    look: Look,
    runtime: Runtime,
    executor: Executor,
    events: FastEvents,
    options: FastOptions,
    clip: Clip | None = None,
    painter: Painter | None = None,
) -> FastReport:
    """Render the shot in fast mode (see the module's docstring). painter: the driver's, for training
    (its network is the perceptual measure); by default a new one."""
    _check(spec, look, options)
    clip = clip or open_clip(spec)
    target = plan_target(spec, clip)
    check_not_over_inputs(spec, look, clip, target, _artist_keyframe_files(clip, options))
    with output_lock(target.lock_path, str(target.video or spec.output)):
        held = _check_output_free(spec, look, runtime, clip, target)  # before minutes of painting
        keyframes = _keyframes(clip, options)
        for line in describe(keyframes):
            events.stage("note", line)
        painted = _painted_keyframes(spec, look, runtime, executor, events, clip, keyframes, options)
        path = model_path(target.pattern, stem(target.pattern))
        key = _model_key(spec, look, runtime, options, keyframes, painted, target)
        model = None if options.retrain else saved_model(path, key)
        if held is not None and (model is None or model.digest != held):
            spec = _replacing(spec, target, options)  # before minutes of training, not after
        started, trained = time.perf_counter(), model is None
        if model is None:
            painter = painter or _driver_painter(executor, runtime)
            model = _train(path, key, look, clip, keyframes, painted, options, painter, events)
        else:
            events.stage("training", f"reusing the network trained for these keyframes: {path}")
        seconds = time.perf_counter() - started
        events.stage("frames", "painting every frame with the network")
        frames = render_batch(
            [(spec, look)], runtime, executor, events, [clip], fast=[model], locks_held=True
        )
    return FastReport(keyframes, model, trained, seconds, frames)


def _check_output_free(
    spec: ShotSpec, look: Look, runtime: Runtime, clip: Clip, target: Target
) -> str | None:
    """Refuse now, before keyframes and training, what the frames' render would refuse at the end:
    frames or a video in the output that another render made (another look or settings, or a render
    that was not fast) or that no manifest vouches for. Returns the digest of the network whose frames
    the output holds, when they are this render's (None: there are none)."""
    if spec.force:
        return None
    found = load_manifest(target.manifest_path)
    key = render_key(spec, look, target, runtime)
    if found is not None:
        if "fast" not in found.key:
            raise ReverieError(
                f"{target.manifest_path.parent}{os.sep} holds frames of another render (a render that "
                "was not fast mode): choose another output, or pass --force to replace them"
            )
        key["fast"] = found.key["fast"]  # which network made them is weighed once it is known
    # The frames' render's own refusals: another render's manifest, frames no manifest vouches for.
    open_manifest(target.manifest_path, key, existing_frames(target, clip), force=False)
    if found is None and target.video is not None:
        check_new(target.video, force=False)
    return None if found is None else str(found.key["fast"])


def _replacing(spec: ShotSpec, target: Target, options: FastOptions) -> ShotSpec:
    """The spec of frames that replace those of this look by another network: only with --retrain."""
    if not (options.retrain or spec.force):
        raise ReverieError(
            f"{target.manifest_path.parent}{os.sep} holds frames of another render (this look's, by a "
            "network trained on other keyframes or settings): pass --retrain to replace them and the "
            "network, or choose another output"
        )
    return replace(spec, force=True)


def _artist_keyframe_files(clip: Clip, options: FastOptions) -> list[Path]:
    """The artist's painted keyframes that may be there: inputs, which no output may write over."""
    pattern = parse_pattern(options.keyframe_images) if options.keyframe_images else None
    return [] if pattern is None else [pattern.path(n) for n in clip.frames]


def _driver_painter(executor: Executor, runtime: Runtime) -> Painter:
    """The in-process farm's painter (its network is loaded already), else one of the driver's own."""
    if isinstance(executor, InProcess):
        return executor.worker.painter(runtime)
    return Painter(runtime)


def _check(spec: ShotSpec, look: Look, options: FastOptions) -> None:
    """Options that make no sense together, before anything is read."""
    if options.keyframe_images is None and not look.styles:
        raise ReverieError(
            "no style image: give one with --style PAINTING, or paint the keyframes yourself and give "
            "them with --keyframe-images"
        )
    if options.keyframe_images is not None and parse_pattern(options.keyframe_images) is None:
        raise ReverieError(
            f"--keyframe-images {options.keyframe_images!r} must be a frame pattern like paint.%04d.png"
        )
    if options.max_keyframes < 1:
        raise ReverieError(f"--max-keyframes {options.max_keyframes} must be 1 or more")


def _keyframes(clip: Clip, options: FastOptions) -> list[Keyframe]:
    if options.keyframes is not None:
        return parse_keyframes(options.keyframes, clip.frames)
    if options.keyframe_images is not None:  # the frames the artist painted
        pattern = parse_pattern(options.keyframe_images)
        assert pattern is not None  # checked in _check
        numbers = [n for n in clip.frames if pattern.path(n).is_file()]
        if not numbers:
            raise ReverieError(
                f"no painted keyframe of the shot's frames {clip.frames[0]}-{clip.frames[-1]} is at "
                f"{options.keyframe_images}: check the pattern and the frame numbers"
            )
        return parse_keyframes(",".join(map(str, numbers)), clip.frames)

    def read(number: int) -> np.ndarray:
        return cs.to_display(clip.read(number), clip.colorspace, clip.color)

    return choose_keyframes(clip.frames, read, max_keyframes=options.max_keyframes)


def _painted_keyframes(
    spec: ShotSpec,
    look: Look,
    runtime: Runtime,
    executor: Executor,
    events: FastEvents,
    clip: Clip,
    keyframes: list[Keyframe],
    options: FastOptions,
) -> dict[int, np.ndarray]:
    """Each keyframe painted (display RGB): the artist's, or the look's, rendered now (or resumed)."""
    numbers = [k.number for k in keyframes]
    if options.keyframe_images is not None:
        pattern = parse_pattern(options.keyframe_images)
        assert pattern is not None
        return _artist_keyframes([pattern.path(n) for n in numbers], numbers, clip)
    keys_spec = _keyframes_spec(spec, look, runtime, numbers)
    events.stage("keyframes", f"painting the keyframes with the look into {Path(keys_spec.output).parent}/")
    # Keyframes are far apart: each is painted from scratch, at the look's full iterations.
    report = render_batch([(keys_spec, keyframe_look(look))], runtime, executor, events, [None])
    if report.failed:
        _, number, error = report.failed[0]
        raise ReverieError(f"keyframe {number} could not be painted: {error}")
    pattern = parse_pattern(keys_spec.output)
    assert pattern is not None
    return {n: read_frame(pattern.path(n)) for n in numbers}


def _keyframes_spec(spec: ShotSpec, look: Look, runtime: Runtime, numbers: list[int]) -> ShotSpec:
    """The keyframes' own render: 16-bit display PNGs in paint.keyframes-KEY/ beside the output.
    A folder per look and keyframe settings: keyframes of the looks tried before stay there to compare,
    a look tried again finds its keyframes painted, and --force (for the frames) does not repaint them."""
    folder, name = keyframes_home(spec.output)
    output = folder / f"{name}.keyframes-{_keyframes_key(spec, look, runtime)}" / f"{name}.%04d.png"
    return replace(
        spec,
        force=False,
        output=str(output),
        frames=",".join(map(str, numbers)),
        output_colorspace=cs.network_colorspace(color_config(spec)),
        encode=None,
        bit_depth=16,
        allow_gaps=False,
    )


def keyframes_home(output: str) -> tuple[Path, str]:
    """(folder, name): the keyframes' folders are folder/name.keyframes-KEY/, beside the output's
    frames, or beside a video output."""
    pattern = parse_pattern(output)
    if pattern is not None:
        return pattern.path(0).parent, stem(pattern)
    video = Path(output)
    return video.parent, video.stem


def _keyframes_key(spec: ShotSpec, look: Look, runtime: Runtime) -> str:
    """What changes a painted keyframe's pixels (the keyframes' render key, less its paths): 8 hex."""
    settings: list[object] = [keyframe_look(look).hash(), spec.output_size, runtime.precision]
    settings.append(weights_digest(look.network, runtime.weights))
    if (color := color_config(spec).key()) is not None:  # another display paints other keyframes
        settings.append(color)
    if spec.layer is not None:  # and another layer of the plates
        settings.append(spec.layer)
    if spec.input_colorspace is not None:  # or the plates read in another colourspace
        settings.append(cs.resolve_colorspace(spec.input_colorspace, color_config(spec)))
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:8]


def keyframe_look(look: Look) -> Look:
    """The look as it paints keyframes: far apart, each from scratch (the temporal weight plays no part,
    so a change to it neither repaints the keyframes nor retrains the network)."""
    return look.replace(temporal_weight=0)


def _artist_keyframes(paths: list[Path], numbers: list[int], clip: Clip) -> dict[int, np.ndarray]:
    """The artist's painted frames, display RGB: one size, the plate's aspect."""
    images = {
        n: cs.to_display(read_frame(p), cs.network_colorspace(clip.color), clip.color)
        for n, p in zip(numbers, paths, strict=True)
    }
    sizes = {(i.shape[1], i.shape[0]) for i in images.values()}
    if len(sizes) > 1:
        raise ReverieError(
            f"the keyframe images have different sizes ({sorted(sizes)}): paint them all at one size"
        )
    (width, height), (plate_w, plate_h) = sizes.pop(), clip.size
    if abs(width / height - plate_w / plate_h) > 0.01 * plate_w / plate_h:
        raise ReverieError(
            f"the keyframe images are {width}x{height} but the plates are {plate_w}x{plate_h}: paint over "
            "the plate frames at their aspect ratio"
        )
    return images


def _model_key(
    spec: ShotSpec,
    look: Look,
    runtime: Runtime,
    options: FastOptions,
    keyframes: list[Keyframe],
    painted: dict[int, np.ndarray],
    target: Target,
) -> dict[str, Any]:
    """What the network is trained on and how: another key trains anew. The plates as the network sees
    them (colourspace, config, layer) count too: the artist's keyframes stay the same when they change."""
    digest = hashlib.sha256()
    for number in sorted(painted):
        digest.update(np.ascontiguousarray(painted[number], dtype=np.float32).tobytes())
    return {
        "look": keyframe_look(look).hash(),
        "input": str(Path(spec.input).resolve()),
        "keyframes": [k.number for k in keyframes],
        "painted": digest.hexdigest(),
        "artist": options.keyframe_images is not None,
        "weights": weights_digest(look.network, runtime.weights),
        "net": options.net.to_dict(),
        "train": options.train.to_dict(),
        "plates": {"colorspace": target.source_colorspace, "ocio": target.color.key(), "layer": spec.layer},
    }


def _train(
    path: Path,
    key: dict[str, Any],
    look: Look,
    clip: Clip,
    keyframes: list[Keyframe],
    painted: dict[int, np.ndarray],
    options: FastOptions,
    painter: Painter,
    events: FastEvents,
) -> FastModel:
    numbers = [k.number for k in keyframes]
    height, width = painted[numbers[0]].shape[:2]
    plates = [training_plate(clip, n, (width, height)) for n in numbers]
    pairs = training_pairs(clip, (width, height))
    events.stage(
        "training",
        f"training the network on {len(numbers)} keyframes at {width}x{height} and {len(pairs)} frame pairs",
    )
    net, report = train_network(
        painter,
        look,
        plates,
        [painted[n] for n in numbers],
        pairs,
        options.net,
        options.train,
        on_step=events.training,
    )
    summary = {"steps": report.steps, "seconds": round(report.seconds, 1), "loss": report.loss}
    return save_model(path, key, net, options.train, (width, height), summary)


def training_plate(clip: Clip, number: int, size: tuple[int, int]) -> np.ndarray:
    """A plate as the network trains on it and paints it: display RGB at the keyframes' size."""
    plate = cs.to_display(clip.read(number), clip.colorspace, clip.color)
    return plate if (plate.shape[1], plate.shape[0]) == size else resize(plate, size)


def training_pairs(clip: Clip, size: tuple[int, int]) -> list[Pair]:
    """Consecutive plate pairs spread evenly over the shot, with their motion at the training size."""
    frames = clip.frames
    if len(frames) < 2:
        return []
    count = min(TEMPORAL_PAIRS, len(frames) - 1)
    starts = sorted({round(i * (len(frames) - 2) / max(count - 1, 1)) for i in range(count)})
    pairs = []
    for at in starts:
        previous, current = (training_plate(clip, frames[i], size) for i in (at, at + 1))
        moved = motion(previous, current)
        pairs.append(Pair(previous, current, moved.flow, moved.mask))
    return pairs
