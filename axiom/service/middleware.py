"""The ASGI middleware around both apps: request id, API key check, body size limit, access log, request
metrics, last-resort 500. A plain ASGI middleware (not BaseHTTPMiddleware) so the request id contextvar is set
in the task that runs the endpoint, and copied from there into the threadpool that runs sync endpoints.

Order for each request: request id; then, for a route guarded by an `ApiKeyAuth` dependency, the key (401
before routing, before the Content-Length check and before any byte of the body is read: see
`axiom.service.auth`); then the body size limit; then the app."""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from axiom.observability import REQUESTS, accept_request_id, count_error, request_id_var
from axiom.service.auth import (
    UNAUTHORIZED_HEADERS,
    UNAUTHORIZED_MESSAGE,
    ApiKeyAuth,
    guarded_routes,
    presented_key,
)

log = logging.getLogger("axiom.service.access")

KNOWN_ENDPOINTS = frozenset({"/query", "/ingest", "/health", "/metrics", "/metrics/", "/docs",
                             "/openapi.json",
                             "/docs/oauth2-redirect", "/redoc"})
QUIET_ENDPOINTS = frozenset({"/health", "/metrics", "/metrics/"})  # probes and scrapes: access lines at DEBUG


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over the limit of {limit} bytes "
                                                 "(service.max_body_bytes)")


def error_body(kind: str, message: str, request_id: str | None, **extra: object) -> dict[str, Any]:
    return {"error": kind, "message": message, **extra, "request_id": request_id}


async def send_json(send: Send, status: int, payload: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._guards: list[tuple[BaseRoute, ApiKeyAuth]] = []
        self._guards_of: tuple[int, int] | None = None  # (id, length) of the routes list they were read from

    def _auth_for(self, scope: Scope) -> ApiKeyAuth | None:
        """The ApiKeyAuth of the route this request goes to (path and method both match), or None."""
        routes = getattr(scope.get("app"), "routes", None) or []
        if self._guards_of != (id(routes), len(routes)):
            self._guards = guarded_routes(scope.get("app"))
            self._guards_of = (id(routes), len(routes))
        for route, auth in self._guards:
            if route.matches(scope)[0] is Match.FULL:
                return auth
        return None

    async def _unauthorized(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """The 401, as the app's own handler would give it: with the CORS headers when CORS is on (so a
        browser page on an allowed origin can read it), through a copy of the CORS layer wrapped around the
        reply."""

        async def reply(scope: Scope, receive: Receive, send: Send) -> None:
            await send_json(send, 401, error_body("unauthorized", UNAUTHORIZED_MESSAGE, request_id),
                            headers=UNAUTHORIZED_HEADERS)

        if isinstance(self.app, CORSMiddleware):
            cors = copy.copy(self.app)
            cors.app = reply
            await cors(scope, receive, send)
        else:
            await reply(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = accept_request_id(headers.get("x-request-id"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            auth = self._auth_for(scope)
            length = headers.get("content-length")
            if auth is not None and not auth.check(presented_key(headers)):
                await self._unauthorized(scope, receive, send_with_id, request_id)
            elif length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                bad = not length.isdigit()
                await send_json(send_with_id, 400 if bad else 413, error_body(
                    "bad_request" if bad else "payload_too_large",
                    "invalid Content-Length" if bad else BodyTooLarge(self.max_body_bytes).detail,
                    request_id))
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            count_error("request", exc)
            log.exception("unhandled error in %s %s", scope.get("method"), path)
            if not started:
                await send_json(send_with_id, 500, error_body(
                    "internal_error", "internal error; the server log has the details under this request_id",
                    request_id))
        finally:
            seconds = time.perf_counter() - t0
            endpoint = path if path in KNOWN_ENDPOINTS else "other"
            REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
            level = logging.DEBUG if path in QUIET_ENDPOINTS and status < 400 else logging.INFO
            shown = path if endpoint != "other" else path[:200].encode("unicode_escape").decode("ascii")
            log.log(level, "%s %s %d %.1fms", scope.get("method"), shown, status, seconds * 1000,
                    extra={"method": scope.get("method"), "path": shown, "status": status,
                           "duration_ms": round(seconds * 1000, 2)})
            request_id_var.reset(token)
