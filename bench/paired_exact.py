"""Exact size of McNemar-type tests and exact coverage of paired-proportion intervals for the independent 0/1
designs of bench/verdict_simulation.py, by enumeration of every paired 2x2 table (no simulation error).

`python -m bench.paired_exact [--out FILE]`

Why: near the ceiling (a rate of 0.95 on 50 questions, 0.99 on 50 or 250) the expected number of discordant
pairs is 0.5-2.5, and the simulation's size and coverage targets (0.03-0.07, 0.92-0.97) are missed. This says
whether the core's choices (the sign test's mid-p, Tango's score interval) are at fault or whether no standard
choice could meet them:

- size under the null (wins and losses each at the design's discordance) of the sign test by its
  conventional exact p (McNemar's exact test), by its mid-p (the core's: stats.paired_randomisation_test) and
  by the asymptotic McNemar statistic without continuity correction (the most liberal of the usual ones);
- coverage under the design's effect (losses exceed wins by the drop) of Tango's score interval (the core's),
  Newcombe's hybrid score interval (method 10), Agresti and Min's adjusted Wald interval (2005, a half added
  to every cell) and Bonett and Price's adjusted Wald interval (2012, one added to each discordant cell,
  n + 2).

Writes bench/results/paired_exact.md and prints it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
from scipy.stats import binom

from axiom.evaluation import stats
from axiom.evaluation.paired_proportions import PairedTable, newcombe_paired_interval, tango_paired_interval
from bench.common import REPO
from bench.verdict_simulation import ALPHA, CELLS, Cell, attainable_size

OUT = REPO / "bench" / "results" / "paired_exact.md"
Z = NormalDist().inv_cdf(1.0 - ALPHA / 2.0)
NEGLIGIBLE = 1e-13  # table probabilities below this are left out (their total is far below the digits shown)


def exact_p(losses: int, k: int) -> float:
    larger = max(losses, k - losses)
    return 1.0 if k == 0 or 2 * larger == k else min(1.0, 2.0 * float(binom.sf(larger - 1, k, 0.5)))


def mid_p(losses: int, k: int) -> float:
    """The core's p (stats.paired_randomisation_test) of k discordant pairs, `losses` of them losses."""
    if k == 0:
        return 1.0
    after = np.array([1.0] * (k - losses) + [-1.0] * losses)
    return stats.paired_randomisation_test(np.zeros(k), after, seed=0, label="paired-exact")


def asymptotic_p(losses: int, k: int) -> float:
    if k == 0:
        return 1.0
    return 2.0 * (1.0 - NormalDist().cdf(abs(2 * losses - k) / math.sqrt(k)))


TESTS: dict[str, Callable[[int, int], float]] = {"exact (McNemar)": exact_p, "mid-p (the core's)": mid_p,
                                                  "asymptotic, no correction": asymptotic_p}


def agresti_min(table: PairedTable) -> tuple[float, float]:
    n, wins, losses = table.n + 2.0, table.wins + 0.5, table.losses + 0.5
    difference = (wins - losses) / n
    half = Z * math.sqrt(max(0.0, (wins + losses) - (wins - losses) ** 2 / n)) / n
    return difference - half, difference + half


def bonett_price(table: PairedTable) -> tuple[float, float]:
    n = table.n + 2.0
    wins, losses = (table.wins + 1.0) / n, (table.losses + 1.0) / n
    half = Z * math.sqrt(max(0.0, (wins + losses - (wins - losses) ** 2) / n))
    return wins - losses - half, wins - losses + half


INTERVALS: dict[str, Callable[[PairedTable], tuple[float, float]]] = {
    "Tango (the core's)": tango_paired_interval, "Newcombe": newcombe_paired_interval,
    "Agresti-Min": agresti_min, "Bonett-Price": bonett_price}


def size(cell: Cell, test: Callable[[int, int], float]) -> float:
    """P(p < ALPHA) under the null: k discordant pairs ~ Bin(n, 2 d), losses | k ~ Bin(k, 1/2)."""
    total = 0.0
    for k in range(cell.n + 1):
        weight = float(binom.pmf(k, cell.n, 2.0 * cell.discordant))
        if weight >= NEGLIGIBLE:
            total += weight * sum(float(binom.pmf(x, k, 0.5)) for x in range(k + 1) if test(x, k) < ALPHA)
    return total


def coverage(cell: Cell, interval: Callable[[PairedTable], tuple[float, float]]) -> float:
    """P(the interval holds -drop) under the effect: wins ~ Bin(n, w), losses | wins ~ Bin(n - wins,
    l / (1 - w)) with w = max(0, d - drop / 2), l = w + drop (as bench.verdict_simulation draws them)."""
    w = max(0.0, cell.discordant - cell.drop / 2.0)
    loss = w + cell.drop
    total = 0.0
    for wins in range(cell.n + 1):
        p_wins = float(binom.pmf(wins, cell.n, w))
        if p_wins < NEGLIGIBLE:
            continue
        for losses in range(cell.n - wins + 1):
            p = p_wins * float(binom.pmf(losses, cell.n - wins, loss / (1.0 - w)))
            if p < NEGLIGIBLE:
                continue
            low, high = interval(PairedTable(cell.n - wins - losses, wins, losses, 0.0))
            total += p * (low - 1e-12 <= -cell.drop <= high + 1e-12)
    return total


def report() -> str:
    cells = [c for c in CELLS if c.kind == "binary" and not c.clustered_binary]
    lines = ["Exact size (p < 0.05 under the null) of three sign tests on the discordant pairs, and exact "
             "coverage (95% intervals, under the effect) of four paired-proportion intervals, for the "
             "independent 0/1 designs of bench/verdict_simulation.py, by enumeration of every table "
             "(`python -m bench.paired_exact`). `attainable`: the largest size a valid non-randomised test "
             "can have (verdict_simulation.attainable_size). Targets: size 0.03-0.07, coverage 0.92-0.97.",
             "",
             "| design | expected discordant pairs | attainable | " + " | ".join(f"size: {t}" for t in TESTS)
             + " | " + " | ".join(f"coverage: {i}" for i in INTERVALS) + " |",
             "|---|---|---|" + "---|" * (len(TESTS) + len(INTERVALS))]
    for cell in cells:
        bound = attainable_size(cell) or 0.0
        row = [cell.name, f"{2 * cell.discordant * cell.n:.1f}", f"{bound:.4f}"]
        row += [f"{size(cell, test):.4f}" for test in TESTS.values()]
        row += [f"{coverage(cell, interval):.4f}" for interval in INTERVALS.values()]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = report()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
