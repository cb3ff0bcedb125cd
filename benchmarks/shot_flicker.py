"""Temporal coherence on a shot with known motion: flicker and seconds per frame, with and without it.

Builds a clip from a still (a camera pan plus a cut-out moving across it on top of the pan), renders it
twice in one process at equal iterations (temporal weight 0, i.e. independent frames, and the look's
temporal weight), and prints per-frame seconds, the flicker measure (mean warping error over
non-occluded pixels, flow from the plates) and the style loss of each run, with ratios. Writes a strip
of the frames of both runs to look at.

    .venv/bin/python benchmarks/shot_flicker.py CONTENT STYLE [--size 480] [--frames 5] [--iterations 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from reverie.farm.driver import render_shot
from reverie.io.images import fit_long_side, read_image, resize, write_image
from reverie.look import Look
from reverie.pipeline.shot import ShotSpec
from reverie.runtime import Runtime


def make_clip(photo: np.ndarray, frames: int, size: int, pan: int, speed: int) -> list[np.ndarray]:
    """Frames of `size` px long side: the camera pans right `pan` px a frame over the photo while a
    disc cut from the photo's other half crosses left to right at `speed` px a frame."""
    w, h = fit_long_side(photo.shape[1], photo.shape[0], size)
    wide = resize(photo, (w + frames * pan + 1, round(h * (w + frames * pan + 1) / w)))[:h]
    r = h // 6
    yy, xx = np.mgrid[-r:r, -r:r]
    disc = (xx**2 + yy**2 <= r * r)[..., None]
    sprite = wide[h - 2 * r :, -2 * r :]
    clip = []
    for t in range(frames):
        frame = wide[:, t * pan : t * pan + w].copy()
        left, top = w // 8 + t * speed, h // 3
        region = frame[top : top + 2 * r, left : left + 2 * r]
        frame[top : top + 2 * r, left : left + 2 * r] = np.where(disc, sprite, region)
        clip.append(frame)
    return clip


class _Quiet:
    def __init__(self) -> None:
        self.entries: list[dict] = []

    def shot_started(self, frames: int, finished: int) -> None:
        pass

    def frame_started(self, number: int, index: int, todo: int, iterations: int) -> None:
        pass

    def iteration(self, event: object) -> None:
        pass

    def frame_finished(self, number: int, entry: dict) -> None:
        self.entries.append(entry)
        print(f"  frame {number}: {entry['seconds']:.1f} s, flicker {entry['flicker']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content")
    parser.add_argument("style")
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--u", type=float, default=4.0)
    parser.add_argument("--temporal-weight", type=float, default=Look().temporal_weight)
    parser.add_argument("--out", type=Path, default=Path("shot-flicker"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reverie-shot-"))
    clip = make_clip(
        read_image(args.content), args.frames, args.size, pan=args.size // 60, speed=args.size // 30
    )
    for i, frame in enumerate(clip, start=1):
        write_image(work / f"plate.{i:04d}.png", frame, bit_depth=16)
    results = {}
    for weight in (0.0, args.temporal_weight):
        look = Look(
            u=args.u,
            iterations=args.iterations,
            first_iterations=args.iterations,  # equal iterations for every frame of both runs
            size=args.size,
            styles=(args.style,),
            temporal_weight=weight,
        )
        print(f"temporal weight {weight:g}:", flush=True)
        events = _Quiet()
        started = time.perf_counter()
        spec = ShotSpec(str(work / "plate.%04d.png"), str(work / f"w{weight:g}" / "paint.%04d.png"))
        report = render_shot(spec, look, Runtime(), events)
        style = statistics.fmean(e["losses"]["style"] for e in events.entries)
        results[weight] = {
            "flicker": report.flicker,
            "seconds_per_frame_median": statistics.median(report.seconds),
            "wall_seconds": time.perf_counter() - started,
            "style_loss_mean": style,
            "device": report.device,
        }
    off, on = results[0.0], results[args.temporal_weight]
    print(json.dumps({f"{k:g}": v for k, v in results.items()}, indent=1))
    print(
        f"flicker {on['flicker']:.3e} vs {off['flicker']:.3e} independent: "
        f"ratio {on['flicker'] / off['flicker']:.2f}; "
        f"style loss ratio {on['style_loss_mean'] / off['style_loss_mean']:.2f}; "
        f"s/frame {on['seconds_per_frame_median']:.1f} vs {off['seconds_per_frame_median']:.1f}"
    )
    strip = [
        np.concatenate([read_image(work / f"w{w:g}" / f"paint.{i:04d}.png") for i in range(1, 4)], 1)
        for w in results
    ]
    write_image(args.out.with_suffix(".png"), np.concatenate(strip, 0))
    print(f"wrote {args.out.with_suffix('.png')} (top: independent, bottom: temporal; frames 1-3)")


if __name__ == "__main__":
    main()
