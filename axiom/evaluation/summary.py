"""What metrics.json says about each metric of a run: its mean with a 95% bootstrap interval, how many
questions it measured, left unmeasured or found not applicable (each with the commonest reasons); and, for a
repeated run, the run-to-run spread and run variance of each answer metric."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from axiom.evaluation.run_documents import Repeats
from axiom.evaluation.stats import bootstrap_ci

if TYPE_CHECKING:
    from axiom.evaluation.answer_metrics import MetricScore


class _SummaryCore(TypedDict):
    mean: float | None  # None: no question measured
    ci_low: float | None
    ci_high: float | None
    n: int
    unmeasured: int
    not_applicable: int


class MetricSummary(_SummaryCore, total=False):
    """One metric in metrics.json's `metrics`: its mean over the measured questions, the 95% interval
    (`ci_method` "two-level bootstrap" for a repeated metric that varied: run_docs), n, the unmeasured and
    not-applicable counts and their commonest reasons."""

    unmeasured_reasons: dict[str, int]
    not_applicable_reasons: dict[str, int]
    ci_method: str


def summarise_metric(scores: Sequence[MetricScore], *, samples: int, seed: int, label: str) -> MetricSummary:
    """One metric's summary in metrics.json from its per-question scores (see the module docstring)."""
    measured = [s.value for s in scores if s.status == "ok" and not math.isnan(s.value)]
    unmeasured = Counter(s.reason or "unmeasured" for s in scores if s.status == "unmeasured")
    why_not = Counter(s.reason or "not applicable" for s in scores if s.status == "not_applicable")
    not_applicable = sum(why_not.values())
    out: MetricSummary = {"mean": None, "ci_low": None, "ci_high": None, "n": len(measured),
                          "unmeasured": sum(unmeasured.values()), "not_applicable": not_applicable}
    if measured:
        low, high = bootstrap_ci(measured, samples=samples, seed=seed, label=label)
        out["mean"] = round(float(np.mean(measured)), 6)
        out["ci_low"], out["ci_high"] = round(low, 6), round(high, 6)
    if unmeasured:
        out["unmeasured_reasons"] = dict(unmeasured.most_common(5))
    if why_not:
        out["not_applicable_reasons"] = dict(why_not.most_common(5))
    return out


def not_applicable_reason(summary: MetricSummary) -> str | None:
    """Why a metric measured no question of a run: its commonest not-applicable reason (None when it measured
    some, or when questions were unmeasured rather than not applicable)."""
    if summary.get("n") or summary.get("unmeasured") or not summary.get("not_applicable"):
        return None
    reasons = summary.get("not_applicable_reasons") or {}
    return next(iter(reasons), "not applicable")


def mean_ok(scores: Sequence[MetricScore]) -> float | None:
    values = [s.value for s in scores if s.status == "ok" and not math.isnan(s.value)]
    return float(np.mean(values)) if values else None


def repeat_summary(means: dict[str, list[float | None]], repeat: int,
                   run_variance: Mapping[str, float] | None = None) -> Repeats:
    """A repeated run's repetitions per answer metric: the spread (range, max - min, of the metric's mean over
    the repetitions; reported, never a dead band), the means, and the variance run-level noise adds to the
    run's mean (`repeats.run_variance`: 0 when the repetitions agree or N = 1). Retrieval is deterministic and
    not repeated; offline runs at temperature 0 give a spread of 0."""
    spread: dict[str, float] = {}
    for name, values in means.items():
        clean = [v for v in values if v is not None]
        spread[name] = float(max(clean) - min(clean)) if len(clean) > 1 else 0.0
    return Repeats(n=repeat, spread=spread, means=means if repeat > 1 else {},
                   run_variance={m: float(v) for m, v in (run_variance or {}).items()},
                   table="repeats.parquet" if repeat > 1 else None,
                   method="every repetition's per-question values kept (repeats.parquet); a question's value "
                          "is its mean over the repetitions; spread: range of the metric's mean over "
                          "repetitions (generator and judge re-run, caches bypassed); run_variance: two-way "
                          "ANOVA estimate of the run effect's variance / N, which the comparison's test and "
                          "interval add")
