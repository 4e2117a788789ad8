"""Prediction-powered estimates (Angelopoulos, Bates, Fannjiang, Jordan, Zrnic, Science 2023; PPI++:
Angelopoulos, Duchi, Zrnic 2023): the human-judged mean of a whole set when only some items carry a human
label.

An automatic metric scores every item; people label a few. The estimate is the metric's mean on all N items
corrected by the mean residual (label - lam * metric) on the n labelled items:

    theta = lam * mean(metric, all) + mean(label - lam * metric, labelled)

with the normal interval theta +- z * sqrt(var(lam * metric, all) / N + var(label - lam * metric) / n),
which accounts for both sources of error. lam = 1 is the original PPI; `lam=None` picks the
variance-minimising lam in [0, 1] (PPI++ power tuning), so a weak metric costs nothing against the human
labels alone (lam = 0 is the classical interval of the labels alone). The formulas are those of
`ppi_py.ppi_mean_ci` (tests cross-check them to 1e-9); numpy only, so nothing beyond the statistics core is
needed at run time.

(The paper's unlabelled sample is here the whole set: a perfect metric then returns the set's exact mean, and
with n much smaller than N the overlap changes nothing measurable; bench/ppi_coverage.py measures the
coverage.) `finite=True` estimates the mean of exactly this set instead (the questions are the population, not
a sample of one): the metric's mean over the set is then known without error, and the interval is the
residual's alone with the finite-population correction, z * sqrt(var(label - lam * metric) / n * (1 - n / N)),
lam tuned as the regression slope of the label on the metric (clipped to [0, 1]); the survey-sampling
difference estimator. `ppi_mean` estimates one run's mean, `ppi_paired_difference` the difference B - A of two
runs on the same questions (the paired form: the estimator applied to per-question differences, labelled where
both runs carry a label), `classical_mean` the interval of the human labels alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from axiom.errors import EvaluationError


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, and what it rests on."""

    estimate: float
    ci_low: float
    ci_high: float
    labelled: int
    scored: int  # the items whose metric value enters the mean (all of them in `ppi_from_maps`)
    lam: float
    method: str  # "ppi", "ppi++" (power-tuned) or "classical" (labels alone)
    level: float = 0.95

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "width": self.width}

    def text(self) -> str:
        return (f"{self.estimate:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] ({self.method}, lam "
                f"{self.lam:.2f}; {self.labelled} labelled of {self.scored})")


def _arrays(labels: ArrayLike, predicted: ArrayLike,
            predicted_unlabelled: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=float).ravel()
    yhat = np.asarray(predicted, dtype=float).ravel()
    yhat_u = np.asarray(predicted_unlabelled, dtype=float).ravel()
    if y.size != yhat.size:
        raise EvaluationError(f"prediction-powered estimate: {y.size} labels but "
                              f"{yhat.size} predictions for them")
    if y.size < 2 or yhat_u.size < 1:
        raise EvaluationError(f"prediction-powered estimate needs at least 2 labelled and 1 scored item "
                              f"(got {y.size} labelled, {yhat_u.size} scored)")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(yhat)) and np.all(np.isfinite(yhat_u))):
        raise EvaluationError("prediction-powered estimate: a label or a metric value is missing (NaN)")
    return y, yhat, yhat_u


def tuned_lam(y: np.ndarray, yhat: np.ndarray, yhat_u: np.ndarray) -> float:
    """The variance-minimising lam of PPI++ for a mean, clipped to [0, 1] (ppi_py's `_calc_lam_glm`)."""
    n, big_n = y.size, yhat_u.size
    theta = float(yhat_u.mean() + (y - yhat).mean())
    grads, grads_hat = y - theta, yhat - theta
    cov = 2.0 * float(np.mean((grads - grads.mean()) * (grads_hat - grads_hat.mean())))
    var_hat = float(np.var(np.concatenate([grads_hat, yhat_u - theta]), ddof=1))
    if var_hat <= 0.0:
        return 0.0
    return float(np.clip(cov / (2.0 * (1.0 + n / big_n) * var_hat), 0.0, 1.0))


def _slope(y: np.ndarray, yhat: np.ndarray) -> float:
    """The lam minimising var(label - lam * metric) on the labelled items, clipped to [0, 1]."""
    var = float(np.var(yhat, ddof=1))
    return 0.0 if var <= 0.0 else float(np.clip(np.cov(y, yhat, ddof=1)[0, 1] / var, 0.0, 1.0))


def ppi_mean(labels: ArrayLike, predicted: ArrayLike, predicted_unlabelled: ArrayLike, *,
             lam: float | None = 1.0, level: float = 0.95, finite: bool = False) -> Estimate:
    """Prediction-powered estimate of the mean label: `labels` and `predicted` (the metric) on the labelled
    items, `predicted_unlabelled` the metric on the set whose mean is wanted (ppi_py's `Yhat_unlabeled`).
    lam=1: PPI; lam=None: power-tuned (PPI++). finite=True: the mean of exactly the set `predicted_unlabelled`
    scores, the labelled items being among them (see the module docstring)."""
    y, yhat, yhat_u = _arrays(labels, predicted, predicted_unlabelled)
    method = "ppi" if lam == 1.0 else "ppi++" if lam is None else f"ppi(lam={lam:g})"
    if finite:
        if y.size > yhat_u.size:
            raise EvaluationError(f"finite-set estimate: {y.size} labelled items but a set of {yhat_u.size}")
        lam_value = _slope(y, yhat) if lam is None else float(lam)
        theta = float(lam_value * yhat_u.mean() + (y - lam_value * yhat).mean())
        se = math.sqrt(float(np.var(y - lam_value * yhat, ddof=1)) / y.size * (1.0 - y.size / yhat_u.size))
        half = NormalDist().inv_cdf(0.5 + level / 2.0) * se
        return Estimate(theta, theta - half, theta + half, int(y.size), int(yhat_u.size), lam_value,
                        method + "-finite", level)
    lam_value = tuned_lam(y, yhat, yhat_u) if lam is None else float(lam)
    theta = float(lam_value * yhat_u.mean() + (y - lam_value * yhat).mean())
    se = math.sqrt(float(np.var(lam_value * yhat_u)) / yhat_u.size
                   + float(np.var(y - lam_value * yhat)) / y.size)
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * se
    return Estimate(theta, theta - half, theta + half, int(y.size), int(yhat_u.size), lam_value, method,
                    level)


def classical_mean(labels: ArrayLike, *, level: float = 0.95) -> Estimate:
    """The normal interval of the mean of the human labels alone (what PPI is measured against)."""
    y = np.asarray(labels, dtype=float).ravel()
    if y.size < 2 or not np.all(np.isfinite(y)):
        raise EvaluationError(f"the mean of the labels needs at least 2 labelled items (got {y.size})")
    theta = float(y.mean())
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * float(np.std(y)) / math.sqrt(y.size)
    return Estimate(theta, theta - half, theta + half, int(y.size), 0, 0.0, "classical", level)


def ppi_from_maps(labels: Mapping[str, float], scores: Mapping[str, float], *, lam: float | None = 1.0,
                  level: float = 0.95) -> Estimate:
    """`ppi_mean` from per-question maps: the mean over every question with a finite score, labelled ones
    being those with a finite label as well."""
    scored = {q: float(v) for q, v in scores.items() if v is not None and math.isfinite(float(v))}
    labelled = [q for q in scored if q in labels and labels[q] is not None
                and math.isfinite(float(labels[q]))]
    return ppi_mean([float(labels[q]) for q in labelled], [scored[q] for q in labelled],
                    list(scored.values()),
                    lam=lam, level=level)


def ppi_paired_difference(labels_a: Mapping[str, float], scores_a: Mapping[str, float],
                          labels_b: Mapping[str, float], scores_b: Mapping[str, float], *,
                          lam: float | None = 1.0, level: float = 0.95) -> Estimate:
    """Prediction-powered estimate of mean(label B - label A) over the questions both runs scored: the
    estimator on per-question differences, labelled where both runs carry a human label."""
    common = [q for q in scores_a if q in scores_b]
    diff_scores = {q: float(scores_b[q]) - float(scores_a[q]) for q in common}
    diff_labels = {q: float(labels_b[q]) - float(labels_a[q]) for q in common if q in labels_a
                   and q in labels_b}
    return ppi_from_maps(diff_labels, diff_scores, lam=lam, level=level)
