"""Time to quality: how long a schedule needs to reach the loss of the film's settings, one loss for both.

The film's settings: L-BFGS, 512 iterations, single scale at the frame's size, fp32. The loss is always
measured by one fixed objective: Reverie's fp32 Gatys loss of the image at the frame's size, with the
painting scaled as the look says (`Objective(..., autocast_dtype=None)`), so a faster schedule (coarse
passes, bf16) is judged on exactly the film's terms. Checking the loss costs one forward pass; that time
is not counted.

Used by `performance.py` (CPU, 512 px) and `gpu_check.py` (GPU, 1920x1080).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from reverie.core.transfer import Objective, transfer
from reverie.engine.still import prepare_style
from reverie.io.images import resize
from reverie.look import Look


@dataclass
class Run:
    seconds: float
    loss: float
    iterations: list[int]
    reached: bool
    image: torch.Tensor | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """The figures, for a JSON report (no image)."""
        return {
            "seconds": self.seconds,
            "loss": self.loss,
            "iterations": self.iterations,
            "reached": self.reached,
        }


# How a stage computes: the autocast dtype of the network, and float32 matmul precision (the Gram
# matrices; cuDNN's convolutions use TF32 on GPUs by PyTorch's default in any case).
PRECISIONS = {
    "fp32": (None, "highest"),
    "tf32": (None, "high"),  # float32 Gram matrices as TF32 tensor-core products (GPUs)
    "bf16": (torch.bfloat16, "highest"),
}


@contextmanager
def matmul_precision(name: str) -> Iterator[None]:
    default = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(name)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(default)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None] * 255).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fixed_objective(net, plate: np.ndarray, style: np.ndarray, look: Look, device) -> Objective:
    """The one loss every schedule is judged by: fp32, at the plate's size (the look's working size)."""
    h, w = plate.shape[:2]
    content = to_tensor(plate, device)
    painting = to_tensor(prepare_style(style, look.replace(size=max(h, w))), device)
    return Objective(net, content, [painting], look.replace(size=max(h, w)))


def judge_loss(judge: Objective, image: torch.Tensor) -> float:
    with torch.no_grad(), matmul_precision("highest"):
        return float(judge(image).sum())


def film(net, plate, style, look: Look, device, iterations: int = 512) -> Run:
    """The film's settings at the plate's size: one fp32 pass of `iterations` L-BFGS iterations."""
    judge = fixed_objective(net, plate, style, look, device)
    single = look.replace(iterations=iterations, size=max(plate.shape[:2]))
    painting = to_tensor(prepare_style(style, single), device)
    sync(device)
    started = time.perf_counter()
    result = transfer(to_tensor(plate, device), [painting], single, net)
    sync(device)
    seconds = time.perf_counter() - started
    return Run(seconds, judge_loss(judge, result.image), [result.iterations], True, result.image)


def schedule(
    net,
    plate: np.ndarray,
    style: np.ndarray,
    look: Look,
    device,
    stages: list[tuple[int, int]],
    target: float,
    precision: str | list[str],
    check_every: int = 8,
) -> Run:
    """Coarse-to-fine: (long side, iterations) per stage, each starting from the previous one (upsampled
    if smaller) and the painting scaled along; the last stage stops as soon as the fixed loss is <=
    target. `precision`: a name in PRECISIONS for every stage, or a list with one per stage."""
    precisions = precision if isinstance(precision, list) else [precision] * len(stages)
    judge = fixed_objective(net, plate, style, look, device)
    h, w = plate.shape[:2]
    image, spent, done = None, 0.0, []
    for index, (side, iterations) in enumerate(stages):
        size = (round(w * side / max(h, w)), round(h * side / max(h, w)))
        stage = look.replace(size=side, iterations=iterations)
        content = to_tensor(resize(plate, size), device)
        painting = to_tensor(prepare_style(style, stage), device)
        init = None if image is None else _upsample(image, size, device)
        last = index == len(stages) - 1
        check = _Checker(judge, target, check_every, device) if last else None
        dtype, matmul = PRECISIONS[precisions[index]]
        sync(device)
        started = time.perf_counter()
        with matmul_precision(matmul):
            result = transfer(
                content, [painting], stage, net, init=init, autocast_dtype=dtype,
                callback=check, should_stop=check.reached if check else None,
            )  # fmt: skip
        sync(device)
        spent += time.perf_counter() - started - (check.seconds if check else 0.0)
        image = result.image
        done.append(result.iterations)
    loss = judge_loss(judge, image)
    return Run(spent, loss, done, loss <= target, image)


class _Checker:
    """Measures the fixed loss every few iterations (timed apart) and says when the target is reached."""

    def __init__(self, judge: Objective, target: float, every: int, device) -> None:
        self.judge, self.target, self.every, self.device = judge, target, every, device
        self.seconds, self.done, self.hit = 0.0, 0, False

    def __call__(self, event) -> None:
        self.done += 1
        if self.done % self.every:
            return
        sync(self.device)
        started = time.perf_counter()
        self.hit = judge_loss(self.judge, event.image) <= self.target
        sync(self.device)
        self.seconds += time.perf_counter() - started

    def reached(self) -> bool:
        return self.hit


def _upsample(image: torch.Tensor, size: tuple[int, int], device) -> torch.Tensor:
    """The previous stage's image at `size`; a stage at the same size goes on from it unchanged."""
    if (image.shape[3], image.shape[2]) == size:
        return image.detach()
    array = (image[0].detach().float().permute(1, 2, 0).cpu().numpy() / 255).clip(0, 1)
    return to_tensor(resize(array, size), device)
