"""bench/paired_exact.py: the exact size and coverage that say whether the 0/1 designs near the ceiling can
meet the simulation's targets at all (issue 27). Exact computations: the numbers are checked, not only the
shape."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import paired_exact, verdict_simulation

CELLS = {c.name: c for c in verdict_simulation.CELLS}


def test_the_three_tests_by_hand() -> None:
    # 5 discordant pairs, all losses: conventional 2/32, mid-p (the core's) 1/32, asymptotic z = sqrt(5)
    assert paired_exact.exact_p(5, 5) == pytest.approx(2 / 32)
    assert paired_exact.mid_p(5, 5) == pytest.approx(1 / 32)
    assert paired_exact.asymptotic_p(5, 5) == pytest.approx(math.erfc(math.sqrt(5) / math.sqrt(2)))
    assert paired_exact.mid_p(0, 0) == paired_exact.exact_p(0, 0) == 1.0


def test_the_mid_p_meets_the_size_target_where_a_valid_test_can() -> None:
    cell = CELLS["0/1 at 0.95, n 250"]
    exact, mid = paired_exact.size(cell, paired_exact.exact_p), paired_exact.size(cell, paired_exact.mid_p)
    assert exact < 0.03 <= mid <= 0.07  # McNemar's exact test misses the target, its mid-p does not
    assert verdict_simulation.attainable_size(cell) >= 0.03


def test_near_the_ceiling_no_valid_test_can() -> None:
    # 0.5-2.5 expected discordant pairs: a valid test rejects with at most alpha * P(k >= 5)
    for name in ("0/1 at 0.95, n 50", "0/1 at 0.99, n 50", "0/1 at 0.99, n 250",
                 "0/1 at 0.95, 52 in 11 groups"):
        bound = verdict_simulation.attainable_size(CELLS[name])
        assert bound is not None and bound < 0.03, name
    # the bound by hand for n 50 at 0.95: k ~ Bin(50, 0.04)
    by_hand = 0.05 * (1 - sum(math.comb(50, k) * 0.04 ** k * 0.96 ** (50 - k) for k in range(5)))
    assert verdict_simulation.attainable_size(CELLS["0/1 at 0.95, n 50"]) == pytest.approx(by_hand)


def test_the_report(tmp_path: Path) -> None:
    out = tmp_path / "exact.md"
    assert paired_exact.main(["--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.count("\n| 0/1 at ") == 4 and "coverage: Tango (the core's)" in text
