"""`reverie ui`: a look-development page for directors and artists, on the same core, looks and farm.

A small Starlette app: JSON endpoints (the table in `build_app`; errors are {"error": one line}), the
static page, and one render queue (`jobs.py`) that every tab shares. Files on the server are reached
only under the folders given with --root (`security.Roots`); uploads are checked in size and content.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from reverie.app.ui import limits, security
from reverie.app.ui.jobs import Job, JobQueue, QueueFull, Stopped
from reverie.app.ui.store import Busy, DecodeBudget, ImageStore, Upload, decoded_bytes, png
from reverie.engine.painter import Painter
from reverie.engine.still import check_memory, finish
from reverie.errors import ReverieError
from reverie.io.images import fit_long_side, resize
from reverie.look import COLOR_MODES, U_RANGE, Look
from reverie.runtime import Runtime
from reverie.textfile import format_size

STATIC = Path(__file__).with_name("static")
UI_NETWORKS = ("vgg16", "vgg19")  # googlenet needs a checkpoint the user brings: the CLI covers it
FARMS = ("local", "ray")
LOOK_KEYS = ("u", "iterations", "size", "color", "network", "seed", "style_crop")
PREVIEW_EVERY_S = 0.4  # a fresh preview image at most this often: PNG encoding costs time too
FORM_OVERHEAD = 64 * 2**10
"""Room for a multipart form's boundaries and fields around the file it carries."""
UPLOAD_PATHS = {"/api/images": "MAX_UPLOAD_BYTES", "/api/looks/parse": "MAX_LOOK_BYTES"}
"""Endpoints that take a file, and the `security` limit of that file (read when asked: tests set it)."""


@dataclass
class State:
    roots: security.Roots
    painter: Painter
    """The page's engine: every preview, sweep and in-process shot reuses its network and targets."""
    queue: JobQueue
    folder: Path
    """The server's private folder: uploaded images, thumbnails, looks being read."""
    budget: DecodeBudget = field(default_factory=DecodeBudget)
    images: ImageStore = field(init=False)

    def __post_init__(self) -> None:
        self.images = ImageStore(self.folder, self.budget)


# ------------------------------------------------------------------------------------------ helpers


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def _png_response(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


def body_limit(path: str) -> tuple[int, str]:
    """(bytes, the message past them) for a request body on `path` (see `limits.BodyLimitMiddleware`)."""
    if path in UPLOAD_PATHS:
        limit = getattr(security, UPLOAD_PATHS[path])
        return (
            limit + FORM_OVERHEAD,
            f"the upload is over the {format_size(limit)} limit: send a smaller file",
        )
    limit = security.MAX_LOOK_BYTES
    return limit, f"the request is over the {format_size(limit)} limit: send the settings only"


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()  # bounded while read: the body limit middleware
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise ReverieError(
            "the request is not valid JSON (or nests too deeply): send the settings only"
        ) from None
    if not isinstance(data, dict):
        raise ReverieError("the request must be a JSON object")
    return data


async def _upload(request: Request, limit: int) -> tuple[bytes, str, dict[str, str]]:
    """The one file of a multipart form (the body is bounded while read, see `body_limit`)."""
    try:
        form = await request.form(max_files=1, max_fields=8)
    except limits.BodyTooLarge:
        raise
    except Exception:
        raise ReverieError("the upload could not be read: send one file as multipart/form-data") from None
    file = form.get("file")
    if file is None or isinstance(file, str):
        raise ReverieError("no file was sent: choose a file first")
    data = await file.read(limit + 1)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return data, file.filename or "upload", fields


def look_from_json(data: Any, style: Upload | None = None) -> Look:
    """A Look from the page's settings (only the controls the page has; the rest are defaults)."""
    if not isinstance(data, dict):
        raise ReverieError("the look must be an object of settings")
    unknown = sorted(set(data) - set(LOOK_KEYS))
    if unknown:
        raise ReverieError(f"unknown look setting(s) {', '.join(unknown)}; known: {', '.join(LOOK_KEYS)}")
    settings = {k: v for k, v in data.items() if v is not None}
    if style is not None:
        settings["styles"] = [str(style.path)]
    return Look.from_dict(settings, source="look")


def _guarded(handler: Callable) -> Callable:
    """User errors become one-line JSON errors: 400, 403 for paths outside the roots, 429 when the queue
    is full, 503 while the decode budget is full."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except limits.BodyTooLarge:
            raise  # the body limit middleware answers it
        except security.OutsideRoots as err:
            return _error(str(err), 403)
        except QueueFull as err:
            return _error(str(err), 429)
        except Busy as err:
            return JSONResponse({"error": str(err)}, status_code=503, headers={"retry-after": "5"})
        except ReverieError as err:
            return _error(str(err))
        except Exception as err:  # a bug: the page gets one line, the server's log the traceback
            traceback.print_exc()
            return _error(f"internal error ({type(err).__name__}): the server log has the details", 500)

    return endpoint


# ------------------------------------------------------------------------------------------ work


def _live_image(job: Job, plate: np.ndarray, look: Look) -> Callable[[Any], None]:
    """An iteration callback that shows the image being optimised, at most every PREVIEW_EVERY_S."""
    shown = [0.0]

    def show(event: Any) -> None:
        if time.monotonic() - shown[0] >= PREVIEW_EVERY_S:
            job.show(png(finish(event.image, plate, look.color, look.size)))
            shown[0] = time.monotonic()

    return show


@contextmanager
def _painting(store: ImageStore, content: Upload, style: Upload) -> Iterator[np.ndarray]:
    """The plate, decoded for the job's run, with the painting's bytes (the painter decodes it from its
    file) reserved alongside: a job holds no pixels while it waits in the queue."""
    with store.decoded(content, style) as plate:
        yield plate


def preview_work(
    store: ImageStore, content: Upload, style: Upload, look: Look, painter: Painter
) -> Callable[[Job], None]:
    """Paint the plate, showing the image as it improves; Stop ends it after the current iteration."""

    def work(job: Job) -> None:
        with _painting(store, content, style) as plate:
            job.show(png(resize(plate, fit_long_side(plate.shape[1], plate.shape[0], look.size))))
            live = _live_image(job, plate, look)

            def on_iteration(event: Any) -> None:
                job.progress(event.iteration, event.total)
                live(event)

            result = painter.stylize(
                plate, None, look, output_size=look.size, callback=on_iteration,
                should_stop=job.check_stop,
            )  # fmt: skip
            job.show(png(result.image))

    return work


def sweep_work(
    store: ImageStore, content: Upload, style: Upload, look: Look, values: list[float], painter: Painter
) -> Callable[[Job], None]:
    """One tile per u, then the labelled grid (the same sheet as `reverie sweep`)."""
    from reverie.engine.sweep import Axis, axis_title, plan_sweep, render_tiles, total_iterations
    from reverie.io.sheet import contact_sheet

    plan = plan_sweep(look, [Axis("u", tuple(values))])

    def work(job: Job) -> None:
        total, done = total_iterations(plan, painter.runtime.precision), [0]
        with _painting(store, content, style) as plate:
            live = _live_image(job, plate, look)

            def on_iteration(event: Any) -> None:
                if job.check_stop():
                    raise Stopped
                done[0] += 1
                job.progress(done[0], total)
                live(event)

            images = render_tiles(plate, plan, painter, on_iteration=on_iteration)
        grid = [[images[t.name] for t in row] for row in plan.rows()]
        captions = [[t.caption for t in row] for row in plan.rows()]
        sheet = contact_sheet(
            grid, plan.row_labels, plan.col_labels, captions, "Reverie sweep", axis_title(plan)
        )
        job.show(png(sheet, 2048))

    return work


class _ShotEvents:
    """`reverie.farm.driver.FarmEvents` for a job: progress, thumbnails of finished frames, Stop."""

    def __init__(self, job: Job, thumbnail: Callable[[int], bytes]) -> None:
        self.job, self.thumbnail = job, thumbnail

    def batch_started(self, shots: int, frames: int, finished: int) -> None:
        self.job.frames_total, self.job.frames_done = frames, finished

    def step_started(self, shot: str, number: int, iterations: int) -> None:
        self.job.progress(0, iterations)
        if self.job.check_stop():
            raise Stopped

    def iteration(self, event: Any) -> None:
        self.job.progress(event.iteration, event.total)
        if self.job.check_stop():
            raise Stopped

    def frame_finished(self, shot: str, number: int, entry: dict) -> None:
        self.job.frames[number] = self.thumbnail(number)
        self.job.frames_done += 1
        self.job.version += 1
        if self.job.check_stop():
            raise Stopped

    def frame_failed(self, shot: str, number: int, error: str) -> None:
        self.job.error = f"frame {number}: {error}"

    def workers(self, alive: int) -> None:
        pass


def _thumbnails(target: Any) -> Callable[[int], bytes]:
    """number -> that finished frame of the render's output as a 320-px PNG, for the page."""
    from reverie.io import colorspace as cs
    from reverie.io.sequences import read_frame

    def thumbnail(number: int) -> bytes:
        return png(
            cs.to_display(read_frame(target.pattern.path(number)), target.colorspace, target.color), 320
        )

    return thumbnail


def _raise_failed(failed: Sequence[tuple[str, int, str]]) -> None:
    """End the job failed, with the first failed frame's error, when frames failed."""
    if failed:
        number, error = failed[0][1:]
        more = f" ({len(failed) - 1} more)" if len(failed) > 1 else ""
        raise ReverieError(f"frame {number} failed: {error}{more}; the others are done")


def shot_work(
    roots: security.Roots, spec: Any, look: Look, painter: Painter, farm: str, workers: int
) -> Callable[[Job], None]:
    """Render the shot on the chosen farm (resumable, as `reverie render`); thumbnails as frames land."""
    from reverie.farm.driver import render_batch
    from reverie.farm.executors import make_executor
    from reverie.pipeline.shot import plan_target
    from reverie.pipeline.steps import Worker

    def work(job: Job) -> None:
        clip = _confined_clip(roots, spec)  # again: the folder may have changed while the job waited
        target = plan_target(spec, clip)

        executor = make_executor(farm, workers=workers, worker=Worker(painter))
        try:
            events = _ShotEvents(job, _thumbnails(target))
            report = render_batch([(spec, look)], painter.runtime, executor, events, [clip])
        finally:
            executor.close()
        _raise_failed(report.failed)

    return work


class _FastEvents(_ShotEvents):
    """`reverie.farm.fast.FastEvents` for a job: the three stages on one progress display, thumbnails of
    the network's frames (not of the keyframes: the page shows the shot), Stop at any point."""

    def stage(self, stage: str, text: str) -> None:
        if stage != "note":
            self.job.stage = stage
            self.job.frames_done = self.job.frames_total = 0
            self.job.progress(0, 0)
        self.job.detail = text
        self.job.version += 1
        if self.job.check_stop():
            raise Stopped

    def training(self, step: int, total: int, loss: float) -> None:
        self.job.progress(step, total)
        self.job.detail = f"training: step {step} / {total}, loss {loss:.4f}"
        if self.job.check_stop():
            raise Stopped

    def frame_finished(self, shot: str, number: int, entry: dict) -> None:
        if self.job.stage != "frames":  # a keyframe: counted, not shown
            self.job.frames_done += 1
            if self.job.check_stop():
                raise Stopped
            return
        super().frame_finished(shot, number, entry)


def fast_work(
    roots: security.Roots,
    spec: Any,
    look: Look,
    painter: Painter,
    farm: str,
    workers: int,
    train_steps: int | None,
) -> Callable[[Job], None]:
    """Preview the shot in fast mode (as `reverie render --fast`): keyframes painted by the look at its
    working size, a network trained on them in this process, every frame painted by the network."""
    from reverie.core.distill import TrainConfig
    from reverie.farm.executors import make_executor
    from reverie.farm.fast import FastOptions, render_fast
    from reverie.pipeline.shot import plan_target
    from reverie.pipeline.steps import Worker

    options = FastOptions(train=TrainConfig(steps=train_steps or TrainConfig.steps))

    def work(job: Job) -> None:
        clip = _confined_clip(roots, spec, fast=True)  # again: the folder may have changed meanwhile
        target = plan_target(spec, clip)

        executor = make_executor(farm, workers=workers, worker=Worker(painter))
        try:
            events = _FastEvents(job, _thumbnails(target))
            report = render_fast(spec, look, painter.runtime, executor, events, options, clip, painter)
        finally:
            executor.close()
        _raise_failed(report.frames.failed)
        numbers = ", ".join(str(k.number) for k in report.keyframes)
        job.detail = f"network {report.model.path.name}, trained on keyframes {numbers}"

    return work


# ------------------------------------------------------------------------------------------ routes


class _Api:
    """The page's endpoints, each a method over the server's state (the table in `build_app`)."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def options(self, request: Request) -> Response:
        look = Look()
        defaults = {k: getattr(look, k) for k in LOOK_KEYS if k != "style_crop"}
        return JSONResponse({
            "defaults": defaults, "colors": list(COLOR_MODES), "networks": list(UI_NETWORKS),
            "farms": list(FARMS), "u_min": U_RANGE[0], "u_max": U_RANGE[1],
            "max_upload_mb": security.MAX_UPLOAD_BYTES // 2**20,
            "max_upload_bytes": security.MAX_UPLOAD_BYTES, "max_look_bytes": security.MAX_LOOK_BYTES,
            "roots": self.state.roots.names(),
        })  # fmt: skip

    async def upload_image(self, request: Request) -> Response:
        data, name, fields = await _upload(request, security.MAX_UPLOAD_BYTES)
        role = fields.get("role", "content")
        if role not in ("content", "style"):
            raise ReverieError(f"unknown image role {role!r}: content or style")
        upload = await run_in_threadpool(self.state.images.add_upload, data, name, role)
        return JSONResponse(upload.to_dict())

    async def show_image(self, request: Request) -> Response:
        upload = self.state.images.get(request.path_params["image_id"], "such")
        try:
            return _png_response(await run_in_threadpool(upload.thumb.read_bytes))
        except FileNotFoundError:  # evicted between the look-up and the read
            raise ReverieError("that image is no longer kept: upload it again") from None

    async def load_frame(self, request: Request) -> Response:
        data = await _json(request)
        text = str(data.get("path") or "")
        number = data.get("frame", 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ReverieError("the frame number must be a whole number from 1")
        path = _frame_path(self.state.roots, text, number)
        upload = await run_in_threadpool(_load_frame, self.state.images, path, number)
        return JSONResponse(upload.to_dict())

    def painting(self, data: dict[str, Any]) -> tuple[Upload, Upload, Look]:
        """The plate, the painting and the look a preview or a sweep asks for, checked to fit in memory
        before anything is allocated (the command line's rule and message)."""
        content = self.state.images.get(data.get("content"), "content")
        style = self.state.images.get(data.get("style"), "style")
        look = look_from_json(data.get("look"), style)
        painter = self.state.painter
        check_memory(
            look, painter.runtime, painter.device, *fit_long_side(content.width, content.height, look.size)
        )
        return content, style, look

    def _submit(self, kind: str, label: str, work: Callable[[Job], None], *uploads: Upload) -> Response:
        """Queue the work, its uploads pinned until it ends (evicting them from the page cannot break it)."""
        release = self.state.images.pin(*uploads)
        try:
            job = self.state.queue.submit(kind, label, work, cleanup=release)
        except BaseException:
            release()
            raise
        return JSONResponse({"job": job.to_dict()})

    async def previews(self, request: Request) -> Response:
        data = await _json(request)
        content, style, look = self.painting(data)
        label = f"preview {look.describe_u()}, {look.size} px, {look.iterations} its"
        work = preview_work(self.state.images, content, style, look, self.state.painter)
        return self._submit("preview", label, work, content, style)

    async def sweeps(self, request: Request) -> Response:
        data = await _json(request)
        values = _u_values(data.get("u_values"))
        content, style, look = self.painting(data)
        label = f"sweep u={','.join(f'{v:g}' for v in values)}, {look.size} px, {look.iterations} its"
        work = sweep_work(self.state.images, content, style, look, values, self.state.painter)
        return self._submit("sweep", label, work, content, style)

    async def shots(self, request: Request) -> Response:
        data = await _json(request)
        style = self.state.images.get(data.get("style"), "style")
        look = look_from_json(data.get("look"), style)
        farm, workers = str(data.get("farm") or "local"), data.get("workers") or 1
        if farm not in FARMS or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise ReverieError("choose the farm local or ray, and 1 to 64 workers")
        roots = self.state.roots
        spec = _shot_spec(roots, data)
        fast = data.get("fast") is True
        await run_in_threadpool(_confined_clip, roots, spec, fast)  # frames exist, lie under the roots
        label = f"shot {Path(spec.input).name} → {Path(spec.output).name}, {look.describe_u()}, {farm}"
        if not fast:
            work = shot_work(roots, spec, look, self.state.painter, farm, workers)
            return self._submit("shot", label, work, style)
        from reverie.core.distill import MAX_STEPS

        steps = data.get("train_steps")
        if steps is not None and (type(steps) is not int or not 1 <= steps <= MAX_STEPS):
            raise ReverieError(
                f"training steps: give a whole number from 1 to {MAX_STEPS}, or leave it empty"
            )
        work = fast_work(roots, spec, look, self.state.painter, farm, workers, steps)
        return self._submit("fast", f"fast preview: {label}", work, style)

    async def jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [j.to_dict() for j in self.state.queue.jobs()]})

    def _job(self, request: Request) -> Job:
        job = self.state.queue.get(request.path_params["job_id"])
        if job is None:
            raise ReverieError("no such job: it may have finished long ago; reload the page")
        return job

    async def stop_job(self, request: Request) -> Response:
        job = self._job(request)
        self.state.queue.stop(job)
        return JSONResponse({"job": job.to_dict()})

    async def job_image(self, request: Request) -> Response:
        job = self._job(request)
        if job.image is None:
            return _error("this job has no image yet", 404)
        return _png_response(job.image)

    async def job_frame(self, request: Request) -> Response:
        thumb = self._job(request).frames.get(request.path_params["number"])
        return _png_response(thumb) if thumb is not None else _error("that frame is not finished yet", 404)

    async def parse_look(self, request: Request) -> Response:
        data, name, _ = await _upload(request, security.MAX_LOOK_BYTES)
        # Off the event loop: even a bounded look takes the reader a while, and other tabs keep polling.
        look = await run_in_threadpool(read_look, data, name, self.state.folder)
        return JSONResponse({"look": {k: _plain(getattr(look, k)) for k in LOOK_KEYS}})

    async def look_toml(self, request: Request) -> Response:
        data = await _json(request)
        look = look_from_json(data.get("look"))
        name = Path(str(data.get("style_name") or "")).name
        if name:
            look = look.replace(styles=(name,))  # the painting's name: the look refers to it by path
        headers = {"Content-Disposition": 'attachment; filename="look.toml"'}
        return Response(look.to_toml(), media_type="application/toml", headers=headers)


def build_app(
    state: State,
    access: security.Access,
    *,
    loopback_only: bool = True,
    limiter: limits.SignInLimiter | None = None,
) -> Starlette:
    """The page and its API. loopback_only: answer only to loopback host names (the server is bound
    to 127.0.0.1 or ::1), which defeats DNS rebinding. limiter: counts wrong tokens per client."""

    api = _Api(state)
    endpoints = [
        ("/api/options", api.options, ["GET"]),
        ("/api/images", api.upload_image, ["POST"]),
        ("/api/images/{image_id}.png", api.show_image, ["GET"]),
        ("/api/frames", api.load_frame, ["POST"]),
        ("/api/previews", api.previews, ["POST"]),
        ("/api/sweeps", api.sweeps, ["POST"]),
        ("/api/shots", api.shots, ["POST"]),
        ("/api/jobs", api.jobs, ["GET"]),
        ("/api/jobs/{job_id}/stop", api.stop_job, ["POST"]),
        ("/api/jobs/{job_id}/image.png", api.job_image, ["GET"]),
        ("/api/jobs/{job_id}/frames/{number:int}.png", api.job_frame, ["GET"]),
        ("/api/looks/parse", api.parse_look, ["POST"]),
        ("/api/looks/toml", api.look_toml, ["POST"]),
    ]
    routes: list[BaseRoute] = [Route("/", api.index)]
    routes += [Route(p, _guarded(h), methods=m) for p, h, m in endpoints]
    routes.append(Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False)))
    middleware = [
        Middleware(security.SameOriginMiddleware, loopback_only=loopback_only),
        Middleware(security.AccessMiddleware, access=access, limiter=limiter),
        Middleware(limits.BodyLimitMiddleware, limit_for=body_limit),
    ]
    return Starlette(routes=routes, middleware=middleware)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _u_values(values: Any) -> list[float]:
    if not isinstance(values, list) or not 1 <= len(values) <= 9:
        raise ReverieError("give 1 to 9 values of u to sweep, e.g. 2,3,4,5,6")
    try:
        out = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        out = []
    if len(out) != len(values):
        raise ReverieError("the u values must be numbers, e.g. 2,3,4,5,6")
    for u in out:
        if not U_RANGE[0] <= u <= U_RANGE[1]:
            raise ReverieError(f"u={u:g} is outside {U_RANGE[0]:g}..{U_RANGE[1]:g}")
    repeated = sorted({u for u in out if out.count(u) > 1})
    if repeated:  # the command line's rule (`reverie sweep --u`): each tile of a sweep differs
        shown = ", ".join(f"{u:g}" for u in repeated)
        raise ReverieError(f"the u values repeat {shown}: each tile of a sweep must differ, e.g. 2,3,4,5,6")
    return out


def _shot_spec(roots: security.Roots, data: dict[str, Any]) -> Any:
    """The shot's input and output, both under the roots, and its frame range; checked before anything
    is queued."""
    from reverie.app.shots import ocio_from_environment
    from reverie.io.extras import require_shots_extra
    from reverie.io.sequences import parse_frame_range
    from reverie.pipeline.shot import ShotSpec

    require_shots_extra()
    source = _shot_path(roots, str(data.get("input") or ""), "input")
    output = _shot_path(roots, str(data.get("output") or ""), "output")
    frames = str(data.get("frames") or "").strip() or None
    if frames is not None:
        parse_frame_range(frames)  # "10-1" is refused now, not when the job runs
    return ShotSpec(input=str(source), output=str(output), frames=frames, ocio_config=ocio_from_environment())


def _shot_path(roots: security.Roots, text: str, role: str) -> Path:
    """A video or a frame pattern (plate.%04d.exr) under the roots. A pattern names no file itself, so
    its folder is what must exist; a video input must exist. The frame files themselves are checked
    when the shot is opened (`_confined_clip`)."""
    from reverie.io.sequences import parse_pattern
    from reverie.io.video import is_video

    path = roots.resolve(text, must_exist=False)
    if role == "input" and parse_pattern(text) is None and not (is_video(text) and path.is_file()):
        if not path.exists():
            raise ReverieError(f"the shot {Path(text).name} does not exist: check the path")
    return path


def _frame_path(roots: security.Roots, text: str, number: int) -> Path:
    """The file to read frame `number` from: a video, or the frame file of a pattern, which must itself
    lie under the roots (a frame may be a link to a file outside them, though its folder is inside)."""
    from reverie.io.sequences import parse_pattern

    path = _shot_path(roots, text, "input")
    pattern = parse_pattern(str(path))
    if pattern is not None:
        roots.resolve(str(pattern.path(number)), must_exist=False)
    return path


def _confined_clip(roots: security.Roots, spec: Any, fast: bool = False) -> Any:
    """The shot opened (its frames found and their headers read), after checking that every file it
    will read or write lies under the roots once links are followed: each input frame, and each output
    frame, manifest, report or lock already there; in fast mode also the saved network and the
    keyframes' folders and files."""
    from reverie.io.sequences import parse_pattern
    from reverie.pipeline.shot import frames_pattern, manifest_path, open_clip, stem

    clip = open_clip(spec)
    inputs = parse_pattern(spec.input)
    files = [inputs.path(n) for n in clip.frames] if inputs is not None else []
    # Where the render writes, worked out without making anything (plan_target makes folders): a
    # video output's frames folder and keyframes' folders lie beside it.
    outputs = frames_pattern(spec.output)
    frames_at, frames_name = outputs.path(0).parent, stem(outputs)
    side = [manifest_path(outputs), frames_at]
    side += [frames_at / f"{frames_name}.{e}" for e in ("report.json", "lock")]
    if fast:
        side.append(frames_at / f"{frames_name}.fast.pt")
        from reverie.farm.fast import keyframes_home

        beside, name = keyframes_home(spec.output)
        for keys in beside.glob(f"{glob.escape(name)}.keyframes-*"):
            side += [keys, *keys.iterdir()] if keys.is_dir() and not keys.is_symlink() else [keys]
    files += [p for p in (*(outputs.path(n) for n in clip.frames), *side) if os.path.lexists(p)]
    for file in files:
        roots.resolve(str(file), must_exist=False)
    return clip


def _load_frame(images: ImageStore, path: Path, number: int) -> Upload:
    """Frame `number` of a video or sequence, decoded within the budget, kept as the page's plate."""
    from reverie.app.shots import ocio_from_environment
    from reverie.io import colorspace as cs
    from reverie.io.extras import require_shots_extra
    from reverie.pipeline.shot import ShotSpec, open_clip

    require_shots_extra()
    clip = open_clip(
        ShotSpec(input=str(path), output="", frames=str(number), ocio_config=ocio_from_environment())
    )
    width, height = clip.size
    # The frame as read and its display copy, both float32 RGB.
    with images.budget.hold(2 * decoded_bytes(width, height), f"{path.name} frame {number}"):
        pixels = cs.to_display(clip.read(number), clip.colorspace, clip.color)
        return images.add_pixels(pixels, f"{path.name} frame {number}", "content")


def read_look(data: bytes, name: str, folder: Path) -> Look:
    """An uploaded look, read by the command line's own reader (`Look.load`: one rule for size, encoding,
    a byte-order mark, nesting and bad TOML), after the page's check that it is a small text file."""
    security.check_look_upload(data, security.MAX_LOOK_BYTES)
    shown = security.shown_name(name)
    with tempfile.TemporaryDirectory(prefix="look-", dir=folder) as private:
        path = Path(private) / "look.toml"
        path.write_bytes(data)
        try:
            return Look.load(path)
        except ReverieError as err:
            raise ReverieError(str(err).replace(str(path), shown)) from None


# ------------------------------------------------------------------------------------------ serving


def serve(host: str, port: int, roots: list[Path], password: str | None, runtime: Runtime) -> None:
    """Check everything, print the address (and a generated token, once), then serve until Ctrl-C or
    SIGTERM; either way the uploads' folder is removed and queued jobs are stopped."""
    import uvicorn

    access = security.Access.for_server(host, password)
    shared = security.Roots(roots)
    sock = _bind(host, port)
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="reverie-ui-") as folder:
        state = State(shared, Painter(runtime), JobQueue(), Path(folder))
        app = build_app(state, access, loopback_only=security.is_loopback(host))
        address = f"http://{_display_host(host)}:{sock.getsockname()[1]}/"
        print(f"Reverie UI at {address}" + (f"?token={access.token}" if access.generated else ""), flush=True)
        if access.required and not access.generated:
            print("open it and sign in with the password given (as ?token=PASSWORD once)", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        try:
            server.run(sockets=[sock])
        finally:
            state.queue.close()


class _Terminated(Exception):
    """SIGTERM, raised where the main thread is, so that `with` blocks clean up as for Ctrl-C."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While serving, SIGTERM unwinds the main thread like Ctrl-C does, instead of ending the process
    where it stands (uvicorn stops gracefully on it, then raises it again with the default action)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except _Terminated:
        pass  # a normal end: the caller's folders are already cleaned up
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # now: a client that reads the printed address may connect at once
    except (OSError, OverflowError) as err:
        sock.close()
        raise ReverieError(
            f"cannot listen on {host}:{port} ({_reason(err)}): {_bind_advice(err, port)}"
        ) from None
    return sock


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _bind_advice(err: Exception, port: int) -> str:
    """What to change: the port when it is taken (or privileged), the host for anything else (a name
    that does not resolve, an address this machine does not have)."""
    if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
        return "the port is in use; choose another --port (or 0 for any free one)"
    if isinstance(err, PermissionError) and 0 < port < 1024:
        return "ports below 1024 need privileges; choose another --port, e.g. 7860"
    return "choose another --host: an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
