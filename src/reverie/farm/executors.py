"""Where a farm's work runs: one interface, three ways.

- in-process (`--farm local`, the default): in the driver's own process, one step at a time, with
  per-iteration progress;
- local worker processes (`--farm local --workers N`): a process pool on this machine, each worker with
  its share of the CPU threads (or the GPU);
- Ray (`--farm ray`): a cluster joined with `--address` or `RAY_ADDRESS`, or a private Ray instance on
  this machine when neither is given (shut down at the end). One task per step, one GPU per task when
  the cluster has GPUs; Ray retries a step whose worker died, up to `retries` times.

Every executor returns `concurrent.futures.Future`s, so the driver waits on all of them the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from reverie.errors import ReverieError

FARMS = ("local", "ray")
DEFAULT_RETRIES = 3
"""Times a step is tried again after its worker died (a crash, a kill, a lost node)."""
_CONNECT_SECONDS = 5.0


class Executor(Protocol):
    in_process: bool
    """True when work runs in the driver's process (and can report every iteration)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...
    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        """Some of `futures` that are done (none if `timeout` seconds pass first)."""

    def workers(self) -> int: ...
    def close(self) -> None: ...


class InProcess:
    """Runs work in this process, one piece at a time in the order it was handed in, each when the
    driver waits: the plain `reverie render`. (Run at once on submit, a shot of independent frames
    would paint every frame before the driver recorded the first.)"""

    in_process = True

    def __init__(self) -> None:
        self.queue: deque[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self.queue.append((future, fn, args))
        return future

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        future, fn, args = self.queue.popleft()
        try:
            future.set_result(fn(*args))
        except ReverieError as err:
            future.set_exception(err)
        return {future}

    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass


class LocalProcesses:
    """N worker processes on this machine, each with cores / N threads. A worker that dies takes the
    pool with it (Python's process pools cannot lose a process): the pool is started again and the
    work it held is handed in again, up to `retries` times each."""

    in_process = False

    def __init__(self, workers: int, threads: int | None = None, retries: int = DEFAULT_RETRIES) -> None:
        self.count, self.retries = workers, retries
        self.share = threads or max(1, (os.cpu_count() or 1) // workers)
        self.pool = self._start()
        # Each future given out -> the pool's future running it now, the work, and its tries so far.
        self.running: dict[Future, tuple[Future, Callable[..., Any], tuple[Any, ...], int]] = {}

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: a forked copy of a process that already ran PyTorch threads can deadlock.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            self.count, mp_context=context, initializer=_set_threads, initargs=(self.share,)
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        outer: Future = Future()
        self.running[outer] = (self._hand_in(fn, args), fn, args, 0)
        return outer

    def _hand_in(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future:
        try:
            return self.pool.submit(fn, *args)
        except BrokenProcessPool:
            self.pool = self._start()
            return self.pool.submit(fn, *args)

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        inner = {self.running[f][0]: f for f in futures if f in self.running}
        done = wait(inner, timeout=timeout, return_when=FIRST_COMPLETED).done
        finished = set()
        for future in done:
            outer = inner[future]
            _, fn, args, tries = self.running.pop(outer)
            error = future.exception()
            if isinstance(error, BrokenProcessPool) and tries < self.retries:
                self.running[outer] = (self._hand_in(fn, args), fn, args, tries + 1)
            elif error is not None:
                outer.set_exception(error)
                finished.add(outer)
            else:
                outer.set_result(future.result())
                finished.add(outer)
        return finished

    def workers(self) -> int:
        return self.count

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayFarm:
    """Steps as Ray tasks on a cluster (or a private local Ray instance)."""

    in_process = False

    def __init__(
        self, address: str | None, *, workers: int | None, threads: int | None, retries: int = DEFAULT_RETRIES
    ) -> None:
        ray = _import_ray()
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.owned = address is None
        if address is not None:
            check_reachable(address)
            _connect(ray, address)
        else:
            # A private instance on loopback, with all of this machine's cores: nothing else can join.
            ray.init(
                address="local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
            )
        self.ray = ray
        self.per_task = _task_resources(ray.cluster_resources(), _node_cpus(ray), workers, threads)
        # Torch threads: --threads, else the CPUs the task holds (a GPU task gets a node's cores).
        self.threads = threads or int(self.per_task.get("num_cpus", _node_cpus(ray)))
        self.remote = ray.remote(_run_task).options(
            max_retries=retries, retry_exceptions=False, **self.per_task
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.remote.remote(fn, self.threads, *args).future()

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        return wait(futures, timeout=timeout, return_when=FIRST_COMPLETED).done

    def workers(self) -> int:
        """Steps the cluster's live nodes can run at once."""
        resources = self.ray.cluster_resources()
        if "num_gpus" in self.per_task:
            return int(resources.get("GPU", 0))
        return int(resources.get("CPU", 0) // self.per_task["num_cpus"])

    def close(self) -> None:
        self.ray.shutdown()


def make_executor(
    farm: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    threads: int | None = None,
    retries: int = DEFAULT_RETRIES,
) -> Executor:
    """The executor `--farm`, `--workers` and `--address` ask for."""
    check_options(farm, workers, address, threads, retries)
    if farm == "local":
        return InProcess() if not workers or workers == 1 else LocalProcesses(workers, threads, retries)
    return RayFarm(address, workers=workers, threads=threads, retries=retries)


def check_options(
    farm: str, workers: int | None, address: str | None, threads: int | None, retries: int = 0
) -> None:
    """One-line errors for farm options that cannot work, before anything is opened or started."""
    if retries < 0:
        raise ReverieError(f"--retries {retries} must be 0 or more")
    if farm not in FARMS:
        raise ReverieError(f"--farm {farm!r} is not known: use local or ray")
    if workers is not None and workers < 1:
        raise ReverieError(f"--workers {workers} must be 1 or more")
    if threads is not None and threads < 1:
        raise ReverieError(f"--threads {threads} must be 1 or more")
    if farm == "local" and address:
        raise ReverieError("--address joins a Ray cluster: add --farm ray")


def check_reachable(address: str) -> None:
    """Fail in seconds, in one line, when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ReverieError(
            f"--address {address!r} must be HOST:PORT, e.g. 10.0.0.5:6379 (the head's GCS port)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ReverieError(
            f"no Ray cluster answers at {address} ({reason}): start one there with "
            f"`ray start --head --port {port}`, or check the address and the firewall"
        ) from None


def _connect(ray: Any, address: str) -> None:
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReverieError(f"cannot join the Ray cluster at {address}: {first}") from None


def _task_resources(
    resources: dict[str, float], node_cpus: int, workers: int | None, threads: int | None
) -> dict[str, float]:
    """What each step holds: one GPU where the cluster has GPUs; else CPUs, which also sets how many
    steps run at once: the cluster's CPUs shared among --workers, else --threads, else the smallest
    node's cores (one step per node)."""
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    cpus = int(resources.get("CPU", 1))
    share = max(1, cpus // workers) if workers else (threads or node_cpus)
    return {"num_cpus": max(1, min(share, node_cpus))}


def _node_cpus(ray: Any) -> int:
    alive = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return max(1, int(min(alive))) if alive else 1


def _run_task(fn: Callable[..., Any], threads: float, *args: Any) -> Any:
    """A step on a Ray worker, with the worker's share of threads."""
    _set_threads(int(threads))
    return fn(*args)


def _set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ReverieError(
            "--farm ray needs Ray: install it with pip install 'reverie[farm]' "
            "(on every machine of the cluster)"
        ) from None
    return ray
