"""The statistics core: bootstrap intervals, the paired sign-flip test, Holm, the MDE and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from axiom.evaluation import stats
from axiom.evaluation.stats import bootstrap_ci, holm, paired_randomisation_test
from axiom.evaluation.verdict import (
    BETTER,
    NO_CHANGE,
    TOO_FEW,
    WORSE,
    StatsConfig,
    compare_metrics,
    verdict_line,
)

FAST = StatsConfig(permutations=2000, bootstrap_samples=500)


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean() -> None:
    values = list(np.random.default_rng(0).random(50))
    a = bootstrap_ci(values, samples=500, seed=42, label="m")
    assert a == bootstrap_ci(values, samples=500, seed=42, label="m")
    assert a[0] < float(np.mean(values)) < a[1]
    assert bootstrap_ci([0.5, 0.5], samples=100, seed=1, label="m") == (0.5, 0.5)
    assert all(np.isnan(bootstrap_ci([float("nan")], samples=10, seed=1, label="m")))


def test_paired_test() -> None:
    a = [0.5] * 30
    assert paired_randomisation_test(a, a, seed=1, label="m") == 1.0
    better = [0.9] * 30
    assert paired_randomisation_test(a, better, seed=1, label="m") < 0.001
    # exact for small n: 4 positive differences -> the mid-p 2 * (0 + (1/16) / 2) = 1/16 (the conventional p:
    # 2/16)
    assert paired_randomisation_test([0, 0, 0, 0], [1, 1, 1, 1], seed=1, label="m") == pytest.approx(1 / 16)
    # continuous, enumerated: the observed |sum| and its mirror count half: 2/16 - 1/16 of the conventional
    assert paired_randomisation_test([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.45], seed=1, label="m") == pytest.approx(
        1 / 16)
    # |sum| 0.15: of the 16 |sums| 12 are beyond it, 2 level with it (the observed and its mirror)
    mixed = paired_randomisation_test([0, 0, 0, 0], [0.1, 0.2, 0.3, -0.45], seed=1, label="m")
    assert mixed == pytest.approx((12 + 1) / 16)
    noisy = list(np.random.default_rng(3).normal(0.5, 0.2, 40))
    noise = np.random.default_rng(4).normal(0, 0.2, 40)
    shifted = [v + e for v, e in zip(noisy, noise, strict=True)]
    assert paired_randomisation_test(noisy, shifted, seed=1, label="m") > 0.01


def test_ties_carry_no_information_and_are_enumerated_exactly() -> None:
    # 50 ties and 4 changes in one direction: the exact mid-p over the 4 changes is 1/16, not a Monte Carlo
    # estimate
    a = [0.5] * 50 + [0.0] * 4
    b = [0.5] * 50 + [1.0] * 4
    assert paired_randomisation_test(a, b, seed=1, label="m") == pytest.approx(1 / 16)
    # float noise from re-computing a metric (as a rounded baseline once gave) is a tie, not a loss
    assert paired_randomisation_test([0.6309297535714574] * 20, [0.6309297535714575] * 20, seed=1,
                                     label="m") == 1.0


def test_holm_matches_the_hand_computation() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    assert adjusted["a"] == pytest.approx(0.03)
    assert adjusted["c"] == pytest.approx(0.06)  # 2 x 0.03
    assert adjusted["b"] == pytest.approx(0.06)  # max(0.06, 1 x 0.04): monotone
    assert math.isnan(adjusted["d"])
    assert holm({"a": 0.9, "b": 0.8})["a"] == 1.0  # capped


def test_minimum_detectable_effect_and_minimum_questions() -> None:
    # (z(1 - 0.05/(2*4)) + z(0.8)) * sd / sqrt(n)
    mde = stats.minimum_detectable_effect(0.3, 100, alpha=0.05, family=4, power=0.8)
    assert mde == pytest.approx((2.4977 + 0.8416) * 0.3 / 10, rel=1e-3)
    assert math.isnan(stats.minimum_detectable_effect(0.0, 100, alpha=0.05, family=4, power=0.8))
    # the mid-p of a unanimous change: 1 / 2**n <= 0.05 / 18  <=>  n >= 9
    assert stats.min_questions(alpha=0.05, family=18) == 9
    assert stats.min_questions(alpha=0.05, family=1) == 5


def test_the_fewest_units_rule_is_the_real_tests_unanimous_p() -> None:
    """`min_untied` is where the core's own p of a unanimous change first reaches the level; the two rules
    that ask it (the family's `min_questions`, the one-sided `enough_units`) follow the real test too."""
    from axiom.evaluation.outcomes import enough_units

    for level in (0.5, 0.1, 0.05, 0.05 / 3, 0.01, 0.05 / 18, 1e-4):
        k = stats.min_untied(level)
        unanimous = [paired_randomisation_test(np.ones(n), np.zeros(n), seed=0, label="unanimous")
                     for n in (k - 1, k) if n > 0]
        assert unanimous[-1] <= level + 1e-12, (level, k, unanimous)
        if k > 1:
            assert unanimous[0] > level, (level, k, unanimous)
    for family in (1, 4, 18):
        assert stats.min_questions(alpha=0.05, family=family) == stats.min_untied(0.05 / family)
    for primaries in (1, 2, 5):  # one-sided: the mid-p of a unanimous drop is 1 / 2**(units + 1)
        first = next(u for u in range(1, 40) if 0.5 ** (u + 1) <= 0.05 / primaries + 1e-12)
        assert enough_units(first, alpha=0.05, primaries=primaries)
        assert not enough_units(first - 1, alpha=0.05, primaries=primaries)


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(rng.normal(0.6, 0.2, n), 0, 1)


def test_verdicts() -> None:
    rng = np.random.default_rng(7)
    n = 120
    base = {m: _values(rng, n) for m in ("ndcg@10", "chrf", "rouge_l")}
    ids = [f"q{i}" for i in range(n)]
    a = {m: dict(zip(ids, v.tolist(), strict=True)) for m, v in base.items()}
    b = {"ndcg@10": {i: v - 0.1 for i, v in a["ndcg@10"].items()},          # worse on every question
         "chrf": {i: v + 0.05 + rng.normal(0, 0.02) for i, v in a["chrf"].items()},  # better
         "rouge_l": {i: v + (0.05 if k % 2 else -0.05)                      # changes that cancel out
                     for k, (i, v) in enumerate(a["rouge_l"].items())}}
    out = compare_metrics(a, b, config=FAST)
    assert out["ndcg@10"].verdict == WORSE and out["ndcg@10"].delta == pytest.approx(-0.1)
    assert out["ndcg@10"].ci[0] <= -0.1 <= out["ndcg@10"].ci[1]
    assert out["chrf"].verdict == BETTER
    assert out["rouge_l"].verdict == NO_CHANGE
    for entry in out.values():
        assert entry.n == n and entry.p_adj >= entry.p and entry.mde > 0
    # ndcg@10 is the one default primary compared: tested one-sided for a drop, and 0.1 is beyond the 0.01
    # margin
    assert out["ndcg@10"].role == "primary" and out["ndcg@10"].outcome == "regression"
    assert out["ndcg@10"].p_drop == pytest.approx(out["ndcg@10"].p / 2) == out["ndcg@10"].p_drop_adj
    assert {out[m].role for m in ("chrf", "rouge_l")} == {"secondary"}
    line = verdict_line(out)
    assert line.startswith("B: primary ndcg@10 regression (-0.100; one-sided p_adj ")
    assert "better on chrf: +0.04" in line and "no other detectable change" in line
    assert "2 secondary metric(s) corrected by max-t" in line
    assert f"this set detects a change of {out['ndcg@10'].mde:.3f} in ndcg@10 with 80% power (" in line
    assert line.endswith(f"when every question moves; n {n})")

    # the run-to-run spread of repeated runs is reported, never a dead band
    spread = compare_metrics(a, b, config=FAST, spread={"ndcg@10": 0.15})
    assert spread["ndcg@10"].verdict == WORSE and spread["ndcg@10"].spread == 0.15

    few = {m: dict(list(v.items())[:5]) for m, v in b.items()}
    small = compare_metrics(a, few, config=FAST)
    # the two secondaries: 5 questions cannot reach alpha/2 (the mid-p 1/2**5 > 0.025); the one primary is
    # tested alone, and 5 unanimous drops reach it (1/32 two-sided, 1/64 one-sided)
    assert small["chrf"].verdict == small["rouge_l"].verdict == TOO_FEW
    assert small["ndcg@10"].verdict == WORSE and small["ndcg@10"].p == pytest.approx(1 / 32)
    assert small["ndcg@10"].outcome == "regression"


def test_identical_runs_still_state_a_detectable_effect() -> None:
    rng = np.random.default_rng(1)
    ids = [f"q{i}" for i in range(80)]
    a = {"m": dict(zip(ids, _values(rng, 80).tolist(), strict=True))}
    out = compare_metrics(a, a, config=FAST)["m"]
    assert out.delta == 0 and out.p == 1.0 and out.verdict == NO_CHANGE
    # the sd of the differences is 0, so the MDE uses the planning assumption (the metric's own per-question
    # sd)
    assert out.mde > 0.04 and out.mde_method == "planning assumption (simulated)"


def test_false_alarm_rate_under_the_null_is_controlled() -> None:
    """200 comparisons of two samples from the same distribution, 8 metrics each: uncorrected, "something is
    significant" would happen in about 1 - 0.95**8 = 34% of them; after Holm at most about 5%."""
    rng = np.random.default_rng(11)
    n, metrics, trials = 60, 8, 200
    ids = [f"q{i}" for i in range(n)]
    alarms = uncorrected = 0
    for t in range(trials):
        truth = {f"m{j}": _values(rng, n) for j in range(metrics)}
        a = {m: dict(zip(ids, (v + rng.normal(0, 0.1, n)).tolist(), strict=True)) for m, v in truth.items()}
        b = {m: dict(zip(ids, (v + rng.normal(0, 0.1, n)).tolist(), strict=True)) for m, v in truth.items()}
        out = compare_metrics(a, b, config=StatsConfig(permutations=1000, bootstrap_samples=50, seed=t))
        alarms += any(e.verdict in (BETTER, WORSE) for e in out.values())
        uncorrected += any(e.p < 0.05 for e in out.values())
    print(f"family-wise false alarms: Holm {alarms}/{trials}, uncorrected {uncorrected}/{trials}")
    assert alarms / trials <= 0.09
    assert uncorrected / trials >= 0.2  # the correction is what keeps the rate down
