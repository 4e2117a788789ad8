"""What keeps a slow LLM from holding every worker of `axiom serve`: the concurrency cap and the request
deadline, and their metrics (with the LLM circuit breaker's gauge; the breaker itself is `axiom.breaker`).

- Cap: at most `service.max_concurrent_requests` /query and /ingest requests are in flight; one more is
  refused at once (before it takes a worker thread) with 503 `overloaded` and `Retry-After:
  service.retry_after_seconds`. The endpoints are async: the slot is taken on the event loop and the work runs
  in the thread pool, whose size `serve` keeps above the cap.
- Deadline: a /query's LLM call (attempts, back-off, Retry-After) ends by `service.request_timeout_seconds`
  after the request reached its endpoint; then the answer is extractive and flagged degraded (see
  `axiom.llm`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from axiom.config_service import ServiceSettings
from axiom.llm import Deadline, llm_deadline
from axiom.observability import REJECTED

log = logging.getLogger("axiom.service")

T = TypeVar("T")
P = ParamSpec("P")

# worker threads beyond the cap, for the sync dependencies (API key check) of other requests
THREAD_HEADROOM = 8


class OverloadedError(HTTPException):
    """503 `overloaded`: the cap is reached."""

    kind = "overloaded"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(503, f"the service is busy: {limit} requests are in flight, the limit "
                              f"(service.max_concurrent_requests); retry after {retry_after}s",
                         headers={"Retry-After": str(retry_after)})


class ConcurrencyLimit:
    """A non-blocking counting gate: `run` refuses at once when `limit` calls are in flight."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._in_flight = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, service: ServiceSettings) -> ConcurrencyLimit:
        return cls(service.max_concurrent_requests, service.retry_after_seconds)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def try_acquire(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    async def run(self, endpoint: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in the thread pool, or OverloadedError when the cap is reached. The slot is
        released when `fn` returns (the wait for the thread is not abandoned on cancellation)."""
        if not self.try_acquire():
            REJECTED.labels(endpoint=endpoint).inc()
            log.info("refused %s: %d requests in flight (service.max_concurrent_requests)", endpoint,
                     self.limit,
                     extra={"endpoint": endpoint, "in_flight": self.limit})
            raise OverloadedError(self.limit, self.retry_after)
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        finally:
            self.release()


@contextlib.contextmanager
def request_deadline(service: ServiceSettings, started: float | None) -> Iterator[Deadline]:
    """The request's LLM deadline, counted from `started` (`time.monotonic()` when the endpoint was
    reached)."""
    seconds = service.request_timeout_seconds
    with llm_deadline(seconds, f"the request deadline of {seconds:g}s (service.request_timeout_seconds)",
                      start=time.monotonic() if started is None else started) as deadline:
        yield deadline
