"""Fast mode's network on this machine: size, speed of a 1920x1080 frame, memory of a 3840x2160 frame,
and the cost of a training step.

    python benchmarks/fast_net.py [--repeats 3] [--configs 32,3,5 24,3,5 32,3,5,dilated]
                                  [--budget-gib 8] [--train-steps 4]
                                  [--skip speed memory seams training]
                                  [--quality STEPS [--temporal W]]

For each candidate FastNetConfig (width,levels,blocks, then optional flags: dilated, antialias):
parameters, MACs per 1080p frame (counted by hooks), and the median seconds of `paint` on a 1920x1080
frame in float32 and in bf16 autocast (both channels_last, as the network runs). Then, for the first
config, the peak memory (RSS above the process's baseline, in a fresh process each) of painting
3840x2160 whole and tiled as `tile_for_memory` chooses for --budget-gib, with the largest
tiled-vs-whole difference of a smaller frame. Last, seconds per training step at TrainConfig's
defaults (patch, batch) with the real VGG16 as the perceptual measure at the film's layers, in float32
and in bf16. With --quality, a network trained on Gatys keyframes of
a pan is scored against the quality bar (see `quality`). Medians; other tenants add noise, so compare
within a run. `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000` in the environment keeps glibc
from returning the large buffers between frames (fp32 1080p 6.2 -> 4.6 s, bf16 2.0 -> 1.0 s here).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from reverie.core.distill import TrainConfig, TrainingData, train
from reverie.core.fastnet import FastNet, FastNetConfig, paint, paint_bytes, tile_for_memory

HD, UHD = (1080, 1920), (2160, 3840)


def frame(height: int, width: int, channels: int = 3) -> torch.Tensor:
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    rgb = [0.3 + 0.5 * x * (1 + 0 * y), 0.4 + 0.3 * torch.sin(9 * y) + 0 * x, 0.6 - 0.4 * x * y]
    return torch.stack(rgb[:channels])[None].contiguous(memory_format=torch.channels_last)


def config_of(text: str) -> FastNetConfig:
    """'width,levels,blocks' with optional flags after them: '32,3,5,dilated', '32,3,5,antialias'."""
    width, levels, blocks, *flags = text.split(",")
    return FastNetConfig(
        width=int(width), levels=int(levels), blocks=int(blocks), **{flag: True for flag in flags}
    )


def macs(net: FastNet, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions for one height x width frame (counted on a 1/8 frame and
    scaled: the count is proportional to the pixels)."""
    total = 0

    def count(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels * kh * kw // module.groups

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(1, net.config.in_channels, height // 8, width // 8))
    for hook in hooks:
        hook.remove()
    return total * 64


def paint_seconds(net: FastNet, image: torch.Tensor, dtype: torch.dtype | None, repeats: int) -> float:
    paint(net, image, autocast_dtype=dtype)  # warm-up: oneDNN picks its kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        paint(net, image, autocast_dtype=dtype)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(configs: list[str], repeats: int) -> None:
    print(f"paint 1920x1080, {torch.get_num_threads()} threads, median of {repeats}:")
    image = frame(*HD)
    for text in configs:
        torch.manual_seed(0)
        net = FastNet(config_of(text)).to(memory_format=torch.channels_last).eval()
        fp32 = paint_seconds(net, image, None, repeats)
        bf16 = paint_seconds(net, image, torch.bfloat16, repeats)
        print(
            f"  width,levels,blocks={text}: {net.parameters_count() / 1e6:.2f} M params, "
            f"{macs(net, *HD) / 1e12:.3f} TMAC/frame; fp32 {fp32:.2f} s, bf16 {bf16:.2f} s"
        )


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(text: str, tile: int | None, dtype: str) -> None:
    """In a fresh process: peak RSS of one 3840x2160 paint above the baseline (net and frame made)."""
    net = FastNet(config_of(text)).to(memory_format=torch.channels_last).eval()
    image = frame(*UHD)
    baseline = rss_bytes()
    start = time.perf_counter()
    paint(net, image, tile=tile, autocast_dtype=torch.bfloat16 if dtype == "bf16" else None)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"extra": peak - baseline, "seconds": seconds}))


def memory(text: str, budget_gib: float) -> None:
    config = config_of(text)
    budget = int(budget_gib * 2**30)
    print(f"paint 3840x2160, width,levels,blocks={text}:")
    runs = [("whole", None, "fp32"), ("whole", None, "bf16")]
    for gib in (budget_gib, 2.0):
        tile = tile_for_memory(config, *UHD, int(gib * 2**30))
        print(f"  tile_for_memory(budget {gib:g} GiB) -> {tile}")
        if tile is not None:
            runs.append((f"tile {tile} (budget {gib:g} GiB)", tile, "fp32"))
    print(f"  estimate whole: {paint_bytes(config, *UHD) / 2**30:.2f} GiB (budget {budget / 2**30:g} GiB)")
    for label, size, dtype in runs:
        args = [sys.executable, __file__, "--child", text, str(size or 0), dtype]
        result = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
        print(
            f"  {label} {dtype}: peak {result['extra'] / 2**30:.2f} GiB above baseline, "
            f"{result['seconds']:.1f} s"
        )


def seams(text: str) -> None:
    """Largest |tiled - whole| on a 256x384 frame painted in 128-px tiles (overlap 64), for a network
    with random weights in every layer (residual branches and head included): a harsh case, since a
    random network uses its whole reach."""
    torch.manual_seed(0)
    net = FastNet(config_of(text)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.005)
    image = frame(256, 384)
    whole = paint(net, image)
    diff = (paint(net, image, tile=128) - whole).abs()
    print(f"tiled (128, overlap 64) vs whole, 256x384: max {diff.max():.4f}, mean {diff.mean():.5f}")


def vgg16_features() -> tuple[nn.Module, Callable[[torch.Tensor], list[torch.Tensor]]]:
    """The real VGG16 at the film's layers on 0..1 RGB: what the engine gives `train`."""
    from reverie.look import DEFAULT_LAYERS
    from reverie.nets.vgg import VGGFeatures
    from reverie.nets.weights import load_weights

    vgg = VGGFeatures(load_weights("vgg16")).to(memory_format=torch.channels_last)
    layers = DEFAULT_LAYERS["vgg16"]
    wanted = frozenset((*layers.style, *layers.content))

    def features(image: torch.Tensor) -> list[torch.Tensor]:
        found = vgg(image * 255.0, wanted)
        return [found[name] for name in sorted(found)]

    return vgg, features


def training(text: str, steps: int) -> None:
    _, features = vgg16_features()
    defaults = TrainConfig()
    data = TrainingData(frame(384, 512).repeat(2, 1, 1, 1), frame(384, 512).flip(-1).repeat(2, 1, 1, 1))
    print(
        f"training step, width,levels,blocks={text}, patch {defaults.patch}, batch {defaults.batch}, VGG16:"
    )
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(0)
        net = FastNet(config_of(text))
        stamps: list[float] = []
        train(
            net,
            data,
            TrainConfig(steps=steps + 1),
            features=features,
            on_step=lambda *_, s=stamps: s.append(time.perf_counter()),
            autocast_dtype=dtype,
        )
        per_step = statistics.median([b - a for a, b in itertools.pairwise(stamps)])
        print(
            f"  {'bf16' if dtype else 'fp32'}: {per_step:.2f} s/step; "
            f"{defaults.steps} steps ~ {per_step * defaults.steps / 60:.0f} min"
        )


def quality(text: str, steps: int, temporal: float) -> None:
    """Brushwork and steadiness of a trained network on a pan over a photo (exact flow), 256x192.

    Gatys (the default look, VGG16, u=4, 200 iterations, the sample painting) paints the frames at
    x offsets 0 and 32 (keyframes) and 16 (held out); the network trains on the keyframes, with 4
    frame pairs of the pan (3 px, exact flow) for the temporal term, in bf16. Reported: the Gram-style
    distance to the painting (per-position Grams of conv1_1..conv5_1, squared difference relative to the
    painting's, averaged over layers) of the network's held-out frame over the Gatys frame's (the
    quality bar is 2), its mean |difference| from the Gatys frame, and the warping error (masked mean
    |difference|) of the network's frames along a held-out pair of the pan. Needs scikit-image (the
    demo's photos). About 5 min of Gatys and 0.3-0.45 s per step on 2 cores.
    """
    import numpy as np

    from reverie import Look, stylize
    from reverie.app.samples import sample_content, sample_painting
    from reverie.core.distill import temporal_term
    from reverie.io.images import resize

    vgg, features = vgg16_features()
    style_layers = frozenset(("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))

    def grams(image: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            found = vgg(image * 255.0, style_layers)
        return [(f := found[n][0].flatten(1).float()) @ f.T / f.shape[1] for n in sorted(style_layers)]

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]

    painting = sample_painting(512)
    target = grams(tensor(resize(painting, (307, 307))))  # the look's style scale, 1.2 x 256

    def distance(image: torch.Tensor) -> float:
        pairs = zip(grams(image), target, strict=True)
        return sum(float((g - t).pow(2).sum() / t.pow(2).sum()) for g, t in pairs) / len(target)

    photo = sample_content("chelsea")
    wide = resize(photo, (352, round(352 * photo.shape[0] / photo.shape[1])))

    def plate(offset: int) -> torch.Tensor:
        return tensor(wide[20:212, offset : offset + 256])

    look = Look(size=256, iterations=200)
    gatys = {
        o: tensor(stylize(plate(o)[0].permute(1, 2, 0).numpy(), painting, look).image) for o in (0, 32, 16)
    }

    def pair(offset: int, shift: int = 3) -> tuple[torch.Tensor, ...]:
        flow = torch.zeros(1, 2, 192, 256)
        flow[:, 0] = shift  # current(x) = previous(x + shift): the camera pans right
        return plate(offset), plate(offset + shift), flow, torch.ones(1, 1, 192, 256)

    previous, current, flows, masks = (
        torch.cat(t) for t in zip(*(pair(o) for o in (4, 26, 50, 70)), strict=True)
    )
    data = TrainingData(
        torch.cat([plate(0), plate(32)]), torch.cat([gatys[0], gatys[32]]), previous, current, flows, masks
    )
    torch.manual_seed(0)
    net = FastNet(config_of(text))
    start = time.perf_counter()
    report = train(
        net,
        data,
        TrainConfig(steps=steps, temporal=temporal),
        features=features,
        autocast_dtype=torch.bfloat16,
    )
    out = paint(net, plate(16))
    with torch.no_grad():
        flicker = float(temporal_term(net, *pair(13)))
    print(
        f"quality, width,levels,blocks={text}, {steps} steps, temporal {temporal:g} "
        f"({time.perf_counter() - start:.0f} s): style distance {distance(out) / distance(gatys[16]):.2f}x "
        f"the Gatys frame's (plate {distance(plate(16)) / distance(gatys[16]):.1f}x); "
        f"|net - Gatys| {float((out - gatys[16]).abs().mean()):.3f}; warping error {flicker:.4f}; "
        f"terms {report.terms}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        memory_child(sys.argv[2], int(sys.argv[3]) or None, sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["32,3,5", "24,3,5", "32,3,7"])
    parser.add_argument("--budget-gib", type=float, default=8.0)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "memory", "seams", "training"])
    parser.add_argument("--quality", type=int, default=0, metavar="STEPS", help="also train and score")
    parser.add_argument("--temporal", type=float, default=TrainConfig().temporal)
    args = parser.parse_args()
    if "speed" not in args.skip:
        speed(args.configs, args.repeats)
    if "memory" not in args.skip:
        memory(args.configs[0], args.budget_gib)
    if "seams" not in args.skip:
        seams(args.configs[0])
    if "training" not in args.skip and args.train_steps > 0:
        training(args.configs[0], args.train_steps)
    if args.quality > 0:
        quality(args.configs[0], args.quality, args.temporal)


if __name__ == "__main__":
    main()
