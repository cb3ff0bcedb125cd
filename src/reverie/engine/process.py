"""The process settings a `Painter` owns: threads, TF32 products, and how glibc keeps freed memory."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

from reverie.runtime import Runtime, resolve_device


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


def apply_process_settings(runtime: Runtime) -> torch.device:
    """Apply the runtime's process-wide settings (threads, TF32, the allocator) and return the device to
    render on. The engine's `Painter` calls this once, as it is made."""
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


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


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
