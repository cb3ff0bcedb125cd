"""`reverie ui`: a look-development page for directors and artists, on the same core, looks and farm.

A small Starlette app: JSON endpoints (the table in `build_app`; errors are {"error": one line}), the
static page, and one render queue (`jobs.py`) that every tab shares. Files on the server are reached
only under the folders given with --root (`security.Roots`); uploads are checked in size and content.
"""

from __future__ import annotations

import io
import itertools
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from reverie.app.ui import security
from reverie.app.ui.jobs import Job, JobQueue, Stopped
from reverie.engine.painter import Painter
from reverie.engine.still import finish
from reverie.errors import ReverieError
from reverie.io.images import fit_long_side, resize, write_image
from reverie.look import COLOR_MODES, U_RANGE, Look
from reverie.runtime import Runtime

STATIC = Path(__file__).with_name("static")
UI_NETWORKS = ("vgg16", "vgg19")  # googlenet needs a checkpoint the user brings: the CLI covers it
FARMS = ("local", "ray")
LOOK_KEYS = ("u", "iterations", "size", "color", "network", "seed", "style_crop")
PREVIEW_EVERY_S = 0.4  # a fresh preview image at most this often: PNG encoding costs time too
THUMB_SIDE = 1024  # long side of images sent back to the page
KEPT_IMAGES = 64


@dataclass
class Upload:
    id: str
    role: str
    name: str
    pixels: np.ndarray
    path: Path
    """The image as a PNG in the server's private upload folder (looks and farms read styles by path)."""

    def to_dict(self) -> dict[str, Any]:
        h, w = self.pixels.shape[:2]
        return {"id": self.id, "role": self.role, "name": self.name, "width": w, "height": h}


@dataclass
class State:
    roots: security.Roots
    painter: Painter
    """The page's engine: every preview, sweep and in-process shot reuses its network and targets."""
    queue: JobQueue
    folder: Path
    images: dict[str, Upload] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    """Upload ids: img-1, img-2, ..."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_image(self, role: str, name: str, pixels: np.ndarray) -> Upload:
        image_id = f"img-{next(self.ids)}"
        path = self.folder / f"{image_id}.png"
        write_image(path, pixels)
        upload = Upload(image_id, role, Path(name).name or role, pixels, path)
        with self.lock:
            self.images[image_id] = upload
            while len(self.images) > KEPT_IMAGES:
                self.images.pop(next(iter(self.images))).path.unlink(missing_ok=True)
        return upload

    def image(self, image_id: Any, role: str) -> Upload:
        with self.lock:
            upload = self.images.get(str(image_id))
        if upload is None:
            raise ReverieError(f"no {role} image is loaded: upload one first")
        return upload


# ------------------------------------------------------------------------------------------ helpers


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def _png(image: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    h, w = image.shape[:2]
    if max(h, w) > side:
        scale = side / max(h, w)
        image = resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _png_response(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


async def _json(request: Request) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > security.MAX_LOOK_BYTES:
        raise ReverieError("the request is too large: send the settings only")
    try:
        data = await request.json()
    except ValueError:
        raise ReverieError("the request is not valid JSON") from None
    if not isinstance(data, dict):
        raise ReverieError("the request must be a JSON object")
    return data


async def _upload(request: Request, limit: int) -> tuple[bytes, str, dict[str, str]]:
    """The one file of a multipart form, refused before reading when the body is over the limit (a body
    without a Content-Length could be endless, so it is refused too; browsers always send one)."""
    if not (request.headers.get("content-length") or "").isdigit():
        raise ReverieError("the upload has no Content-Length: send it from the page or with curl -F")
    length = int(request.headers["content-length"])
    if length > limit + 64 * 1024:
        mb = length / 2**20
        raise ReverieError(
            f"the upload is {mb:.0f} MB; the limit is {limit / 2**20:.0f} MB: send a smaller file"
        )
    try:
        form = await request.form(max_files=1, max_fields=8)
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
    """User errors become one-line JSON errors with status 400 (403 for paths outside the roots)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except security.OutsideRoots as err:
            return _error(str(err), 403)
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
            job.show(_png(finish(event.image, plate, look.color, look.size)))
            shown[0] = time.monotonic()

    return show


def preview_work(plate: np.ndarray, look: Look, painter: Painter) -> Callable[[Job], None]:
    """Paint the plate, showing the image as it improves; Stop ends it after the current iteration."""

    def work(job: Job) -> None:
        job.show(_png(resize(plate, fit_long_side(plate.shape[1], plate.shape[0], look.size))))
        live = _live_image(job, plate, look)

        def on_iteration(event: Any) -> None:
            job.progress(event.iteration, event.total)
            live(event)

        result = painter.stylize(
            plate, None, look, output_size=look.size, callback=on_iteration,
            should_stop=job.check_stop,
        )  # fmt: skip
        job.show(_png(result.image))

    return work


def sweep_work(plate: np.ndarray, look: Look, values: list[float], painter: Painter) -> Callable[[Job], None]:
    """One tile per u, then the labelled grid (the same sheet as `reverie sweep`)."""
    from reverie.engine.sweep import Axis, axis_title, plan_sweep, render_tiles, total_iterations
    from reverie.io.sheet import contact_sheet

    plan = plan_sweep(look, [Axis("u", tuple(values))])

    def work(job: Job) -> None:
        total, done = total_iterations(plan, painter.runtime.precision), [0]
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
        job.show(_png(sheet, 2048))

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


def shot_work(spec: Any, look: Look, painter: Painter, farm: str, workers: int) -> Callable[[Job], None]:
    """Render the shot on the chosen farm (resumable, as `reverie render`); thumbnails as frames land."""
    from reverie.farm.driver import render_batch
    from reverie.farm.executors import make_executor
    from reverie.io import colorspace as cs
    from reverie.io.sequences import read_frame
    from reverie.pipeline.shot import open_clip, plan_target
    from reverie.pipeline.steps import Worker

    def work(job: Job) -> None:
        clip = open_clip(spec)
        target = plan_target(spec, clip)

        def thumbnail(number: int) -> bytes:
            return _png(cs.to_display(read_frame(target.pattern.path(number)), target.colorspace), 320)

        executor = make_executor(farm, workers=workers, worker=Worker(painter))
        try:
            events = _ShotEvents(job, thumbnail)
            report = render_batch([(spec, look)], painter.runtime, executor, events, [clip])
        finally:
            executor.close()
        if report.failed:  # the job ends failed, with the first frame's error
            number, error = report.failed[0][1:]
            more = f" ({len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
            raise ReverieError(f"frame {number} failed: {error}{more}; the others are done")

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
            "max_upload_mb": security.MAX_UPLOAD_BYTES // 2**20, "roots": self.state.roots.names(),
        })  # fmt: skip

    async def upload_image(self, request: Request) -> Response:
        data, name, fields = await _upload(request, security.MAX_UPLOAD_BYTES)
        role = fields.get("role", "content")
        if role not in ("content", "style"):
            raise ReverieError(f"unknown image role {role!r}: content or style")
        pixels = await run_in_threadpool(security.check_upload, data, name, security.MAX_UPLOAD_BYTES)
        upload = await run_in_threadpool(self.state.add_image, role, name, pixels)
        return JSONResponse(upload.to_dict())

    async def show_image(self, request: Request) -> Response:
        upload = self.state.image(request.path_params["image_id"], "such")
        return _png_response(await run_in_threadpool(_png, upload.pixels))

    async def load_frame(self, request: Request) -> Response:
        data = await _json(request)
        path = _shot_path(self.state.roots, str(data.get("path") or ""), "input")
        number = data.get("frame", 1)
        if not isinstance(number, int) or number < 1:
            raise ReverieError("the frame number must be a whole number from 1")
        pixels = await run_in_threadpool(_read_frame, str(path), number)
        upload = await run_in_threadpool(
            self.state.add_image, "content", f"{path.name} frame {number}", pixels
        )
        return JSONResponse(upload.to_dict())

    def painting(self, data: dict[str, Any]) -> tuple[Upload, Look]:
        """The plate and the look (with its painting) a preview or a sweep asks for."""
        content, style = (
            self.state.image(data.get("content"), "content"),
            self.state.image(data.get("style"), "style"),
        )
        return content, look_from_json(data.get("look"), style)

    async def previews(self, request: Request) -> Response:
        data = await _json(request)
        content, look = self.painting(data)
        label = f"preview {look.describe_u()}, {look.size} px, {look.iterations} its"
        job = self.state.queue.submit(
            "preview", label, preview_work(content.pixels, look, self.state.painter)
        )
        return JSONResponse({"job": job.to_dict()})

    async def sweeps(self, request: Request) -> Response:
        data = await _json(request)
        content, look = self.painting(data)
        values = _u_values(data.get("u_values"))
        label = f"sweep u={','.join(f'{v:g}' for v in values)}, {look.size} px, {look.iterations} its"
        job = self.state.queue.submit(
            "sweep", label, sweep_work(content.pixels, look, values, self.state.painter)
        )
        return JSONResponse({"job": job.to_dict()})

    async def shots(self, request: Request) -> Response:
        data = await _json(request)
        spec = _shot_spec(self.state.roots, data)
        look = look_from_json(data.get("look"), self.state.image(data.get("style"), "style"))
        farm, workers = str(data.get("farm") or "local"), data.get("workers") or 1
        if farm not in FARMS or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise ReverieError("choose the farm local or ray, and 1 to 64 workers")
        label = f"shot {Path(spec.input).name} → {Path(spec.output).name}, {look.describe_u()}, {farm}"
        job = self.state.queue.submit("shot", label, shot_work(spec, look, self.state.painter, farm, workers))
        return JSONResponse({"job": job.to_dict()})

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
        png = self._job(request).frames.get(request.path_params["number"])
        return _png_response(png) if png is not None else _error("that frame is not finished yet", 404)

    async def parse_look(self, request: Request) -> Response:
        data, name, _ = await _upload(request, security.MAX_LOOK_BYTES)
        text = security.check_look_upload(data, security.MAX_LOOK_BYTES)
        look = Look.from_toml(text, source=Path(name).name)
        return JSONResponse({"look": {k: _plain(getattr(look, k)) for k in LOOK_KEYS}})

    async def look_toml(self, request: Request) -> Response:
        data = await _json(request)
        look = look_from_json(data.get("look"))
        name = Path(str(data.get("style_name") or "")).name
        if name:
            look = look.replace(styles=(name,))  # the painting's name: the look refers to it by path
        headers = {"Content-Disposition": 'attachment; filename="look.toml"'}
        return Response(look.to_toml(), media_type="application/toml", headers=headers)


def build_app(state: State, access: security.Access, *, loopback_only: bool = True) -> Starlette:
    """The page and its API. loopback_only: answer only to loopback host names (the server is bound
    to 127.0.0.1 or ::1), which defeats DNS rebinding."""

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
        Middleware(security.AccessMiddleware, access=access),
    ]
    return Starlette(routes=routes, middleware=middleware)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _u_values(values: Any) -> list[float]:
    if not isinstance(values, list) or not 1 <= len(values) <= 9:
        raise ReverieError("give 1 to 9 values of u to sweep, e.g. 2,3,4,5,6")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ReverieError("the u values must be numbers, e.g. 2,3,4,5,6") from None
    for u in out:
        if not U_RANGE[0] <= u <= U_RANGE[1]:
            raise ReverieError(f"u={u:g} is outside {U_RANGE[0]:g}..{U_RANGE[1]:g}")
    return out


def _shot_spec(roots: security.Roots, data: dict[str, Any]) -> Any:
    """The shot's input and output, both under the roots; checked before anything is queued."""
    from reverie.io.extras import require_shots_extra
    from reverie.pipeline.shot import ShotSpec

    require_shots_extra()
    source = _shot_path(roots, str(data.get("input") or ""), "input")
    output = _shot_path(roots, str(data.get("output") or ""), "output")
    frames = str(data.get("frames") or "").strip() or None
    return ShotSpec(input=str(source), output=str(output), frames=frames)


def _shot_path(roots: security.Roots, text: str, role: str) -> Path:
    """A video or a frame pattern (plate.%04d.exr) under the roots. A pattern names no file itself, so
    its folder is what must exist; a video input must exist."""
    from reverie.io.sequences import parse_pattern
    from reverie.io.video import is_video

    path = roots.resolve(text, must_exist=False)
    if role == "input" and parse_pattern(text) is None and not (is_video(text) and path.is_file()):
        if not path.exists():
            raise ReverieError(f"the shot {Path(text).name} does not exist: check the path")
    return path


def _read_frame(path: str, number: int) -> np.ndarray:
    from reverie.io import colorspace as cs
    from reverie.io.extras import require_shots_extra
    from reverie.pipeline.shot import ShotSpec, open_clip

    require_shots_extra()
    clip = open_clip(ShotSpec(input=path, output="", frames=str(number)))
    return cs.to_display(clip.read(number), clip.colorspace)


# ------------------------------------------------------------------------------------------ serving


def serve(host: str, port: int, roots: list[Path], password: str | None, runtime: Runtime) -> None:
    """Check everything, print the address (and a generated token, once), then serve until Ctrl-C."""
    import uvicorn

    access = security.Access.for_server(host, password)
    shared = security.Roots(roots)
    sock = _bind(host, port)
    with tempfile.TemporaryDirectory(prefix="reverie-ui-") as folder:
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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ReverieError(
            f"cannot listen on {host}:{port} ({err.strerror}): choose another --port"
        ) from None
    return sock


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
