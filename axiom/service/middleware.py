"""The ASGI middleware around both apps: request id, body size limit, access log, request metrics, last-resort
500. A plain ASGI middleware (not BaseHTTPMiddleware) so the request id contextvar is set in the task that runs
the endpoint, and copied from there into the threadpool that runs sync endpoints."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from axiom.observability import REQUESTS, accept_request_id, count_error, request_id_var

log = logging.getLogger("axiom.service.access")

KNOWN_ENDPOINTS = frozenset({"/query", "/ingest", "/health", "/metrics", "/metrics/", "/docs", "/openapi.json",
                             "/docs/oauth2-redirect", "/redoc"})
QUIET_ENDPOINTS = frozenset({"/health", "/metrics", "/metrics/"})  # probes and scrapes: access lines at DEBUG


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over the limit of {limit} bytes "
                                                 "(service.max_body_bytes)")


def error_body(kind: str, message: str, request_id: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": kind, "message": message, **extra, "request_id": request_id}


async def send_json(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                bad = not length.isdigit()
                await send_json(send_with_id, 400 if bad else 413, error_body(
                    "bad_request" if bad else "payload_too_large",
                    "invalid Content-Length" if bad else BodyTooLarge(self.max_body_bytes).detail, request_id))
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
