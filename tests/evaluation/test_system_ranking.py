"""Systems ranked by a metric against people: Kendall's tau with its bootstrap interval and the order
probabilities of the human ranking's adjacent pairs, on constructed tables with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from axiom.evaluation.agreement import agreement_text, ranking_frame
from axiom.evaluation.system_ranking import QUESTIONS, ROWS_WITHIN_SYSTEMS, kendall_tau_b, system_ranking


def _table(shares: dict[str, float], questions: int, rng: np.random.Generator, *, noise: float = 0.1,
           shared_ids: bool = True) -> pd.DataFrame:
    """Each system answers `questions` questions; its human label is yes with probability `shares[system]`,
    and `metric` is the label plus uniform noise (so the metric ranks as people do, up to sampling)."""
    rows = []
    for name, share in shares.items():
        labels = (rng.random(questions) < share).astype(float)
        for i, y in enumerate(labels):
            rows.append({"system": name, "id": f"q{i}" if shared_ids else f"{name}-q{i}", "label": y,
                         "metric": y + noise * rng.random(), "noise": rng.random()})
    return pd.DataFrame(rows)


def test_vectorised_tau_b_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(200, 5)).astype(float)  # few values: many ties
    y = rng.integers(0, 3, size=(200, 5)).astype(float)
    got = kendall_tau_b(x, y)
    for row in range(200):
        if np.ptp(x[row]) == 0 or np.ptp(y[row]) == 0:
            assert np.isnan(got[row])
        else:
            assert got[row] == pytest.approx(kendalltau(x[row], y[row]).statistic, abs=1e-12)


def test_well_separated_systems_rank_surely_and_the_interval_holds_the_estimate():
    table = _table({"a": 0.1, "b": 0.4, "c": 0.7, "d": 0.95}, 150, np.random.default_rng(1))
    by = {r["metric"]: r for r in system_ranking(table, ["metric", "noise"], ["label"], samples=400, seed=3)}
    good = by["metric"]
    assert good["resampling"] == QUESTIONS and good["by_label"] == ["d", "c", "b", "a"]
    assert good["kendall_tau"] == pytest.approx(1.0)
    assert good["tau_ci_low"] <= good["kendall_tau"] <= good["tau_ci_high"]
    assert [(p["higher"], p["lower"]) for p in good["adjacent_pairs"]] == [("d", "c"), ("c", "b"), ("b", "a")]
    for pair in good["adjacent_pairs"]:
        assert pair["p_people"] > 0.99 and pair["p_metric"] > 0.99 and pair["people_difference"] > 0
    noise = by["noise"]  # a metric unrelated to the label: tau anywhere, a wide interval
    assert noise["tau_ci_low"] <= noise["kendall_tau"] <= noise["tau_ci_high"]
    assert noise["tau_ci_high"] - noise["tau_ci_low"] >= 1.0
    for pair in noise["adjacent_pairs"]:
        assert 0.0 <= pair["p_metric"] <= 1.0 and pair["p_people"] > 0.99


def test_the_interval_is_one_point_only_when_every_resample_ranks_the_same():
    constant = pd.DataFrame([{"system": f"s{k}", "id": f"q{i}", "metric": float(k), "label": 0.5 + 0.1 * k}
                             for k in range(3) for i in range(30)])
    (fixed,) = system_ranking(constant, ["metric"], ["label"], samples=200, seed=0)
    assert (fixed["tau_ci_low"], fixed["tau_ci_high"]) == (1.0, 1.0)
    assert all(p["p_people"] == 1.0 and p["p_metric"] == 1.0 for p in fixed["adjacent_pairs"])

    close = _table({"a": 0.50, "b": 0.52, "c": 0.9}, 100, np.random.default_rng(2), noise=0.05)
    r, noise = system_ranking(close, ["metric", "noise"], ["label"], samples=400, seed=0)
    # one label, the same rows: every metric is judged on the same resamples, so people's share is the same
    assert [p["p_people"] for p in r["adjacent_pairs"]] == [p["p_people"] for p in noise["adjacent_pairs"]]
    assert r["tau_ci_low"] < 1.0 and r["tau_ci_low"] <= r["kendall_tau"] <= r["tau_ci_high"]
    upper, lower = r["adjacent_pairs"]  # c is clearly first; a and b are a coin toss
    assert upper["higher"] == "c" and upper["p_people"] > 0.99
    assert 0.05 < lower["p_people"] < 0.95 and 0.0 <= lower["p_metric"] <= 1.0


def test_same_seed_same_numbers_and_unshared_ids_resample_within_systems():
    table = _table({"a": 0.4, "b": 0.5, "c": 0.6}, 60, np.random.default_rng(4), shared_ids=False)
    first = system_ranking(table, ["metric"], ["label"], samples=300, seed=7)
    again = system_ranking(table, ["metric"], ["label"], samples=300, seed=7)
    assert first == again and first[0]["resampling"] == ROWS_WITHIN_SYSTEMS
    assert first[0]["tau_resamples"] == 300
    other = system_ranking(table, ["metric"], ["label"], samples=300, seed=8)
    assert [p["p_people"]
            for p in other[0]["adjacent_pairs"]] != [p["p_people"] for p in first[0]["adjacent_pairs"]]


def test_one_system_or_a_missing_metric_gives_no_ranking():
    table = _table({"a": 0.3}, 20, np.random.default_rng(5))
    assert system_ranking(table, ["metric"], ["label"]) == []
    two = _table({"a": 0.3, "b": 0.6}, 20, np.random.default_rng(5))
    two.loc[two["system"] == "b", "metric"] = np.nan  # only one system has the metric
    assert system_ranking(two, ["metric"], ["label"]) == []


def test_text_and_frame_show_the_interval_and_the_pairs():
    table = _table({"a": 0.1, "b": 0.5, "c": 0.9}, 80, np.random.default_rng(6))
    ranking = system_ranking(table, ["metric"], ["label"], samples=200, seed=0)
    result = {"labels": "labels.jsonl", "rows": len(table), "systems": ["a", "b", "c"], "samples": 200,
              "seed": 0,
              "agreement": [], "ranking": ranking}
    text = agreement_text(result)
    assert "Kendall tau 1.00 [1.00, 1.00] (95% bootstrap, questions resampled)" in text
    assert "people c > b 1.00; b > a 1.00; metric c > b 1.00; b > a 1.00" in text
    (row,) = ranking_frame(result).to_dict("records")
    assert row["kendall_tau [95% CI]"] == "1.00 [1.00, 1.00]" and row["by people"] == "c > b > a"
    assert row["P(people's order)"] == "c > b 1.00; b > a 1.00"
