"""The render farm: how steady chunk boundaries are, and how throughput grows with workers.

    .venv/bin/python benchmarks/farm.py boundaries [--photo P] [--style S] [--size 96] [--frames 16]
        [--chunk 8] [--overlaps 0,2,4] [--iterations 20] [--strip boundary.jpg]
    .venv/bin/python benchmarks/farm.py throughput [--size 48] [--frames 8] [--iterations 10]
        [--workers 1,2] [--farm local|ray]

boundaries: renders one shot with known motion (shot_flicker.make_clip: a pan plus a disc crossing it)
cut into chunks, once per overlap (0 = chunks simply butt together), and prints the mean flicker of the
steps at chunk boundaries (into, through and out of each cross-fade) against the steps inside chunks,
with their ratio, and for reference the flicker of independent frames. All runs in this process.

throughput: the same independent-frame shot on 1, then 2 workers (local processes or a private Ray
instance), frames per minute and the ratio, start-up included and excluded (the first frame's latency).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from reverie.app.samples import sample_painting
from reverie.farm.driver import render_batch
from reverie.farm.executors import InProcess, make_executor
from reverie.io.images import read_image, write_image
from reverie.io.sequences import write_frame
from reverie.look import Look
from reverie.pipeline.plan import plan_shot
from reverie.pipeline.shot import ShotSpec
from reverie.runtime import Runtime
from shot_flicker import make_clip


class Quiet:
    """Farm events, ignored except for the time each frame finished."""

    def __init__(self) -> None:
        self.finished: list[float] = []

    def frame_finished(self, shot: str, number: int, entry: dict) -> None:
        self.finished.append(time.perf_counter())

    def __getattr__(self, name: str):  # batch_started, step_started, iteration, frame_failed, workers
        return lambda *args: None


def write_plates(folder: Path, frames: list[np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        write_frame(folder / f"plate.{i:04d}.png", frame)
    return str(folder / "plate.%04d.png")


def boundary_steps(frames: int, chunk: int, overlap: int) -> set[int]:
    """Frame numbers (1-based) whose step from the frame before crosses or runs through a boundary."""
    plan = plan_shot(tuple(range(1, frames + 1)), temporal=True, chunk=chunk, overlap=overlap)
    starts = [chain[0].number for chain in plan.chains[1:]]
    return {n for s in starts for n in range(s, s + overlap + 1)}


def boundaries(args: argparse.Namespace, root: Path) -> None:
    photo = read_image(args.photo) if args.photo else sample_painting(512)[::-1].copy()
    plates = write_plates(
        root / "in", make_clip(photo, args.frames, args.size, pan=args.size // 60 + 1, speed=3)
    )
    style = args.style or str(_save(root / "style.png", sample_painting(256)))
    look = Look(
        size=args.size, iterations=args.iterations, first_iterations=2 * args.iterations, styles=(style,)
    )
    runtime = Runtime(threads=args.threads)
    print(
        f"{args.frames} frames, {args.size} px, chunks of {args.chunk}, {args.iterations} iterations a frame"
    )
    print(f"{'overlap':>8} {'boundary':>10} {'inside':>10} {'ratio':>6} {'extra frames painted':>21}")
    for overlap in args.overlaps:
        spec = ShotSpec(
            plates, str(root / f"o{overlap}" / "paint.%04d.png"), chunk=args.chunk, chunk_overlap=overlap
        )
        report = render_batch([(spec, look)], runtime, InProcess(), Quiet()).shots[0].report
        edge = boundary_steps(args.frames, args.chunk, overlap)
        per = report.flicker_per_frame
        at_edge = statistics.fmean(v for n, v in per.items() if n in edge)
        inside = statistics.fmean(v for n, v in per.items() if n not in edge)
        extra = overlap * (len(edge) // (overlap + 1))  # each boundary's lead-out
        print(f"{overlap:>8} {at_edge:>10.3e} {inside:>10.3e} {at_edge / inside:>6.2f} {extra:>21}")
        if args.strip and overlap == args.overlaps[-1]:
            _strip(Path(args.strip), root / f"o{overlap}", sorted(edge)[0] - 1, sorted(edge)[-1])
    spec = ShotSpec(plates, str(root / "independent" / "paint.%04d.png"))
    independent = render_batch([(spec, look.replace(temporal_weight=0))], runtime, InProcess(), Quiet())
    print(f"independent frames: flicker {independent.shots[0].report.flicker:.3e}")


def throughput(args: argparse.Namespace, root: Path) -> None:
    plates = write_plates(
        root / "in", make_clip(sample_painting(256), args.frames, args.size, pan=1, speed=0)
    )
    style = str(_save(root / "style.png", sample_painting(128)))
    look = Look(size=args.size, iterations=args.iterations, styles=(style,), temporal_weight=0)
    rates = {}
    for workers in args.workers:
        started = time.perf_counter()
        executor = make_executor(args.farm, workers=workers)  # each uses its share of the cores
        ready = time.perf_counter()
        events = Quiet()
        try:
            spec = ShotSpec(plates, str(root / f"w{workers}" / "paint.%04d.png"))
            render_batch([(spec, look)], Runtime(), executor, events)
        finally:
            executor.close()
        total = events.finished[-1] - started
        steady = (events.finished[-1] - events.finished[0]) / max(len(events.finished) - 1, 1)
        rates[workers] = (args.frames / total * 60, 60 / steady)
        print(
            f"{args.farm} x{workers}: {rates[workers][0]:.1f} frames/min overall (start-up "
            f"{ready - started:.1f} s), {rates[workers][1]:.1f} frames/min once running"
        )
    first, *rest = args.workers
    for workers in rest:
        overall, running = (rates[workers][i] / rates[first][i] for i in (0, 1))
        print(f"{workers} vs {first} workers: {overall:.2f}x overall, {running:.2f}x once running")


def _strip(path: Path, folder: Path, first: int, last: int) -> None:
    """The frames around a chunk boundary side by side, to look at the cross-fade."""
    frames = [read_image(folder / f"paint.{n:04d}.png") for n in range(first, last + 1)]
    write_image(path, np.concatenate(frames, axis=1))
    print(f"frames {first}-{last} (a boundary, last overlap) written to {path}")


def _save(path: Path, image: np.ndarray) -> Path:
    write_image(path, image)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("boundaries")
    b.add_argument("--photo")
    b.add_argument("--style")
    b.add_argument("--size", type=int, default=96)
    b.add_argument("--frames", type=int, default=16)
    b.add_argument("--chunk", type=int, default=8)
    b.add_argument("--overlaps", type=lambda s: [int(x) for x in s.split(",")], default=[0, 2, 4])
    b.add_argument("--iterations", type=int, default=20)
    b.add_argument("--threads", type=int)
    b.add_argument("--strip", help="write the frames around the last overlap's boundary to this image")
    t = sub.add_parser("throughput")
    t.add_argument("--size", type=int, default=48)
    t.add_argument("--frames", type=int, default=8)
    t.add_argument("--iterations", type=int, default=10)
    t.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    t.add_argument("--farm", choices=("local", "ray"), default="local")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (boundaries if args.mode == "boundaries" else throughput)(args, Path(tmp))


if __name__ == "__main__":
    main()
