"""Clustered questions: groups from the golden set, sign flips and the bootstrap by group, the design effect,
and the old behaviour, bit for bit, when no groups are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axiom.errors import DatasetError
from axiom.evaluation import sensitivity, stats
from axiom.evaluation.clusters import (
    Clusters,
    cluster_bootstrap_ci,
    clustered_variance,
    design_effect,
    question_groups,
)
from axiom.evaluation.datasets import load_golden
from axiom.evaluation.verdict import StatsConfig, compare_metrics, verdict_line

FAST = StatsConfig(permutations=2000, bootstrap_samples=500)


def _clustered(rng: np.random.Generator, groups: int, per_group: int, group_sd: float, noise_sd: float
               ) -> tuple[list[str], dict[str, str], np.ndarray, np.ndarray]:
    """Two runs whose differences share an effect per group (a change that helps some documents, hurts
    others)."""
    ids = [f"q{g}-{k}" for g in range(groups) for k in range(per_group)]
    group_of = {qid: qid.split("-")[0] for qid in ids}
    a = np.clip(rng.normal(0.6, 0.15, len(ids)), 0, 1)
    shift = np.repeat(rng.normal(0, group_sd, groups), per_group)
    return ids, group_of, a, a + shift + rng.normal(0, noise_sd, len(ids))


def test_clusters_of_questions() -> None:
    clusters = Clusters.of(["a", "b", "c", "d"], {"a": "doc1", "b": "doc2", "c": "doc1"})
    assert clusters.count == 3 and not clusters.trivial  # d has no group: its own
    assert list(clusters.index) == [0, 1, 0, 2]
    assert list(clusters.sums(np.array([1.0, 2.0, 3.0, 4.0]))) == [4.0, 2.0, 4.0]
    assert Clusters.of(["a", "b"], None).trivial
    # a question id that happens to equal another question's group name is still its own group
    assert Clusters.of(["doc1", "x"], {"x": "doc1"}).count == 2


def test_sign_flips_by_group() -> None:
    # 12 questions in 3 groups, every difference positive: 3 units, so the exact mid-p is 1 / 2**3, not
    # 1 / 2**12
    ids = [f"q{i}" for i in range(12)]
    clusters = Clusters.of(ids, {q: f"g{i // 4}" for i, q in enumerate(ids)})
    a, b = np.zeros(12), np.full(12, 0.1)
    assert stats.paired_randomisation_test(a, b, seed=1, label="m", clusters=clusters) == pytest.approx(1 / 8)
    assert stats.paired_randomisation_test(a, b, seed=1, label="m") == pytest.approx(1 / 4096)
    # a NaN pair is left out; its group still counts with the rest of its questions
    a_nan = a.copy()
    a_nan[0] = float("nan")
    assert stats.paired_randomisation_test(a_nan, b, seed=1, label="m",
                                           clusters=clusters) == pytest.approx(1 / 8)


def test_design_effect() -> None:
    rng = np.random.default_rng(3)
    ids, group_of, a, b = _clustered(rng, groups=25, per_group=10, group_sd=0.05, noise_sd=0.05)
    clusters = Clusters.of(ids, group_of)
    diff = b - a
    deff = design_effect(diff, clusters)
    # intraclass correlation about 0.5 with 10 per group: deff = 1 + (m - 1) * icc, about 5.5
    assert 3.0 < deff < 9.0
    assert deff == pytest.approx(clustered_variance(diff, clusters) / (np.var(diff, ddof=1) / diff.size))
    independent = Clusters.of(ids, {q: q for q in ids})
    assert design_effect(diff, independent) == 1.0
    no_shared = rng.normal(0, 0.05, diff.size)  # no group effect: about 1
    assert 0.5 < design_effect(no_shared, clusters) < 1.6
    assert math.isnan(design_effect(np.zeros(diff.size), clusters))  # no variance: nothing to inflate


def test_compare_metrics_by_group() -> None:
    rng = np.random.default_rng(9)
    ids, group_of, a, b = _clustered(rng, groups=8, per_group=6, group_sd=0.1, noise_sd=0.02)
    per_a, per_b = {"m": dict(zip(ids, a, strict=True))}, {"m": dict(zip(ids, b, strict=True))}
    independent = compare_metrics(per_a, per_b, config=FAST)["m"]
    grouped = compare_metrics(per_a, per_b, config=FAST, groups=group_of)["m"]
    assert independent.groups == 48 and independent.design_effect == 1.0
    assert (
        grouped.groups == 8
        and grouped.design_effect > 2.0
        and grouped.interval == stats.CLUSTER_BOOTSTRAP
    )
    assert grouped.p >= independent.p  # 8 units, not 48: the evidence is weaker
    width = grouped.ci[1] - grouped.ci[0]
    assert width > independent.ci[1] - independent.ci[0]
    # the MDE of the test used: its sign flips act on the 8 group sums (sensitivity.py), larger than the
    # independent one, and at least the independent one inflated by the design effect (the normal-theory
    # value, which assumes many groups)
    assert grouped.mde_method == sensitivity.SIMULATED and grouped.mde > independent.mde
    assert grouped.mde >= independent.mde * math.sqrt(grouped.design_effect)
    line = verdict_line({"m": grouped})
    assert "in 8 groups, design effect" in line
    assert "warning: the questions of m fall in only 8 group(s), fewer than 10" in line
    assert "warning" not in verdict_line({"m": independent})


def test_no_groups_is_the_old_behaviour_exactly() -> None:
    rng = np.random.default_rng(2)
    ids, group_of, a, b = _clustered(rng, groups=30, per_group=2, group_sd=0.05, noise_sd=0.05)
    per_a, per_b = {"m": dict(zip(ids, a, strict=True))}, {"m": dict(zip(ids, b, strict=True))}
    old = compare_metrics(per_a, per_b, config=FAST)
    assert compare_metrics(per_a, per_b, config=FAST, groups={q: q for q in ids}) == old
    assert compare_metrics(per_a, per_b, config=FAST, groups={}) == old
    expected_ci = stats.paired_bootstrap_ci(b - a, samples=500, seed=42, label="m")
    expected_p = stats.paired_randomisation_test(a, b, seed=42, label="m", permutations=2000)
    assert old["m"].ci == tuple(expected_ci) and old["m"].p == expected_p


def test_the_group_field_of_a_golden_set(tmp_path: Path) -> None:
    lines = [{"id": "q1", "question": "Q?", "relevant_sources": ["a.md", "b.md"]},
             {"id": "q2", "question": "Q?", "relevant_sources": ["b.md"], "group": "topic-7"},
             {"id": "q3", "question": "Q?"}]
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    items = load_golden(path)
    assert [it.cluster for it in items] == ["a.md", "topic-7", "q3"]
    assert items[1].to_dict()["group"] == "topic-7" and "group" not in items[0].to_dict()
    path.write_text(json.dumps({"id": "q1", "question": "Q?", "group": 7}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 1") as info:
        load_golden(path)
    assert "group" in str(info.value.problems)


def test_question_groups_from_a_results_table() -> None:
    table = pd.DataFrame({"id": ["q1", "q2", "q3"], "group": ["a.md", "a.md", "q3"]})
    assert question_groups(table) == {"q1": "a.md", "q2": "a.md", "q3": "q3"}
    assert question_groups(table.drop(columns=["group"])) == {}  # an older run: no groups


def test_the_studentized_group_bootstrap() -> None:
    """Its width is close to the cluster-robust t interval's (2 t(G-1) se), wider than the percentile interval
    of the resampled group means, which is too narrow with few groups."""
    from scipy.stats import t as student

    rng = np.random.default_rng(4)
    ids, group_of, a, b = _clustered(rng, groups=11, per_group=5, group_sd=0.06, noise_sd=0.1)
    clusters = Clusters.of(ids, group_of)
    diff = b - a
    low, high = cluster_bootstrap_ci(diff, clusters, np.random.default_rng(1), samples=4000)
    se = math.sqrt(clustered_variance(diff, clusters))
    assert low < diff.mean() < high
    assert high - low == pytest.approx(2 * student.ppf(0.975, 10) * se, rel=0.3)
    draws = np.random.default_rng(1).integers(0, 11, size=(4000, 11))
    means = clusters.sums(diff)[draws].sum(axis=1) / clusters.sizes()[draws].sum(axis=1)
    assert high - low > float(np.quantile(means, 0.975) - np.quantile(means, 0.025))
    assert cluster_bootstrap_ci(np.full(55, 0.1), clusters, np.random.default_rng(1),
                                samples=100) == (0.1, 0.1)


def test_the_gate_groups_questions_by_the_runs_group_column() -> None:
    from axiom.evaluation.gate import gate_run

    rng = np.random.default_rng(6)
    ids, group_of, a, b = _clustered(rng, groups=8, per_group=6, group_sd=0.1, noise_sd=0.02)
    baseline = {"metrics": {"m": {"mean": float(a.mean()), "n": len(ids),
                                  "per_question": dict(zip(ids, a.tolist(), strict=True))}}}
    results = pd.DataFrame({"id": ids, "m": b, "group": [group_of[q] for q in ids]})
    summary = {"m": {"mean": float(b.mean()), "n": len(ids)}}
    grouped = gate_run(results, summary, baseline, config=FAST).checked["m"]["stats"]
    older = gate_run(results.drop(columns=["group"]), summary, baseline, config=FAST).checked["m"]["stats"]
    assert grouped.groups == 8 and grouped.design_effect > 2.0
    assert older.groups == len(ids) and older.design_effect == 1.0
