"""How much one client may make the server do: request bodies bounded while they are read, wrong
tokens limited per client (look files are bounded by the look reader, `reverie.textfile`).

Every refusal is one line: JSON {"error": ...} with 413 or 429 (and Retry-After), or a `ReverieError`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "SignInLimiter",
]

# ------------------------------------------------------------------------------------------ request bodies


class BodyTooLarge(Exception):
    """Raised from `receive` when a body passes its limit; the middleware answers 413. Not a
    ReverieError: the endpoints' error handling must let it through to the middleware."""


class BodyLimitMiddleware:
    """Pure ASGI: bounds every request body WHILE it is read, with or without a Content-Length.

    `limit_for(path)` gives (bytes allowed, the one-line message past them). A declared length over the
    limit is refused before reading; a chunked body is counted as it arrives and reading stops at the
    limit, so a client cannot make the server buffer more than the limit whatever it sends.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], tuple[int, str]]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, message = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(message)(scope, receive, send)
            return
        received, started = 0, False

        async def bounded_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return incoming

        async def tracked_send(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except BodyTooLarge:
            if not started:  # always so here: endpoints read their body before answering
                await _too_large(message)(scope, receive, send)


def _too_large(message: str) -> JSONResponse:
    # No "Connection: close": closing a socket with unread data resets it, and a client still sending
    # would lose the answer. uvicorn discards the rest of the body instead (nothing is buffered) until
    # its keep-alive timeout, as nginx's lingering close does.
    return JSONResponse({"error": message}, status_code=413)


# ------------------------------------------------------------------------------------------ sign-in

MAX_FAILED_SIGN_INS = 10
SIGN_IN_WINDOW_S = 60.0
_TRACKED_CLIENTS = 4096


class SignInLimiter:
    """Wrong tokens or passwords per client address: after `max_failures` within `window_s` seconds the
    client is refused (429, Retry-After) until the oldest of them is that old. 1,000 guesses then take
    over an hour and a half instead of a second; the right token, once the wait is over, passes."""

    def __init__(
        self,
        max_failures: int = MAX_FAILED_SIGN_INS,
        window_s: float = SIGN_IN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds this client must wait before it may try a token again; None: it may now."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window_s - self.clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._recent(client)
            times.append(self.clock())
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > _TRACKED_CLIENTS:  # a flood of addresses cannot grow it without end
                self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.get(client, deque(maxlen=self.max_failures))
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times
