"""The UI's HTTP endpoints with Starlette's test client: real jobs at tiny sizes, and the security rules."""

import io
import time
import tomllib

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import photo, save_png, tiny_network
from reverie.app.samples import sample_painting
from reverie.app.ui import security
from reverie.app.ui.jobs import JobQueue
from reverie.app.ui.server import State, build_app
from reverie.engine.painter import Painter
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


def _client(tmp_path, root, host="127.0.0.1", password=None):
    folder = tmp_path / "uploads"
    folder.mkdir(exist_ok=True)
    painter = Painter(Runtime(device="cpu"), build_network=tiny_network)  # the page's logic, not a look
    state = State(security.Roots([root]), painter, JobQueue(), folder)
    access = security.Access.for_server(host, password)
    return TestClient(build_app(state, access), base_url="http://127.0.0.1:7860"), state, access


@pytest.fixture
def client(tmp_path, root):
    test_client, state, _ = _client(tmp_path, root)
    with test_client:
        yield test_client
    state.queue.close()


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
