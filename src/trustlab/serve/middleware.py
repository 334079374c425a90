"""The service's front door, as one plain ASGI middleware (no per-request thread, no body copy
beyond the limit): request ids, API keys, the body-size limit, metrics, and no leaked errors.

In order, for every HTTP request:

1. a request id: the client's ``X-Request-ID`` when it is a short token (letters, digits,
   ``._-``), else a new one; returned in the ``X-Request-ID`` header and kept in
   ``scope["state"]["request_id"]`` for the endpoints and the alarm record;
2. the API key, unless the path is open (health probes) or no key is configured: 401 without
   or with a wrong key, before any of the body is read;
3. the body, for methods that carry one: a declared ``Content-Length`` over the limit is 413
   at once, otherwise at most ``max_body_bytes + 1`` bytes are read (413 past the limit, 408
   when the client is too slow) and replayed to the app;
4. the app; an exception escaping it becomes a generic 500 (the request id, never the error's
   text or traceback) and one log line naming only the exception's type;
5. latency and status go to the metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from trustlab.serve.auth import key_is_valid, presented_key

log = logging.getLogger("trustlab.serve")
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def json_response_messages(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> list:
    """The ASGI messages of a JSON response, for answers given before the app sees the request."""
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


class FrontDoor:
    """The ASGI layer every request passes first: request id, API key (401 before the body is
    read), body size limit (413) and a catch-all that answers a generic 500 without a traceback."""

    def __init__(
        self,
        app: Callable,
        *,
        key_digests: tuple[bytes, ...],
        max_body_bytes: int,
        body_timeout_s: float,
        open_paths: frozenset[str],
        observe: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.key_digests = key_digests
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.open_paths = open_paths
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _TOKEN.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        state = {"status": 500, "started": False}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        async def refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> None:
            for message in json_response_messages(status, {"detail": detail, "request_id": request_id}, headers):
                await send_with_id(message)

        try:
            path = scope.get("path", "")
            if self.key_digests and path not in self.open_paths:
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
                if not key_is_valid(presented_key(headers), self.key_digests):
                    await refuse(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
                    return
            if scope.get("method") in BODY_METHODS:
                receive = await self._read_body(scope, receive, refuse)
                if receive is None:
                    return
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the one place that turns any failure into a clean 500
            log.error("request %s: unexpected %s (answered 500)", request_id, type(exc).__name__)
            if not state["started"]:
                try:
                    await refuse(500, "internal error")
                except Exception:  # the client is gone: nothing left to tell it
                    pass
        finally:
            if self.observe is not None:
                self.observe(scope.get("path", ""), int(state["status"]), time.perf_counter() - start)

    async def _read_body(self, scope: Scope, receive: Receive, refuse: Callable) -> Receive | None:
        """The body, at most ``max_body_bytes`` of it, replayed; None once a refusal was sent."""
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await refuse(400, "invalid Content-Length header")
                return None
            if int(declared) > limit:
                await refuse(413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
                return None
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await refuse(413, f"request body exceeds the limit of {limit} bytes")
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await refuse(408, "request body not received in time")
            return None
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
