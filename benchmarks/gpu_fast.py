"""Fast mode on a GPU: frames per second at 1920x1080 through the network, and the training's time.

The issue's GPU figures: at least 60 frames per second at 1920x1080 (bf16 or fp16, channels_last;
torch.compile tried), and training within 60 s. The network is the default FastNetConfig, untrained
(its cost does not depend on its weights); the training runs the default TrainConfig on a 512-px
"shot" of random keyframes with the look's VGG16 features (the packaged weights), as fast mode does.

    PYTHONPATH=src python3 benchmarks/gpu_fast.py [--device cuda] [--json fast-gpu.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from reverie.core.distill import TrainConfig, TrainingData, train
from reverie.core.fastnet import FastNet, FastNetConfig
from reverie.engine.painter import Painter
from reverie.look import Look
from reverie.runtime import Runtime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frames_per_second(net: torch.nn.Module, device: torch.device, dtype: torch.dtype, batch: int) -> float:
    frame = torch.rand(batch, 3, 1080, 1920, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        for _ in range(3):
            net(frame)
        times = []
        for _ in range(5):
            _sync(device)
            started = time.perf_counter()
            for _ in range(10):
                net(frame)
            _sync(device)
            times.append((time.perf_counter() - started) / (10 * batch))
    return 1.0 / statistics.median(times)


def training_seconds(device: torch.device, steps: int) -> dict[str, float]:
    painter = Painter(Runtime(device=device.type))
    look = Look()
    vgg, _ = painter.network(look.network)
    layers = look.layers()
    wanted = frozenset((*layers.style, *layers.content))

    def features(image: torch.Tensor) -> list[torch.Tensor]:
        found = vgg(image * 255.0, wanted)
        return [found[n] for n in sorted(found)]

    generator = torch.Generator().manual_seed(0)
    keys = torch.rand(3, 3, 218, 512, generator=generator).to(device)
    data = TrainingData(keys, keys.flip(1), keys[:2], keys[1:], torch.zeros(2, 2, 218, 512, device=device),
                        torch.ones(2, 1, 218, 512, device=device))  # fmt: skip
    net = FastNet(FastNetConfig()).to(device)
    config = TrainConfig(steps=steps)
    _sync(device)
    started = time.perf_counter()
    report = train(net, data, config, features=features, autocast_dtype=torch.bfloat16)
    _sync(device)
    return {"steps": report.steps, "seconds": time.perf_counter() - started, "loss": report.loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--train-steps", type=int, default=TrainConfig().steps)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    net = FastNet(FastNetConfig()).to(device).eval()
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict[str, object] = {"device": name}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        report[f"fps_{name}"] = frames_per_second(net, device, dtype, batch=1)
        report[f"fps_{name}_batch4"] = frames_per_second(net, device, dtype, batch=4)
        print(
            f"{name}: {report[f'fps_{name}']:.1f} fps, batch 4: {report[f'fps_{name}_batch4']:.1f}",
            flush=True,
        )
    try:
        compiled = torch.compile(net)
        report["fps_bf16_compiled"] = frames_per_second(compiled, device, torch.bfloat16, batch=1)
        print(f"bf16 compiled: {report['fps_bf16_compiled']:.1f} fps", flush=True)
    except Exception as err:  # compile needs a working toolchain: report, do not stop the check
        report["compile_error"] = f"{type(err).__name__}: {err}".splitlines()[0]
        print(report["compile_error"], flush=True)
    report["training"] = training_seconds(device, args.train_steps)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
