"""Seconds per Gatys iteration at the film's 512-px working size, VGG16 vs VGG19, in one process.

    python benchmarks/iteration_speed.py [--size 512] [--iterations 12] [--repeats 3]

Each network runs `repeats` short L-BFGS-B renders of a generated plate with the generated sample
painting (no files needed); the per-iteration times of all runs are pooled and
the median is reported, with the ratio of the two networks (machines here are noisy; compare within one
run). An iteration includes its line-search evaluations (about 1.1 per iteration).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from reverie import Look, stylize
from reverie.app.samples import sample_painting


def plate(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    return np.stack([0.3 + 0.5 * x, 0.4 + 0.3 * np.sin(9 * y), 0.6 - 0.4 * x * y], -1).astype(np.float32)


def per_iteration_times(network: str, size: int, iterations: int, repeats: int) -> list[float]:
    content, painting = plate(size, size * 3 // 4), sample_painting(size)
    look = Look(network=network, size=size, iterations=iterations)
    times: list[float] = []
    for _ in range(repeats):
        stamps: list[float] = []
        stylize(content, painting, look, callback=lambda e, s=stamps: s.append(time.perf_counter()))
        times += list(np.diff(stamps))  # iteration-to-iteration: excludes loading and targets
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    medians = {}
    for network in ("vgg16", "vgg19"):
        times = per_iteration_times(network, args.size, args.iterations, args.repeats)
        medians[network] = statistics.median(times)
        shape = f"{args.size}x{args.size * 3 // 4}"
        print(f"{network}: {medians[network]:.3f} s/iteration (median of {len(times)}, {shape})")
    print(f"vgg19 / vgg16: {medians['vgg19'] / medians['vgg16']:.2f}x")


if __name__ == "__main__":
    main()
