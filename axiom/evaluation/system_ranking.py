"""Systems ranked by a metric against their ranking by people, and how sure both rankings are.

Per (metric, label) with two or more systems: each system's metric mean and label mean over its rows that have
both, the two rankings (best first) and Kendall's tau-b between the two lists of means. With few systems tau
moves in large steps (4 systems: 6 pairs, so one swapped pair is 0.67 -> 0.33), and the human ranking is
itself an estimate, so the bootstrap says how sure each is:

- a 95% percentile interval of tau over `samples` resamples (fixed seed). When the systems answer the same
  questions (some question id has rows of two or more systems) a resample draws question ids with replacement
  and keeps every system's rows of each drawn question (`stats.cluster_resamples`: the systems' means move
  together, as they do when the question set changes; the draws depend on the label and the rows only, so
  every metric with the same rows is judged on the same resamples); otherwise it draws rows within each system
  separately (the systems' samples are independent). `resampling` says which. A resample in which all of one
  side's means tie gives no tau and is left out of the interval;
- for each pair of systems adjacent in the human ranking (higher first): the share of resamples in which
  people rank them in that order (`p_people`: how sure the human ranking of that pair is) and the share in
  which the metric does (`p_metric`); a tie counts half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from axiom.evaluation.stats import cluster_resamples, percentile_interval, seeded_rng

SAMPLES = 1000
QUESTIONS, ROWS_WITHIN_SYSTEMS = "questions", "rows within each system"


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the columns of x and y, one value per row (the bootstrap's replicates: rows are
    resamples, columns systems); NaN for a row whose x or y values all tie. Equals scipy's `kendalltau`."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    i, j = np.triu_indices(x.shape[1], k=1)
    dx, dy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    untied_x, untied_y = np.count_nonzero(dx, axis=1), np.count_nonzero(dy, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((untied_x > 0) & (untied_y > 0), (dx * dy).sum(axis=1) / np.sqrt(untied_x * untied_y),
                        np.nan)


def _resamples(ids: np.ndarray, codes: np.ndarray, *, samples: int, seed: int, label: str
               ) -> tuple[str, list[np.ndarray]]:
    shared = pd.Series(codes).groupby(ids).nunique().max() > 1
    if shared:
        return QUESTIONS, cluster_resamples(ids.tolist(), samples=samples, seed=seed, label=label)
    rng = seeded_rng(seed, "rows:" + label)
    rows_of = [np.flatnonzero(codes == k) for k in range(int(codes.max()) + 1)]
    return ROWS_WITHIN_SYSTEMS, [np.concatenate([rows[rng.integers(0, rows.size, rows.size)]
                                                 for rows in rows_of])
                                 for _ in range(samples)]


def _means(codes: np.ndarray, values: np.ndarray, resamples: list[np.ndarray], systems: int) -> np.ndarray:
    """Per resample (rows) the mean of each system (columns); NaN for a system the resample drew no row of."""
    out = np.empty((len(resamples), systems))
    for r, rows in enumerate(resamples):
        counts = np.bincount(codes[rows], minlength=systems)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r] = np.bincount(codes[rows], weights=values[rows], minlength=systems) / counts
    return out


def _order_share(higher: np.ndarray, lower: np.ndarray) -> float:
    """Share of resamples with higher > lower (a tie counts half; a resample missing either is left out)."""
    kept = ~(np.isnan(higher) | np.isnan(lower))
    if not kept.any():
        return float("nan")
    return float(np.mean(np.where(higher[kept] > lower[kept], 1.0,
                                  np.where(higher[kept] == lower[kept], 0.5, 0.0))))


def bootstrap_means(rows: pd.DataFrame, metric: str, label: str, *, samples: int, seed: int
                    ) -> tuple[list[str], str, np.ndarray, np.ndarray]:
    """The systems (sorted), the resampling used, and per resample (rows) each system's (columns) metric mean
    and label mean, of rows (`system`, `id`, metric, label, none missing)."""
    names = sorted(rows["system"].unique())
    codes = rows["system"].map({n: k for k, n in enumerate(names)}).to_numpy()
    resampling, resamples = _resamples(rows["id"].astype(str).to_numpy(), codes, samples=samples, seed=seed,
                                       label=f"ranking|{label}")  # per label: every metric the same draws
    return (names, resampling, _means(codes, rows[metric].to_numpy(float), resamples, len(names)),
            _means(codes, rows[label].to_numpy(float), resamples, len(names)))


def _one(rows: pd.DataFrame, metric: str, label: str, *, samples: int, seed: int) -> dict[str, Any]:
    names, resampling, boot_m, boot_h = bootstrap_means(rows, metric, label, samples=samples, seed=seed)
    by_m = np.asarray([rows.loc[rows["system"] == n, metric].mean() for n in names])
    by_h = np.asarray([rows.loc[rows["system"] == n, label].mean() for n in names])
    tau = float(kendalltau(by_m, by_h).statistic) if np.ptp(by_m) > 0 and np.ptp(by_h) > 0 else float("nan")
    taus = kendall_tau_b(boot_m, boot_h)
    low, high = percentile_interval(taus)
    people = sorted(range(len(names)), key=lambda k: -by_h[k])
    pairs = [{"higher": names[a], "lower": names[b], "people_difference": float(by_h[a] - by_h[b]),
              "metric_difference": float(by_m[a] - by_m[b]),
              "p_people": _order_share(boot_h[:, a], boot_h[:, b]),
              "p_metric": _order_share(boot_m[:, a], boot_m[:, b])}
             for a, b in zip(people, people[1:], strict=False)]
    return {"metric": metric, "label": label, "systems": len(names), "kendall_tau": tau, "tau_ci_low": low,
            "tau_ci_high": high, "tau_resamples": int(np.isfinite(taus).sum()), "samples": samples,
            "seed": seed,
            "resampling": resampling, "by_metric": sorted(names, key=lambda n: -by_m[names.index(n)]),
            "by_label": [names[k] for k in people], "adjacent_pairs": pairs,
            "means": {n: {"metric": float(by_m[k]), "label": float(by_h[k])} for k, n in enumerate(names)}}


def system_ranking(table: pd.DataFrame, metrics: Sequence[str], labels: Sequence[str], *,
                   samples: int = SAMPLES,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Per (metric, label) with two or more systems that have rows with both: the means, both rankings,
    Kendall's tau-b with its bootstrap interval and the adjacent human pairs' order probabilities (module
    docstring)."""
    out: list[dict[str, Any]] = []
    if table["system"].nunique() < 2:
        return out
    for metric in metrics:
        for label in labels:
            rows = table[["system", "id", metric, label]].dropna()
            if rows["system"].nunique() >= 2:
                out.append(_one(rows, metric, label, samples=samples, seed=seed))
    return out


def tau_text(r: dict[str, Any]) -> str:
    """`tau [low, high]` (`-` for a tau that is not defined)."""
    if not math.isfinite(r["kendall_tau"]):
        return "-"
    interval = "" if not math.isfinite(r.get("tau_ci_low", math.nan)) else \
        f" [{r['tau_ci_low']:.2f}, {r['tau_ci_high']:.2f}]"
    return f"{r['kendall_tau']:.2f}{interval}"


def pairs_text(r: dict[str, Any], key: str) -> str:
    """The adjacent human pairs with one order probability each: `a > b 0.98; b > c 0.61`."""
    return "; ".join(f"{p['higher']} > {p['lower']} {p[key]:.2f}" for p in r.get("adjacent_pairs", []))
