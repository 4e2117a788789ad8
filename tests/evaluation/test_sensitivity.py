"""The MDE is true for the test actually used: a drop of the printed size, injected into fresh data drawn like
the pilot, is detected by stats.paired_randomisation_test (the real test) at the corrected level in about 80%
of simulated comparisons; "too few questions to tell" follows the non-tied pairs; the Monte Carlo p-value does
not flip a decision between seeds near a Holm threshold."""

from __future__ import annotations

import math
import time
from statistics import NormalDist

import numpy as np
import pytest

from axiom.evaluation import sensitivity, stats
from axiom.evaluation.clusters import Clusters
from axiom.evaluation.verdict import NO_CHANGE, TOO_FEW, StatsConfig, compare_metrics, verdict_line

ALPHA, FAMILY, POWER = 0.05, 20, 0.8
LEVEL = ALPHA / FAMILY
SIMULATIONS = 250


def _detected(a: np.ndarray, b: np.ndarray, seed: int) -> bool:
    """The real test rejects at the corrected level, in the direction of a drop."""
    p = stats.paired_randomisation_test(a, b, seed=seed, label="power", permutations=4000)
    return p <= LEVEL and float(np.sum(b - a)) < 0


def test_binary_mde_has_the_power_it_claims() -> None:
    """recall@1 near the ceiling (0.992, n 250, as PubMedQA): the exact sign-test MDE, injected as extra
    losses on top of the pilot's discordance, is detected in 65-95% of 250 comparisons by the real test."""
    rng = np.random.default_rng(11)
    n, base = 250, 0.992
    a = (rng.random(n) < base).astype(float)
    b = a.copy()
    b[:2] = 1.0 - b[:2]  # a pilot with a little discordance
    found = sensitivity.detectable_change(a, b, level=LEVEL, power=POWER, seed=42)
    assert found.method == sensitivity.SIGN_TEST and found.untied == int(np.sum(a != b))
    rate = found.untied / n
    # the old planning floor claimed a far smaller drop than the exact test can see
    old = stats.minimum_detectable_effect(stats.planning_sd(a, b), n, alpha=ALPHA, family=FAMILY, power=POWER)
    assert found.mde > 1.5 * old
    assert sensitivity.binary_power(found.mde, n, rate, LEVEL) == pytest.approx(POWER, abs=0.01)
    hits = 0
    for _ in range(SIMULATIONS):
        x = (rng.random(n) < base).astype(float)
        y = x.copy()
        u = rng.random(n)
        # no change's discordance + the drop
        win, loss = u < rate / 2, (u >= rate / 2) & (u < rate + found.mde)
        x[win], y[win] = 0.0, 1.0
        x[loss], y[loss] = 1.0, 0.0
        hits += _detected(x, y, int(rng.integers(1 << 30)))
    assert 0.65 <= hits / SIMULATIONS <= 0.95, hits


@pytest.mark.parametrize("changed", [1.0, 0.3])
def test_simulated_mde_has_the_power_it_claims(changed: float) -> None:
    """Continuous differences (all questions differ, or 30% of them, the rest tied): a drop equal to the MDE,
    injected as questions losing their value on top of the no-change differences, is detected in 65-95% of
    250 comparisons by the real test; a drop of `spread` on every question too."""
    rng = np.random.default_rng(5)
    n = 150
    a = rng.beta(6, 4, n)
    moved = rng.random(n) < changed
    b = a + np.where(moved, rng.normal(0.0, 0.08, n), 0.0)
    found = sensitivity.detectable_change(a, b, level=LEVEL, power=POWER, seed=42)
    assert found.method == sensitivity.SIMULATED and found.untied == int(moved.sum())
    assert found.spread < found.mde  # a change spread over every question is the easier one to see
    rate, share = found.untied / n, found.mde / float(np.mean(a))
    pilot = (b - a)[moved]
    centred = pilot - pilot.mean()
    hits = spread_hits = 0
    for _ in range(SIMULATIONS):
        x = rng.beta(6, 4, n)
        noise = np.where(rng.random(n) < rate, rng.choice(centred, n), 0.0)
        corrupted = rng.random(n) < share
        hits += _detected(x, x + noise - np.where(corrupted, x, 0.0), int(rng.integers(1 << 30)))
        spread_hits += _detected(x, x + noise - found.spread, int(rng.integers(1 << 30)))
    assert 0.65 <= hits / SIMULATIONS <= 0.95, hits
    assert 0.65 <= spread_hits / SIMULATIONS <= 0.95, spread_hits


def test_the_mde_of_repeated_runs_keeps_its_model_and_carries_the_run_term() -> None:
    """Repeated runs whose means also move from run to run (tau^2): the MDE is the same model of a regression
    (questions losing their value) with the run term in the test, so a drop of the printed size is detected
    in 65-95% of comparisons by the real run-aware test. The normal formula it replaces (sd^2 + n tau^2, a
    change spread over every question) printed a third of it, which such a drop reaches far less often."""
    from axiom.evaluation.repeats import paired_test_with_runs

    rng = np.random.default_rng(11)
    n, tau2 = 250, 0.004 ** 2
    a = rng.beta(6, 4, n)
    b = a + rng.normal(0.0, 0.05, n)
    found = sensitivity.detectable_change(a, b, level=LEVEL, power=POWER, seed=42, run_variance=tau2)
    without = sensitivity.detectable_change(a, b, level=LEVEL, power=POWER, seed=42)
    assert found.mde > without.mde and found.spread > without.spread
    old = stats.minimum_detectable_effect(math.sqrt(float(np.var(b - a, ddof=1)) + n * tau2), n,
                                          alpha=LEVEL, family=1, power=POWER)
    assert old < found.mde / 2
    terms = [(tau2 / 2, 10_000), (tau2 / 2, 10_000)]  # the run term, its degrees of freedom many
    share = found.mde / float(np.mean(a))
    hits = old_hits = 0
    for _ in range(SIMULATIONS):
        x = rng.beta(6, 4, n)
        noise = rng.normal(0.0, 0.05, n) + rng.normal(0.0, math.sqrt(tau2))  # one run effect per comparison
        for size, counter in ((share, "new"), (old / float(np.mean(a)), "old")):
            lost = np.where(rng.random(n) < size, x, 0.0)
            diff = noise - lost
            p = paired_test_with_runs(diff, terms, seed=int(rng.integers(1 << 30)), label="m",
                                      permutations=2000)
            detected = p <= LEVEL and float(diff.sum()) < 0
            if counter == "new":
                hits += detected
            else:
                old_hits += detected
    assert 0.65 <= hits / SIMULATIONS <= 0.95, hits
    assert old_hits / SIMULATIONS < 0.3, old_hits


def test_correlated_runs_get_the_mde_of_their_differences() -> None:
    """Two runs correlating at 0.9: the difference sd is 0.45 of the metric's, and so is the MDE of a change
    spread over every question, where the planning floor (the metric's own sd) overstated it about twofold;
    questions losing their value are harder to see, and that MDE stays below the floor."""
    rng = np.random.default_rng(3)
    n = 250
    a = rng.normal(0.5, 0.15, n)
    b = 0.5 + 0.9 * (a - 0.5) + math.sqrt(1 - 0.81) * rng.normal(0.0, 0.15, n)
    found = sensitivity.detectable_change(a, b, level=LEVEL, power=POWER, seed=42)
    floor = stats.minimum_detectable_effect(stats.planning_sd(a, b), n, alpha=ALPHA, family=FAMILY,
                                            power=POWER)
    z = NormalDist().inv_cdf(1 - LEVEL / 2) + NormalDist().inv_cdf(POWER)
    assert found.spread == pytest.approx(z * float(np.std(b - a, ddof=1)) / math.sqrt(n), rel=0.1)
    assert found.spread < 0.6 * floor and found.spread < found.mde < floor


def test_no_variance_uses_the_planning_assumption() -> None:
    """Identical runs: the planning assumption (two runs correlating at 0.5), simulated for the sign-flip
    test. For a metric spread over its range it is about the normal planning floor; for one near its ceiling
    (most values 1, a few far below, as ndcg@10 at 0.996) the floor claimed far too much."""
    a = np.linspace(0.1, 0.9, 200)
    found = sensitivity.detectable_change(a, a.copy(), level=LEVEL, power=POWER, seed=42)
    floor = stats.minimum_detectable_effect(stats.planning_sd(a, a), 200, alpha=ALPHA, family=FAMILY,
                                            power=POWER)
    assert found.method == sensitivity.PLANNING and found.untied == 0
    assert found.spread == pytest.approx(floor, rel=0.15) and found.mde > found.spread
    ceiling = np.ones(250)
    ceiling[:3] = [0.5, 0.63, 0.39]
    found = sensitivity.detectable_change(ceiling, ceiling.copy(), level=LEVEL, power=POWER, seed=42)
    floor = stats.minimum_detectable_effect(stats.planning_sd(ceiling, ceiling), 250, alpha=ALPHA,
                                            family=FAMILY,
                                            power=POWER)
    assert found.method == sensitivity.PLANNING and (math.isnan(found.mde) or found.mde > 2 * floor)
    constant = np.full(50, 0.7)  # no variance, but its questions can still lose their value
    found = sensitivity.detectable_change(constant, constant, level=LEVEL, power=POWER, seed=42)
    assert found.method == sensitivity.PLANNING and 0 < found.mde < 0.7
    nothing = np.zeros(50)  # nothing to lose: no drop to detect
    assert math.isnan(sensitivity.detectable_change(nothing, nothing, level=LEVEL, power=POWER, seed=42).mde)


def test_grouped_mde_counts_groups() -> None:
    """With 10 questions in each of 20 groups the test flips 20 group sums: the MDE is computed on them and is
    larger than the one that treats the 200 questions as independent."""
    rng = np.random.default_rng(8)
    group_effect = np.repeat(rng.normal(0.0, 0.05, 20), 10)
    a = rng.normal(0.5, 0.1, 200)
    b = a + group_effect + rng.normal(0.0, 0.02, 200)
    ids = [f"q{i}" for i in range(200)]
    clusters = Clusters.of(ids, {q: f"doc{i // 10}" for i, q in enumerate(ids)})
    grouped = sensitivity.detectable_change(a, b, level=0.05, power=POWER, seed=42, clusters=clusters)
    alone = sensitivity.detectable_change(a, b, level=0.05, power=POWER, seed=42)
    assert grouped.units == 20 and alone.units == 200
    assert grouped.mde > 2 * alone.mde


def test_too_few_is_decided_from_the_untied_pairs() -> None:
    """250 questions, 8 of them changed, all 8 worse: the mid-p 1 / 2**8 > 0.05 / 20, no outcome could be
    significant after correction, so 'too few questions to tell', where n alone (250) passed the old rule;
    with 0 changed the runs are identical: no detectable change."""
    assert sensitivity.smallest_p(8) == pytest.approx(1 / 256)
    assert (
        sensitivity.too_few(8, LEVEL)
        and not sensitivity.too_few(9, LEVEL)
        and not sensitivity.too_few(0, LEVEL)
    )
    ids = [f"q{i}" for i in range(250)]
    # m0 at 1.0 everywhere; the others vary (so they are neither constants nor aliases of each other: all 20
    # are counted, family.py) and are identical in both runs
    rng = np.random.default_rng(7)
    a = {"m0": dict.fromkeys(ids, 1.0)} | {f"m{k}": dict(zip(ids, rng.random(250).tolist(), strict=True))
                                          for k in range(1, FAMILY)}
    b = {name: dict(values) for name, values in a.items()}
    for qid in ids[:8]:
        b["m0"][qid] = 0.0
    # m1 the primary: m0 is one of 19 counted secondaries, tested two-sided at alpha/19 (a primary's one-sided
    # drop test could reach 1/2**9; test_outcomes covers that)
    out = compare_metrics(a, b, config=StatsConfig(alpha=ALPHA), primaries=["m1"])
    assert out["m0"].untied == 8 and out["m0"].smallest_p == pytest.approx(1 / 256)
    assert out["m0"].verdict == TOO_FEW and out["m1"].verdict == NO_CHANGE
    assert out["m0"].mde_method == sensitivity.SIGN_TEST
    line = verdict_line(out)
    assert "too few questions to tell on m0 (n 250)" in line
    assert f"this set detects a change of {out['m0'].mde:.3f} in m0 with 80% power (n 250)" in line


def test_monte_carlo_p_settles_its_side_of_the_threshold() -> None:
    """Differences whose true p is near alpha / 20 (not at a threshold): the old 10,000 draws give different
    decisions on different seeds; with the thresholds the draws continue until the side is settled, and every
    seed agrees. The sign test (its exact mid-p) is used for equal-size differences (0/1 metrics) at any
    count."""
    rng = np.random.default_rng(2)
    base = rng.exponential(1.0, 60)
    shift = _shift_for_p(base, 0.0021)
    diff = base - base.mean() + shift
    levels = [ALPHA / j for j in range(1, FAMILY + 1)]
    reference = stats.paired_randomisation_test(np.zeros(60), diff, seed=0, label="x", permutations=200_000)
    assert 0.0017 < reference < 0.0024  # near alpha / 20 = 0.0025 and alpha / 21 is not a threshold here
    old = {stats.paired_randomisation_test(np.zeros(60), diff, seed=s, label="x") <= LEVEL for s in range(40)}
    assert old == {True, False}  # 10,000 draws: the decision depends on the seed
    started = time.perf_counter()
    new = {stats.paired_randomisation_test(np.zeros(60), diff, seed=s, label="x", thresholds=levels) <= LEVEL
           for s in range(8)}
    assert new == {True}
    assert time.perf_counter() - started < 20
    ones = np.array([1.0] * 30 + [-1.0] * 8)
    exact = stats.paired_randomisation_test(np.zeros(38), ones, seed=1, label="y")
    assert exact == pytest.approx(2 * (sum(math.comb(38, k) for k in range(31, 39)) + math.comb(38, 30) / 2)
                                  / 2 ** 38)


def _shift_for_p(base: np.ndarray, target: float) -> float:
    """The shift of the centred values at which the sign-flip test (100,000 draws, one seed) gives p =
    target."""
    centred = base - base.mean()
    zeros = np.zeros(base.size)
    low, high = 0.0, 2.0
    for _ in range(14):
        mid = (low + high) / 2
        p = stats.paired_randomisation_test(zeros, centred + mid, seed=99, label="find", permutations=100_000)
        low, high = (mid, high) if p > target else (low, mid)
    return high


def test_the_critical_count_of_a_0_1_metric_is_where_the_real_test_rejects() -> None:
    """For every count k of discordant pairs, the fewest losses the MDE's power counts as a rejection
    (`_critical_losses`) is exactly where the real test's p (its mid-p) first reaches the level, and k + 1 (no
    outcome) when none does."""
    for level in (0.05, 0.0025):
        counts = np.arange(0, 41)
        critical = sensitivity._critical_losses(counts, level)
        for k, c in zip(counts.tolist(), critical.tolist(), strict=True):
            rejecting = [x for x in range(k + 1) if 2 * x > k and stats.paired_randomisation_test(
                np.zeros(k), np.array([-1.0] * x + [1.0] * (k - x)), seed=0, label="c") <= level]
            assert c == (min(rejecting) if rejecting else k + 1), (level, k)
