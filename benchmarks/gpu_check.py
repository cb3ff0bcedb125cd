"""GPU check: seconds per 1920x1080 frame at the reference quality, GPU memory, and use of the GPU's peak.

    bash benchmarks/gpu_check.sh [--content IMG] [--style IMG] [--weights VGG16.pt] [--json OUT.json]

Installs nothing; about 2-3 minutes on one H100. Steps, all on the GPU, in one process:
1. the GPU's measured matrix peak (a large matmul, bf16 and TF32) for the utilisation figures;
2. one evaluation's median time in fp32 and bf16, against the matmul peaks;
3. the reference: the film's settings at 1920x1080 (VGG16, u=4, L-BFGS 512 iterations, single scale,
   fp32 with PyTorch's default TF32 convolutions): its time and its loss, by one fixed fp32 loss;
4. Reverie's fast schedule (bf16 autocast, coarse-to-fine 480 -> 960 -> 1920 px, the painting scaled
   along) until it reaches that loss: the seconds per frame that count;
5. a 3840x2160 frame: 16 bf16 iterations, to show it fits and how fast an iteration is;
then prints a table and writes JSON. Without --content/--style the images are generated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import flops
import quality
from reverie.app.samples import sample_painting
from reverie.core import losses
from reverie.engine.painter import Painter
from reverie.io.images import read_image, resize, write_image
from reverie.look import Look
from reverie.runtime import Runtime

# Schedules to the film's loss: (long side at 1920x1080, iterations, precision) per stage, each stage
# going on from the last; the last stage runs only until the film's loss is reached.
SCHEDULES = {
    "bf16": [(1920, 512, "bf16")],
    "tf32": [(1920, 512, "tf32")],
    "bf16 200, tf32 finish": [(1920, 200, "bf16"), (1920, 512, "tf32")],
    "bf16 300, tf32 finish": [(1920, 300, "bf16"), (1920, 512, "tf32")],
    "bf16 400, tf32 finish": [(1920, 400, "bf16"), (1920, 512, "tf32")],
    "bf16 300, fp32 finish": [(1920, 300, "bf16"), (1920, 512, "fp32")],
    "coarse-to-fine bf16, tf32 finish": [(480, 160, "bf16"), (960, 64, "bf16"), (1920, 512, "tf32")],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content")
    parser.add_argument("--style")
    parser.add_argument("--weights", help="VGG16 checkpoint (default: the packaged weights)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--images", type=Path, help="folder for the film's and the fastest run's frames")
    parser.add_argument("--film-iterations", type=int, default=512)
    parser.add_argument("--schedules", help="names of SCHEDULES to run, separated by ; (default: all)")
    parser.add_argument("--histories", default="8", help="L-BFGS memories to try each schedule with")
    parser.add_argument("--skip-speed", action="store_true", help="no evaluation timings")
    parser.add_argument("--skip-uhd", action="store_true", help="no 3840x2160 frame")
    # For a dry run of this script on a CPU at a tiny size: --device cpu --frame 128x72 --uhd 256x144.
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frame", default="1920x1080")
    parser.add_argument("--uhd", default="3840x2160")
    args = parser.parse_args(argv)
    args.frame = tuple(int(v) for v in args.frame.split("x"))
    args.uhd = tuple(int(v) for v in args.uhd.split("x"))
    args.schedules = args.schedules.split(";") if args.schedules else list(SCHEDULES)
    args.histories = [int(v) for v in args.histories.split(",")]
    return args


def plate(path: str | None, frame: tuple[int, int]) -> np.ndarray:
    """The content at exactly `frame` (width, height), centre-cropped to 16:9."""
    if path is None:
        y, x = np.mgrid[0 : frame[1], 0 : frame[0]] / frame[1]
        image = np.stack([0.5 + 0.4 * np.sin(3 * x), 0.5 + 0.4 * np.cos(2 * y), 0.4 + 0.3 * x * y / 2], -1)
        return image.clip(0, 1).astype(np.float32)
    image = read_image(path)
    h, w = image.shape[:2]
    target_h = min(h, round(w * 9 / 16))
    target_w = round(target_h * 16 / 9)
    top, left = (h - target_h) // 2, (w - target_w) // 2
    return resize(image[top : top + target_h, left : left + target_w], frame)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 8192, precision: str = "highest") -> float:
    """TFLOP/s of an n^3 matmul: the GPU's practical matrix peak for that precision. Float32 products
    run as TF32 with precision "high" (as cuDNN runs fp32 convolutions by default), true fp32 with
    "highest" (PyTorch's default for matmuls, so for the film run's Gram matrices)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    default = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        for _ in range(3):
            a @ b
        quality.sync(device)
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        quality.sync(device)
        return 2 * n**3 * 10 / (time.perf_counter() - started) / 1e12
    finally:
        torch.set_float32_matmul_precision(default)


def gram_check(device: torch.device) -> dict:
    """Reverie's bf16 Gram (bf16 product, fp32 output; bf16 backward) against upcasting to fp32 first."""
    features = torch.randn(1, 256, 135, 240, device=device).to(torch.bfloat16).requires_grad_(True)
    weights = torch.randn(256, 256, device=device)
    fast = losses.gram(features)
    (fast * weights).sum().backward()
    fast_grad, features.grad = features.grad.float(), None
    exact = losses.gram(features.float())  # upcast first: the fp32 path
    (exact * weights).sum().backward()
    exact_grad = features.grad.float()
    return {
        "forward_rel_error": float((fast - exact).detach().norm() / exact.detach().norm()),
        "backward_rel_error": float((fast_grad - exact_grad).norm() / exact_grad.norm()),
    }


def big_frame(net, style: np.ndarray, look: Look, device: torch.device, size: tuple[int, int]) -> dict:
    """16 bf16 iterations at 3840x2160: it fits, and at what speed."""
    reset_memory(device)
    stage = [(max(size), 16)]
    run = quality.schedule(net, plate(None, size), style, look, device, stage, -1.0, "bf16", 1000)
    return {
        "size": f"{size[0]}x{size[1]}",
        "iterations": run.iterations[0],
        "seconds_per_iteration": run.seconds / max(run.iterations[0], 1),
        "gpu_memory_gib": peak_memory(device),
    }


def evaluation_speed(net, frame: np.ndarray, style: np.ndarray, look: Look, device, peak: dict) -> dict:
    """Median seconds of one forward + backward evaluation at the frame's size: fp32 (TF32 convolutions),
    bf16, and bf16 with the Gram matrices upcast to fp32 first (as before the bf16 Gram)."""
    per_eval = flops.gatys_iteration_flops("vgg16", frame.shape[0], frame.shape[1], *_layers(look))
    default_gram = losses.gram

    def upcast_gram(features: torch.Tensor) -> torch.Tensor:  # float32 features take the fp32 path
        return default_gram(features.float())

    variants = (
        ("fp32", None, "tf32_tflops", default_gram, False),
        ("bf16", torch.bfloat16, "bf16_tflops", default_gram, False),
        ("bf16, fp32 Gram", torch.bfloat16, "bf16_tflops", upcast_gram, False),
        ("fp32, cuDNN benchmark", None, "tf32_tflops", default_gram, True),
        ("bf16, cuDNN benchmark", torch.bfloat16, "bf16_tflops", default_gram, True),
    )
    speed = {}
    for name, dtype, peak_key, gram_fn, benchmark in variants:
        losses.gram = gram_fn  # style_loss looks the Gram up in its module
        torch.backends.cudnn.benchmark = benchmark
        try:
            seconds = _median_evaluation(net, frame, style, look, device, dtype)
        finally:
            losses.gram = default_gram
            torch.backends.cudnn.benchmark = False
        speed[name] = {
            "s_per_evaluation": seconds,
            "tflops": per_eval / seconds / 1e12,
            "share_of_peak": per_eval / seconds / (peak[peak_key] * 1e12),
        }
        print(
            f"evaluation {name}: {seconds * 1e3:.1f} ms, {speed[name]['share_of_peak']:.0%} of peak",
            flush=True,
        )
    return speed


def _median_evaluation(net, frame: np.ndarray, style: np.ndarray, look: Look, device, dtype) -> float:
    objective = quality.fixed_objective(net, frame, style, look, device)
    objective.autocast_dtype = dtype
    x = quality.to_tensor(frame, device).requires_grad_(True)
    times = []
    for _ in range(12):  # the first two are warm-ups (cuDNN's algorithm search)
        x.grad = None
        quality.sync(device)
        started = time.perf_counter()
        objective(x).sum().backward()
        quality.sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times[2:]))


def save_images(folder: Path, images: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        array = (image[0].detach().float().permute(1, 2, 0).cpu().numpy() / 255).clip(0, 1)
        write_image(folder / f"{name}.png", array)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to PyTorch")
    net, source = Painter(Runtime(device=str(device), weights=args.weights)).network("vgg16")
    frame = plate(args.content, args.frame)
    style = read_image(args.style) if args.style else sample_painting(1024)
    look = Look(u=4.0, size=max(args.frame))
    n = 8192 if device.type == "cuda" else 512
    peak = {
        "bf16_tflops": matmul_peak(device, torch.bfloat16, n),
        "tf32_tflops": matmul_peak(device, torch.float32, n, "high"),
        "fp32_tflops": matmul_peak(device, torch.float32, n),
    }
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{gpu} · torch {torch.__version__} · weights {source}", flush=True)
    print("matmul peak TFLOP/s: " + ", ".join(f"{k[:4]} {v:.0f}" for k, v in peak.items()), flush=True)
    grams = gram_check(device)
    print(f"bf16 Gram against fp32: {grams}", flush=True)

    speed = {} if args.skip_speed else evaluation_speed(net, frame, style, look, device, peak)
    # cuDNN's autotuner, for the rest of the run (the film's settings too) when it pays: a render's
    # frames all have one size, so its search is paid once.
    benchmark = bool(speed) and (
        speed["bf16, cuDNN benchmark"]["s_per_evaluation"] < 0.97 * speed["bf16"]["s_per_evaluation"]
    )
    torch.backends.cudnn.benchmark = benchmark
    print(f"cuDNN benchmark mode for the runs below: {benchmark}", flush=True)
    reset_memory(device)
    film = quality.film(net, frame, style, look, device, args.film_iterations)
    film_memory = peak_memory(device)
    print(f"film settings: {film.seconds:.1f} s, loss {film.loss:.4g}", flush=True)

    scale = max(args.frame) / 1920
    runs, images = {}, {"film": film.image}
    for (schedule, plan), history in itertools.product(
        [(k, SCHEDULES[k]) for k in args.schedules], args.histories
    ):
        # The film kept 8 L-BFGS steps; a longer memory is one more way to need fewer iterations.
        name = schedule if args.histories == [8] else f"{schedule}, history {history}"
        reset_memory(device)
        stages = [(round(side * scale), its) for side, its, _ in plan]
        precisions = [p for *_, p in plan]
        run = quality.schedule(
            net, frame, style, look.replace(lbfgs_history=history), device, stages, film.loss, precisions
        )
        runs[name] = {**run.summary(), "stages": plan, "gpu_memory_gib": peak_memory(device)}
        images[name] = run.image
        print(f"schedule {name}: {run.seconds:.1f} s, loss {run.loss:.4g}, its {run.iterations}", flush=True)
    reached = {k: v for k, v in runs.items() if v["reached"]} or runs
    best = min(reached, key=lambda k: reached[k]["seconds"])
    if args.images:
        save_images(args.images, {"film": images["film"], "fastest": images[best]})

    uhd = None if args.skip_uhd else big_frame(net, style, look, device, args.uhd)
    per_eval = flops.gatys_iteration_flops("vgg16", args.frame[1], args.frame[0], *_layers(look))
    report = {
        "gpu": gpu,
        "torch": torch.__version__,
        "frame": f"{args.frame[0]}x{args.frame[1]}",
        "peak": peak,
        "gram_check": grams,
        "cudnn_benchmark": benchmark,
        "film": {**film.summary(), "gpu_memory_gib": film_memory},
        "schedules": runs,
        "fast": {**runs[best], "name": best},
        "speedup": film.seconds / runs[best]["seconds"],
        "uhd": uhd,
        "evaluation": speed,
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
            f"film settings, {report['frame']} ({sum(film['iterations'])} its, fp32)",
            f"{film['seconds']:.1f} s/frame, loss {film['loss']:.4g}",
        ),
        *(
            (f"schedule {name}", f"{v['seconds']:.1f} s/frame, {v['iterations']} its, loss {v['loss']:.4g}")
            for name, v in report["schedules"].items()
        ),
        (f"fastest to that loss: {fast['name']}", f"{fast['seconds']:.1f} s/frame"),
        ("reached the film's loss", str(fast["reached"]) + f" (loss {fast['loss']:.4g})"),
        ("speed-up", f"{report['speedup']:.1f}x"),
        ("GPU memory (film / fast)", f"{film['gpu_memory_gib']:.1f} / {fast['gpu_memory_gib']:.1f} GiB"),
        ("film run: share of TF32 matmul peak", f"{film['utilisation_of_tf32_peak']:.0%}"),
        *(
            (
                f"one evaluation, {name}",
                f"{v['s_per_evaluation'] * 1e3:.1f} ms, {v['share_of_peak']:.0%} of peak",
            )
            for name, v in report["evaluation"].items()
        ),
    ]
    if uhd:
        rows.append(
            (uhd["size"], f"{uhd['seconds_per_iteration']:.3f} s/iteration, {uhd['gpu_memory_gib']:.1f} GiB")
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
