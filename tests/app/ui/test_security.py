"""The UI's guards: paths under --root only, checked uploads, and the token for non-loopback servers."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from reverie.app.ui import security
from reverie.app.ui.security import (
    MAX_LOOK_BYTES,
    Access,
    AccessMiddleware,
    Roots,
    check_look_upload,
    check_upload,
)
from reverie.app.ui.server import read_look
from reverie.errors import ReverieError


def encoded(fmt: str, h: int = 12, w: int = 20) -> bytes:
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, : w // 2] = (255, 0, 0)  # left half red, right half black
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ (a.png, sub/), root2/ (a sibling whose name extends root's), outside/secret.png."""
    root, root2, outside = tmp_path / "root", tmp_path / "root2", tmp_path / "outside"
    for folder in (root / "sub", root2, outside):
        folder.mkdir(parents=True)
    for file in (root / "a.png", root2 / "b.png", outside / "secret.png"):
        file.write_bytes(b"x")
    return {"root": root, "root2": root2, "outside": outside}


# ----------------------------------------------------------------------------------------------- folders


def test_relative_paths_resolve_against_the_first_root(tree):
    roots = Roots([tree["root"], tree["outside"]])
    assert roots.resolve("a.png") == (tree["root"] / "a.png").resolve()
    assert roots.names() == [str(tree["root"].resolve()), str(tree["outside"].resolve())]


def test_absolute_path_inside_any_root_is_allowed(tree):
    roots = Roots([tree["root"], tree["outside"]])
    assert roots.resolve(str(tree["outside"] / "secret.png")) == (tree["outside"] / "secret.png").resolve()


def test_dotdot_is_refused_even_when_it_would_stay_inside(tree):
    roots = Roots([tree["root"]])
    with pytest.raises(ReverieError, match=r"sub/\.\./a\.png .*under one of the roots given with --root"):
        roots.resolve("sub/../a.png")
    with pytest.raises(ReverieError, match="--root"):
        roots.resolve(str(tree["root"] / "sub" / ".." / "a.png"))


def test_absolute_path_outside_is_refused(tree):
    roots = Roots([tree["root"]])
    with pytest.raises(ReverieError, match=r"secret\.png .*under one of the roots"):
        roots.resolve(str(tree["outside"] / "secret.png"))


def test_sibling_folder_sharing_the_roots_name_prefix_is_refused(tree):
    roots = Roots([tree["root"]])
    assert str(tree["root2"]).startswith(str(tree["root"]))  # the trap a string prefix test falls into
    with pytest.raises(ReverieError, match="under one of the roots"):
        roots.resolve(str(tree["root2"] / "b.png"))


def test_symlink_out_of_a_root_is_refused_and_within_is_allowed(tree):
    roots = Roots([tree["root"], tree["root2"]])
    (tree["root"] / "escape.png").symlink_to(tree["outside"] / "secret.png")
    (tree["root"] / "escape_dir").symlink_to(tree["outside"], target_is_directory=True)
    (tree["root"] / "other.png").symlink_to(tree["root2"] / "b.png")
    with pytest.raises(ReverieError, match="under one of the roots"):
        roots.resolve("escape.png")
    with pytest.raises(ReverieError, match="under one of the roots"):
        roots.resolve("escape_dir/secret.png")
    with pytest.raises(ReverieError, match="under one of the roots"):  # outputs too: no writing through it
        roots.resolve("escape_dir/new.png", must_exist=False)
    assert roots.resolve("other.png") == (tree["root2"] / "b.png").resolve()


def test_no_roots_refuses_everything(tree):
    with pytest.raises(ReverieError, match=r"no folders are shared: start `reverie ui --root DIR`"):
        Roots([]).resolve(str(tree["root"] / "a.png"))


def test_empty_and_nul_paths_are_refused(tree):
    roots = Roots([tree["root"]])
    for bad in ("", "   "):
        with pytest.raises(ReverieError, match="no path given"):
            roots.resolve(bad)
    with pytest.raises(ReverieError, match="NUL byte"):
        roots.resolve("a.png\0.txt")


def test_missing_input_is_refused_but_a_new_output_is_allowed(tree):
    roots = Roots([tree["root"]])
    with pytest.raises(ReverieError, match=r"new\.png does not exist"):
        roots.resolve("sub/new.png")
    assert roots.resolve("sub/new.png", must_exist=False) == (tree["root"] / "sub" / "new.png").resolve()


def test_output_with_missing_parent_is_refused(tree):
    roots = Roots([tree["root"]])
    with pytest.raises(ReverieError, match=r"the folder of nowhere/new\.png does not exist"):
        roots.resolve("nowhere/new.png", must_exist=False)
    with pytest.raises(ReverieError, match="under one of the roots"):  # the root itself is no file name
        roots.resolve(str(tree["root"]), must_exist=False)


def test_bad_roots_are_refused(tree):
    with pytest.raises(ReverieError, match=r"--root .*missing does not exist"):
        Roots([tree["root"] / "missing"])
    with pytest.raises(ReverieError, match=r"--root .*a\.png is not a folder"):
        Roots([tree["root"] / "a.png"])


# ----------------------------------------------------------------------------------------------- uploads


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_valid_image_upload_comes_back_as_float_rgb(fmt):
    image = check_upload(encoded(fmt), f"plate.{fmt.lower()}", 2**20)
    assert image.shape == (12, 20, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    assert image[6, 2, 0] > 0.9 and image[6, 2, 1] < 0.1  # red on the left
    assert image[6, 17].max() < 0.1  # black on the right


def test_empty_upload_is_refused():
    with pytest.raises(ReverieError, match="empty"):
        check_upload(b"", "a.png", 2**20)


def test_too_large_upload_is_refused_with_both_sizes():
    data = encoded("PNG")
    with pytest.raises(ReverieError, match="the upload is 52 MB; the limit is 40 MB: send a smaller image"):
        check_upload(b"\0" * (52 * 2**20), "a.png", 40 * 2**20)
    assert check_upload(data, "a.png", len(data)).shape == (12, 20, 3)  # exactly the limit is fine
    with pytest.raises(ReverieError, match=f"is {len(data):,} bytes; the limit is {len(data) - 1:,} bytes"):
        check_upload(data, "a.png", len(data) - 1)


def test_text_named_png_is_refused_by_its_content():
    with pytest.raises(ReverieError, match=r"notes.png is not an image Reverie can read \(PNG, JPEG, TIFF"):
        check_upload(b"hello, this is not a picture\n" * 10, "notes.png", 2**20)


def test_truncated_png_is_refused_without_leaking_the_temp_path():
    data = encoded("PNG", 64, 64)
    with pytest.raises(ReverieError) as err:
        check_upload(data[: len(data) // 2], "cut.png", 2**20)
    message = str(err.value)
    assert "cut.png" in message and "reverie-upload-" not in message


def test_header_claiming_too_many_pixels_is_refused_before_decoding():
    bomb = png_header_only(9000, 8000)  # 72 Mpx in ~100 bytes
    assert len(bomb) < 200
    with pytest.raises(ReverieError, match="too many pixels"):
        check_upload(bomb, "bomb.png", 2**20)


def test_pixel_limit_is_the_modules_constant(monkeypatch):
    data = encoded("PNG")  # 12 x 20 = 240 px
    monkeypatch.setattr(security, "MAX_UPLOAD_PIXELS", 239)
    with pytest.raises(ReverieError, match="too many pixels"):
        check_upload(data, "a.png", 2**20)
    monkeypatch.setattr(security, "MAX_UPLOAD_PIXELS", 240)
    assert check_upload(data, "a.png", 2**20).shape == (12, 20, 3)


def test_look_upload_passes_text_and_leaves_decoding_to_the_look_reader():
    text = 'u = 4.5\nstyle_crop = [0.1, 0.2, 0.5, 0.4]\n# a.b.c.d.e.f.g.h.i.j.k\nx = "1.2.3.4.5.6.7.8.9.10"\n'
    check_look_upload(text.encode())
    check_look_upload(b"\xef\xbb\xbf" + text.encode())  # Look.load decides: one rule for page and CLI


def test_look_upload_refuses_binary_and_too_long(tmp_path):
    with pytest.raises(ReverieError, match="not a text file"):
        check_look_upload(encoded("PNG"))
    with pytest.raises(ReverieError, match=r"l\.toml is not a UTF-8 text file"):  # the look reader's rule
        read_look(b"u = \xff\xfe\n", "l.toml", tmp_path)
    with pytest.raises(ReverieError, match="the upload is 65 KB; the limit is 64 KB"):
        check_look_upload(b"#" * (MAX_LOOK_BYTES + 2**10))
    with pytest.raises(ReverieError, match="empty"):
        check_look_upload(b"")


@pytest.mark.parametrize(
    "shape",
    [
        b"a" + b".a" * 20_000 + b" = 1\n",  # tomllib: seconds, quadratic in the key
        b'"a"' + b'."a"' * 40 + b" = 1\n",  # quoted parts are still key parts
        b"[" + b"a." * 40 + b"b]\n",
        b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",  # tomllib: RecursionError
        b"x = " + b"{a=" * 2000 + b"1" + b"}" * 2000 + b"\n",
    ],
)
def test_look_shapes_that_make_parsing_slow_or_deep_are_refused_before_parsing(shape, tmp_path):
    """The look reader's rule (`reverie.textfile`), the same for the page and the command line."""
    started = time.perf_counter()
    check_look_upload(shape)  # size and text: fine
    with pytest.raises(ReverieError, match="nests values more than") as err:
        read_look(shape, "l.toml", tmp_path)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - started < 0.5


# ------------------------------------------------------------------------------------------------ access


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_needs_nothing(host):
    access = Access.for_server(host, None)
    assert not access.required and access.token is None and not access.generated
    assert access.check(None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "studio.local", ""])
def test_other_hosts_without_password_get_a_random_token(host):
    first, second = Access.for_server(host, None), Access.for_server(host, None)
    assert first.required and first.generated
    assert len(first.token) >= 32 and first.token != second.token
    assert first.check(first.token)
    assert not first.check(second.token) and not first.check(None) and not first.check("")


def test_password_is_used_and_must_be_long_enough():
    access = Access.for_server("0.0.0.0", "correct horse")
    assert access.token == "correct horse" and not access.generated and access.check("correct horse")
    assert Access.for_server("127.0.0.1", "correct horse").required  # asked for, so honoured
    with pytest.raises(ReverieError, match="too short") as err:
        Access.for_server("0.0.0.0", "hunter2")
    assert "hunter2" not in str(err.value)


def app_behind(access: Access) -> TestClient:
    async def hello(request):
        return PlainTextResponse(f"hello {request.url.path}?{request.url.query}")

    routes = [Route("/", hello), Route("/api/x", hello, methods=["GET", "POST"]), Route("/page", hello)]
    app = AccessMiddleware(Starlette(routes=routes), access)
    return TestClient(app, follow_redirects=False)


def test_middleware_passes_everything_when_no_token_is_needed():
    client = app_behind(Access.for_server("127.0.0.1", None))
    assert client.get("/api/x").status_code == 200


def test_middleware_refuses_api_without_token_as_json():
    access = Access.for_server("0.0.0.0", None)
    response = app_behind(access).get("/api/x")
    assert response.status_code == 401
    assert response.json()["error"].startswith("this Reverie UI needs its token")
    assert access.token not in response.text


def test_middleware_refuses_pages_without_token_as_html():
    access = Access.for_server("0.0.0.0", None)
    response = app_behind(access).get("/page")
    assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
    assert "needs its token" in response.text and access.token not in response.text


def test_token_in_query_redirects_without_it_and_sets_a_cookie_that_passes():
    access = Access.for_server("0.0.0.0", None)
    client = app_behind(access)
    response = client.get("/page", params={"token": access.token, "shot": "a b"})
    assert response.status_code == 303
    assert response.headers["location"] == "/page?shot=a+b"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("reverie_token=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert access.token not in cookie  # the cookie holds a value derived from it
    assert client.get("/api/x").status_code == 200  # the client now sends the cookie
    assert client.post("/api/x").status_code == 200


def test_redirect_stays_on_this_site():
    access = Access.for_server("0.0.0.0", None)
    response = app_behind(access).get(f"http://testserver//evil.example/x?token={access.token}")
    assert response.status_code == 303 and response.headers["location"] == "/evil.example/x"


def test_bearer_header_passes_and_wrong_tokens_do_not():
    access = Access.for_server("0.0.0.0", "correct horse")
    client = app_behind(access)
    assert client.get("/api/x", headers={"Authorization": "Bearer correct horse"}).status_code == 200
    assert client.get("/api/x", headers={"Authorization": "Bearer wrong horse"}).status_code == 401
    client.cookies.set("reverie_token", "correct horse")
    assert client.get("/api/x").status_code == 401
    client.cookies.set("reverie_token", access.cookie_value)
    assert client.get("/api/x").status_code == 200
    client.cookies.clear()
    wrong = client.get("/page", params={"token": "wrong horse"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "horse" not in wrong.text


def test_websocket_needs_the_token_too():
    async def echo(ws: WebSocket):
        await ws.accept()
        await ws.send_text("hi")
        await ws.close()

    access = Access.for_server("0.0.0.0", None)
    client = TestClient(AccessMiddleware(Starlette(routes=[WebSocketRoute("/ws", echo)]), access))
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws"):
            pass
    with client.websocket_connect(f"/ws?token={access.token}") as ws:
        assert ws.receive_text() == "hi"
