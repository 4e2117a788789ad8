"""Paired score intervals for 0/1 metrics (Tango's, reported; Newcombe's, the alternative): the published
worked example, an independent check of the Wilson intervals, exact coverage by enumeration, and their use by
compare_metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multinomial
from statsmodels.stats.proportion import proportion_confint

from axiom.evaluation import stats
from axiom.evaluation.paired_proportions import (
    PairedTable,
    corrected_phi,
    is_binary,
    newcombe_paired_interval,
    tango_paired_interval,
    wilson_interval,
)
from axiom.evaluation.verdict import StatsConfig, compare_metrics

FAST = StatsConfig(permutations=2000, bootstrap_samples=500)


def test_the_published_worked_example() -> None:
    # Fagerland, Lydersen and Laake, Statistical Analysis of Contingency Tables (2017), chapter 8: complete
    # response before and after consolidation therapy (Cavo et al. 2012), the table [[59, 6], [16, 80]];
    # Newcombe's square-and-add interval (method 10): -0.0621 (95% CI -0.1186 to -0.0046)
    table = PairedTable(both=59, wins=6, losses=16, neither=80)
    low, high = newcombe_paired_interval(table)
    assert (table.wins - table.losses) / table.n == pytest.approx(-0.0621, abs=5e-5)
    assert low == pytest.approx(-0.1186, abs=5e-5)
    assert high == pytest.approx(-0.0046, abs=5e-5)
    # the same book, the same table: Tango's asymptotic score interval -0.1240 to -0.0054
    low, high = tango_paired_interval(table)
    assert low == pytest.approx(-0.1240, abs=5e-5)
    assert high == pytest.approx(-0.0054, abs=5e-5)


def test_the_wilson_intervals_match_statsmodels() -> None:
    for successes, n in ((0, 20), (3, 20), (19, 20), (20, 20), (237, 250), (125, 250)):
        expected = proportion_confint(successes, n, alpha=0.05, method="wilson")
        assert wilson_interval(successes, n) == pytest.approx(expected, abs=1e-12)


def test_the_phi_correction() -> None:
    # ad - bc = 59*80 - 6*16 = 4624 > n/2: corrected by n/2 = 80.5
    table = PairedTable(both=59, wins=6, losses=16, neither=80)
    assert corrected_phi(table) == pytest.approx((4624 - 80.5) / math.sqrt(65 * 96 * 75 * 86))
    assert corrected_phi(PairedTable(both=5, wins=1, losses=1, neither=1)) == 0.0  # ad - bc = 4 <= n/2 = 4
    assert corrected_phi(PairedTable(both=10, wins=0, losses=0, neither=0)) == 0.0  # an empty margin
    assert corrected_phi(PairedTable(both=1, wins=5, losses=5, neither=1)) < 0  # negative: not corrected


def _exact_coverage(interval, n: int, probs: tuple[float, float, float, float]) -> float:  # noqa: ANN001
    """The probability that `interval` holds the true difference, summed over every table of n pairs."""
    true = probs[1] - probs[2]
    covered = 0.0
    for both in range(n + 1):
        for wins in range(n + 1 - both):
            for losses in range(n + 1 - both - wins):
                neither = n - both - wins - losses
                low, high = interval(PairedTable(both, wins, losses, neither))
                if low <= true <= high:
                    covered += multinomial.pmf([both, wins, losses, neither], n, probs)
    return covered


@pytest.mark.parametrize("probs", [(0.4, 0.1, 0.1, 0.4), (0.9, 0.03, 0.05, 0.02), (0.93, 0.0, 0.02, 0.05)])
def test_exact_coverage_by_enumerating_every_table(probs: tuple[float, float, float, float]) -> None:
    """Over every table of n = 30 pairs: at least the nominal 95% less a little for both intervals, Tango's
    never wider in coverage than Newcombe's (which is the more conservative near the ceiling)."""
    tango = _exact_coverage(tango_paired_interval, 30, probs)
    newcombe = _exact_coverage(newcombe_paired_interval, 30, probs)
    assert 0.93 <= tango <= 1.0 and 0.93 <= newcombe <= 1.0
    assert tango <= newcombe + 1e-9


def test_no_collapse_near_the_ceiling_and_bounds() -> None:
    for interval in (tango_paired_interval, newcombe_paired_interval):
        low, high = interval(PairedTable(both=245, wins=0, losses=0, neither=0))
        # 245 ties still leave doubt, unlike the bootstrap's [0, 0]
        assert low < 0 < high and high - low > 0.02
        low, high = interval(PairedTable(both=0, wins=20, losses=0, neither=0))
        assert -1.0 <= low <= high <= 1.0 and low > 0.5
        assert interval(PairedTable(both=0, wins=0, losses=20, neither=0))[1] < -0.5
        assert all(math.isnan(x) for x in interval(PairedTable(0, 0, 0, 0)))
        # scaling every count down (a design effect above 1) widens the interval around the same difference
        table = PairedTable(both=230, wins=2, losses=8, neither=10)
        narrow, wide = interval(table), interval(table.scaled(1 / 2.5))
        assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_is_binary() -> None:
    assert is_binary(np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]))
    assert not is_binary(np.array([0.0, 1.0]), np.array([0.5, 1.0]))
    assert not is_binary(np.array([]), np.array([]))


def test_compare_metrics_uses_it_for_0_1_metrics_only() -> None:
    rng = np.random.default_rng(5)
    ids = [f"q{i}" for i in range(50)]
    a = (rng.random(50) < 0.96).astype(float)
    b = a.copy()
    b[np.flatnonzero(a)[:1]] = 0.0  # one loss near the ceiling: the bootstrap often gives [0, 0] here
    cont_a = rng.random(50)
    per_a = {"hit_rate@1": dict(zip(ids, a, strict=True)), "ndcg@10": dict(zip(ids, cont_a, strict=True))}
    per_b = {"hit_rate@1": dict(zip(ids, b, strict=True)),
             "ndcg@10": dict(zip(ids, cont_a + 0.01, strict=True))}
    out = compare_metrics(per_a, per_b, config=FAST)
    hit = out["hit_rate@1"]
    assert hit.interval == stats.TANGO
    assert [pytest.approx(x) for x in tango_paired_interval(PairedTable.of(a, b))] == list(hit.ci)
    assert hit.ci[0] < hit.delta < hit.ci[1] and hit.ci[1] > 0
    assert out["ndcg@10"].interval == stats.BOOTSTRAP
    # the continuous interval is the same percentile bootstrap as before (bit for bit)
    expected = stats.paired_bootstrap_ci(np.full(50, 0.01) + cont_a - cont_a, samples=500, seed=42,
                                         label="ndcg@10")
    assert list(out["ndcg@10"].ci) == [pytest.approx(expected[0]), pytest.approx(expected[1])]
