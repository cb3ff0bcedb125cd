"""Fast mode against the look it distils, on a real shot: quality, flicker and speed, with ratios.

All in one process, on one painter (the look's network loaded once):
1. fast: `render_fast` on FRAMES frames of the shot at SIZE px, timed by stage (keyframes painted by
   the look, training, every frame painted by the network);
2. gatys: the temporal Gatys render (the look as it renders a shot) of HELD consecutive frames that are
   not keyframes: its seconds a frame give the whole shot's Gatys time (first frame + the rest times
   the median; timed on a few frames and multiplied), and its frames are the held-out references;
3. quality: style and content distances as Gatys measures them, on VGG19 (the Oxford weights, a
   network the training never saw): Gram distance to the painting over relu1_1..relu5_1 (per-position
   Grams, squared difference relative to the painting's, averaged over layers) and the relu4_2 feature
   distance to the plate (squared difference relative to the plate's). The network's frame over the
   Gatys frame's, on the held-out frames and on the keyframes;
4. flicker: Lai et al.'s warping error (masked mean squared difference of O_t and the warped O_t-1)
   of the network's and the Gatys frames over the held-out run, under Reverie's own flow (DIS with
   its consistency mask, what the temporal terms were trained against) and under an independent one
   (OpenCV Farneback at plate size with Lai et al. 2018's forward-backward occlusion check);
5. speed at 1920x1080: the network (fp32 and bf16, median of 3) against one Gatys frame of the look
   at that size (set-up plus the median per-iteration cost of a 9-iteration run times the look's
   iterations: timed on a few iterations and multiplied);
6. a side-by-side picture: plate, Gatys frame, network frame of one held-out frame.

    .venv/bin/python benchmarks/fast.py [--clip ../shared/data/clips/sintel_mountain_2] [--frames 48]
        [--size 512] [--held 21-24|auto] [--steps 800] [--out fast-bench]
        [--known-motion PHOTO [--pan 4] [--speed 8]] [--skip-1080]

The Sintel shot is (c) Blender Foundation, durian.blender.org, CC BY 3.0. The painting is the demo's
(scikit-image's public-domain sample, `reverie.app.samples`): needs the demo extra.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from reverie.core.distill import TrainConfig
from reverie.core.fastnet import FastNet, FastNetConfig, paint
from reverie.engine.painter import Painter
from reverie.farm.driver import render_batch
from reverie.farm.executors import InProcess
from reverie.farm.fast import FastOptions, render_fast
from reverie.io.images import read_image, resize, write_image
from reverie.look import Look
from reverie.pipeline.flow import Motion, motion, warping_error
from reverie.pipeline.shot import ShotSpec
from reverie.pipeline.steps import Worker
from reverie.runtime import Runtime

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
_PROBE_ITERATIONS = 9


class Clock:
    """Farm and fast-mode events, kept as timestamps per stage and seconds per frame."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.entries: dict[int, dict[str, Any]] = {}

    def stage(self, stage: str, text: str) -> None:
        self.marks.append((stage, time.perf_counter()))
        print(f"  {text}", flush=True)

    def training(self, step: int, total: int, loss: float) -> None:
        if step % 100 == 0 or step == total:
            print(f"  step {step}/{total}: loss {loss:.4f}", flush=True)

    def batch_started(self, shots: object, frames: object, finished: object) -> None:
        pass

    def step_started(self, shot: object, number: int, iterations: int) -> None:
        pass

    def iteration(self, event: object) -> None:
        pass

    def frame_finished(self, shot: object, number: int, entry: dict[str, Any]) -> None:
        self.entries[number] = entry

    def frame_failed(self, shot: object, number: int, error: str) -> None:
        raise SystemExit(f"frame {number} failed: {error}")

    def workers(self, alive: int) -> None:
        pass

    def since(self, stage: str) -> float:
        return next(t for name, t in self.marks if name == stage)


def vgg19_measures(painter: Painter) -> tuple[Any, Any]:
    """style(image, painting_grams) and content(image, plate), on VGG19, as the module says."""
    vgg, _ = painter.network("vgg19")
    wanted = frozenset((*STYLE_LAYERS, CONTENT_LAYER))

    def features(image: np.ndarray) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            found = vgg(x.to(painter.device).contiguous(memory_format=torch.channels_last) * 255.0, wanted)
        return {k: v[0].float().flatten(1) for k, v in found.items()}

    def grams(image: np.ndarray) -> list[torch.Tensor]:
        found = features(image)
        return [found[n] @ found[n].T / found[n].shape[1] for n in STYLE_LAYERS]

    def style(image: np.ndarray, target: list[torch.Tensor]) -> float:
        pairs = zip(grams(image), target, strict=True)
        return sum(float((g - t).pow(2).sum() / t.pow(2).sum()) for g, t in pairs) / len(target)

    def content(image: np.ndarray, plate: np.ndarray) -> float:
        a, b = features(image)[CONTENT_LAYER], features(plate)[CONTENT_LAYER]
        return float((a - b).pow(2).sum() / b.pow(2).sum())

    return (grams, style), content


def farneback(previous: np.ndarray, current: np.ndarray) -> Motion:
    """An independent flow: Farneback at plate size, occlusions by Lai et al.'s forward-backward check."""

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        grey = [cv2.cvtColor((x * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for x in (a, b)]
        return cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 5, 15, 3, 7, 1.5, 0)  # type: ignore[call-overload]

    backward, forward = flow(current, previous), flow(previous, current)  # current(x) ~ previous(x+bw)
    h, w = backward.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    where = grid + backward
    fw_at = cv2.remap(forward, where[..., 0], where[..., 1], cv2.INTER_LINEAR)
    lhs = ((backward + fw_at) ** 2).sum(-1)
    rhs = 0.01 * ((backward**2).sum(-1) + (fw_at**2).sum(-1)) + 0.5
    inside = (where[..., 0] >= 0) & (where[..., 0] <= w - 1) & (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
    return Motion(backward.astype(np.float32), ((lhs <= rhs) & inside).astype(np.float32))


def flicker(frames: list[np.ndarray], motions: list[Motion]) -> float:
    """Mean warping error of consecutive frames; motions[i - 1] is frame i's motion to frame i - 1."""
    pairs = ((a, b, m) for (a, b), m in zip(itertools.pairwise(frames), motions, strict=True))
    return statistics.fmean(warping_error(previous, current, m) for previous, current, m in pairs)


def exact_motion(size: tuple[int, int], pan: int, speed: int, t: int) -> Motion:
    """The true motion of `shot_flicker.make_clip`'s frame t (0-based) to frame t - 1: the background
    moves `pan` px left a frame, the disc `speed` px right; pixels within 2 px of the disc's edge in either
    frame, and those the disc covered in frame t - 1, are not trusted."""
    w, h = size
    r = h // 6
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)

    def distance(frame: int, x: np.ndarray) -> np.ndarray:  # to the disc's centre in that frame
        return np.hypot(x - (w // 8 + frame * speed + r) + 0.5, ys - (h // 3 + r) + 0.5)

    inside = distance(t, xs) <= r
    dx = np.where(inside, -speed, pan).astype(np.float32)
    source = xs + dx
    trusted = (np.abs(distance(t, xs) - r) > 2) & (inside | (distance(t - 1, source) > r + 2))
    trusted &= (source >= 0) & (source <= w - 1)
    return Motion(np.stack([dx, np.zeros_like(dx)], -1), trusted.astype(np.float32))


def speed_1080(painter: Painter, look: Look, plate: np.ndarray, painting: np.ndarray) -> dict[str, float]:
    """Seconds for one 1920x1080 frame: the network (default config, untrained: same cost) and Gatys."""
    frame = resize(plate, (1920, 1080))
    net = FastNet(FastNetConfig()).eval()
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].contiguous()
    found = {}
    for name, dtype in (("net_fp32", None), ("net_bf16", torch.bfloat16)):
        paint(net, image[:, :, :256, :256], autocast_dtype=dtype)  # warm-up
        times = []
        for _ in range(3):
            started = time.perf_counter()
            paint(net, image, autocast_dtype=dtype)
            times.append(time.perf_counter() - started)
        found[name] = statistics.median(times)
    # A Gatys frame at 1920 px, timed from a short run's iteration timestamps: L-BFGS's first
    # iterations search longer (and two short runs differed by less than their noise), so the
    # per-iteration cost is the median gap after the third, and the set-up is what came before.
    stamps: list[float] = []
    hd = look.replace(size=1920, iterations=_PROBE_ITERATIONS, first_iterations=None)
    started = time.perf_counter()
    painter.stylize(frame, painting, hd, callback=lambda event: stamps.append(time.perf_counter()))
    per_iteration = statistics.median(b - a for a, b in itertools.pairwise(stamps[2:]))
    found["gatys_setup"] = stamps[0] - started - per_iteration
    found["gatys_per_iteration"] = per_iteration
    found["gatys_frame"] = found["gatys_setup"] + per_iteration * look.iterations
    return found


def held_out(held: str, keyframes: list[int], frames: int) -> list[int]:
    """FIRST-LAST, or with "auto" the 4 consecutive frames farthest from every keyframe (the hardest)."""
    if held != "auto":
        first, last = (int(n) for n in held.split("-"))
        return list(range(first, last + 1))

    def distance(start: int) -> int:
        return min(abs(n - k) for n in range(start, start + 4) for k in keyframes)

    start = max(range(1, frames - 2), key=distance)
    return list(range(start, start + 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=Path("../shared/data/clips/sintel_mountain_2"))
    parser.add_argument("--pattern", default="frame_%04d.png")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--held", default="21-24", help="consecutive held-out frames, not keyframes; auto: the 4 farthest"
    )
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--precision", default="mixed")
    parser.add_argument("--skip-1080", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("fast-bench"))
    parser.add_argument(
        "--known-motion",
        type=Path,
        metavar="PHOTO",
        help="instead of --clip: a clip made from PHOTO with a known pan and a disc crossing it "
        "(shot_flicker.py's), whose true motion is a third flicker measure",
    )
    parser.add_argument("--pan", type=int, default=4, help="--known-motion: px a frame")
    parser.add_argument("--speed", type=int, default=8, help="--known-motion: the disc's px a frame")
    args = parser.parse_args()

    from reverie.app.samples import sample_painting

    args.out.mkdir(parents=True, exist_ok=True)
    painting_path = args.out / "painting.png"
    write_image(painting_path, sample_painting(args.size), bit_depth=16)
    look = Look(size=args.size, styles=(str(painting_path),))
    runtime = Runtime(precision=args.precision)
    worker = Worker()
    executor = InProcess(worker)
    painter = worker.painter(runtime)
    if args.known_motion:
        from shot_flicker import make_clip

        args.clip, args.pattern = args.out / "plates", "frame_%04d.png"
        args.clip.mkdir(exist_ok=True)
        clip = make_clip(read_image(args.known_motion), args.frames, args.size, args.pan, args.speed)
        for number, plate in enumerate(clip, 1):
            write_image(args.clip / (args.pattern % number), plate, bit_depth=16)
    plates_pattern = str(args.clip / args.pattern)
    print(f"{args.clip}: frames 1-{args.frames} at {args.size} px, {look.describe_u()}, {look.network}")

    clock = Clock()
    started = time.perf_counter()
    where = {"frames": f"1-{args.frames}", "output_size": args.size}  # frames at SIZE, not the plate's
    spec = ShotSpec(plates_pattern, str(args.out / "fast" / "paint.%04d.png"), **where)
    report = render_fast(
        spec,
        look,
        runtime,
        executor,
        clock,
        FastOptions(train=TrainConfig(steps=args.steps)),
        painter=painter,
    )
    fast_total = time.perf_counter() - started
    keys = [k.number for k in report.keyframes]
    held = held_out(args.held, keys, args.frames)
    if set(keys) & set(held):
        raise SystemExit(f"held-out frames {args.held} include keyframes {keys}: choose others with --held")
    stages = {
        "keyframes": clock.since("training") - clock.since("keyframes"),
        "training": report.training_seconds,
        "frames": time.perf_counter() - clock.since("frames"),
    }

    clock = Clock()
    gatys_spec = ShotSpec(
        plates_pattern,
        str(args.out / "gatys" / "paint.%04d.png"),
        frames=f"{held[0]}-{held[-1]}",
        output_size=args.size,
    )
    started = time.perf_counter()
    render_batch([(gatys_spec, look)], runtime, executor, clock, [None])
    gatys_seconds = [clock.entries[n]["seconds"] for n in held]
    gatys_shot = gatys_seconds[0] + (args.frames - 1) * statistics.median(gatys_seconds[1:])

    def frame(kind: str, n: int) -> np.ndarray:
        return read_image(args.out / kind / f"paint.{n:04d}.png")

    size = frame("fast", 1).shape[1::-1]
    plates = {n: resize(read_image(Path(plates_pattern % n)), size) for n in set(held) | set(keys)}
    (grams, style), content = vgg19_measures(painter)
    painting = read_image(painting_path)
    target = grams(painting)  # the painting at the look's size: its long side is SIZE
    keyframe_folder = next((args.out / "fast").glob("paint.keyframes-*"))

    def ratios(numbers: list[int], gatys_kind: str | Path) -> dict[str, float]:
        def gatys(n: int) -> np.ndarray:
            return read_image(Path(gatys_kind) / f"paint.{n:04d}.png")

        return {
            "style": statistics.fmean(
                style(frame("fast", n), target) / style(gatys(n), target) for n in numbers
            ),
            "content": statistics.fmean(
                content(frame("fast", n), plates[n]) / content(gatys(n), plates[n]) for n in numbers
            ),
            "plate_style": statistics.fmean(
                style(plates[n], target) / style(gatys(n), target) for n in numbers
            ),
        }

    quality = {"held_out": ratios(held, args.out / "gatys"), "keyframes": ratios(keys, keyframe_folder)}
    ours = {n: frame("fast", n) for n in held}
    theirs = {n: frame("gatys", n) for n in held}
    plate_run = [plates[n] for n in held]
    flickers = {}
    pairs = list(itertools.pairwise(plate_run))
    flows = {
        name: [flow(a, b) for a, b in pairs]
        for name, flow in (("reverie_flow", motion), ("farneback", farneback))
    }
    if args.known_motion:
        flows["exact"] = [exact_motion(size, args.pan, args.speed, n - 1) for n in held[1:]]
    for name, motions in flows.items():
        net_f = flicker([ours[n] for n in held], motions)
        gatys_f = flicker([theirs[n] for n in held], motions)
        flickers[name] = {"network": net_f, "gatys_temporal": gatys_f, "ratio": net_f / gatys_f}

    results: dict[str, Any] = {
        "clip": str(args.clip),
        "frames": args.frames,
        "size": list(size),
        "keyframes": keys,
        "held_out": held,
        "fast_seconds": {**stages, "total": fast_total},
        "gatys_temporal_seconds_per_frame": gatys_seconds,
        "gatys_shot_seconds_estimate": gatys_shot,
        "end_to_end_speedup": gatys_shot / fast_total,
        "quality_ratios_network_over_gatys": quality,
        "flicker": flickers,
        "known_motion": {"pan": args.pan, "speed": args.speed} if args.known_motion else None,
        "train_steps": args.steps,
        "precision": args.precision,
    }
    if not args.skip_1080:
        speed = speed_1080(painter, look, plates[held[0]], painting)
        results["speed_1080p_seconds"] = speed
        results["speed_1080p_ratio_fp32"] = speed["gatys_frame"] / speed["net_fp32"]
        results["speed_1080p_ratio_bf16"] = speed["gatys_frame"] / speed["net_bf16"]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))

    middle = held[len(held) // 2]
    side = np.concatenate([plates[middle], theirs[middle], ours[middle]], 1)
    write_image(args.out / "side-by-side.png", side)
    print(f"wrote {args.out / 'side-by-side.png'} (plate, Gatys, network; frame {middle}, held out)")


if __name__ == "__main__":
    main()
