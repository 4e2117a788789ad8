"""Waiting with a deadline instead of sleeping a fixed time: `poll_until` for any condition, `wait_for_http`
for a server that is starting (optionally a subprocess whose early exit ends the wait at once).

Both fail with `WaitError` (an AssertionError, so pytest reports it as a failed check) whose message says what
was awaited, for how long, the last thing seen and, for a server process that exited, its return code and the
tail of its output. `bench/api_bench.py` imports this module too (`python -m bench` runs from the repo root,
so `tests` is importable there); keep it free of pytest imports."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

TAIL_CHARS = 3000


class WaitError(AssertionError):
    """A condition did not become true before its deadline, or the awaited process exited."""


def poll_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.05,
               message: str | Callable[[], str]) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that; after
    `timeout` seconds raise WaitError "timed out after N s waiting for <message>" (`message` is a string, or a
    function called then, to describe the state at the deadline). The predicate always runs at least once, and
    once more after the deadline has passed. Exceptions from the predicate propagate."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            text = message() if callable(message) else message
            raise WaitError(f"timed out after {timeout:g} s waiting for {text}")
        time.sleep(min(interval, deadline - now))


def poll_until_steady(read: Callable[[], T], *, steady_for: float, timeout: float, interval: float = 0.1,
                      message: str) -> T:
    """Read a value every `interval` seconds until it has not changed for `steady_for` seconds, and return it
    (for "whatever was in flight has landed", e.g. a store's count after its writer was killed). WaitError
    when it is still changing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while True:
        now = time.monotonic()
        if now - since >= steady_for:
            return value
        if now >= deadline:
            raise WaitError(f"timed out after {timeout:g} s waiting for {message} (last value {value!r})")
        time.sleep(interval)
        latest = read()
        if latest != value:
            value, since = latest, time.monotonic()


def output_tail(process: subprocess.Popen[Any] | None = None, log: Path | None = None,
                chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a server's output: from its log file when given, else from the process's
    stderr pipe once it has exited (reading a live pipe could block). Empty when there is neither."""
    text = ""
    if log is not None:
        text = Path(log).read_text(encoding="utf-8", errors="replace") if Path(log).exists() else ""
    elif process is not None and process.stderr is not None and process.poll() is not None:
        data = process.stderr.read()
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    return text[-chars:]


def wait_for_http(url: str, *, timeout: float, expect_status: int | Collection[int] | None = 200,
                  process: subprocess.Popen[Any] | None = None, headers: dict[str, str] | None = None,
                  log: Path | None = None, what: str | None = None, interval: float = 0.25,
                  request_timeout: float = 5.0) -> httpx.Response:
    """GET `url` until it answers with `expect_status` (one status, several, or None for any HTTP answer) and
    return that response. Connection errors and other statuses are retried until `timeout` seconds have
    passed. With `process`, its exit ends the wait at once. `log` is the file the process writes its output
    to (quoted in the failure message); `what` names the server in it. Proxies from the environment are
    ignored (the servers are on loopback)."""
    expected: Collection[int] | None = (expect_status,) if isinstance(expect_status, int) else expect_status
    name = what or "server"
    wanted = "any HTTP answer" if expected is None else "HTTP " + "/".join(str(s) for s in expected)
    last = "no attempt yet"
    deadline = time.monotonic() + timeout

    def tail() -> str:
        out = output_tail(process, log)
        return f"\n--- last output of {name}{f' ({log})' if log else ''} ---\n{out}" if out else ""

    def exited() -> str:
        return f"{name} exited with return code {process.returncode}" if process is not None else ""

    with httpx.Client(trust_env=False, headers=headers) as client:
        def probe() -> httpx.Response | None:
            nonlocal last
            if process is not None and process.poll() is not None:
                raise WaitError(f"{exited()} while waiting for {wanted} from {url}; "
                                f"last attempt: {last}{tail()}")
            try:
                response = client.get(url,
                                      timeout=max(0.5, min(request_timeout, deadline - time.monotonic())))
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                return None
            if expected is None or response.status_code in expected:
                return response
            last = f"HTTP {response.status_code}: {response.text[:300]}"
            return None

        def failure() -> str:
            state = f" ({exited()})" if process is not None and process.poll() is not None else ""
            return f"{name}{state} to answer {wanted} at {url}; last attempt: {last}{tail()}"

        return poll_until(probe, timeout=timeout, interval=interval, message=failure)
