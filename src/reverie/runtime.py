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
    if device.type == "cuda":
        # Float32 products (the Gram matrices) as TF32 tensor-core products, as cuDNN already runs
        # float32 convolutions by PyTorch's default. H100, 1080p: 512 iterations 15.4 -> 13.6 s at
        # the same loss (1.406e10 against 1.407e10, benchmarks/gpu_check.py).
        torch.set_float32_matmul_precision("high")
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    keep_freed_memory()
    return device


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@cache
def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory instead of returning it to the OS.

    Each iteration frees and reallocates the same large activation buffers; by default glibc unmaps
    them and the kernel faults them back in, page by page, on every iteration (1.5-2x slower at
    1080p). This is what MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge> do, applied from inside.
    """
    libc = _libc()
    if libc is None:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    # mallopt takes a C int: the largest trim threshold it can express is 2 GiB.
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def release_freed_memory() -> None:
    """Return what glibc keeps (see `keep_freed_memory`) to the OS: between passes, tiles and
    precision phases, and after the painting's features.

    Each of those frees buffers of other sizes than the next one allocates, which the heap cannot all
    reuse: a 3840x2160 render in 16 GiB reached 19.4 GiB resident, growing one conv1-sized buffer at
    a time in the float32 phase of its first tile, on top of the bf16 phase's and the painting's.
    Within a phase the same sizes recur every evaluation, so keeping them there costs nothing.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
