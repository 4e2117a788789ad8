"""tests/support/waiting.py's `poll_until_steady`: the value once it stops changing, WaitError while it
changes."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.waiting import WaitError, poll_until_steady


def test_returns_the_value_once_it_has_stopped_changing() -> None:
    reads = itertools.chain([1, 2, 3, 4], itertools.repeat(5))
    started = time.monotonic()
    assert poll_until_steady(lambda: next(reads), steady_for=0.2, timeout=5, interval=0.01, message="n") == 5
    assert time.monotonic() - started >= 0.2  # it waited the steady period after the last change


def test_a_value_that_keeps_changing_times_out_naming_what_was_awaited() -> None:
    counter = itertools.count()
    with pytest.raises(WaitError, match=r"timed out after 0.3 s waiting for the count \(last value \d+\)"):
        poll_until_steady(lambda: next(counter), steady_for=0.2, timeout=0.3, interval=0.01,
                          message="the count")
