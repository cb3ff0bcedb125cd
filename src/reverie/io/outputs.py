"""Guards on outputs: a render never writes over its own inputs, never replaces a file it did not make
unless forced, and never shares its output with another render running at the same time.

A render holds an OS advisory lock (`flock`) on a small lock file beside its output for as long as it
runs. The kernel drops the lock when the process ends, however it ends (kill -9 included), so a lock can
never go stale: a lock file left behind by a killed render is simply locked again by the next one. The
lock file names its holder (host, pid, command, start), so a refused render can say who has the output.

What this relies on: `flock` on a local filesystem, and on NFS (v4, or v3 with lockd), where Linux
carries `flock` over as an NFS byte-range lock, so the lock holds between hosts. There it is per
process rather than per open file: two renders of one output inside one process (two jobs of one web
page) are kept apart by that process's own queue, not by the lock. Filesystems without locks (some
FUSE object-store mounts) refuse to lock, which is reported rather than ignored. Farm workers write
frames for the driver that holds the lock; they never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from reverie.errors import ReverieError


def check_not_an_input(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse, even when forced, an output that is one of the render's inputs: the same file under any
    name (a symlink, a relative path, a symlinked folder, a hard link)."""
    known: dict[tuple[int, int] | None, str | os.PathLike] = {_file_id(p): p for p in inputs}
    known.pop(None, None)  # inputs that are not there are reported where they are read
    for path in outputs:
        same = known.get(_file_id(path))
        if same is not None:
            raise ReverieError(
                f"the output {path} is the input {same}: a render never writes over its own inputs; "
                "choose another output"
            )


def _file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """The file at `path` (after links), as the filesystem knows it; None if there is none."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def check_new(path: str | os.PathLike, *, force: bool, what: str = "--force to replace it") -> None:
    """Refuse an existing file at `path` that this render did not make, unless forced."""
    if not force and os.path.lexists(path):
        raise ReverieError(f"{path} already exists: choose another output, or pass {what}")


@contextlib.contextmanager
def output_lock(lock_path: Path, what: str) -> Iterator[None]:
    """Hold the lock at `lock_path` for `what` (the output, as the user named it) while the block runs;
    a render already holding it is refused in one line naming it."""
    fd = _acquire(lock_path, what)
    try:
        yield
    finally:
        # Unlinked while still held, so whoever opens the path next makes a new file; whoever opened the
        # old one meanwhile sees that it is no longer the one at the path (see `_acquire`).
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


def _acquire(lock_path: Path, what: str) -> int:
    while True:
        fd = _open(lock_path, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ReverieError(
                f"{what} is being rendered by {holder}: wait for that render to finish, or stop it"
            ) from None
        except OSError as err:
            os.close(fd)
            raise ReverieError(
                f"cannot lock {lock_path} ({err.strerror}): this filesystem has no file locks; "
                "render to a local or NFS folder"
            ) from None
        if _still_there(fd, lock_path):
            _write_holder(fd)
            return fd
        os.close(fd)  # released and removed by its holder as we opened it: lock the new one


def _open(lock_path: Path, what: str) -> int:
    try:
        # O_NOFOLLOW: a symlink planted at the lock's name is refused, never followed.
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise ReverieError(
            f"cannot lock {what}: {lock_path} cannot be opened ({err.strerror}); "
            "remove it if it is not a Reverie lock file, or choose another output"
        ) from None


def _still_there(fd: int, lock_path: Path) -> bool:
    try:
        now = os.stat(lock_path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _write_holder(fd: int) -> None:
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:300],
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says (it may not have written it yet)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        if (record["host"], record["pid"]) == (socket.gethostname(), os.getpid()):
            return "this very command (two shots, or two jobs, with one output)"
        return f"{record['command']!r} on {record['host']}, pid {record['pid']}, since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another render"
