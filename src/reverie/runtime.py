"""Where and how a look is rendered: device, precision, threads, weights. Not part of the look."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from reverie.errors import ReverieError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Runtime:
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu or cuda (or cuda:N)."""
    precision: str = "fp32"
    """fp32, or bf16 (autocast for the network; losses stay float32). bf16 runs 2.4x faster per
    iteration on an AVX-512-bf16 CPU, but L-BFGS on its noisier gradients lost the content within 60
    iterations at 512 px (VGG16, u=4) where fp32 kept it: opt-in until the optimiser is made robust."""
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
            raise ReverieError(f"unknown precision {self.precision!r}: choose fp32 or bf16")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReverieError(
            "--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto"
        )
    return torch.device(name)


def autocast_dtype(runtime: Runtime) -> torch.dtype | None:
    """The reduced precision to run the network in, or None for float32."""
    return torch.bfloat16 if runtime.precision == "bf16" else None


def available_memory(device: torch.device) -> int:
    """Bytes free on the device: CUDA's free memory, or the OS's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def configure(runtime: Runtime) -> torch.device:
    """Apply the runtime's process-wide settings and return the device to render on."""
    device = resolve_device(runtime.device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    keep_freed_memory()
    return device


@cache
def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory instead of returning it to the OS.

    Each iteration frees and reallocates the same large activation buffers; by default glibc unmaps
    them and the kernel faults them back in, page by page, on every iteration (1.5-2x slower at
    1080p). This is what MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge> do, applied from inside.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    # mallopt takes a C int: the largest trim threshold it can express is 2 GiB.
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
