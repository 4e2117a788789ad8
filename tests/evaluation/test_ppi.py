"""Prediction-powered estimates: cross-checked against ppi_py, and their behaviour on data with a known
answer."""

from __future__ import annotations

import numpy as np
import pytest
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

from axiom.errors import EvaluationError
from axiom.evaluation.ppi import classical_mean, ppi_from_maps, ppi_mean, ppi_paired_difference


@pytest.mark.parametrize("lam", [1.0, None, 0.5])
def test_same_estimate_and_interval_as_ppi_py(lam):
    rng = np.random.default_rng(7)
    for _ in range(20):
        n, big_n = int(rng.integers(10, 300)), int(rng.integers(50, 2000))
        y = (rng.random(n) < rng.random()).astype(float)
        yhat = np.clip(0.5 * y + rng.normal(0.25, 0.3, n), 0, 1)
        yhat_u = np.clip(rng.normal(0.5, 0.3, big_n), 0, 1)
        ours = ppi_mean(y, yhat, yhat_u, lam=lam, level=0.95)
        low, high = ppi_mean_ci(y, yhat, yhat_u, alpha=0.05, lam=lam)
        point = ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam)
        assert ours.estimate == pytest.approx(float(np.ravel(point)[0]), abs=1e-9)
        assert ours.ci_low == pytest.approx(float(np.ravel(low)[0]), abs=1e-9)
        assert ours.ci_high == pytest.approx(float(np.ravel(high)[0]), abs=1e-9)
        assert 0.0 <= ours.lam <= 1.0


def test_a_perfect_metric_gives_the_true_mean_with_a_narrower_interval_than_the_labels_alone():
    rng = np.random.default_rng(3)
    truth = (rng.random(1000) < 0.3).astype(float)
    labelled = rng.choice(1000, 60, replace=False)
    est = ppi_mean(truth[labelled], truth[labelled], truth)
    assert est.estimate == pytest.approx(truth.mean(), abs=1e-12)  # residuals are 0: the metric's mean on all
    assert est.width < classical_mean(truth[labelled]).width / 2


def test_a_biased_metric_is_corrected_by_the_residual():
    rng = np.random.default_rng(5)
    truth = (rng.random(4000) < 0.6).astype(float)
    metric = np.clip(truth * 0.5 + 0.2 + rng.normal(0, 0.05, 4000), 0, 1)  # mean ~0.5, not 0.6
    labelled = rng.choice(4000, 400, replace=False)
    rest = np.setdiff1d(np.arange(4000), labelled)
    est = ppi_mean(truth[labelled], metric[labelled], metric[rest])
    assert abs(metric.mean() - truth.mean()) > 0.05
    assert est.ci_low <= truth.mean() <= est.ci_high
    assert abs(est.estimate - truth.mean()) < 0.03


def test_power_tuning_never_wider_than_labels_alone_with_a_useless_metric():
    rng = np.random.default_rng(11)
    y = (rng.random(100) < 0.5).astype(float)
    noise, noise_u = rng.random(100), rng.random(900)
    tuned = ppi_mean(y, noise, noise_u, lam=None)
    assert tuned.method == "ppi++"
    assert tuned.width <= classical_mean(y).width * 1.02


def test_paired_difference_uses_questions_labelled_in_both_runs():
    ids = [f"q{i}" for i in range(200)]
    labels_a = {q: 1.0 if i % 2 else 0.0 for i, q in enumerate(ids[:80])}
    labels_b = {q: 1.0 for q in ids[:60]}  # B labelled on fewer questions
    scores_a = {q: (1.0 if i % 2 else 0.0) for i, q in enumerate(ids)}
    scores_b = {q: 1.0 for q in ids}
    est = ppi_paired_difference(labels_a, scores_a, labels_b, scores_b)
    assert est.labelled == 60 and est.scored == 200
    assert est.estimate == pytest.approx(0.5, abs=1e-12)  # a perfect metric: the true difference
    by_maps = ppi_from_maps({q: labels_b[q] - labels_a[q] for q in ids[:60]},
                            {q: scores_b[q] - scores_a[q] for q in ids})
    assert by_maps == est


def test_bad_input_is_a_clear_error():
    with pytest.raises(EvaluationError, match="at least 2 labelled"):
        ppi_mean([1.0], [1.0], [0.5, 0.5])
    with pytest.raises(EvaluationError, match="3 labels but 2 predictions"):
        ppi_mean([1.0, 0.0, 1.0], [1.0, 0.0], [0.5])
    with pytest.raises(EvaluationError, match="NaN"):
        ppi_mean([1.0, float("nan")], [1.0, 0.0], [0.5])


def test_finite_set_form_targets_this_sets_mean():
    rng = np.random.default_rng(13)
    truth = (rng.random(500) < 0.4).astype(float)
    metric = np.clip(truth * 0.6 + rng.normal(0.2, 0.2, 500), 0, 1)
    everything = ppi_mean(truth, metric, metric, lam=None, finite=True)  # every item labelled: no uncertainty
    assert everything.estimate == pytest.approx(truth.mean(), abs=1e-12) and everything.width == 0.0
    assert everything.method == "ppi++-finite"
    hits = 0
    for draw in range(300):
        chosen = np.random.default_rng([13, draw]).choice(500, 100, replace=False)
        est = ppi_mean(truth[chosen], metric[chosen], metric, lam=None, finite=True)
        hits += est.ci_low <= truth.mean() <= est.ci_high
        assert est.width < ppi_mean(truth[chosen], metric[chosen], metric, lam=None).width
    assert 0.90 <= hits / 300 <= 0.99  # 95% nominal; with 300 draws one binomial sd is 1.3 points
    with pytest.raises(EvaluationError, match="3 labelled items but a set of 2"):
        ppi_mean([1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.5, 0.5], finite=True)
