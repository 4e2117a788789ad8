"""`FakeClock`: a clock a test moves by hand (`clock.now += 11`), for code that takes a `clock=` callable (the
circuit breaker, the query cache, progress lines, the endpoint client's deadlines) instead of reading the time
itself: no sleeping, and the same result on a loaded machine."""

from __future__ import annotations


class FakeClock:
    """Callable like `time.monotonic`: returns `now`, which only the test changes."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
