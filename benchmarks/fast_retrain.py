"""Fast mode's training alone, on the keyframes and Gatys frames of a finished `benchmarks/fast.py` run:
the quality and flicker of a network trained with other settings, in minutes instead of an hour.

The keyframes and the held-out Gatys frames are read from that run's output (they do not depend on the
network or its training), the network is trained with the settings given as JSON, and its frames are
scored as `benchmarks/fast.py` scores them: style and content distances on VGG19 against the Gatys
frames' (held-out frames and keyframes), the style distance per layer (which scale is missing), and
the flicker ratio under Reverie's flow, Farneback and, for a `--known-motion` run, the exact flow.
Training seconds are printed but only compare within one machine's quiet runs. Appends a JSON line to
OUT/retrain.jsonl and writes the network's held-out frames to OUT/TAG/.

    .venv/bin/python benchmarks/fast_retrain.py --bench fast-bench [--plates '.../frame_%04d.png']
        [--net '{"antialias": true}'] [--train '{"style": 4}'] [--threads N] [--tag NAME]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fast import STYLE_LAYERS, exact_motion, farneback, flicker, vgg19_measures
from reverie.core.distill import TrainConfig
from reverie.core.fastnet import FastNetConfig
from reverie.engine.fast import paint_frame, train_network
from reverie.farm.fast import training_pairs, training_plate
from reverie.io.images import read_image, write_image
from reverie.look import Look
from reverie.pipeline.flow import motion
from reverie.pipeline.shot import ShotSpec, open_clip
from reverie.pipeline.steps import Worker
from reverie.runtime import Runtime


def per_layer(
    grams: Callable[[np.ndarray], list[torch.Tensor]], images: list[np.ndarray], target: list[torch.Tensor]
) -> list[float]:
    """Each STYLE_LAYERS layer's mean style distance over `images` to the painting's Grams `target`."""
    rows = [
        [float((g - t).pow(2).sum() / t.pow(2).sum()) for g, t in zip(grams(i), target, strict=True)]
        for i in images
    ]
    return [statistics.fmean(column) for column in zip(*rows, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, required=True, help="a benchmarks/fast.py --out folder")
    parser.add_argument("--plates", help="the run's plates pattern (default: its --clip's frame_%%04d.png)")
    parser.add_argument("--net", default="{}", help="FastNetConfig settings as JSON")
    parser.add_argument("--train", default="{}", help="TrainConfig settings as JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (two runs side by side: 1)")
    parser.add_argument("--tag", default="retrain")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = json.loads((args.bench / "results.json").read_text())
    keys, held, known = run["keyframes"], run["held_out"], "exact" in run["flicker"]
    plates_pattern = args.plates or str(Path(run["clip"]) / "frame_%04d.png")
    look = Look(size=run["size"][0], styles=(str(args.bench / "painting.png"),))
    painter = Worker().painter(Runtime(precision=run["precision"]))
    keyframe_folder = next((args.bench / "fast").glob("paint.keyframes-*"))
    painted = [read_image(keyframe_folder / f"paint.{n:04d}.png") for n in keys]
    height, width = painted[0].shape[:2]
    clip = open_clip(
        ShotSpec(plates_pattern, str(args.bench / "unused.%04d.png"), frames=f"1-{run['frames']}")
    )
    plates = {n: training_plate(clip, n, (width, height)) for n in sorted({*keys, *held})}
    net_config, train_config = FastNetConfig(**json.loads(args.net)), TrainConfig(**json.loads(args.train))

    started = time.perf_counter()

    def progress(step: int, total: int, loss: float) -> None:
        if step % 100 == 0 or step == total:
            print(
                f"  {args.tag} step {step}/{total}: loss {loss:.4f}, {time.perf_counter() - started:.0f} s",
                flush=True,
            )

    pairs = training_pairs(clip, (width, height))
    net, report = train_network(
        painter, look, [plates[n] for n in keys], painted, pairs, net_config, train_config, on_step=progress
    )
    seconds = time.perf_counter() - started
    ours = {n: paint_frame(net, plates[n], painter) for n in plates}
    out = args.bench / args.tag
    out.mkdir(exist_ok=True)
    for n in held:
        write_image(out / f"net.{n:04d}.png", ours[n])

    def gatys(n: int) -> np.ndarray:
        return read_image((args.bench / "gatys" if n in held else keyframe_folder) / f"paint.{n:04d}.png")

    (grams, style), content = vgg19_measures(painter)
    painting = read_image(args.bench / "painting.png")
    target = grams(painting)

    def ratios(numbers: list[int]) -> dict[str, float]:
        return {
            "style": statistics.fmean(style(ours[n], target) / style(gatys(n), target) for n in numbers),
            "content": statistics.fmean(
                content(ours[n], plates[n]) / content(gatys(n), plates[n]) for n in numbers
            ),
        }

    run_plates = [plates[n] for n in held]
    flows = {
        "reverie_flow": [motion(a, b) for a, b in itertools.pairwise(run_plates)],
        "farneback": [farneback(a, b) for a, b in itertools.pairwise(run_plates)],
    }
    if known:
        moves = run.get("known_motion") or {"pan": 4, "speed": 8}  # runs before it was kept: the defaults
        flows["exact"] = [
            exact_motion((width, height), moves["pan"], moves["speed"], n - 1) for n in held[1:]
        ]
    flickers = {
        name: flicker([ours[n] for n in held], m) / flicker([gatys(n) for n in held], m)
        for name, m in flows.items()
    }
    layers_net = per_layer(grams, [ours[n] for n in held], target)
    layers_gatys = per_layer(grams, [gatys(n) for n in held], target)
    result = {
        "tag": args.tag,
        "bench": str(args.bench),
        "net": net_config.to_dict(),
        "train": train_config.to_dict(),
        "training_seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(report.steps, 1), 3),
        "held_out": ratios(held),
        "keyframes": ratios(keys),
        "style_per_layer_held_out": dict(
            zip(STYLE_LAYERS, (a / b for a, b in zip(layers_net, layers_gatys, strict=True)), strict=True)
        ),
        "flicker_ratio": flickers,
        "terms": report.terms,
    }
    print(json.dumps(result, indent=1))
    with (args.bench / "retrain.jsonl").open("a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
