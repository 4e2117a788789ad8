"""Run-to-run variance in comparisons (axiom.evaluation.repeats): the real statistics on simulated repeated
runs with known variance components (question, run, residual), and the real verdict code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from axiom.evaluation import stats
from axiom.evaluation.answer_metrics.scores import MetricScore
from axiom.evaluation.repeats import (
    compare_with_repeats,
    decision_levels,
    group_index,
    mean_over_repetitions,
    noise_note,
    noise_sources,
    paired_test_with_runs,
    repeat_matrix,
    run_variance,
    satterthwaite,
    two_level_bootstrap_ci,
)
from axiom.evaluation.run_documents import GeneratorInfo, Manifest
from axiom.evaluation.verdict import NO_CHANGE, WORSE, StatsConfig, compare_metrics

FAST = StatsConfig(bootstrap_samples=400, permutations=2000)


def simulate(rng: np.random.Generator, n: int, repeats: int, *, run_sd: float, residual_sd: float,
             question: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """questions x repetitions: question effect + a run effect shared by every question of a repetition +
    residual, plus `shift`."""
    return (question[:, None] + shift + rng.normal(0, run_sd, size=(1, repeats))
            + rng.normal(0, residual_sd, size=(n, repeats)))


def as_inputs(matrix: np.ndarray) -> tuple[dict[str, float], dict[str, list[float]]]:
    ids = [f"q{i:03d}" for i in range(matrix.shape[0])]
    return ({i: float(v) for i, v in zip(ids, matrix.mean(axis=1), strict=True)},
            {i: [float(x) for x in row] for i, row in zip(ids, matrix, strict=True)})


def test_run_variance_is_zero_for_identical_repetitions_and_estimates_the_run_effect() -> None:
    rng = np.random.default_rng(0)
    question = rng.uniform(0.2, 0.8, size=200)
    identical = np.repeat(question[:, None], 3, axis=1)
    assert run_variance(identical) == (0.0, 2)
    assert run_variance(question[:, None]) == (0.0, 0)
    # run sd 0.02 over N = 10 repetitions: s_g^2 / N = 4e-5; residual noise (sd 0.05) is not counted as run
    # noise
    estimates = [run_variance(simulate(rng, 200, 10, run_sd=0.02, residual_sd=0.05, question=question))[0]
                 for _ in range(200)]
    assert np.mean(estimates) == pytest.approx(0.02 ** 2 / 10, rel=0.25)
    residual_only = [run_variance(simulate(rng, 200, 10, run_sd=0.0, residual_sd=0.05, question=question))[0]
                     for _ in range(200)]
    assert np.mean(residual_only) < 0.2 * 0.02 ** 2 / 10


def test_without_run_variance_the_test_is_the_sign_flip_test() -> None:
    rng = np.random.default_rng(1)
    diff = rng.normal(0.04, 0.1, size=80)
    plain = stats.paired_randomisation_test(np.zeros_like(diff), diff, seed=42, label="m", permutations=2000)
    assert paired_test_with_runs(diff, [(0.0, 2), (0.0, 0)], seed=42, label="m", permutations=2000) == plain
    # a run term widens the null: a clear effect loses its significance as the term grows
    ps = [paired_test_with_runs(diff, [(v, 2), (v, 2)], seed=42, label="m", permutations=2000)
          for v in (1e-6, 1e-5, 1e-4)]
    assert plain <= ps[0] <= ps[1] <= ps[2] and plain < 0.001 and ps[2] > 0.05
    assert satterthwaite([(1.0, 2), (1.0, 2)]) == (2.0, 4.0)


def test_size_and_coverage_under_run_level_noise() -> None:
    """Null: two stochastic systems of the same quality, a run effect (sd 0.02) shared by the questions of
    each repetition, N = 3 each. The question-level test on per-question means rejects far too often (it
    cannot see the run effect); the run-aware test holds its level, and the two-level interval covers the true
    0."""
    rng = np.random.default_rng(2)
    n, sims = 100, 300
    question = rng.uniform(0.2, 0.8, size=n)
    naive = aware = covered = 0
    for s in range(sims):
        a = simulate(rng, n, 3, run_sd=0.02, residual_sd=0.05, question=question)
        b = simulate(rng, n, 3, run_sd=0.02, residual_sd=0.05, question=question)
        diff = b.mean(axis=1) - a.mean(axis=1)
        naive += stats.paired_randomisation_test(np.zeros(n), diff, seed=s, label="m",
                                                 permutations=1000) < 0.05
        aware += paired_test_with_runs(diff, [run_variance(a), run_variance(b)], seed=s, label="m",
                                       permutations=1000) < 0.05
        if s < 100:
            low, high = two_level_bootstrap_ci(diff, [run_variance(a), run_variance(b)], samples=300, seed=s,
                                               label="m")
            covered += low <= 0.0 <= high
    assert naive / sims > 0.3
    assert aware / sims <= 0.08
    assert covered >= 88  # of 100 (nominal 95)


def test_power_comes_from_averaging_the_repetitions() -> None:
    """A 0.03 drop with residual noise only (per-question sampling, no shared run effect): the test on the
    means of 5 repetitions finds it more often than the test of one repetition's values."""
    rng = np.random.default_rng(3)
    n, sims = 60, 60
    question = rng.uniform(0.2, 0.8, size=n)
    one = mean_of_five = 0
    for s in range(sims):
        a = simulate(rng, n, 5, run_sd=0.0, residual_sd=0.15, question=question)
        b = simulate(rng, n, 5, run_sd=0.0, residual_sd=0.15, question=question, shift=-0.03)
        one += stats.paired_randomisation_test(a[:, 0], b[:, 0], seed=s, label="m", permutations=1000) < 0.05
        mean_of_five += paired_test_with_runs(b.mean(axis=1) - a.mean(axis=1),
                                              [run_variance(a), run_variance(b)],
                                              seed=s, label="m", permutations=1000) < 0.05
    assert mean_of_five > one + 10


def test_compare_with_repeats_keeps_deterministic_runs_identical_and_has_no_dead_band() -> None:
    rng = np.random.default_rng(4)
    question = rng.uniform(0.2, 0.8, size=120)
    a = np.repeat(question[:, None], 3, axis=1)  # deterministic repetitions
    b = a - 0.05
    per_a, reps_a = as_inputs(a)
    per_b, reps_b = as_inputs(b)
    plain = compare_metrics({"chrf": per_a}, {"chrf": per_b}, config=FAST, spread={"chrf": 0.2})
    out = compare_with_repeats({"chrf": per_a}, {"chrf": per_b}, config=FAST, spread={"chrf": 0.2},
                               reps_a={"chrf": reps_a}, reps_b={"chrf": reps_b})
    entry = out["chrf"]
    assert replace(entry, repeats=None, run_variance=None) == plain["chrf"]
    assert entry.repeats == (3, 3) and entry.run_variance == 0.0
    assert entry.verdict == WORSE and entry.spread == 0.2  # a spread above the drop suppresses nothing


def test_compare_with_repeats_widens_the_test_interval_and_mde_when_runs_vary() -> None:
    rng = np.random.default_rng(5)
    question = rng.uniform(0.2, 0.8, size=150)
    a = simulate(rng, 150, 3, run_sd=0.03, residual_sd=0.02, question=question)
    b = simulate(rng, 150, 3, run_sd=0.03, residual_sd=0.02, question=question)
    b[:, :] += 0.02  # a difference that run noise of this size can make by itself
    per_a, reps_a = as_inputs(a)
    per_b, reps_b = as_inputs(b)
    metrics = {"chrf": (per_a, per_b), "ndcg@10": ({k: 0.5 for k in per_a}, {k: 0.5 for k in per_b})}
    pa = {m: v[0] for m, v in metrics.items()}
    pb = {m: v[1] for m, v in metrics.items()}
    plain = compare_metrics(pa, pb, config=FAST)
    out = compare_with_repeats(pa, pb, config=FAST, reps_a={"chrf": reps_a}, reps_b={"chrf": reps_b})
    chrf, base = out["chrf"], plain["chrf"]
    assert chrf.run_variance > 0 and chrf.repeats == (3, 3)
    assert chrf.p > base.p and chrf.p_adj >= chrf.p
    assert chrf.ci[1] - chrf.ci[0] > 2 * (base.ci[1] - base.ci[0])
    assert chrf.mde > base.mde
    assert base.verdict != NO_CHANGE and chrf.verdict == NO_CHANGE
    assert out["ndcg@10"].repeats == (1, 1) and out["ndcg@10"].verdict == plain["ndcg@10"].verdict


def test_repeat_matrix_and_means_over_repetitions() -> None:
    matrix = repeat_matrix({"q1": [0.2, 0.4], "q2": [0.1, float("nan")]}, ["q1", "q2", "q3"],
                           np.asarray([0.3, 0.1, 0.7]))
    assert np.allclose(matrix[0], [0.2, 0.4]) and matrix[1][0] == 0.1 and np.isnan(matrix[1][1])
    assert list(matrix[2]) == [0.7, 0.7]
    scores = mean_over_repetitions(
        [MetricScore.ok(0.2), MetricScore.unmeasured("judge failed"), MetricScore.unmeasured("timeout")],
        [[0.2, float("nan"), float("nan")], [0.4, 0.6, float("nan")]])
    assert scores[0].value == pytest.approx(0.3) and scores[1].value == 0.6 and np.isnan(scores[2].value)
    assert [s.status for s in scores] == ["ok", "ok", "unmeasured"]
    assert [s.reason for s in scores] == [None, None, "timeout"]
    same = mean_over_repetitions([MetricScore.ok(0.1)], [[0.1], [0.1], [0.1]])
    assert same == [MetricScore.ok(0.1)]  # exactly, not 0.30000000000000004 / 3


def test_noise_sources_and_the_note() -> None:
    sampled = Manifest(source={"kind": "pipeline"}, generator=GeneratorInfo(name="extractive"),
                       settings={"generation": {"temperature": 0.3}}, judge=None)
    assert noise_sources(sampled) == ["extractive sampling at temperature 0.3"]
    assert noise_sources(replace(sampled, settings={"generation": {"temperature": 0.0}})) == []
    assert noise_sources(Manifest(source={"kind": "endpoint"}, judge={"model": "m"})) == [
        "answers from an endpoint", "an LLM judge"]
    # an older manifest without `source`: Axiom's own pipeline
    assert noise_sources(Manifest.from_dict({"generator": {"name": "openai"}})) == ["an LLM generator"]
    note = noise_note([("A", [], 1), ("B", ["an LLM generator"], 1)])
    assert note is not None and note.startswith("run-to-run noise is not measured: B (an "
                                                "LLM generator) was run once")
    assert noise_note([("A", [], 1), ("B", ["an LLM generator"], 3)]) is None


def test_grouped_questions_flip_and_resample_whole_groups() -> None:
    """Questions in 25 groups of 10 whose differences share a group effect (sd 0.05), plus run noise (sd
    0.003, N 3): flipping
    single questions is far too eager; flipping groups holds the level and the group interval covers 0."""
    rng = np.random.default_rng(6)
    n, size, sims = 250, 10, 200
    ids = [f"q{i:03d}" for i in range(n)]
    index = group_index(ids, {q: f"doc{i // size}" for i, q in enumerate(ids)})
    assert index is not None and index.max() == n // size - 1 and group_index(ids, None) is None
    question = rng.uniform(0.2, 0.8, size=n)
    by_question = by_group = covered = 0
    for s in range(sims):
        a = simulate(rng, n, 3, run_sd=0.003, residual_sd=0.05, question=question)
        b = simulate(rng, n, 3, run_sd=0.003, residual_sd=0.05, question=question)
        # what helps one document hurts another
        b += np.repeat(rng.normal(0, 0.05, size=n // size), size)[:, None]
        diff, terms = b.mean(axis=1) - a.mean(axis=1), [run_variance(a), run_variance(b)]
        by_question += paired_test_with_runs(diff, terms, seed=s, label="m", permutations=1000) < 0.05
        by_group += paired_test_with_runs(diff, terms, seed=s, label="m", permutations=1000,
                                          groups=index) < 0.05
        if s < 100:
            low, high = two_level_bootstrap_ci(diff, terms, samples=300, seed=s, label="m", groups=index)
            covered += low <= 0.0 <= high
    assert by_question / sims > 0.2  # measured 0.265
    assert by_group / sims <= 0.09  # measured 0.03
    assert covered >= 90  # measured 93


def test_the_run_aware_p_settles_its_side_of_the_threshold() -> None:
    """As stats.paired_randomisation_test's Monte Carlo p: a true p near alpha / 20 gives different decisions
    on different seeds with one batch of 10,000 draws; with the decision levels the draws go on until the side
    is settled, and every seed agrees."""
    base = np.random.default_rng(2).exponential(1.0, 60)
    diff = base - base.mean() + 0.34864  # the shift that puts the true p at about 0.0021
    terms = [(0.0004, 2), (0.0004, 2)]
    reference = paired_test_with_runs(diff, terms, seed=0, label="x", permutations=200_000)
    assert 0.0017 < reference < 0.0024
    old = {paired_test_with_runs(diff, terms, seed=s, label="x") <= 0.0025 for s in range(40)}
    assert old == {True, False}
    levels = decision_levels(0.05, 20)
    assert 0.0025 in levels and 0.005 in levels  # alpha / 20 and a primary's one-sided 2 alpha / 20
    new = {paired_test_with_runs(diff, terms, seed=s, label="x", thresholds=levels) <= 0.0025
           for s in range(8)}
    assert new == {True}
