"""A sweep's combinations against the best one: paired tests on the same questions, Holm over the
comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from axiom.evaluation.stats import paired_randomisation_test
from axiom.evaluation.versus_best import DIFF, P_HOLM, SAME, compare_with_best, with_tests_against_best


def values(rng: np.random.Generator, shift: float, n: int = 120) -> dict[str, float]:
    base = np.linspace(0.2, 0.9, n)
    return {f"q{i}": float(v) for i, v in enumerate(base + shift + rng.normal(0, 0.05, n))}


def test_a_clearly_worse_combination_is_distinguishable_and_a_near_tie_is_not() -> None:
    rng = np.random.default_rng(3)
    runs = {"best": values(rng, 0.0), "close": values(rng, -0.002), "worse": values(rng, -0.1)}
    tested = compare_with_best(runs, ["best", "close", "worse"])
    assert set(tested) == {"close", "worse"}
    assert tested["worse"]["distinguishable"] and tested["worse"]["diff"] == pytest.approx(-0.1, abs=0.02)
    assert tested["worse"]["ci_high"] < 0 < tested["close"]["ci_high"]
    assert not tested["close"]["distinguishable"]
    assert tested["close"]["n"] == tested["worse"]["n"] == 120


def test_holm_over_the_comparisons_is_at_least_each_raw_p() -> None:
    rng = np.random.default_rng(5)
    runs = {name: values(rng, shift) for name, shift in (("a", 0.0), ("b", -0.01), ("c", -0.012),
                                                         ("d", -0.02))}
    tested = compare_with_best(runs, ["a", "b", "c", "d"])
    best = np.array(list(runs["a"].values()))
    raws = {n: paired_randomisation_test(best, np.array(list(runs[n].values())), seed=0, label=f"best:{n}")
            for n in "bcd"}
    assert min(raws.values()) * 3 == pytest.approx(min(tested[n]["p_holm"] for n in "bcd"))
    for name in "bcd":
        assert tested[name]["p_holm"] >= raws[name]


def test_only_shared_finite_questions_are_paired_and_a_label_without_values_is_left_out() -> None:
    runs = {"best": {"q1": 1.0, "q2": 1.0, "q3": float("nan")}, "other": {"q1": 0.0, "q2": 1.0, "q3": 0.0,
                                                                          "q4": 0.0}}
    tested = compare_with_best({**runs, "missing": {}}, ["best", "other", "missing"])
    assert list(tested) == ["other"] and tested["other"]["n"] == 2 and tested["other"]["diff"] == -0.5
    assert compare_with_best(runs, []) == {} and compare_with_best({"best": {}}, ["best", "other"]) == {}


def test_groups_flip_together() -> None:
    # 8 questions in 2 groups: within each group the other run is better on every question. Flipping per
    # question would call that significant; flipping per group (2 groups, 4 assignments) cannot go below the
    # mid-p 1/4.
    best = {f"q{i}": 0.5 for i in range(8)}
    other = {f"q{i}": 0.6 for i in range(8)}
    groups = {f"q{i}": "g1" if i < 4 else "g2" for i in range(8)}
    assert compare_with_best({"best": best, "other": other}, ["best", "other"])["other"]["p_holm"] < 0.01
    assert compare_with_best({"best": best, "other": other}, ["best", "other"], groups=groups)["other"][
        "p_holm"] >= 0.25


def test_the_summary_gets_empty_columns_where_a_run_has_no_results() -> None:
    table = pd.DataFrame({"rank": [1, 2], "combination": ["top_k=5", "top_k=3"], "m": [0.7, 0.5]})
    out = with_tests_against_best(table, {"top_k=5": None, "top_k=3": None}, "m")
    assert list(out.columns[:3]) == ["rank", "combination", "m"] and {DIFF, P_HOLM, SAME} <= set(out.columns)
    assert out[DIFF].isna().all() and list(table.columns) == ["rank", "combination", "m"]  # the input is kept
