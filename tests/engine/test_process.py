"""Process-wide settings: glibc keeps freed buffers within a pass and gives them back between passes."""

from pathlib import Path

import torch

from reverie.engine.process import keep_freed_memory, release_freed_memory


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_freed_buffers_stay_until_released():
    assert keep_freed_memory()
    size = 256 * 2**20
    buffer = torch.ones(size // 4)  # touched, so resident
    before = resident_bytes()
    del buffer
    kept = resident_bytes()
    release_freed_memory()
    released = resident_bytes()
    assert kept > before - size / 2  # kept for the next iteration's buffers of the same size
    assert released < kept - size / 2  # returned to the OS between passes
