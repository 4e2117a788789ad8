"""An OpenAI-compatible HTTP server on 127.0.0.1 that tests start to play the LLM.

It answers `/v1/chat/completions` and `/v1/embeddings` from a FIFO queue of scripted `Reply`s, falling
back to a responder function (by default: a fixed chat completion). Every request is recorded. It is a
stand-in for the endpoint only: tests use it to exercise the client, retries and fault handling.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (read-timeout tests)


def chat_completion(text: str, *, prompt_tokens: int = 10, completion_tokens: int = 5,
                    model: str = "fake-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def embeddings_response(vectors: list[list[float]], model: str = "fake-embed") -> dict[str, Any]:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}}


Responder = Callable[[str, dict[str, Any]], Reply]


def default_responder(path: str, body: dict[str, Any]) -> Reply:
    if path.endswith("/embeddings"):
        inputs = body.get("input") or []
        inputs = [inputs] if isinstance(inputs, str) else inputs
        return Reply(body=embeddings_response([[float(len(t) % 7 + 1), 1.0, 0.5] for t in inputs]))
    return Reply(body=chat_completion("Stub answer citing the first source [1]."))


class FakeOpenAIServer:
    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder or default_responder
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request, in order (retry back-off tests)
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                with server._lock:
                    server.requests.append((self.path, body))
                    server.arrivals.append(time.monotonic())
                    reply = server._queue.popleft() if server._queue else None
                if reply is None:
                    reply = server.responder(self.path, body)
                if reply.delay:
                    time.sleep(reply.delay)
                if isinstance(reply.body, (dict, list)):
                    payload = json.dumps(reply.body).encode()
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                else:
                    payload = reply.body or b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def calls(self, suffix: str = "/chat/completions") -> int:
        with self._lock:
            return sum(1 for path, _ in self.requests if path.endswith(suffix))

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
