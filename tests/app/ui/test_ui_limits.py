"""The page's bounds as units: the decode budget, the image store's eviction and pins, the job queue's
size and its cleanups, the sign-in limiter."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import photo
from reverie.app.ui.jobs import JobQueue, QueueFull
from reverie.app.ui.limits import SignInLimiter
from reverie.app.ui.store import Busy, DecodeBudget, ImageStore
from reverie.errors import ReverieError


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_budget_makes_a_second_decode_wait_for_the_first():
    budget = DecodeBudget(limit=100, wait_s=5)
    order = []
    with budget.hold(80, "a"):
        second = threading.Thread(target=lambda: budget.hold(80, "b").__enter__() or order.append("b"))
        second.start()
        time.sleep(0.2)
        order.append("a done")
    second.join(5)
    assert order == ["a done", "b"] and budget.peak == 80


def test_the_budget_refuses_what_it_cannot_hold_and_gives_up_when_busy():
    budget = DecodeBudget(limit=100, wait_s=0.1)
    with pytest.raises(
        ReverieError, match=r"huge\.png needs 1 KB to decode; the server decodes at most 100 bytes"
    ):
        with budget.hold(1024, "huge.png"):
            pass
    with budget.hold(60, "a"), pytest.raises(Busy, match="try again"):
        with budget.hold(60, "b"):
            pass
    assert budget.in_use == 0


def test_the_store_keeps_files_evicts_the_oldest_and_keeps_pinned_files(tmp_path):
    store = ImageStore(tmp_path, kept=2)
    first = store.add_upload(_png(photo(16, 24)), "a.png", "content")
    assert first.path.suffix == ".png" and first.path.read_bytes() == _png(photo(16, 24))  # as uploaded
    release = store.pin(first)
    store.add_upload(_png(photo(16, 24, seed=1)), "b.png", "content")
    store.add_upload(_png(photo(16, 24, seed=2)), "c.png", "content")
    with pytest.raises(ReverieError, match="upload one first"):
        store.get(first.id, "content")
    assert first.path.exists() and first.thumb.exists()  # a job still reads it
    with store.decoded(first) as pixels:
        assert pixels.shape == (16, 24, 3) and store.held_bytes() == 16 * 24 * 12
    assert store.held_bytes() == 0
    release()
    release()  # twice is once
    assert not first.path.exists() and not first.thumb.exists()
    assert len(store) == 2


def test_the_store_is_bounded_in_bytes_too(tmp_path):
    store = ImageStore(tmp_path, kept_bytes=1)
    uploads = [store.add_upload(_png(photo(16, 16, seed=n)), f"{n}.png", "style") for n in range(3)]
    assert len(store) == 1 and store.get(uploads[-1].id, "style") is uploads[-1]  # the newest stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [uploads[-1].path.name, uploads[-1].thumb.name]


def test_the_queue_is_bounded_and_every_job_releases_what_it_held():
    queue = JobQueue(max_pending=2)
    gate, released = threading.Event(), []
    try:
        running = queue.submit(
            "preview", "a", lambda job: gate.wait(10), cleanup=lambda: released.append("a")
        )
        queued = queue.submit("preview", "b", lambda job: None, cleanup=lambda: released.append("b"))
        with pytest.raises(
            QueueFull, match=r"^the queue is full \(2 jobs\): wait for one to finish or stop one$"
        ):
            queue.submit("preview", "c", lambda job: None)
        queue.stop(queued)
        assert released == ["b"]  # stopped while queued: released at once
        third = queue.submit("preview", "c", lambda job: None, cleanup=lambda: released.append("c"))
        gate.set()
        deadline = time.monotonic() + 10
        while third.state != "done" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.state == "done" and third.state == "done"
        assert released == ["b", "a", "c"]
    finally:
        gate.set()
        queue.close()


def test_closing_the_queue_stops_and_releases_queued_jobs():
    queue, released = JobQueue(), []
    running = queue.submit("preview", "a", lambda job: job.stop_requested.wait(10))
    queued = queue.submit("preview", "b", lambda job: None, cleanup=lambda: released.append("b"))
    queue.close()
    assert released == ["b"] and queued.state == running.state == "stopped"


def test_the_sign_in_limiter_counts_per_client_within_its_window():
    now = [0.0]
    limiter = SignInLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
        now[0] += 10
    assert limiter.retry_after("10.0.0.1") == 30  # the first failure, at 0 s, is forgotten at 60 s
    assert limiter.retry_after("10.0.0.2") is None  # another client
    now[0] = 60.5
    assert limiter.retry_after("10.0.0.1") is None
