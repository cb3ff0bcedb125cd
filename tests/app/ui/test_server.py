"""The UI's HTTP endpoints with Starlette's test client: real jobs at tiny sizes, and the security rules."""

import io
import socket
import threading
import time
import tomllib
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import photo, save_png, tiny_network
from reverie.app.samples import sample_painting
from reverie.app.ui import limits, security
from reverie.app.ui.jobs import JobQueue
from reverie.app.ui.server import State, _bind, build_app
from reverie.engine.painter import Painter
from reverie.errors import ReverieError
from reverie.io.images import resize
from reverie.look import Look
from reverie.runtime import Runtime

TINY = {"u": 4, "iterations": 3, "size": 32, "color": "style", "network": "vgg16", "seed": 0}


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


def _client(tmp_path, root, host="127.0.0.1", password=None, **app_options):
    folder = tmp_path / "uploads"
    folder.mkdir(exist_ok=True)
    painter = Painter(Runtime(device="cpu"), build_network=tiny_network)  # the page's logic, not a look
    state = State(security.Roots([root]), painter, JobQueue(), folder)
    access = security.Access.for_server(host, password)
    app = build_app(state, access, **app_options)
    return TestClient(app, base_url="http://127.0.0.1:7860"), state, access


@pytest.fixture
def served(tmp_path, root):
    """The page's test client and the server's state behind it."""
    test_client, state, _ = _client(tmp_path, root)
    with test_client:
        yield test_client, state
    state.queue.close()


@pytest.fixture
def client(served):
    return served[0]


@pytest.fixture
def state(served):
    return served[1]


def _upload(client, image: np.ndarray, role: str, name: str = "image.png") -> dict:
    reply = client.post("/api/images", files={"file": (name, _png_bytes(image))}, data={"role": role})
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture
def pair(client):
    return _upload(client, photo(32, 48), "content"), _upload(client, sample_painting(64), "style", "van.png")


def _wait(client, job_id: str, states=("done", "stopped", "failed"), timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == job_id)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {states}")


def _image(client, url: str) -> np.ndarray:
    reply = client.get(url)
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(reply.content)).convert("RGB"), dtype=np.float32) / 255


def _error(reply, status: int) -> str:
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_upload_and_options(client, pair):
    content, style = pair
    assert (content["width"], content["height"], content["role"]) == (48, 32, "content")
    assert style["name"] == "van.png"
    shown = _image(client, f"/api/images/{content['id']}.png")
    assert shown.shape == (32, 48, 3)
    options = client.get("/api/options").json()
    assert options["defaults"]["u"] == Look().u and "vgg16" in options["networks"]
    assert options["max_upload_mb"] == security.MAX_UPLOAD_BYTES // 2**20


def test_preview_paints_and_the_image_changes(client, pair):
    content, style = pair
    job = client.post("/api/previews", json={"content": content["id"], "style": style["id"], "look": TINY})
    job = _wait(client, job.json()["job"]["id"])
    assert job["state"] == "done", job["error"]
    assert job["iteration"] == 3 and job["total"] == 3 and job["version"] >= 2
    painted = _image(client, f"/api/jobs/{job['id']}/image.png")
    assert max(painted.shape[:2]) == 32  # the working size
    plate = resize(_image(client, f"/api/images/{content['id']}.png"), painted.shape[1::-1])
    assert np.abs(painted - plate).mean() > 0.02  # painted, not the plate sent back


def test_queue_is_shared_and_stop_works(client, pair):
    content, style = pair
    slow = {**TINY, "iterations": 400}
    request = {"content": content["id"], "style": style["id"], "look": slow}
    first = client.post("/api/previews", json=request).json()["job"]
    second = client.post("/api/previews", json=request).json()["job"]
    listed = {j["id"]: j["state"] for j in client.get("/api/jobs").json()["jobs"]}
    assert listed[second["id"]] == "queued"  # one at a time: the second waits for the first
    client.post(f"/api/jobs/{second['id']}/stop")
    _wait(client, first["id"], ("running",))
    client.post(f"/api/jobs/{first['id']}/stop")
    stopped = _wait(client, first["id"])
    assert stopped["state"] == "stopped" and stopped["iteration"] < 400
    assert _wait(client, second["id"])["state"] == "stopped"
    assert client.get("/api/jobs").json()["jobs"][0]["id"] == second["id"]  # newest first


def test_sweep_fills_a_labelled_grid(client, pair):
    content, style = pair
    request = {"content": content["id"], "style": style["id"], "look": {**TINY, "iterations": 2}}
    job = client.post("/api/sweeps", json={**request, "u_values": [2, 6]}).json()["job"]
    job = _wait(client, job["id"])
    assert job["state"] == "done", job["error"]
    grid = _image(client, f"/api/jobs/{job['id']}/image.png")
    assert grid.shape[1] > 2 * 48  # two tiles side by side, plus labels
    assert job["total"] == 4 and job["iteration"] == 4


def test_look_download_and_upload_round_trip(client):
    look = {**TINY, "u": 3, "style_crop": [0.1, 0.2, 0.5, 0.4]}
    reply = client.post("/api/looks/toml", json={"look": look, "style_name": "/secret/dir/van.png"})
    assert reply.status_code == 200 and "attachment" in reply.headers["content-disposition"]
    saved = tomllib.loads(reply.text)
    assert saved["u"] == 3 and saved["iterations"] == 3 and saved["styles"] == ["van.png"]
    parsed = client.post("/api/looks/parse", files={"file": ("look.toml", reply.content)})
    assert parsed.status_code == 200
    assert parsed.json()["look"] == {**look, "u": 3.0}


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("text as png", 400, "not an image"),
        ("empty", 400, "empty"),
        ("huge", 400, "limit"),
        ("bad toml", 400, "TOML"),
        ("binary look", 400, "text"),
        ("unknown look key", 400, "unknown"),
        ("zero crop", 400, "crop"),
        ("no content", 400, "upload one first"),
        ("bad u values", 400, "u values"),
    ],
)
def test_bad_input_is_a_clear_message_and_the_server_keeps_running(
    client, pair, monkeypatch, case, status, words
):
    content, style = pair
    ids = {"content": content["id"], "style": style["id"]}
    monkeypatch.setattr(security, "MAX_UPLOAD_BYTES", 2000)
    requests = {
        "text as png": lambda: client.post("/api/images", files={"file": ("a.png", b"hello, not pixels")}),
        "empty": lambda: client.post("/api/images", files={"file": ("a.png", b"")}),
        "huge": lambda: client.post("/api/images", files={"file": ("a.png", b"\x89PNG" + b"0" * 5000)}),
        "bad toml": lambda: client.post("/api/looks/parse", files={"file": ("l.toml", b"u = = 4")}),
        "binary look": lambda: client.post(
            "/api/looks/parse", files={"file": ("l.toml", b"\xff\xfe\x00\x01")}
        ),
        "unknown look key": lambda: client.post("/api/previews", json={**ids, "look": {"brush": 3}}),
        "zero crop": lambda: client.post(
            "/api/previews", json={**ids, "look": {**TINY, "style_crop": [0.2, 0.2, 0, 0.5]}}
        ),
        "no content": lambda: client.post("/api/previews", json={"style": style["id"], "look": TINY}),
        "bad u values": lambda: client.post("/api/sweeps", json={**ids, "look": TINY, "u_values": ["x"]}),
    }
    assert words in _error(requests[case](), status)
    assert client.get("/api/options").status_code == 200


def _sequence(folder, frames=3, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, frames + 1):
        save_png(folder / f"plate.{n:04d}.png", np.roll(photo(size[1], size[0]), 2 * n, axis=1))
    return folder / "plate.%04d.png"


def test_paths_outside_the_roots_are_refused(client, pair, root, tmp_path):
    outside = _sequence(tmp_path / "elsewhere")
    (root / "link").symlink_to(tmp_path / "elsewhere")
    look = {"look": TINY, "style": pair[1]["id"]}
    for path in ["../elsewhere/plate.%04d.png", str(outside), "link/plate.%04d.png"]:
        message = _error(client.post("/api/frames", json={"path": path, "frame": 1}), 403)
        assert "--root" in message
        reply = client.post("/api/shots", json={**look, "input": path, "output": "out/paint.%04d.png"})
        _error(reply, 403)
    (root / "out").mkdir()
    reply = client.post(
        "/api/shots", json={**look, "input": "plate.%04d.png", "output": str(tmp_path / "o.%04d.png")}
    )
    _error(reply, 403)
    assert client.get("/static/%2e%2e/server.py").status_code == 404  # only the page's own files


def test_frame_from_a_sequence_and_a_shot_render(client, pair, root):
    _sequence(root / "plates")
    frame = client.post("/api/frames", json={"path": "plates/plate.%04d.png", "frame": 2})
    assert frame.status_code == 200, frame.text
    assert (frame.json()["width"], frame.json()["height"]) == (40, 30)
    (root / "out").mkdir()
    request = {
        "input": "plates/plate.%04d.png", "output": "out/paint.%04d.png", "frames": "1-3",
        "style": pair[1]["id"], "look": {**TINY, "iterations": 2}, "farm": "local", "workers": 1,
    }  # fmt: skip
    job = client.post("/api/shots", json=request)
    assert job.status_code == 200, job.text
    job = _wait(client, job.json()["job"]["id"], timeout=300)
    assert job["state"] == "done", job["error"]
    assert job["frames"] == [1, 2, 3] and job["frames_done"] == 3 == job["frames_total"]
    assert sorted(p.name for p in (root / "out").glob("paint.*.png")) == [
        f"paint.{n:04d}.png" for n in (1, 2, 3)
    ]
    thumb = _image(client, f"/api/jobs/{job['id']}/frames/2.png")
    assert thumb.shape == (30, 40, 3)


def test_a_fast_preview_of_a_shot_runs_its_three_stages_as_one_job(client, pair, root):
    _sequence(root / "plates")
    (root / "out").mkdir()
    request = {
        "input": "plates/plate.%04d.png", "output": "out/paint.%04d.png", "style": pair[1]["id"],
        "look": {**TINY, "iterations": 2}, "farm": "local", "workers": 1, "fast": True, "train_steps": 6,
    }  # fmt: skip
    reply = client.post("/api/shots", json=request)
    assert reply.status_code == 200, reply.text
    job = _wait(client, reply.json()["job"]["id"], timeout=300)
    assert job["state"] == "done", job["error"]
    assert job["kind"] == "fast" and job["stage"] == "frames" and "trained on keyframes 1, 3" in job["detail"]
    assert job["frames"] == [1, 2, 3] and job["frames_done"] == 3 == job["frames_total"]  # not the keyframes
    assert (root / "out" / "paint.fast.pt").is_file() and list((root / "out").glob("paint.keyframes-*/*.png"))
    assert _image(client, f"/api/jobs/{job['id']}/frames/2.png").shape == (30, 40, 3)
    request["train_steps"] = 0
    assert "training steps" in _error(client.post("/api/shots", json=request), 400)


@pytest.mark.parametrize("link", ["out/paint.frames", "out/paint.keyframes-0badc0de"])
def test_a_video_outputs_folders_that_lead_out_of_the_roots_are_refused(client, pair, root, tmp_path, link):
    """A video's frames and a fast preview's keyframes live in folders beside it: a link there that
    leads out of the roots would let the page write outside them."""
    _sequence(root / "plates")
    (root / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / link).symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    request = {
        "input": "plates/plate.%04d.png", "output": "out/paint.mp4", "style": pair[1]["id"],
        "look": {**TINY, "iterations": 2}, "fast": True, "train_steps": 6,
    }  # fmt: skip
    assert "--root" in _error(client.post("/api/shots", json=request), 403)
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_shot_with_a_failed_frame_ends_failed_with_its_error(client, pair, root):
    """Defect: the queue cleared the error a failed frame set, and the page showed the shot "done"."""
    _sequence(root / "plates")
    plate = root / "plates" / "plate.0002.png"
    plate.write_bytes(plate.read_bytes()[:-200])  # truncated: the shot opens, frame 2 cannot be read
    (root / "out").mkdir()
    request = {
        "input": "plates/plate.%04d.png", "output": "out/paint.%04d.png", "frames": "1-3",
        "style": pair[1]["id"], "look": {**TINY, "iterations": 2},
        "farm": "local", "workers": 1,
    }  # fmt: skip
    job = client.post("/api/shots", json=request)
    assert job.status_code == 200, job.text
    job = _wait(client, job.json()["job"]["id"], timeout=300)
    assert job["state"] == "failed", job
    assert job["error"].startswith("frame 2 failed") and "the others are done" in job["error"], job
    assert job["frames"] == [1, 3]


def test_a_token_guards_a_server_reachable_from_other_machines(tmp_path, root):
    test_client, state, access = _client(tmp_path, root, host="0.0.0.0")
    token = access.token
    assert access.generated and len(token) >= 24
    with test_client:
        refused = test_client.get("/api/options")
        assert refused.status_code == 401 and token not in refused.text
        page = test_client.get("/")
        assert page.status_code == 401 and token not in page.text
        signed_in = test_client.get(f"/?token={token}", follow_redirects=False)
        assert signed_in.status_code == 303 and "token" not in signed_in.headers["location"]
        assert test_client.get("/api/options").status_code == 200  # the cookie now carries it
        test_client.cookies.clear()
        assert test_client.get("/api/options", headers={"Authorization": "Bearer wrong"}).status_code == 401
    state.queue.close()


def test_other_sites_and_rebound_host_names_are_refused(client):
    evil = client.post("/api/looks/toml", json={"look": TINY}, headers={"Origin": "http://evil.example"})
    assert "other web sites" in _error(evil, 403)
    sandboxed = client.post("/api/looks/toml", json={"look": TINY}, headers={"Origin": "null"})
    _error(sandboxed, 403)
    same = client.post("/api/looks/toml", json={"look": TINY}, headers={"Origin": "http://127.0.0.1:7860"})
    assert same.status_code == 200
    rebound = client.get("/api/options", headers={"Host": "attacker.example:7860"})
    assert "loopback" in _error(rebound, 403)


# ------------------------------------------------------------------------------ issue 16: the page's holes


def test_uploads_are_kept_encoded_and_decoded_bytes_stay_under_the_budget(client, state):
    """Defect: every upload stayed decoded as float32 (a 76 KB PNG of 7999x7999 is ~750 MB) and 64 were
    kept. Now only files are kept, and decodes reserve their bytes from one budget."""
    big = np.full((1500, 2000, 3), 0.5, np.float32)  # a few KB as PNG, 36 MB decoded
    one = 1500 * 2000 * 12
    state.budget.limit = int(1.5 * one)  # room for one decode at a time
    ids = [_upload(client, big, "content", f"big{n}.png")["id"] for n in range(4)]
    assert state.images.held_bytes() == 0  # nothing decoded is kept between requests
    assert one <= state.budget.peak <= state.budget.limit
    assert state.images.disk_bytes() < 4 * one // 100  # kept encoded: the PNGs and thumbnails
    shown = _image(client, f"/api/images/{ids[-1]}.png")
    assert max(shown.shape) == 1024  # the thumbnail, not the full image


def test_an_image_over_the_decode_budget_is_refused_in_one_line(client, state):
    state.budget.limit = 10_000
    reply = client.post("/api/images", files={"file": ("wide.png", _png_bytes(photo(64, 64)))})
    message = _error(reply, 400)
    assert "wide.png needs 48 KB to decode" in message and "downscale" in message


def test_a_queued_job_keeps_its_images_when_the_page_forgets_them(client, state, pair, tmp_path):
    """Evicting an image from the page's list must not break a job that is waiting to paint it."""
    state.images.kept = 2
    content, style = pair
    request = {"content": content["id"], "style": style["id"]}
    slow = client.post("/api/previews", json={**request, "look": {**TINY, "iterations": 400}}).json()["job"]
    queued = client.post("/api/previews", json={**request, "look": TINY}).json()["job"]
    files = sorted(p.name for p in (tmp_path / "uploads").iterdir())
    for n in range(2):
        _upload(client, photo(16, 16, seed=n), "content", f"other{n}.png")
    assert "upload one first" in _error(client.post("/api/previews", json={**request, "look": TINY}), 400)
    client.post(f"/api/jobs/{slow['id']}/stop")
    done = _wait(client, queued["id"])
    assert done["state"] == "done", done["error"]
    left = sorted(p.name for p in (tmp_path / "uploads").iterdir())
    assert not set(files) & set(left)  # released with the last job that read them


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/looks/toml", "application/json"),
        ("/api/previews", "application/json"),
        ("/api/looks/parse", "multipart/form-data; boundary=x"),
    ],
)
def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(client, path, kind):
    """Defect: a 300 MB chunked body (no Content-Length) to /api/looks/toml was read whole: 200."""

    def chunks():  # a generator: sent chunked, without a Content-Length
        for _ in range(64):
            yield b" " * 2**14

    reply = client.post(path, content=chunks(), headers={"content-type": kind})
    message = _error(reply, 413)
    assert "over the 64 KB limit" in message


def test_a_declared_body_over_the_limit_is_refused_before_reading_with_sensible_sizes(client):
    """Defect: a 10 MB look was answered "the upload is 10 MB; the limit is 0 MB"."""
    look = b"# " + b"x" * (10 * 2**20)
    message = _error(client.post("/api/looks/parse", files={"file": ("big.toml", look)}), 413)
    assert message == "the upload is over the 64 KB limit: send a smaller file"
    message = _error(client.post("/api/looks/toml", json={"look": TINY, "pad": "x" * 2**17}), 413)
    assert "64 KB" in message and "0 MB" not in message
    small = b"#" * (security.MAX_LOOK_BYTES + 10)  # over the look's limit, inside the form's room
    message = _error(client.post("/api/looks/parse", files={"file": ("l.toml", small)}), 400)
    assert "the limit is 65,536 bytes" in message  # just over: bytes show the difference


def test_deeply_nested_json_is_one_line(client):
    reply = client.post(
        "/api/looks/toml", content=b"[" * 60_000, headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in _error(reply, 400)


def test_a_frame_linked_to_a_file_outside_the_roots_is_refused(client, pair, root, tmp_path):
    """Defect: root/shots2/plate.0001.png linked outside the roots was served (only the folder was
    checked)."""
    outside = _sequence(tmp_path / "elsewhere", frames=1)
    (root / "shots2").mkdir()
    (root / "shots2" / "plate.0001.png").symlink_to(tmp_path / "elsewhere" / "plate.0001.png")
    reply = client.post("/api/frames", json={"path": "shots2/plate.%04d.png", "frame": 1})
    assert "--root" in _error(reply, 403)
    (root / "out").mkdir()
    shot = {"input": "shots2/plate.%04d.png", "output": "out/paint.%04d.png", "style": pair[1]["id"],
            "look": TINY}  # fmt: skip
    assert "--root" in _error(client.post("/api/shots", json=shot), 403)
    _sequence(root / "plates", frames=1)
    (root / "out" / "paint.0001.png").symlink_to(outside.parent / "plate.0001.png")  # written through?
    shot["input"] = "plates/plate.%04d.png"
    assert "--root" in _error(client.post("/api/shots", json=shot), 403)
    assert not client.get("/api/jobs").json()["jobs"]


def test_looks_are_parsed_off_the_event_loop(client, monkeypatch):
    """Defect: a 40 KB look of dotted keys took 5 s to parse on the event loop; four in parallel held
    GET /api/options for 16 s."""
    entered, leave = threading.Event(), threading.Event()
    real_loads = tomllib.loads

    def slow_loads(text):  # the TOML reader, held until the page has answered another request
        entered.set()
        leave.wait(10)
        return real_loads(text)

    monkeypatch.setattr(tomllib, "loads", slow_loads)
    parsing = threading.Thread(
        target=client.post, args=("/api/looks/parse",), kwargs={"files": {"file": ("l.toml", b"u = 3\n")}}
    )
    parsing.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        assert client.get("/api/options").status_code == 200
        assert time.monotonic() - started < 2  # answered while the look is still being read
    finally:
        leave.set()
        parsing.join(10)


def test_a_look_of_dotted_keys_is_refused_before_parsing(client):
    look = b"a" + b".a" * 20_000 + b" = 1\n"
    started = time.monotonic()
    reply = client.post("/api/looks/parse", files={"file": ("dots.toml", look)})
    assert "nests values more than" in _error(reply, 400)
    assert time.monotonic() - started < 2


def test_a_look_with_a_byte_order_mark_is_read_as_the_command_line_reads_it(client, tmp_path):
    """One reader and one rule: Look.load, which the command line uses too, drops a UTF-8 BOM."""
    text = "u = 3.0\niterations = 5\n"
    reply = client.post("/api/looks/parse", files={"file": ("bom.toml", b"\xef\xbb\xbf" + text.encode())})
    assert reply.status_code == 200, reply.text
    assert reply.json()["look"]["u"] == 3.0 and reply.json()["look"]["iterations"] == 5
    on_disk = tmp_path / "bom.toml"
    on_disk.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert Look.load(on_disk).iterations == 5


@pytest.mark.parametrize("endpoint", ["/api/previews", "/api/sweeps"])
def test_a_preview_too_large_for_memory_is_refused_before_anything_is_allocated(
    client, state, pair, monkeypatch, endpoint
):
    """Defect: a preview at size 16384 allocated ~8 GB (the plate resized for the page) before the
    engine refused it; the command line refuses it before allocating."""
    content, style = pair
    painted = []
    monkeypatch.setattr(state.painter, "stylize", lambda *a, **k: painted.append(a))
    request = {
        "content": content["id"],
        "style": style["id"],
        "look": {**TINY, "size": 16384},
        "u_values": [2, 4],
    }
    tracemalloc.start()
    try:
        message = _error(client.post(endpoint, json=request), 400)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "needs about" in message and "--size" in message
    assert peak < 20 * 2**20 and not painted
    assert not client.get("/api/jobs").json()["jobs"]


def test_a_full_queue_is_429_and_stopping_frees_a_place(tmp_path, root):
    """Defect: the queue took 2,000 previews (and stopping them took 81 s)."""
    test_client, state, _ = _client(tmp_path, root)
    state.queue.max_pending = 2
    with test_client:
        content = _upload(test_client, photo(32, 48), "content")
        style = _upload(test_client, sample_painting(64), "style")
        request = {"content": content["id"], "style": style["id"], "look": {**TINY, "iterations": 400}}
        jobs = [test_client.post("/api/previews", json=request) for _ in range(3)]
        assert [r.status_code for r in jobs[:2]] == [200, 200]
        assert _error(jobs[2], 429) == "the queue is full (2 jobs): wait for one to finish or stop one"
        test_client.post(f"/api/jobs/{jobs[1].json()['job']['id']}/stop")
        assert test_client.post("/api/previews", json=request).status_code == 200
        for job in test_client.get("/api/jobs").json()["jobs"]:
            test_client.post(f"/api/jobs/{job['id']}/stop")
    state.queue.close()


def test_wrong_tokens_are_rate_limited_per_client(tmp_path, root):
    """Defect: 1,000 wrong passwords on a public bind were answered at full speed."""
    now = [1000.0]
    limiter = limits.SignInLimiter(max_failures=5, window_s=60, clock=lambda: now[0])
    test_client, state, _ = _client(tmp_path, root, "0.0.0.0", "correct horse", limiter=limiter)
    wrong, right = {"Authorization": "Bearer wrong horse"}, {"Authorization": "Bearer correct horse"}
    with test_client:
        assert [test_client.get("/api/options", headers=wrong).status_code for _ in range(5)] == [401] * 5
        refused = test_client.get("/api/options", headers=wrong)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert "too many wrong tokens" in _error(refused, 429)
        assert test_client.get("/api/options", headers=right).status_code == 429  # no guessing through it
        assert test_client.get("/?token=correct horse").status_code == 429
        now[0] += 61
        assert test_client.get("/api/options", headers=right).status_code == 200
        assert test_client.get("/api/options").status_code == 401  # no token at all is no guess
        assert test_client.get("/api/options", headers=wrong).status_code == 401
    state.queue.close()


def test_repeated_u_values_and_a_backwards_frame_range_are_one_line(client, pair, root):
    content, style = pair
    request = {"content": content["id"], "style": style["id"], "look": TINY, "u_values": [4, 4, 4]}
    assert "repeat 4" in _error(client.post("/api/sweeps", json=request), 400)
    _sequence(root / "plates")
    (root / "out").mkdir()
    shot = {"input": "plates/plate.%04d.png", "output": "out/paint.%04d.png", "frames": "10-1",
            "style": style["id"], "look": TINY}  # fmt: skip
    assert "runs backwards" in _error(client.post("/api/shots", json=shot), 400)
    shot["frames"] = "1-9"  # frames that do not exist: refused when submitted, not when the job runs
    assert "missing frames" in _error(client.post("/api/shots", json=shot), 400)
    assert not client.get("/api/jobs").json()["jobs"]


def test_listen_errors_name_the_option_to_change():
    """Defect: a host that cannot be bound said "choose another --port"."""
    with pytest.raises(ReverieError, match=r"choose another --host"):
        _bind("no-such-host.invalid", 0)
    with pytest.raises(ReverieError, match=r"choose another --host"):
        _bind("192.0.2.1", 0)  # TEST-NET: not an address of this machine
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ReverieError, match=r"in use; choose another --port"):
            _bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
