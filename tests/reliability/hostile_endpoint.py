"""A loopback stand-in for a deployed RAG system that replies with hostile bodies, and `axiom eval --endpoint`
run against it as a subprocess whose peak RSS is measured (used by tests/reliability/test_hostile_endpoint.py
and bench/endpoint_bounds.py; keep it free of pytest imports).

Kinds of reply, per question:
    ok        the golden answer, contexts and sources (JSON, Content-Length)
    endless   a chunked body that never ends (`{"answer": "aaaa...`), 64 KiB a chunk, until the client leaves
    declared  Content-Length 1 GiB, then that body streamed 64 KiB at a time until the client leaves
    deep      100,000 `[` then 100,000 `]` (1 level deeper per byte)
    number    the golden reply with a 5,000-digit latency_ms
    drip      a chunked body of one space every 50 ms, forever (never silent for a read timeout)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 64 * 1024
GIBIBYTE = 1 << 30
DEEP = 100_000
DIGITS = 5_000
DRIP_SECONDS = 0.05
KINDS = ("ok", "endless", "declared", "deep", "number", "drip")


class HostileServer:
    """Answers each question (the request's `question`) as `behaviour` says ('ok' when not named); counts the
    bytes of body it managed to send per kind (`sent`)."""

    def __init__(self, answers: Mapping[str, dict[str, Any]],
                 behaviour: Mapping[str, str] | None = None) -> None:
        self.answers, self.behaviour = dict(answers), dict(behaviour or {})
        self.sent: Counter[str] = Counter()
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                question = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["question"]
                kind = outer.behaviour.get(question, "ok")
                try:
                    getattr(self, f"send_{kind}")(question)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: what we want
                    self.close_connection = True

            def head(self, length: int | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if length is None:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def whole(self, kind: str, body: bytes) -> None:
                self.head(len(body))
                self.wfile.write(body)
                outer.sent[kind] += len(body)

            def chunk(self, kind: str, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                outer.sent[kind] += len(data)

            def send_ok(self, question: str) -> None:
                self.whole("ok", json.dumps(outer.answers[question]).encode())

            def send_number(self, question: str) -> None:
                text = json.dumps({**outer.answers[question], "latency_ms": 0})
                self.whole("number", text.replace('"latency_ms": 0',
                                                  '"latency_ms": ' + "9" * DIGITS).encode())

            def send_deep(self, question: str) -> None:
                self.whole("deep", b"[" * DEEP + b"]" * DEEP)

            def send_endless(self, question: str) -> None:
                self.head(None)
                self.chunk("endless", b'{"answer": "')
                block = b"a" * CHUNK
                while not outer.stop.is_set():
                    self.chunk("endless", block)

            def send_declared(self, question: str) -> None:
                self.head(GIBIBYTE)
                block, left = b" " * CHUNK, GIBIBYTE
                while left > 0 and not outer.stop.is_set():
                    self.wfile.write(block[:left])
                    outer.sent["declared"] += min(left, CHUNK)
                    left -= CHUNK

            def send_drip(self, question: str) -> None:
                self.head(None)
                while not outer.stop.wait(DRIP_SECONDS):
                    self.chunk("drip", b" ")
                    self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ask"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class MeasuredRun:
    code: int
    stdout: str
    stderr: str
    peak_rss_mib: float  # the subprocess's own peak resident set (VmHWM of its own address space)
    seconds: float


def _vm_hwm_kib(pid: int) -> int | None:
    """The peak resident set of the process's current address space (Linux /proc), None once it is gone."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def run_measured(args: list[str], env: Mapping[str, str], workdir: Path, *,
                 timeout: float = 300) -> MeasuredRun:
    """`python ARGS` (e.g. `-m axiom.cli eval ...`) as a subprocess, and its own peak RSS.

    Not wait4's ru_maxrss: Linux records the address space a process had before exec in it, and subprocess
    starts children by (v)fork from this process, so a child of a 2.4 GiB pytest reports at least 2.4 GiB
    whatever it uses (measured: a `python -c pass` child of an 800 MiB parent reports 813 MiB). VmHWM belongs
    to the child's own address space after exec; it only grows, so the last value sampled before the child
    exits is its peak (samples 20 ms apart: a peak in the last 20 ms of a run would be missed)."""
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    t0 = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, *args], stdout=stdout, stderr=stderr,
                                env=dict(env), cwd=workdir)
    deadline, peak_kib = time.monotonic() + timeout, 0
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid) or 0)
        if time.monotonic() > deadline:  # a run past its timeout is killed (and fails its checks)
            proc.kill()
        time.sleep(0.02)  # the sampling interval of the peak, not a wait for an event
    proc.returncode = os.waitstatus_to_exitcode(status)
    return MeasuredRun(proc.returncode, out.read_text(), err.read_text(), peak_kib / 1024.0,
                       time.perf_counter() - t0)


def golden_replies(items: list[Any]) -> dict[str, dict[str, Any]]:
    """{question: the reply of a perfect system} for golden items."""
    return {it.question: {"answer": it.reference, "contexts": list(it.reference_contexts),
                          "retrieved": list(it.relevant_sources)} for it in items}


def mapping_file(folder: Path, url: str, *, timeout_seconds: float = 2.0) -> Path:
    """The endpoint mapping used by the hostile runs: no retries, a short whole-request timeout."""
    path = folder / "endpoint.yaml"
    path.write_text(f"url: {url}\nretries: 0\ntimeout_seconds: {timeout_seconds}\nconcurrency: 2\n")
    return path
