"""Confidence intervals for the difference of two paired proportions (0/1 metrics: hit rate, recall@1, exact
match), where the percentile bootstrap fails: near the ceiling most resamples hold no discordant pair, so the
bootstrap interval collapses to [0, 0] and covers the true difference in about half of the cases.

`tango_paired_interval` is the one reported (stats.paired_difference_ci): Tango's asymptotic score interval
(Tango 1998, Statistics in Medicine 17:891-908), the differences D whose score statistic for "p_B - p_A = D",
with the nuisance parameter at its maximum likelihood under that D, stays within +-z. It depends on the
discordant pairs and n only, never collapses to a point while the data leave doubt, and stays inside [-1, 1].

`newcombe_paired_interval` is Newcombe's hybrid score interval for paired data ("method 10" of Newcombe 1998,
Statistics in Medicine 17:2635-2650, with his correction of phi): the Wilson intervals of the two marginal
proportions combined by "square and add". Both were checked against the published worked example and by exact
enumeration (tests/evaluation/test_paired_proportions.py); near the ceiling Newcombe's is the more
conservative (exact coverage 0.969-0.971 against Tango's 0.951-0.957 at a rate of 0.95, n 250), so Tango's is
used.

The 2x2 table of n paired 0/1 values (first B, then A, so that the difference is B - A):

                A = 1        A = 0
    B = 1       both         wins          p_B = (both + wins) / n
    B = 0       losses       neither       p_A = (both + losses) / n

Counts may be fractional: a clustered sample enters with every count divided by its design effect (its
effective sample size, as in Donner and Klar's adjustment of score intervals for cluster samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.optimize import brentq


@dataclass(frozen=True)
class PairedTable:
    """Counts of a paired 2x2 table of 0/1 values (see the module docstring)."""

    both: float
    wins: float  # B = 1, A = 0
    losses: float  # B = 0, A = 1
    neither: float

    @property
    def n(self) -> float:
        return self.both + self.wins + self.losses + self.neither

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> PairedTable:
        """The table of two equally long arrays of 0/1 values (A first, then B)."""
        a1, b1 = np.asarray(a) > 0.5, np.asarray(b) > 0.5
        return cls(both=float(np.sum(a1 & b1)), wins=float(np.sum(b1 & ~a1)), losses=float(np.sum(a1 & ~b1)),
                   neither=float(np.sum(~a1 & ~b1)))

    def scaled(self, factor: float) -> PairedTable:
        """Every count multiplied by `factor` (1 / design effect: the effective sample size)."""
        return PairedTable(self.both * factor, self.wins * factor, self.losses * factor,
                           self.neither * factor)


def is_binary(*arrays: np.ndarray) -> bool:
    """True when every value of every array is exactly 0 or 1 (and there is at least one value)."""
    values = [np.asarray(x, dtype=float) for x in arrays]
    return any(v.size for v in values) and all(bool(np.all((v == 0.0) | (v == 1.0))) for v in values)


def wilson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (no continuity correction); (nan, nan) when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def corrected_phi(table: PairedTable) -> float:
    """Newcombe's corrected estimate of the correlation between the two paired proportions: the phi
    coefficient of the table with a continuity correction of n/2 on a positive (ad - bc), and 0 when a margin
    is empty."""
    rows = (table.both + table.wins, table.losses + table.neither)
    cols = (table.both + table.losses, table.wins + table.neither)
    if min(*rows, *cols) <= 0:
        return 0.0
    cross = table.both * table.neither - table.wins * table.losses
    if cross > table.n / 2:
        cross -= table.n / 2
    elif cross >= 0:
        cross = 0.0
    return cross / math.sqrt(rows[0] * rows[1] * cols[0] * cols[1])


def newcombe_paired_interval(table: PairedTable, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10, corrected phi) of p_B - p_A; (nan, nan) for an empty
    table."""
    n = table.n
    if n <= 0:
        return float("nan"), float("nan")
    p_b, p_a = (table.both + table.wins) / n, (table.both + table.losses) / n
    low_b, high_b = wilson_interval(table.both + table.wins, n, level)
    low_a, high_a = wilson_interval(table.both + table.losses, n, level)
    phi = corrected_phi(table)
    delta = math.sqrt(max(0.0, (p_b - low_b) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a)
                          + (high_a - p_a) ** 2))
    epsilon = math.sqrt(max(0.0, (high_b - p_b) ** 2 - 2 * phi * (high_b - p_b) * (p_a - low_a)
                             + (p_a - low_a) ** 2))
    difference = p_b - p_a
    return max(-1.0, difference - delta), min(1.0, difference + epsilon)


def _tango_score(table: PairedTable, difference: float) -> float:
    """Tango's score statistic for p_B - p_A = `difference` (decreasing in it; 0 at the observed
    difference)."""
    wins, losses, n = table.wins, table.losses, table.n
    numerator = wins - losses - n * difference
    if abs(numerator) <= 1e-12 * max(1.0, n):
        return 0.0
    # the restricted maximum-likelihood estimate of P(loss) under the difference: the root of a quadratic
    b = -wins - losses + (2 * n - wins + losses) * difference
    c = -losses * difference * (1 - difference)
    loss_rate = (math.sqrt(max(0.0, b * b - 8 * n * c)) - b) / (4 * n)
    variance = n * (2 * loss_rate + difference * (1 - difference))
    if variance <= 0:
        return math.inf if numerator > 0 else -math.inf
    return numerator / math.sqrt(variance)


def tango_paired_interval(table: PairedTable, level: float = 0.95) -> tuple[float, float]:
    """Tango's asymptotic score interval of p_B - p_A: {D : |score(D)| <= z}, limits by Brent's method;
    (nan, nan) for an empty table."""
    n = table.n
    if n <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    observed = (table.wins - table.losses) / n
    edge = 1.0 - 1e-12
    low = -1.0 if _tango_score(table, -edge) <= z else brentq(
        lambda d: _tango_score(table, d) - z, -edge, observed, xtol=1e-12)
    high = 1.0 if _tango_score(table, edge) >= -z else brentq(
        lambda d: _tango_score(table, d) + z, observed, edge, xtol=1e-12)
    return float(low), float(high)
