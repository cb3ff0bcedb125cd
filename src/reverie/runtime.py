"""Where and how a look is rendered: device, precision, threads, weights. Not part of the look.

A value, like the look: the engine (`reverie.engine.Painter`) applies it to the process."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reverie.errors import ReverieError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "mixed")
MIXED_FP32_SHARE = 0.3
"""With precision "mixed", the share of a pass's iterations run in float32 at its end. On an H100 at
1080p, 400 bf16 then 152 float32 iterations reached the loss of 512 float32 ones in 0.83x the time."""


@dataclass(frozen=True)
class Runtime:
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu or cuda (or cuda:N)."""
    precision: str = "fp32"
    """fp32; bf16 (autocast for the network; losses and Gram matrices stay float32); or mixed (bf16,
    then the last MIXED_FP32_SHARE of each pass's iterations in float32). A bf16 evaluation is 2.6x
    faster on an AVX-512-bf16 CPU and 2.0x on an H100, but L-BFGS on its noisier gradients stalls a few
    per cent above float32's loss (and once lost the content at 512 px, VGG16, u=4): mixed reaches
    float32's loss, bf16 alone is a draft mode."""
    threads: int | None = None
    """CPU threads for the network; None leaves PyTorch's choice (one per core)."""
    weights: str | None = None
    """A user's VGG checkpoint instead of the packaged weights."""
    max_memory: int | None = None
    """Bytes the render may use; None: what the device has free."""
    tile_size: int | None = None
    """Refine in tiles of at most this many px a side; None: tiles only when a frame does not fit."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ReverieError(f"unknown device {self.device!r}: choose auto, cpu or cuda")
        if self.tile_size is not None and self.tile_size < 32:
            raise ReverieError(f"tile size {self.tile_size} is too small: use 32 px or more")
        if self.precision not in PRECISIONS:
            raise ReverieError(f"unknown precision {self.precision!r}: choose fp32, bf16 or mixed")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReverieError(
            "--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto"
        )
    return torch.device(name)


def autocast_dtype(runtime: Runtime) -> torch.dtype | None:
    """The reduced precision to run the network in (in mixed, before its float32 finish), or None."""
    return torch.bfloat16 if runtime.precision in ("bf16", "mixed") else None


def fp32_finish(runtime: Runtime, iterations: int) -> int:
    """How many of a pass's last iterations run in float32 (all of them in fp32, none in bf16)."""
    return round(MIXED_FP32_SHARE * iterations) if runtime.precision == "mixed" else 0
