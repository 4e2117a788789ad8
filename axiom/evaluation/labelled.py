"""Prediction-powered estimates for runs of which only some answers carry a human label: per system the
human-judged mean of each label over all its scored questions, and for two runs the paired difference B - A
(`axiom metrics agreement` shows the first, `axiom compare --labels` the second). The numbers come from
`axiom.evaluation.ppi`; this module joins run scores and labels into its per-question maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from axiom.errors import EvaluationError, UsageError
from axiom.evaluation.agreement_data import Labels
from axiom.evaluation.ppi import ppi_from_maps, ppi_paired_difference

# PPI++ (power-tuned): never wider than the labels alone, asymptotically; lam 1 is the original PPI.
DEFAULT_LAM: float | None = None


def _maps(scores: pd.DataFrame, labels: Labels, system: str, metric: str, label: str
          ) -> tuple[dict[str, float], dict[str, float]]:
    own = labels.frame[labels.frame["system"] == (system if labels.per_system
                                                  else "")][["id", label]].dropna()
    return ({str(q): float(v) for q, v in zip(own["id"], own[label], strict=True)},
            {str(q): float(v) for q, v in zip(scores["id"], scores[metric], strict=True) if pd.notna(v)})


def system_estimates(systems: Mapping[str, pd.DataFrame], labels: Labels, metrics: Sequence[str], *,
                     lam: float | None = DEFAULT_LAM) -> list[dict[str, Any]]:
    """Per system, label and metric: the prediction-powered mean of the label over the system's scored
    questions, when some (not all, at least 2) of them are labelled."""
    out = []
    for system, scores in systems.items():
        for label in labels.fields:
            for metric in metrics:
                if metric not in scores.columns:
                    continue
                label_map, score_map = _maps(scores, labels, system, metric, label)
                labelled = sum(1 for q in score_map if q in label_map)
                if labelled < 2 or labelled == len(score_map):
                    continue
                est = ppi_from_maps(label_map, score_map, lam=lam)
                out.append({"system": system, "label": label, "metric": metric, **est.to_dict(),
                            "text": est.text()})
    return out


def paired_estimates(name_a: str, scores_a: pd.DataFrame, name_b: str, scores_b: pd.DataFrame, labels: Labels,
                     metrics: Sequence[str], *, lam: float | None = DEFAULT_LAM) -> list[dict[str, Any]]:
    """Per label and metric both runs have: the prediction-powered estimate of mean(label B - label A) over
    the questions both runs scored. UsageError when the labels are not per system (then both runs would share
    every label and the difference would be 0 by construction)."""
    if not labels.per_system:
        raise UsageError(f"{labels.path} has no `model` or `run` field: a difference between two runs needs "
                         "labels of each run's answers")
    groups = set(labels.frame["system"])
    missing = [name for name in (name_a, name_b) if name not in groups]
    if missing:
        raise UsageError(f"no label in {labels.path} is about "
                         f"{' or '.join(repr(m) for m in missing)} (label groups: "
                         f"{', '.join(sorted(groups))}): map a run to its group with --system NAME=RUN")
    out = []
    for label in labels.fields:
        for metric in metrics:
            if metric not in scores_a.columns or metric not in scores_b.columns:
                continue
            labels_a, map_a = _maps(scores_a, labels, name_a, metric, label)
            labels_b, map_b = _maps(scores_b, labels, name_b, metric, label)
            try:
                est = ppi_paired_difference(labels_a, map_a, labels_b, map_b, lam=lam)
            except EvaluationError as exc:
                out.append({"label": label, "metric": metric, "note": str(exc)})
                continue
            out.append({"label": label, "metric": metric, **est.to_dict(), "text": est.text()})
    return out

