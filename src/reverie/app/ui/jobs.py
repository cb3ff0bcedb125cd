"""The UI's render queue: previews, sweeps and shots run one at a time on one worker thread, and every
browser tab sees the same queue. Knows nothing of HTTP; the server turns jobs into JSON."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reverie.errors import Cancelled, ReverieError

KEPT_JOBS = 50  # finished jobs kept for the page; older ones are forgotten
MAX_PENDING_JOBS = 32
"""Queued and running jobs at once: a page (or a script) cannot queue work without end."""


class Stopped(Cancelled):
    """Raised inside a job's work when the user pressed Stop."""


class QueueFull(ReverieError):
    """The queue holds its most pending jobs (the server answers 429)."""


@dataclass
class Job:
    kind: str
    """preview, sweep, shot or fast (a shot previewed in fast mode)."""
    label: str
    work: Callable[[Job], None]
    id: str
    """Unique in its queue: job-1, job-2, ..."""
    state: str = "queued"
    iteration: int = 0
    total: int = 0
    frames_done: int = 0
    frames_total: int = 0
    frames: dict[int, bytes] = field(default_factory=dict)
    """Finished shot frames as PNG thumbnails, by frame number."""
    stage: str = ""
    """A fast job's stage: keyframes, training or frames (the page draws one progress bar across them)."""
    detail: str = ""
    """What the stage is doing, in words (which keyframes, the training's loss)."""
    error: str | None = None
    image: bytes | None = None
    """The latest PNG: a preview's current image, a sweep's grid."""
    version: int = 0
    created: float = field(default_factory=time.time)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    cleanup: Callable[[], None] | None = None
    """Called once the job can no longer run (done, failed, stopped, or the queue closed): it releases
    what the job held, such as the uploads it reads."""

    def release(self) -> None:
        cleanup, self.cleanup = self.cleanup, None
        if cleanup is not None:
            cleanup()

    def show(self, png: bytes) -> None:
        self.image, self.version = png, self.version + 1

    def progress(self, iteration: int, total: int) -> None:
        self.iteration, self.total = iteration, total

    def check_stop(self) -> bool:
        return self.stop_requested.is_set()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "label": self.label,
            "iteration": self.iteration,
            "total": self.total,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "frames": sorted(self.frames),
            "stage": self.stage,
            "detail": self.detail,
            "error": self.error,
            "version": self.version,
            "created": self.created,
        }


class JobQueue:
    """First in, first out, one job at a time: a render uses the whole machine."""

    def __init__(self, max_pending: int = MAX_PENDING_JOBS) -> None:
        self.max_pending = max_pending
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="reverie-ui-jobs", daemon=True)
        self._thread.start()

    def submit(
        self, kind: str, label: str, work: Callable[[Job], None], cleanup: Callable[[], None] | None = None
    ) -> Job:
        """Queue the work; QueueFull (nothing queued, `cleanup` not called) when the queue is full."""
        with self._wake:
            pending = sum(j.state in ("queued", "running") for j in self._jobs)
            if pending >= self.max_pending:
                raise QueueFull(f"the queue is full ({pending} jobs): wait for one to finish or stop one")
            job = Job(kind, label, work, f"job-{next(self._ids)}", cleanup=cleanup)
            self._jobs.append(job)
            self._forget_old()
            self._wake.notify()
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def stop(self, job: Job) -> None:
        with self._lock:
            job.stop_requested.set()
            if job.state != "queued":
                return
            job.state = "stopped"
        job.release()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            for job in self._jobs:
                job.stop_requested.set()
            queued = [j for j in self._jobs if j.state == "queued"]
            for job in queued:
                job.state = "stopped"
            self._wake.notify()
        for job in queued:
            job.release()
        self._thread.join(timeout=30)

    def _next(self) -> Job | None:
        with self._wake:
            while not self._closed:
                job = next((j for j in self._jobs if j.state == "queued"), None)
                if job is not None:
                    job.state = "running"
                    return job
                self._wake.wait()
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                job.work(job)
                state, error = ("stopped" if job.check_stop() else "done"), None
            except Stopped:
                state, error = "stopped", None
            except ReverieError as err:
                state, error = "failed", str(err)
            except Exception as err:  # a job's failure must not take the server down
                state, error = "failed", f"{type(err).__name__}: {err}".splitlines()[0]
            with self._lock:
                job.state, job.error = state, error
            job.release()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs if j.state not in ("queued", "running")]
        for job in finished[: max(0, len(finished) - KEPT_JOBS)]:
            self._jobs.remove(job)
