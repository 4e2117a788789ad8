"""How well a metric agrees with people: per metric and per human label, on the joined table of
`agreement_data.join` (one row per system and question).

- Binary label (yes/no, e.g. `human_faithful`): ROC AUC of the metric as a score for "yes"; the threshold with
  the best F1 (the metric at or above it says "yes"), with its precision, recall and F1; Cohen's kappa between
  that decision and the label.
- Graded label: Spearman's rho and Kendall's tau-b.
- Every number has a 95% percentile bootstrap interval resampling questions (a question's rows of every system
  travel together; `stats.cluster_resamples`, fixed seed). The threshold is chosen once on all rows; the
  intervals of precision, recall, F1 and kappa are those of that fixed threshold (re-choosing it per resample
  would measure the choice, not the agreement).
- Several systems: the systems ranked by each metric's mean against their ranking by the label's mean over
  the same labelled questions (Kendall's tau-b; with few systems a coarse number, so both rankings are shown),
  with a bootstrap interval of tau and how sure each adjacent pair of the human ranking is
  (`axiom.evaluation.system_ranking`).

scikit-learn (ROC AUC, F1, kappa) is imported here only (import-linter contract owner-scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata, spearmanr
from sklearn.metrics import (
    cohen_kappa_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from axiom.evaluation.agreement_data import join, load_labels, load_systems
from axiom.evaluation.labelled import system_estimates
from axiom.evaluation.stats import cluster_resamples, percentile_interval
from axiom.evaluation.system_ranking import pairs_text, system_ranking, tau_text

SAMPLES = 1000


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict "yes" at or above it) with the highest F1; ties: the highest threshold."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    p, r = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = np.flatnonzero(f1 == f1.max())
    return float(thresholds[best[-1]])


def confusion_stats(y: np.ndarray, decided: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and Cohen's kappa of 0/1 decisions against 0/1 labels, from the confusion counts
    (numpy: the bootstrap calls it thousands of times; tests check it equals scikit-learn's functions)."""
    n = y.size
    tp = float(np.sum((y == 1) & (decided == 1)))
    fp = float(np.sum((y == 0) & (decided == 1)))
    fn = float(np.sum((y == 1) & (decided == 0)))
    tn = n - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
    kappa = (observed - expected) / (1.0 - expected) if expected < 1.0 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "kappa": kappa}


def rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), for the bootstrap replicates: scikit-learn's
    `roc_auc_score` gives the same number (tests check it) but validates its input at ~8 ms a call."""
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else float("nan")


def _binary_agreement(y: np.ndarray, s: np.ndarray, threshold: float, resamples: list[np.ndarray]
                      ) -> dict[str, dict[str, float]]:
    """ROC AUC, and precision, recall, F1, kappa at the threshold: values from scikit-learn, intervals from
    the bootstrap replicates."""
    decided = (s >= threshold).astype(int)
    kappa = (
        float(cohen_kappa_score(y, decided))
        if np.unique(np.concatenate([y, decided])).size > 1
        else float("nan")
    )
    values = {"roc_auc": _auc(y, s), "precision": float(precision_score(y, decided, zero_division=0.0)),
              "recall": float(recall_score(y, decided, zero_division=0.0)),
              "f1": float(f1_score(y, decided, zero_division=0.0)), "kappa": kappa}
    replicates: dict[str, list[float]] = {name: [] for name in values}
    for rows in resamples:
        replicates["roc_auc"].append(rank_auc(y[rows], s[rows]))
        for name, value in confusion_stats(y[rows], decided[rows]).items():
            replicates[name].append(value)
    return {name: {"value": value, **dict(zip(("ci_low", "ci_high"), percentile_interval(replicates[name]),
                                               strict=True))}
            for name, value in values.items()}


def _graded_stats() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    def rho(y: np.ndarray, s: np.ndarray) -> float:
        return float(spearmanr(s, y).statistic) if np.ptp(y) > 0 and np.ptp(s) > 0 else float("nan")

    def tau(y: np.ndarray, s: np.ndarray) -> float:
        return float(kendalltau(s, y).statistic) if np.ptp(y) > 0 and np.ptp(s) > 0 else float("nan")

    return {"spearman": rho, "kendall": tau}


def _with_intervals(stats: dict[str, Callable[[np.ndarray, np.ndarray], float]], y: np.ndarray, s: np.ndarray,
                    resamples: list[np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for name, fn in stats.items():
        low, high = percentile_interval([fn(y[rows], s[rows]) for rows in resamples])
        out[name] = {"value": fn(y, s), "ci_low": low, "ci_high": high}
    return out


def metric_agreement(table: pd.DataFrame, metrics: Sequence[str], labels: Sequence[str],
                     binary: Sequence[str],
                     *, samples: int = SAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """One entry per (metric, label): n, the label kind and its statistics with 95% cluster-bootstrap
    intervals (see the module docstring). Rows missing the metric or the label are left out of that pair."""
    out = []
    for metric in metrics:
        for label in labels:
            rows = table[["id", metric, label]].dropna()
            y, s = rows[label].to_numpy(float), rows[metric].to_numpy(float)
            entry: dict[str, Any] = {"metric": metric, "label": label, "n": int(len(rows)),
                                     "questions": int(rows["id"].nunique()),
                                     "kind": "binary" if label in binary else "graded"}
            if len(rows) < 2:
                entry["note"] = "fewer than 2 rows with both the metric and the label"
                out.append(entry)
                continue
            resamples = cluster_resamples(rows["id"].tolist(), samples=samples, seed=seed,
                                          label=f"{metric}|{label}")
            if label in binary:
                y = (y > 0.5).astype(int)
                if 0 < y.sum() < y.size:
                    entry["threshold"] = best_f1_threshold(y, s)
                    entry["positive_share"] = float(y.mean())
                    entry.update(_binary_agreement(y, s, entry["threshold"], resamples))
                else:
                    entry["note"] = "the label has one value only: no ROC AUC, threshold or kappa"
            else:
                entry.update(_with_intervals(_graded_stats(), y, s, resamples))
            out.append(entry)
    return out


def roc_points(table: pd.DataFrame, metric: str, label: str) -> dict[str, Any]:
    """False- and true-positive rates of the metric as a score for the binary label (for the ROC chart)."""
    rows = table[[metric, label]].dropna()
    y = (rows[label].to_numpy(float) > 0.5).astype(int)
    if not 0 < y.sum() < y.size:
        return {"metric": metric, "label": label, "fpr": [], "tpr": [], "auc": float("nan")}
    fpr, tpr, _ = roc_curve(y, rows[metric].to_numpy(float))
    return {"metric": metric, "label": label, "fpr": fpr.tolist(), "tpr": tpr.tolist(),
            "auc": float(roc_auc_score(y, rows[metric].to_numpy(float)))}


def agreement_report(sources: Sequence[str], labels_path: str, *, fields: Sequence[str] = (),
                     names: dict[str, str] | None = None, samples: int = SAMPLES, seed: int = 0
                     ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Everything `axiom metrics agreement` reports (JSON-ready: per (metric, label) agreement, the system
    rankings, the prediction-powered label means of systems with unlabelled questions), and the joined table
    it was computed from (for ROC curves)."""
    labels = load_labels(labels_path, fields)
    systems = load_systems(sources, names)
    table = join(systems, labels)
    metrics = sorted({m for frame in systems.values() for m in frame.columns if m != "id"})
    return {"labels": labels_path, "systems": list(systems), "rows": int(len(table)), "samples": samples,
            "seed": seed, "metrics": metrics, "label_fields": list(labels.fields),
            "binary_labels": [f for f in labels.fields if f in labels.binary],
            "agreement": metric_agreement(table, metrics, labels.fields, sorted(labels.binary),
                                          samples=samples,
                                          seed=seed),
            "ranking": system_ranking(table, metrics, labels.fields, samples=samples, seed=seed),
            "estimates": system_estimates(systems, labels, metrics)}, table


def agreement_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The agreement table: a row per (metric, label), its statistics as `value [low, high]` text."""
    stats = ("roc_auc", "f1", "precision", "recall", "kappa", "spearman", "kendall")
    rows = []
    for e in result["agreement"]:
        row = {"metric": e["metric"], "label": e["label"], "kind": e["kind"], "n": e["n"],
               "questions": e["questions"],
               "threshold": round(e["threshold"], 4) if "threshold" in e else None}
        row.update({name: _cell(e.get(name)) for name in stats})
        row["note"] = e.get("note", "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.loc[:, [c for c in frame.columns if not (frame[c].isin(["-", "", None]).all())]]


def ranking_frame(result: dict[str, Any]) -> pd.DataFrame:
    """Systems ranked by each metric against their ranking by people: Kendall's tau [95% bootstrap interval],
    both rankings, and per pair adjacent in the people's ranking the bootstrap probability that people, and
    the metric, order it that way."""
    return pd.DataFrame([{"metric": r["metric"], "label": r["label"], "kendall_tau [95% CI]": tau_text(r),
                          "by metric": " > ".join(r["by_metric"]), "by people": " > ".join(r["by_label"]),
                          "P(people's order)": pairs_text(r, "p_people"),
                          "P(metric agrees)": pairs_text(r, "p_metric"),
                          "resampling": r.get("resampling", "")}
                         for r in result.get("ranking", [])])


def estimates_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The prediction-powered label means per system (systems with unlabelled questions only)."""
    columns = ["system", "label", "metric", "estimate", "ci_low", "ci_high", "width", "labelled", "scored",
               "lam",
               "method"]
    frame = pd.DataFrame(result.get("estimates", []), columns=columns)
    return frame.round({c: 3 for c in ("estimate", "ci_low", "ci_high", "width", "lam")})


def _cell(stat: dict[str, float] | None) -> str:
    if not stat or not math.isfinite(stat["value"]):
        return "-"
    return f"{stat['value']:.3f} [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]"


def agreement_text(result: dict[str, Any]) -> str:
    """The agreement result as text (what `axiom metrics agreement` prints)."""
    lines = [f"agreement with {result['labels']}: {result['rows']} labelled answer(s) of "
             f"{len(result['systems'])} system(s) ({', '.join(result['systems'])}); 95% bootstrap intervals "
             f"over questions ({result['samples']} resamples, seed {result['seed']})"]
    for e in result["agreement"]:
        head = f"{e['metric']} vs {e['label']} (n {e['n']}, {e['questions']} questions)"
        if e.get("note"):
            lines.append(f"{head}: {e['note']}")
        elif e["kind"] == "binary":
            lines.append(f"{head}: ROC AUC {_cell(e.get('roc_auc'))}; best-F1 threshold "
                         f"{e['threshold']:.4g}: F1 {_cell(e.get('f1'))}, precision "
                         f"{_cell(e.get('precision'))}, recall {_cell(e.get('recall'))}, "
                         f"kappa {_cell(e.get('kappa'))}")
        else:
            lines.append(f"{head}: Spearman {_cell(e.get('spearman'))}, Kendall {_cell(e.get('kendall'))}")
    for r in result.get("ranking", []):
        lines.append(f"ranking of {r['systems']} systems by {r['metric']} vs by {r['label']}: Kendall tau "
                     f"{tau_text(r)} (95% bootstrap, {r['resampling']} resampled); metric: "
                     f"{' > '.join(r['by_metric'])}; people: {' > '.join(r['by_label'])}")
        lines.append(f"  adjacent pairs of the people's ranking, bootstrap share in that order: people "
                     f"{pairs_text(r, 'p_people')}; {r['metric']} {pairs_text(r, 'p_metric')}")
    for e in result.get("estimates", []):
        lines.append(f"prediction-powered {e['label']} of {e['system']} from {e['metric']}: {e['text']}")
    return "\n".join(lines)
