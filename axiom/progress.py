"""Progress of long work on stderr (`axiom ingest`, `axiom eval`), and the time each named stage took.

A tqdm bar on a terminal; otherwise (logs, CI, a pipe) a plain line each time another tenth of the work is
done or `EVERY_SECONDS` have passed, e.g. `eval: 26/52 questions answered`; nothing when turned off. Never
stdout:
it carries `--json`. A stage (`Progress.stage`) is announced (a line, or the bar's description) and timed into
`Progress.timings`, whether progress is shown or not.

`progress_mode(progress, stream)`: False is off; True is a bar on a terminal or in a Jupyter kernel
(tqdm.auto), plain lines elsewhere; None (the default of the functions that take `progress`) is the same
except that it is off inside a Jupyter kernel, so a notebook that does not ask for progress gets no output it
did not have before.

tqdm is imported here and in no other module of the package (lazily: only when a bar is drawn).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO, TypeVar

Mode = Literal["bar", "lines"] | None
T = TypeVar("T")

EVERY_SECONDS = 10.0  # plain lines: at least this often while the count moves (and at every tenth)
BAR_REFRESH_SECONDS = 0.2  # a bar whose total grows is redrawn at most this often


def _in_kernel(stream: TextIO) -> bool:
    """Is `stream` a Jupyter kernel's output stream (ipykernel.iostream.OutStream)?"""
    return type(stream).__module__.split(".")[0] == "ipykernel"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
        return False


def progress_mode(progress: bool | None, stream: TextIO) -> Mode:
    """How progress is shown on `stream`: "bar", "lines" or None (not at all). See the module docstring."""
    if progress is False:
        return None
    if _in_kernel(stream):
        return "bar" if progress else None
    return "bar" if _is_terminal(stream) else "lines"


class Progress:
    """A count of `unit`s towards a total that may grow (`add_total`), shown as `<label>: n/total <unit>s
    <verb>` (e.g. `Progress("eval", unit="question", verb="answered")`: `eval: 26/52 questions answered`).

    `enabled` is the `progress` argument of the caller (see `progress_mode`); `stream` defaults to sys.stderr
    at the time of the call. Use as a context manager, or call `close()`."""

    def __init__(self, label: str, *, unit: str, verb: str, enabled: bool | None = True,
                 stream: TextIO | None = None, every_seconds: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.label, self.unit, self.verb = label, unit, verb
        self.stream = stream if stream is not None else sys.stderr
        self.mode = progress_mode(enabled, self.stream)
        self._stage_lines = self.mode == "lines" or (self.mode == "bar" and not _in_kernel(self.stream))
        self.total = 0
        self.n = 0
        self.timings: dict[str, float] = {}
        self._clock = clock
        self._every = every_seconds
        self._text: str | None = None
        self._bar: Any = None  # boundary: tqdm (untyped)
        self._printed_n: int | None = None
        self._printed_tenth = 0
        self._printed_at = self._redrawn_at = clock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is being done
    # -----------------------------------------------------------------------------------
    def announce(self, text: str) -> None:
        """The current stage: a line of its own, or the bar's description once there is a bar."""
        if text == self._text:
            return
        self._text = text
        if self._bar is not None:
            self._bar.set_description_str(f"{self.label}: {text}")
        elif self._stage_lines:  # (in a notebook, the stage shows in the bar's description only)
            print(f"{self.label}: {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, key: str, text: str) -> Iterator[Progress]:
        """Announce `text`, and add the seconds the block takes to `timings[key]`."""
        self.announce(text)
        t0 = self._clock()
        try:
            yield self
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + self._clock() - t0

    # -- how much is done
    # -------------------------------------------------------------------------------------
    def add_total(self, n: int) -> None:
        self.total += n
        if self.mode == "bar" and n:
            bar = self._ensure_bar()
            bar.total = self.total
            now = self._clock()
            if now - self._redrawn_at >= BAR_REFRESH_SECONDS:
                self._redrawn_at = now
                bar.refresh()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.mode == "bar":
            self._ensure_bar().update(n)
        elif self.mode == "lines":
            now = self._clock()
            tenth = self.n * 10 // self.total if self.total else 0
            if self.n >= self.total or tenth > self._printed_tenth or now - self._printed_at >= self._every:
                self._line(now, tenth)

    def each(self, items: Iterable[T], total: int) -> Iterator[T]:
        """`items`, adding `total` to the total first and counting each one done when the next is asked
        for."""
        self.add_total(total)
        for item in items:
            yield item
            self.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.total and self._printed_n != self.n:
            self._line(self._clock(), self.n * 10 // self.total)

    def _line(self, now: float, tenth: int) -> None:
        print(f"{self.label}: {self.n}/{self.total} {self.unit}s {self.verb}", file=self.stream, flush=True)
        self._printed_n, self._printed_tenth, self._printed_at = self.n, tenth, now

    def _ensure_bar(self) -> Any:  # boundary: tqdm (untyped)
        if self._bar is None:
            from tqdm.auto import tqdm

            desc = self.label if self._text is None else f"{self.label}: {self._text}"
            self._bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=self.unit, file=self.stream,
                             dynamic_ncols=True)
        return self._bar
