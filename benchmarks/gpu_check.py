"""GPU check: seconds per 1920x1080 frame at the reference quality, GPU memory, and use of the GPU's peak.

    bash benchmarks/gpu_check.sh [--content IMG] [--style IMG] [--weights VGG16.pt] [--json OUT.json]

Installs nothing; about 2-3 minutes on one H100. Steps, all on the GPU, in one process:
1. the GPU's measured matrix peak (a large matmul, bf16 and TF32) for the utilisation figures;
2. the reference: the film's settings at 1920x1080 (VGG16, u=4, L-BFGS 512 iterations, single scale,
   fp32 with PyTorch's default TF32 convolutions): its time and its loss, by one fixed fp32 loss;
3. Reverie's fast schedule (bf16 autocast, coarse-to-fine 480 -> 960 -> 1920 px, the painting scaled
   along) until it reaches that loss: the seconds per frame that count;
4. a 3840x2160 frame: 16 bf16 iterations, to show it fits and how fast an iteration is;
then prints a table and writes JSON. Without --content/--style the images are generated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import flops
import quality
from reverie.api import network
from reverie.io.images import read_image, resize
from reverie.look import Look
from reverie.samples import sample_painting

FRAME = (1920, 1080)
STAGES = [(480, 160), (960, 64), (1920, 512)]  # the last stage runs only until the film's loss is reached


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content")
    parser.add_argument("--style")
    parser.add_argument("--weights", help="VGG16 checkpoint (default: the packaged weights)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--film-iterations", type=int, default=512)
    return parser.parse_args(argv)


def plate(path: str | None) -> np.ndarray:
    """The content at exactly 1920x1080 (centre-cropped to 16:9)."""
    if path is None:
        y, x = np.mgrid[0:1080, 0:1920] / 1080.0
        image = np.stack([0.5 + 0.4 * np.sin(3 * x), 0.5 + 0.4 * np.cos(2 * y), 0.4 + 0.3 * x * y / 2], -1)
        return image.clip(0, 1).astype(np.float32)
    image = read_image(path)
    h, w = image.shape[:2]
    target_h = min(h, round(w * 9 / 16))
    target_w = round(target_h * 16 / 9)
    top, left = (h - target_h) // 2, (w - target_w) // 2
    return resize(image[top : top + target_h, left : left + target_w], FRAME)


def matmul_peak(dtype: torch.dtype, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an n^3 matmul: the GPU's practical matrix peak for that precision."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e12


def big_frame(net, style: np.ndarray, look: Look) -> dict:
    """16 bf16 iterations at 3840x2160: it fits, and at what speed."""
    uhd = resize(plate(None), (3840, 2160))
    torch.cuda.reset_peak_memory_stats()
    stage = [(3840, 16)]
    run = quality.schedule(net, uhd, style, look, torch.device("cuda"), stage, -1.0, torch.bfloat16, 1000)
    return {
        "size": "3840x2160",
        "iterations": run.iterations[0],
        "seconds_per_iteration": run.seconds / max(run.iterations[0], 1),
        "gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to PyTorch")
    device = torch.device("cuda")
    net, source = network("vgg16", "max", args.weights, "cuda")
    frame = plate(args.content)
    style = read_image(args.style) if args.style else sample_painting(1024)
    look = Look(u=4.0, size=1920)
    peak = {"bf16_tflops": matmul_peak(torch.bfloat16), "tf32_tflops": matmul_peak(torch.float32)}
    print(f"{torch.cuda.get_device_name()} · torch {torch.__version__} · weights {source}", flush=True)
    print(f"matmul peak: bf16 {peak['bf16_tflops']:.0f} TFLOP/s, tf32 {peak['tf32_tflops']:.0f}", flush=True)

    torch.cuda.reset_peak_memory_stats()
    film = quality.film(net, frame, style, look, device, args.film_iterations)
    film_memory = torch.cuda.max_memory_allocated() / 2**30
    print(f"film settings: {film.seconds:.1f} s, loss {film.loss:.4g}", flush=True)

    torch.cuda.reset_peak_memory_stats()
    fast = quality.schedule(net, frame, style, look, device, STAGES, film.loss, torch.bfloat16)
    fast_memory = torch.cuda.max_memory_allocated() / 2**30
    print(f"fast schedule: {fast.seconds:.1f} s, loss {fast.loss:.4g}, reached {fast.reached}", flush=True)

    uhd = big_frame(net, style, look)
    per_eval = flops.gatys_iteration_flops("vgg16", *FRAME[::-1], *_layers(look))
    report = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "peak": peak,
        "film": {**film.__dict__, "gpu_memory_gib": film_memory},
        "fast": {**fast.__dict__, "stages": STAGES, "gpu_memory_gib": fast_memory},
        "speedup": film.seconds / fast.seconds,
        "uhd": uhd,
        "gflop_per_evaluation_1080p": per_eval / 1e9,
    }
    report["film"]["utilisation_of_tf32_peak"] = _utilisation(per_eval, film, peak["tf32_tflops"])
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


def _layers(look: Look) -> tuple[tuple[str, ...], tuple[str, ...]]:
    layers = look.layers()
    return tuple(layers.content), tuple(layers.style)


def _utilisation(per_eval: float, run: quality.Run, peak_tflops: float) -> float:
    """Achieved FLOP rate of the film run (about 1.2 evaluations per iteration) over the matmul peak."""
    evaluations = 1.2 * sum(run.iterations)
    return per_eval * evaluations / run.seconds / (peak_tflops * 1e12)


def print_table(report: dict) -> None:
    film, fast, uhd = report["film"], report["fast"], report["uhd"]
    rows = [
        ("GPU", report["gpu"]),
        (
            "film settings, 1920x1080 (512 its fp32)",
            f"{film['seconds']:.1f} s/frame, loss {film['loss']:.4g}",
        ),
        ("Reverie fast schedule to that loss", f"{fast['seconds']:.1f} s/frame ({fast['iterations']} its)"),
        ("reached the film's loss", str(fast["reached"]) + f" (loss {fast['loss']:.4g})"),
        ("speed-up", f"{report['speedup']:.1f}x"),
        ("GPU memory (film / fast)", f"{film['gpu_memory_gib']:.1f} / {fast['gpu_memory_gib']:.1f} GiB"),
        ("film run: share of TF32 matmul peak", f"{film['utilisation_of_tf32_peak']:.0%}"),
        ("3840x2160", f"{uhd['seconds_per_iteration']:.3f} s/iteration, {uhd['gpu_memory_gib']:.1f} GiB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
