"""The family of a comparison (axiom/evaluation/family.py): constants and aliases reported but not counted,
primaries declared or defaulted, and the max-T correction of the secondaries with one set of sign flips."""

from __future__ import annotations

import numpy as np
import pytest

from axiom.evaluation import family
from axiom.evaluation.verdict import StatsConfig, compare_metrics, verdict_line
from tests.evaluation.helpers import verdict_entry

FAST = StatsConfig(permutations=2000, bootstrap_samples=300)


def _as_run(ids: list[str], values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {m: dict(zip(ids, v.tolist(), strict=True)) for m, v in values.items()}


def _baseline_like(rng: np.random.Generator, n: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Metrics shaped like a retrieval + answer run with one relevant source per question: recall@1 =
    precision@1 = hit_rate@1, mrr@10 = map@10, recall@10 and hit_rate@10 at 1.0 everywhere."""
    ids = [f"q{i}" for i in range(n)]
    rank = rng.choice([1, 1, 1, 2, 3], size=n)
    top1 = (rank == 1).astype(float)
    rr = 1.0 / rank
    values = {"recall@1": top1, "precision@1": top1.copy(), "hit_rate@1": top1.copy(),
              "recall@10": np.ones(n),
              "hit_rate@10": np.ones(n), "mrr@10": rr, "ndcg@10": 1.0 / np.log2(rank + 1),
              "map@10": rr.copy(),
              "chrf": rng.uniform(0.2, 0.8, n), "groundedness": rng.uniform(0.5, 1.0, n)}
    return ids, values


def test_aliases_and_constants_are_reported_and_not_counted() -> None:
    rng = np.random.default_rng(3)
    ids, a = _baseline_like(rng, 120)
    b = {m: v.copy() for m, v in a.items()}
    moved = rng.choice(120, 30, replace=False)  # B moves the answers of 30 questions, retrieval unchanged
    b["chrf"][moved] += rng.normal(0, 0.1, 30)
    b["groundedness"][moved] += rng.normal(0, 0.1, 30)
    out = compare_metrics(_as_run(ids, a), _as_run(ids, b), config=FAST)
    roles = {m: e.role for m, e in out.items()}
    assert roles == {"recall@1": "secondary", "precision@1": "alias", "hit_rate@1": "alias",
                     "recall@10": "constant", "hit_rate@10": "constant", "mrr@10": "secondary",
                     "ndcg@10": "primary", "map@10": "alias", "chrf": "secondary", "groundedness": "primary"}
    assert out["precision@1"].alias_of == out["hit_rate@1"].alias_of == "recall@1"
    assert out["map@10"].alias_of == "mrr@10"
    # an alias carries its representative's figures; a constant is not tested
    assert out["precision@1"].p_adj == out["recall@1"].p_adj and out["recall@10"].p_adj is None
    # identical retrieval: every difference 0, but ndcg@10 varies over the questions: tested, not constant
    assert out["ndcg@10"].ties == 120 and out["ndcg@10"].outcome == "non-inferior"
    summary = family.summary(out)
    assert summary["primaries"] == ["ndcg@10", "groundedness"]
    assert summary["secondaries"] == ["recall@1", "mrr@10", "chrf"]
    assert summary["aliases"] == {"precision@1": "recall@1", "hit_rate@1": "recall@1", "map@10": "mrr@10"}
    assert summary["constants"] == ["recall@10", "hit_rate@10"] and summary["correction"] == "max-t"
    line = verdict_line(out)
    assert ("3 secondary metric(s) corrected by max-t; not counted: 3 alias(es) (precision@1 = recall@1, "
            "hit_rate@1 = recall@1, map@10 = mrr@10), 2 constant(s)") in line

    # Bonferroni over the counted secondaries only: 3, not the 8 non-primary metrics
    bonf = compare_metrics(_as_run(ids, a), _as_run(ids, b), config=StatsConfig(
        permutations=2000, bootstrap_samples=300, correction="bonferroni"))
    assert bonf["chrf"].p_adj == pytest.approx(min(1.0, 3 * bonf["chrf"].p))
    # the primaries: Holm over the two counted ones (ndcg@10 unchanged, p 1)
    assert bonf["groundedness"].p_adj == pytest.approx(min(1.0, 2 * bonf["groundedness"].p))
    assert bonf["ndcg@10"].p == bonf["ndcg@10"].p_adj == 1.0


def test_primaries_declared_defaulted_and_aliases_of_a_primary() -> None:
    assert family.default_primaries(["mrr@10", "ndcg@10", "semantic_similarity", "evidence_recall@10"]) == [
        "ndcg@10", "evidence_recall@10", "semantic_similarity"]
    assert family.default_primaries(["chrf", "groundedness", "semantic_similarity"]) == ["groundedness"]
    assert family.default_primaries(["m1", "m2"]) == ["m1", "m2"]  # none of the defaults: every metric
    x, y = np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0])
    paired = {"recall@1": (["a", "b", "c"], x, y), "hit_rate@1": (["a", "b", "c"], x.copy(), y.copy())}
    found = family.find_family(paired, ["hit_rate@1"])  # a declared primary represents its identical set
    assert found.aliases == {"recall@1": "hit_rate@1"} and found.counted_primaries == ["hit_rate@1"]
    # the same values in A but not in B: not the same test, not aliases
    other = {"m1": (["a", "b", "c"], x, y), "m2": (["a", "b", "c"], x.copy(), x.copy())}
    assert family.find_family(other, []).aliases == {}
    assert family.is_constant(np.full(4, 0.2), np.full(4, 0.2 + 1e-9))
    assert not family.is_constant(np.array([0.2, 0.3]), np.array([0.2, 0.3]))  # no change, but not constant
    assert not family.is_constant(np.array([]), np.array([]))
    empty = {"m1": ([], np.array([]), np.array([])), "m2": ([], np.array([]), np.array([]))}
    # no question measured in both: not aliases of each other, not counted
    untested = family.find_family(empty, [])
    assert untested.aliases == {} and untested.secondaries == [] and untested.role("m2") == family.SECONDARY


def test_max_t_lies_between_the_unadjusted_and_bonferroni() -> None:
    rng = np.random.default_rng(5)
    n = 80
    common = rng.normal(0, 1, n)
    common -= common.mean()  # the shared part moves no metric's mean
    units = np.column_stack([0.6 * common + rng.normal(0, 0.8, n) + shift for shift in (0.5, 0.2, 0.0, 0.1)])
    adjusted, raw = family.max_t_adjust(units, permutations=4000, seed=1)
    assert np.all(adjusted >= raw - 1e-12)
    assert np.all(adjusted <= np.minimum(1.0, units.shape[1] * raw) + 1e-12)
    assert adjusted[0] < 0.05 < adjusted[2]  # the shifted metric is found, the unshifted one is not
    # step-down: the order of the statistics is kept
    order = np.argsort(-np.abs(units.sum(axis=0)) / np.sqrt((units ** 2).sum(axis=0)))
    assert np.all(np.diff(adjusted[order]) >= -1e-12)
    # exact over every assignment with few units: one metric, 5 positive units -> p = 2/32, as the sign-flip
    # test
    exact, exact_raw = family.max_t_adjust(np.ones((5, 1)), permutations=10, seed=1)
    assert exact[0] == exact_raw[0] == pytest.approx(2 / 32)
    # a duplicated column changes nothing (the maximum of two equal statistics is the statistic): max-T pays
    # nothing for an alias, where Bonferroni would pay double
    twice, _ = family.max_t_adjust(np.column_stack([units, units[:, 0]]), permutations=4000, seed=1)
    assert twice[0] == pytest.approx(adjusted[0]) and twice[4] == twice[0]


def test_max_t_flips_the_metrics_together_by_group() -> None:
    ids = ["a", "b", "c", "d"]
    x = np.zeros(4)
    paired = {"m1": (ids, x, np.array([0.1, 0.2, 0.3, 0.4])),
              "m2": (ids[:3], x[:3], np.array([1.0, 0.0, -1.0]))}
    matrix = family.unit_matrix(paired, ["m1", "m2"], {"a": "g1", "b": "g1", "c": "g2"})
    # rows: g1 (a, b), g2 (c), d alone; m2 has no question d
    assert np.allclose(matrix, [[0.3, 1.0], [0.3, -1.0], [0.4, 0.0]])


def test_max_t_controls_the_family_wise_error() -> None:
    """200 null data sets of 5 correlated metrics (a shared per-question factor, rho about 0.6), 60 questions:
    'some metric significant' stays near alpha under max-T, and max-T is less conservative than Bonferroni."""
    rng = np.random.default_rng(17)
    trials, n, metrics = 200, 60, 5
    family_wise = bonferroni = uncorrected = 0
    for t in range(trials):
        common = rng.normal(0, 1, (n, 1))
        units = 0.8 * common + 0.6 * rng.normal(0, 1, (n, metrics))  # symmetric about 0: the null
        adjusted, raw = family.max_t_adjust(units, permutations=400, seed=t)
        family_wise += bool(np.any(adjusted < 0.05))
        bonferroni += bool(np.any(np.minimum(1.0, metrics * raw) < 0.05))
        uncorrected += bool(np.any(raw < 0.05))
    print(f"family-wise false alarms: max-T {family_wise}/{trials}, Bonferroni {bonferroni}/{trials}, "
          f"uncorrected {uncorrected}/{trials}")
    assert family_wise / trials <= 0.08
    assert uncorrected / trials >= 0.1 and bonferroni <= family_wise


def test_secondaries_with_run_variance_fall_back_to_holm() -> None:
    ids = [f"q{i}" for i in range(30)]
    rng = np.random.default_rng(2)
    paired = {m: (ids, np.zeros(30), rng.normal(0.2, 0.3, 30)) for m in ("m1", "m2", "m3")}
    out = {m: verdict_entry(p=p, delta=0.2, n=30, run_variance=0.001 if m == "m2" else 0.0)
           for m, p in zip(paired, (0.01, 0.02, 0.04), strict=True)}
    found = family.correct_family(out, paired, correction=family.MAX_T, permutations=500, seed=1,
                                  primaries=[])
    assert found.secondaries == ["m1", "m2", "m3"]
    assert {e.correction for e in out.values()} == {"holm"}
    assert [out[m].p_adj for m in paired] == pytest.approx([0.03, 0.04, 0.04])
