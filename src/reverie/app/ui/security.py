"""What the web UI lets a browser touch: files only under the `--root` folders, uploads only as checked
images or small look files, and (when reachable from other machines) only with a token.

Every refusal is a one-line `ReverieError` that the server turns into a 4xx answer.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reverie.app.ui import limits
from reverie.errors import ReverieError
from reverie.io.images import read_image
from reverie.textfile import format_size

__all__ = [
    "MAX_LOOK_BYTES",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "MIN_PASSWORD_CHARS",
    "TOKEN_COOKIE",
    "Access",
    "AccessMiddleware",
    "OutsideRoots",
    "Roots",
    "SameOriginMiddleware",
    "check_look_upload",
    "check_upload",
    "decode_upload",
    "image_header",
    "shown_name",
]

MAX_UPLOAD_BYTES = 40 * 2**20
MAX_LOOK_BYTES = 64 * 2**10
# Checked on the header before decoding: a few-KB PNG can claim gigapixels (a decompression bomb).
MAX_UPLOAD_PIXELS = 64_000_000
MIN_PASSWORD_CHARS = 8
TOKEN_COOKIE = "reverie_token"
_LOOPBACK_NAMES = {"localhost"}


def _shown(text: str, limit: int = 160) -> str:
    # Messages are one line; a user-typed path or file name may hold newlines or be very long.
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------- folders


class OutsideRoots(ReverieError):
    """A path the browser named lies outside the shared folders (the server answers 403)."""


class Roots:
    """The folders shared with `--root`; every path the browser names must resolve inside one of them."""

    def __init__(self, paths: Iterable[str | os.PathLike]) -> None:
        self._roots = tuple(_real_root(p) for p in paths)

    def names(self) -> list[str]:
        """The roots as absolute real paths, for the page."""
        return [str(root) for root in self._roots]

    def resolve(self, user_path: str, *, must_exist: bool = True) -> Path:
        """The real path (symlinks followed) of `user_path`, absolute or relative to the first root.

        Refuses `..`, paths that end up outside every root, and (with `must_exist`) missing files; with
        `must_exist=False` (outputs) the parent folder must exist inside a root.
        """
        if not self._roots:
            raise OutsideRoots("no folders are shared: start `reverie ui --root DIR`")
        _check_text(user_path)
        # Refused even when it would land inside a root: `..` in a browser-sent path is never needed.
        if ".." in re.split(r"[\\/]", user_path):
            raise self._outside(user_path)
        # os.path.realpath, not Path.resolve: it does not raise on symlink loops (those fail as missing).
        real = Path(os.path.realpath(self._roots[0] / user_path))
        if not self._inside(real):
            raise self._outside(user_path)
        if must_exist and not real.exists():
            raise ReverieError(f"{_shown(user_path)} does not exist: check the path and the spelling")
        if not must_exist and not self._inside(real.parent):  # the root itself, given as a file name
            raise self._outside(user_path)
        if not must_exist and not real.parent.is_dir():
            raise ReverieError(
                f"the folder of {_shown(user_path)} does not exist: create it or choose another folder"
            )
        return real

    def _inside(self, real: Path) -> bool:
        # Path containment, not string prefixes: /data/root2 is not inside /data/root.
        return any(real.is_relative_to(root) for root in self._roots)

    def _outside(self, user_path: str) -> OutsideRoots:
        return OutsideRoots(
            f"{_shown(user_path)} is not allowed: it must lie under one of the roots given with --root "
            f"({', '.join(self.names())})"
        )


def _real_root(path: str | os.PathLike) -> Path:
    name = _shown(os.fsdecode(path))
    try:
        real = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise ReverieError(f"--root {name} does not exist: give an existing folder") from None
    if not real.is_dir():
        raise ReverieError(f"--root {name} is not a folder: give a folder, not a file")
    return real


def _check_text(user_path: str) -> None:
    if not user_path.strip():
        raise ReverieError("no path given: give a path under one of the roots given with --root")
    if "\0" in user_path:
        raise ReverieError("the path contains a NUL byte: give a plain file path")


# ----------------------------------------------------------------------------------------------- uploads


def _check_size(data: bytes, max_bytes: int, what: str) -> None:
    if not data:
        raise ReverieError(f"the upload is empty (0 bytes): send the {what} again")
    if len(data) > max_bytes:
        size, limit = format_size(len(data)), format_size(max_bytes)
        if size == limit:  # just over the limit rounds to it: bytes show the difference
            size, limit = f"{len(data):,} bytes", f"{max_bytes:,} bytes"
        raise ReverieError(f"the upload is {size}; the limit is {limit}: send a smaller {what}")


def shown_name(filename: str) -> str:
    """An uploaded file's name as messages show it: no folders, one short line."""
    return _shown(os.path.basename(filename.replace("\\", "/"))) or "the upload"


def check_upload(data: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """An uploaded image as float32 RGB (H, W, 3), 0..1, after checking its size, its content (whatever
    its extension says) and its pixel count (before decoding)."""
    image_header(data, filename, max_bytes)
    return decode_upload(data, filename)


def image_header(data: bytes, filename: str, max_bytes: int | None = None) -> tuple[int, int, str]:
    """(width, height, file extension) of an uploaded image from its header, after checking its size,
    that it is an image (whatever its name says) and its pixel count; nothing is decoded."""
    _check_size(data, MAX_UPLOAD_BYTES if max_bytes is None else max_bytes, "image")
    name = shown_name(filename)
    not_image = f"{name} is not an image Reverie can read (PNG, JPEG, TIFF, ...): send an image file"
    try:
        with Image.open(io.BytesIO(data)) as im:
            (width, height), fmt = im.size, (im.format or "image").lower()
    except Image.DecompressionBombError:  # Pillow's own, higher limit: same answer as ours
        (width, height), fmt = (MAX_UPLOAD_PIXELS + 1, 1), ""
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ReverieError(not_image) from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise ReverieError(
            f"{name} has too many pixels (limit {MAX_UPLOAD_PIXELS // 1_000_000} megapixels): "
            "downscale it first"
        )
    return width, height, {"jpeg": "jpg", "mpo": "jpg"}.get(fmt, fmt)


def decode_upload(data: bytes, filename: str) -> np.ndarray:
    """Decode a checked upload (see `image_header`) as float32 RGB (H, W, 3), 0..1."""
    # read_image takes only paths; going through a private temp file keeps one decoder for the CLI and
    # the UI (16-bit colour, EXIF orientation, strict truncation checks).
    with tempfile.TemporaryDirectory(prefix="reverie-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            return read_image(path)
        except ReverieError as err:
            raise ReverieError(str(err).replace(str(path), shown_name(filename))) from None


def check_look_upload(data: bytes, max_bytes: int = MAX_LOOK_BYTES) -> None:
    """Refuse an uploaded look that is too large or binary. Decoding, the shape check (nesting, dotted
    keys) and parsing are the look reader's (`Look.load`, through `reverie.textfile`), the same for the
    page and the command line."""
    _check_size(data, max_bytes, "look file")
    if b"\0" in data:
        raise ReverieError("the look upload is not a text file: send a look .toml file")


# ------------------------------------------------------------------------------------------------ access


@dataclass(frozen=True)
class Access:
    """Who may use the UI: anyone who can connect (token None), or whoever presents the token."""

    token: str | None = None
    generated: bool = False
    """True when the token was made up here: the caller prints the address with it once."""

    @classmethod
    def for_server(cls, host: str, password: str | None) -> Access:
        """Loopback needs nothing; any other host needs the password, or a random token if none."""
        if password is not None:
            if len(password) < MIN_PASSWORD_CHARS:
                raise ReverieError(
                    f"the password is too short ({len(password)} characters): use at least "
                    f"{MIN_PASSWORD_CHARS}, or leave it out to get a random token"
                )
            return cls(token=password)
        if is_loopback(host):
            return cls()
        return cls(token=secrets.token_urlsafe(24), generated=True)

    @property
    def required(self) -> bool:
        return self.token is not None

    def check(self, presented: str | None) -> bool:
        """Whether `presented` is the token (constant time)."""
        return _same(presented, self.token)

    @property
    def cookie_value(self) -> str:
        """What the browser keeps: derived from the token, so a password never sits in the cookie jar in
        clear and any character of it is safe in a Cookie header."""
        key = (self.token or "").encode()
        return hmac.new(key, b"reverie-ui-cookie", hashlib.sha256).hexdigest()

    def check_cookie(self, presented: str | None) -> bool:
        """Whether `presented` is `cookie_value` (constant time)."""
        return _same(presented, None if self.token is None else self.cookie_value)


def _same(presented: str | None, expected: str | None) -> bool:
    if expected is None:  # no token: everyone may
        return True
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    bare = host.strip().strip("[]").lower()
    if bare in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


_NEEDS_TOKEN = "this Reverie UI needs its token: open the address printed when it started (http://…/?token=…)"
_NEEDS_TOKEN_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Reverie: token needed</title>"
    f"<p>{html.escape(_NEEDS_TOKEN)}</p>"
)


class AccessMiddleware:
    """Pure ASGI: lets a request through when `access` does not need a token or the request has it.

    `?token=` with the right token answers 303 to the same address without it and sets an HttpOnly,
    SameSite=Strict cookie; later requests pass with that cookie or with `Authorization: Bearer <token>`.
    WebSockets cannot follow a redirect, so they may also pass with `?token=`. Wrong tokens count per
    client address (`limits.SignInLimiter`): past the limit a client gets 429 until its wait is over.
    """

    def __init__(self, app: ASGIApp, access: Access, limiter: limits.SignInLimiter | None = None) -> None:
        self.app = app
        self.access = access
        self.limiter = limiter or limits.SignInLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.access.required:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        # A cookie is not a guess (it is derived from the token) and a stale one comes with every request
        # of an old tab: it passes or is ignored, and never counts as a failed sign-in.
        if self.access.check_cookie(conn.cookies.get(TOKEN_COOKIE)):
            await self.app(scope, receive, send)
            return
        presented, from_query = _presented_token(conn)
        client = conn.client.host if conn.client else "unknown"
        wait = None if presented is None else self.limiter.retry_after(client)
        if wait is not None:  # checked before the token: a locked-out guesser learns nothing
            await _refuse(scope, receive, send, _too_many_tries(scope["path"], wait))
        elif presented is not None and self.access.check(presented):
            if from_query and scope["type"] == "http":
                await self._redirect_without_token(conn)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        else:
            if presented is not None:
                self.limiter.failed(client)
            await _refuse(scope, receive, send, _needs_token(scope["path"]))

    def _redirect_without_token(self, conn: HTTPConnection) -> Response:
        # Leading slashes collapsed: "//host/x" would be a redirect to another site.
        path = "/" + conn.url.path.lstrip("/")
        rest = urlencode([(k, v) for k, v in conn.query_params.multi_items() if k != "token"])
        response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
        response.headers["cache-control"] = "no-store"
        response.set_cookie(
            TOKEN_COOKIE, self.access.cookie_value, path="/", httponly=True, samesite="strict"
        )
        return response


def _presented_token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """(the token the request offers, whether it came in the query): a Bearer header first."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip(), False
    query = conn.query_params.get("token")
    return query, query is not None


async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    if scope["type"] == "websocket":  # closed before accept: the client sees 403
        await send({"type": "websocket.close", "code": 1008})
    else:
        await response(scope, receive, send)


def _needs_token(path: str) -> Response:
    headers = {"www-authenticate": "Bearer", "cache-control": "no-store"}
    if path.startswith("/api/"):
        return JSONResponse({"error": _NEEDS_TOKEN}, status_code=401, headers=headers)
    return HTMLResponse(_NEEDS_TOKEN_PAGE, status_code=401, headers=headers)


def _too_many_tries(path: str, wait: int) -> Response:
    message = f"too many wrong tokens or passwords from this address: try again in {wait} s"
    headers = {"retry-after": str(wait), "cache-control": "no-store"}
    if path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=429, headers=headers)
    page = f"<!doctype html><meta charset=utf-8><title>Reverie: wait</title><p>{html.escape(message)}</p>"
    return HTMLResponse(page, status_code=429, headers=headers)


class SameOriginMiddleware:
    """Pure ASGI: refuses what another web page in the user's browser could send.

    A page on any site can POST to http://127.0.0.1:PORT (the browser sends it, with an Origin header of
    that site), and a DNS-rebinding site reaches the port under its own host name. So: a request whose
    Origin is not this server's address is refused, and a server bound to loopback only answers to
    loopback host names.
    """

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            conn = HTTPConnection(scope)
            host = conn.headers.get("host", "")
            origin = conn.headers.get("origin")
            reason = None
            if self.loopback_only and not is_loopback(_host_name(host)):
                reason = f"this Reverie UI answers only on its loopback address, not as {_shown(host, 60)}"
            elif origin is not None and origin.split("://", 1)[-1] != host:  # "null" too: sandboxed frames
                reason = "requests from other web sites are refused: use the Reverie page itself"
            if reason is not None:
                await JSONResponse({"error": reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "127.0.0.1:8000" -> "127.0.0.1", "[::1]:80" -> "::1"."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
