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
from dataclasses import dataclass

import numpy as np
import torch

from reverie.api import prepare_style
from reverie.core.transfer import Objective, transfer
from reverie.io.images import resize
from reverie.look import Look


@dataclass
class Run:
    seconds: float
    loss: float
    iterations: list[int]
    reached: bool


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
    with torch.no_grad():
        loss = float(judge(result.image).sum())
    return Run(seconds, loss, [result.iterations], True)


def schedule(
    net,
    plate: np.ndarray,
    style: np.ndarray,
    look: Look,
    device,
    stages: list[tuple[int, int]],
    target: float,
    dtype: torch.dtype | list[torch.dtype | None] | None,
    check_every: int = 8,
) -> Run:
    """Coarse-to-fine: (long side, iterations) per stage, each starting from the previous one upsampled
    and the painting scaled along; the last stage stops as soon as the fixed loss is <= target.
    `dtype`: the autocast dtype of every stage (None: fp32), or a list with one per stage."""
    dtypes = dtype if isinstance(dtype, list) else [dtype] * len(stages)
    judge = fixed_objective(net, plate, style, look, device)
    h, w = plate.shape[:2]
    image, spent, done, reached, loss = None, 0.0, [], False, float("inf")
    for index, (side, iterations) in enumerate(stages):
        size = (round(w * side / max(h, w)), round(h * side / max(h, w)))
        stage = look.replace(size=side, iterations=iterations)
        content = to_tensor(resize(plate, size), device)
        painting = to_tensor(prepare_style(style, stage), device)
        init = None if image is None else _upsample(image, size, device)
        last = index == len(stages) - 1
        check = _Checker(judge, target, check_every, device) if last else None
        sync(device)
        started = time.perf_counter()
        result = transfer(
            content, [painting], stage, net, init=init, autocast_dtype=dtypes[index],
            callback=check, should_stop=check.reached if check else None,
        )  # fmt: skip
        sync(device)
        spent += time.perf_counter() - started - (check.seconds if check else 0.0)
        image = result.image
        done.append(result.iterations)
        if last:
            with torch.no_grad():
                loss = float(judge(image).sum())
            reached = loss <= target
    return Run(spent, loss, done, reached)


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
        with torch.no_grad():
            self.hit = float(self.judge(event.image).sum()) <= self.target
        sync(self.device)
        self.seconds += time.perf_counter() - started

    def reached(self) -> bool:
        return self.hit


def _upsample(image: torch.Tensor, size: tuple[int, int], device) -> torch.Tensor:
    array = (image[0].detach().float().permute(1, 2, 0).cpu().numpy() / 255).clip(0, 1)
    return to_tensor(resize(array, size), device)
