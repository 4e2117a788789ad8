"""A circuit breaker for the LLM endpoint: thread-safe, one per process (`axiom serve` builds one in its
state; the CLI can build its own with `CircuitBreaker.from_settings`).

- closed: calls go through; each failed call is timestamped, and `failures` of them within `window_seconds`
  open the breaker.
- open: for `open_seconds`, `acquire()` refuses (returns None) and the caller answers without the LLM.
- half_open: then one caller at a time gets a trial permit; its success closes the breaker, its failure opens
  it again for `open_seconds`. A neutral outcome (`Permit.release`: the call failed for a reason that says
  nothing about the endpoint, such as a 400 about that one request) frees the trial for the next caller.

`failures=0` turns it off: every call is admitted and nothing is counted. A call admitted before the breaker
opened that fails afterwards is not counted again; one that succeeds does not close it (only a trial does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from axiom.config import GenerationSettings
from axiom.errors import LLMError

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
SETTINGS_HINT = "generation.breaker_failures / breaker_window_seconds / breaker_open_seconds"


class CircuitOpenError(LLMError):
    """The LLM was not called: its circuit breaker is open (or a trial call is already in flight)."""


class Permit:
    """Leave to make one call; report how it went exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_done", "trial")

    def __init__(self, breaker: CircuitBreaker, trial: bool) -> None:
        self._breaker = breaker
        self.trial = trial
        self._done = False

    def _finish(self) -> bool:
        done, self._done = self._done, True
        return not done

    def success(self) -> None:
        if self._finish():
            self._breaker._on_success(self)

    def failure(self, reason: str) -> None:
        if self._finish():
            self._breaker._on_failure(self, reason)

    def release(self) -> None:
        """Neither success nor failure: the outcome says nothing about the endpoint."""
        if self._finish():
            self._breaker._on_release(self)


class CircuitBreaker:
    def __init__(self, *, failures: int, window_seconds: float, open_seconds: float, name: str = "LLM",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window_seconds = window_seconds
        self.open_seconds = open_seconds
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # times of the failed calls within the window (closed state)
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._last_failure: str | None = None
        self._times_opened = 0

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> CircuitBreaker:
        return cls(failures=gen.breaker_failures, window_seconds=gen.breaker_window_seconds,
                   open_seconds=gen.breaker_open_seconds)

    @property
    def enabled(self) -> bool:
        return self.failures > 0

    def _state(self, now: float) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if now < self._opened_at + self.open_seconds else "half_open"

    @property
    def state(self) -> State:
        with self._lock:
            return self._state(self._clock())

    def acquire(self) -> Permit | None:
        """A permit to call, or None: do not call (open, or half-open with the trial call in flight)."""
        with self._lock:
            if not self.enabled:
                return Permit(self, trial=False)
            state = self._state(self._clock())
            if state == "closed":
                return Permit(self, trial=False)
            if state == "open" or self._trial_in_flight:
                return None
            self._trial_in_flight = True
            log.info("%s circuit half-open: letting one trial call through", self.name)
            return Permit(self, trial=True)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._recent.clear()
        self._times_opened += 1

    def _on_success(self, permit: Permit) -> None:
        with self._lock:
            if not permit.trial:
                return
            self._trial_in_flight = False
            self._opened_at = None
            self._recent.clear()
        log.info("%s circuit closed: the trial call succeeded", self.name)

    def _on_failure(self, permit: Permit, reason: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            self._last_failure = reason
            if permit.trial:
                self._trial_in_flight = False
                self._open(now)
                opened = f"the trial call failed ({reason})"
            elif self._opened_at is not None:
                return  # admitted before it opened: already counted as open
            else:
                self._recent.append(now)
                while self._recent and self._recent[0] <= now - self.window_seconds:
                    self._recent.popleft()
                if len(self._recent) < self.failures:
                    return
                self._open(now)
                opened = f"{self.failures} failed calls within {self.window_seconds:g}s (last: {reason})"
        log.warning("%s circuit open for %gs: %s; answers are degraded without calling it until a trial call "
                    "succeeds", self.name, self.open_seconds, opened)

    def _on_release(self, permit: Permit) -> None:
        if permit.trial:
            with self._lock:
                self._trial_in_flight = False

    def snapshot(self) -> dict[str, Any]:
        """The state as plain JSON (for /health)."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            while self._recent and self._recent[0] <= now - self.window_seconds:
                self._recent.popleft()
            retry_in = (round(max(self._opened_at + self.open_seconds - now, 0.0), 2)
                        if self._opened_at is not None else None)
            return {"state": state, "enabled": self.enabled, "failures_in_window": len(self._recent),
                    "failure_threshold": self.failures, "window_seconds": self.window_seconds,
                    "open_seconds": self.open_seconds, "retry_in_seconds": retry_in,
                    "trial_in_flight": self._trial_in_flight, "times_opened": self._times_opened,
                    "last_failure": self._last_failure}

    def describe(self) -> str:
        """Why calls are refused, for a degraded answer's reason and /health (when the state is not
        closed)."""
        snap = self.snapshot()
        last = f" (last failure: {snap['last_failure']})" if snap["last_failure"] else ""
        if snap["state"] == "open":
            return (f"the {self.name} circuit breaker is open after repeated failures{last}; the "
                    f"{self.name} is not called for {snap['retry_in_seconds']:g}s more, then one trial "
                    f"call decides ({SETTINGS_HINT})")
        if snap["state"] == "half_open":
            return (f"the {self.name} circuit breaker is half-open{last}: "
                    + ("a trial call is in flight" if snap["trial_in_flight"] else "the next call is a trial")
                    + f"; it closes when a trial call succeeds ({SETTINGS_HINT})")
        return f"the {self.name} circuit breaker is closed"
