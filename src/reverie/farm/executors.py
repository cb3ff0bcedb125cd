"""Where a farm's work runs: one interface, three ways.

- in-process (`--farm local`, the default): in the driver's own process, one step at a time, with
  per-iteration progress;
- local worker processes (`--farm local --workers N`): a process pool on this machine, each worker with
  its share of the CPU threads (or the GPU);
- Ray (`--farm ray`): a cluster joined with `--address` or `RAY_ADDRESS`, or a private Ray instance on
  this machine when neither is given (shut down at the end). A pool of actors, one per step the cluster
  can run at once (one GPU each when the cluster has GPUs); Ray restarts an actor whose process or node
  died, elsewhere if need be, and retries its steps, up to `retries` times each.

Each runs a step as fn(worker, *args), with the one `Worker` of the process it runs in: the driver's
own, or one per worker process or actor, made as it starts. So a worker sets up once (its network,
style targets, opened shots) and then paints, frame after frame. Every executor returns
`concurrent.futures.Future`s, so the driver waits on all of them the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from reverie.engine.painter import NetworkBuilder
from reverie.errors import ReverieError
from reverie.pipeline.steps import Worker

FARMS = ("local", "ray")
DEFAULT_RETRIES = 3
"""Times a step is tried again after its worker died (a crash, a kill, a lost node)."""
_CONNECT_SECONDS = 5.0
_ORPHAN_CHECK_SECONDS = 0.5


class Executor(Protocol):
    in_process: bool
    """True when work runs in the driver's process (and can report every iteration)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run fn(worker, *args) with the Worker of the process that runs it."""

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        """Some of `futures` that are done (none if `timeout` seconds pass first)."""

    def workers(self) -> int: ...
    def close(self) -> None: ...


class InProcess:
    """Runs work in this process, one piece at a time in the order it was handed in, each when the
    driver waits: the plain `reverie render`. (Run at once on submit, a shot of independent frames
    would paint every frame before the driver recorded the first.)"""

    in_process = True

    def __init__(self, worker: Worker | None = None) -> None:
        self.worker = worker or Worker()
        self.queue: deque[tuple[Future, Callable[..., Any], tuple[Any, ...]]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self.queue.append((future, fn, args))
        return future

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        future, fn, args = self.queue.popleft()
        try:
            future.set_result(fn(self.worker, *args))
        except Exception as err:  # as on worker processes and Ray: the step failed, the batch goes on
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

    def __init__(
        self,
        workers: int,
        threads: int | None = None,
        retries: int = DEFAULT_RETRIES,
        build_network: NetworkBuilder | None = None,
    ) -> None:
        """build_network: the workers' feature networks (by default the real ones; tests stand in a
        tiny one, which must be importable by the worker processes)."""
        self.count, self.retries, self.build_network = workers, retries, build_network
        self.share = threads or max(1, (os.cpu_count() or 1) // workers)
        self.pool = self._start()
        # The pool's future running a step now -> the step.
        self.running: dict[Future, _Work] = {}

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: a forked copy of a process that already ran PyTorch threads can deadlock.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            self.count,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.share, self.build_network, os.getpid()),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        work = _Work(Future(), fn, args)
        self._hand_in(work)
        return work.outer

    def _hand_in(self, work: _Work) -> None:
        try:
            inner = self.pool.submit(_in_worker, work.fn, *work.args)
        except BrokenProcessPool:
            self.pool = self._start()
            inner = self.pool.submit(_in_worker, work.fn, *work.args)
        self.running[inner] = work

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        done = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED).done
        finished = set()
        for inner in done:
            work = self.running.pop(inner)
            if isinstance(inner.exception(), BrokenProcessPool) and work.tries < self.retries:
                self._hand_in(work.again())
                continue
            work.settle(inner)
            finished.add(work.outer)
        return finished

    def workers(self) -> int:
        return self.count

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayFarm:
    """Steps on a pool of Ray actors, one per step the cluster can run at once, on a cluster (or a
    private local Ray instance)."""

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
        self.ray, self.retries = ray, retries
        self.per_task = _task_resources(ray.cluster_resources(), _node_cpus(ray), workers, threads)
        # Torch threads: --threads, else the CPUs the actor holds (a GPU actor gets a node's cores).
        threads = threads or int(self.per_task.get("num_cpus", _node_cpus(ray)))
        # Ray restarts an actor whose process or node died (on another node when its own is gone) by
        # running its constructor again; its steps are handed in again here, to whichever actor is free.
        actor = ray.remote(StepRunner).options(max_restarts=-1, max_task_retries=0, **self.per_task)
        self.actors = [actor.remote(threads) for _ in range(max(1, self._capacity()))]
        self.idle: deque[Any] = deque(self.actors)
        self.backlog: deque[_Work] = deque()
        self.running: dict[Future, tuple[Any, _Work]] = {}
        self.restarting: dict[Future, Any] = {}  # an actor's ping, answered once it is back

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        work = _Work(Future(), fn, args)
        self.backlog.append(work)
        self._dispatch()
        return work.outer

    def _dispatch(self) -> None:
        """One step per idle actor: a step waits here, not in an actor's queue, so that an actor's death
        costs the step it was painting and no other."""
        while self.idle and self.backlog:
            actor, work = self.idle.popleft(), self.backlog.popleft()
            self.running[actor.run.remote(work.fn, *work.args).future()] = (actor, work)

    def wait(self, futures: Collection[Future], timeout: float) -> set[Future]:
        watched = [*self.running, *self.restarting]
        if not watched:  # no actor is painting or coming back: what waits would wait for ever
            return self._give_up()
        finished = set()
        for inner in wait(watched, timeout=timeout, return_when=FIRST_COMPLETED).done:
            if inner in self.restarting:
                actor = self.restarting.pop(inner)
                if inner.exception() is None:  # back (one whose restarts ran out stays out)
                    self.idle.append(actor)
            elif (outer := self._ended(inner)) is not None:
                finished.add(outer)
        self._dispatch()
        return finished

    def _ended(self, inner: Future) -> Future | None:
        """A step's run ended: its outcome for the driver, or None when the step is handed in again
        because its actor died (its process or its node), which Ray restarts by itself."""
        actor, work = self.running.pop(inner)
        if not isinstance(inner.exception(), self.ray.exceptions.RayActorError):
            self.idle.append(actor)
            work.settle(inner)
            return work.outer
        # Retried until the actor is back: a call to a restarting actor fails at once otherwise.
        self.restarting[actor.ready.options(max_task_retries=-1).remote().future()] = actor
        if work.tries < self.retries:
            self.backlog.appendleft(work.again())
            return None
        work.outer.set_exception(_died(work.tries + 1))
        return work.outer

    def _give_up(self) -> set[Future]:
        error = ReverieError("every Ray worker of this farm is gone and none could be restarted")
        for work in self.backlog:
            work.outer.set_exception(error)
        finished = {work.outer for work in self.backlog}
        self.backlog.clear()
        return finished

    def _capacity(self) -> int:
        """Steps the cluster's live nodes can run at once."""
        resources = self.ray.cluster_resources()
        if "num_gpus" in self.per_task:
            return int(resources.get("GPU", 0))
        return int(resources.get("CPU", 0) // self.per_task["num_cpus"])

    def workers(self) -> int:
        """Actors alive: idle or painting."""
        return len(self.idle) + len(self.running)

    def close(self) -> None:
        self.ray.shutdown()


def _died(tries: int) -> ReverieError:
    return ReverieError(
        f"the Ray worker painting it died each of the {tries} time(s) it was tried (a crash, a kill or a "
        "lost node); see the Ray logs, or raise --retries"
    )


class _Work:
    """A step handed to a pool: the future the driver holds, the call, and how often it was tried."""

    def __init__(self, outer: Future, fn: Callable[..., Any], args: tuple[Any, ...], tries: int = 0):
        self.outer, self.fn, self.args, self.tries = outer, fn, args, tries

    def again(self) -> _Work:
        return _Work(self.outer, self.fn, self.args, self.tries + 1)

    def settle(self, inner: Future) -> None:
        """Give the driver's future the outcome of the run that ended."""
        error = inner.exception()
        if error is not None:
            self.outer.set_exception(error)
        else:
            self.outer.set_result(inner.result())


class StepRunner:
    """A Ray actor: one `Worker` for its whole life, so that its network, style targets and opened
    shots serve every step it paints."""

    def __init__(self, threads: int) -> None:
        _set_threads(threads)
        self.worker = Worker()

    def ready(self) -> bool:
        return True

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.worker, *args)


def make_executor(
    farm: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    threads: int | None = None,
    retries: int = DEFAULT_RETRIES,
    worker: Worker | None = None,
) -> Executor:
    """The executor `--farm`, `--workers` and `--address` ask for. worker: the in-process executor's
    (a shell that paints previews too shares its Painter so); other executors make their own."""
    check_options(farm, workers, address, threads, retries)
    if farm == "local":
        if not workers or workers == 1:
            return InProcess(worker)
        return LocalProcesses(workers, threads, retries)
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
    """Fail in seconds, in one line, when nothing listens at HOST:PORT or what listens is not Ray (Ray
    itself retries for minutes, printing its native log lines)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ReverieError(
            f"--address {address!r} must be HOST:PORT, e.g. 10.0.0.5:6379 (the head's GCS port)"
        )
    try:
        conn = socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ReverieError(
            f"no Ray cluster answers at {address} ({reason}): start one there with "
            f"`ray start --head --port {port}`, or check the address and the firewall"
        ) from None
    with conn:
        # With TLS on (Ray's RAY_USE_TLS) the server expects a TLS handshake first: no plain probe then.
        problem = None if _ray_tls() else _grpc_problem(conn)
    if problem is not None:
        raise ReverieError(
            f"{host}:{port} answers but is not a Ray cluster: {problem}; give the head's GCS address "
            "(`ray start --head` prints it, port 6379 by default)"
        )


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5)
"""An HTTP/2 client's first bytes: the magic, then an empty SETTINGS frame (RFC 9113, section 3.4)."""
_PROBE_SECONDS = 2.0


def _grpc_problem(conn: socket.socket) -> str | None:
    """Ray's GCS (and Ray Client's server) speak gRPC, which is HTTP/2: to a client's preface, an HTTP/2
    server answers with its own SETTINGS frame (a 9-byte header: length, type 4, flags, stream 0).
    None when it does; otherwise what it did instead, in words."""
    conn.settimeout(_PROBE_SECONDS)
    try:
        conn.sendall(_HTTP2_PREFACE)
        head = b""
        while len(head) < 9 and (chunk := conn.recv(9 - len(head))):
            head += chunk
    except TimeoutError:
        return f"it said nothing in {_PROBE_SECONDS:g} s to a gRPC greeting"
    except OSError as err:
        return f"it dropped the connection at a gRPC greeting ({err.strerror or type(err).__name__})"
    if len(head) < 9:
        return "it closed the connection at a gRPC greeting"
    if head[3] != 4 or head[5:9] != bytes(4):
        return "it does not speak gRPC (HTTP/2)"
    return None


def _ray_tls() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


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


_WORKER: Worker | None = None
"""A local worker process's one Worker, made by the pool's initializer as the process starts."""


def _start_worker(threads: int, build_network: NetworkBuilder | None, driver: int) -> None:
    global _WORKER
    _die_with(driver)
    _set_threads(threads)
    _WORKER = Worker(build_network=build_network)


def _die_with(driver: int) -> None:
    """End this worker process when its driver is gone, however the driver ended (kill -9 included): a
    pool's workers otherwise wait on their queue for ever, each holding a network. Checked twice a
    second, so an orphan paints at most that long; what it was writing is atomic, and its frame is not
    in the manifest, so the next run paints it again."""

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(_ORPHAN_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="reverie-driver-watch", daemon=True).start()


def _in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """A step in a local worker process, with that process's Worker."""
    assert _WORKER is not None, "the pool's initializer makes the Worker"
    return fn(_WORKER, *args)


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
