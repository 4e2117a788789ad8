"""A sweep's ranking, tested: every combination against the best one by a paired test, under one correction.

Ranking combinations by their means alone crowns a winner whose lead may be noise (the winner's curse: the
best of k noisy means is biased upwards, and its lead over the runner-up is often within what the questions'
noise gives). So each other combination is compared with the best on the same questions: the paired sign-flip
test of the statistics core (stats.paired_randomisation_test; by group when the runs have a `group` column),
its p-values adjusted by Holm over the k - 1 comparisons (one family: the sweep), and the paired 95% interval
of the difference (stats.paired_difference_ci, unadjusted, and labelled so). A combination whose adjusted p is
at or above alpha is "not distinguishable from the best": the sweep's honest answer is then a set of leaders,
not one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from axiom.evaluation.clusters import Clusters, question_groups
from axiom.evaluation.run_folder import RESULTS_PARQUET, load_run
from axiom.evaluation.stats import holm, paired_difference_ci, paired_randomisation_test
from axiom.evaluation.verdict import paired_values

ALPHA = 0.05
BOOTSTRAP_SAMPLES = 2000
SEED = 0
# the interval is unadjusted (the p-value is Holm's) and says so; its names end like the summary's other
# intervals
DIFF, LOW, HIGH, P_HOLM, SAME = ("vs best: diff", "vs best: unadjusted ci_low", "vs best: unadjusted ci_high",
                                  "vs best: p (Holm)", "vs best: distinguishable")


def compare_with_best(values: Mapping[str, Mapping[str, float]], order: Sequence[str], *,
                      groups: Mapping[str, str] | None = None, alpha: float = ALPHA, seed: int = SEED
                      ) -> dict[str, dict[str, Any]]:
    """`values`: label -> {question id: value}; `order`: the labels best first. Each label after the first
    against the first, on the questions both have a finite value for: the mean difference (label - best), its
    paired 95% interval (unadjusted), the Holm-adjusted p over the comparisons made, whether it is
    distinguishable from the best at `alpha`, and the number of paired questions. Labels without values get no
    entry."""
    if not order or not values.get(order[0]):
        return {}
    best = values[order[0]]
    raw: dict[str, float] = {}
    out: dict[str, dict[str, Any]] = {}
    for name in order[1:]:
        ids, a, b = paired_values(best, values.get(name) or {})
        if not ids:
            continue
        clusters = Clusters.of(ids, groups) if groups else None
        raw[name] = paired_randomisation_test(a, b, seed=seed, label=f"best:{name}", clusters=clusters)
        low, high, _method = paired_difference_ci(a, b, samples=BOOTSTRAP_SAMPLES, seed=seed,
                                                  label=f"best:{name}",
                                                  clusters=clusters)
        out[name] = {"diff": float(np.mean(b - a)), "ci_low": low, "ci_high": high, "n": len(ids)}
    adjusted = holm(raw)
    for name, entry in out.items():
        entry["p_holm"] = adjusted[name]
        entry["distinguishable"] = bool(adjusted[name] < alpha)
    return out


def sweep_values(run_paths: Mapping[str, Path | None], metric: str) -> tuple[dict[str, dict[str, float]],
                                                                           dict[str, str]]:
    """Per combination label, the per-question values of `metric` from its run folder (results.parquet), and
    the question groups of the first run that has them (the same golden set in every combination)."""
    values: dict[str, dict[str, float]] = {}
    groups: dict[str, str] = {}
    for name, path in run_paths.items():
        if path is None or not (Path(path) / RESULTS_PARQUET).is_file():
            continue
        record = load_run(path)
        values[name] = record.per_question(metric)
        if not groups:
            groups = question_groups(record.results)
    return values, groups


def with_tests_against_best(table: pd.DataFrame, run_paths: Mapping[str, Path | None],
                            metric: str) -> pd.DataFrame:
    """The sweep's ranked summary (best first, a `combination` column) with the comparison columns added:
    empty for the best row and for combinations without per-question values."""
    values, groups = sweep_values(run_paths, metric)
    tested = compare_with_best(values, list(table["combination"]), groups=groups or None)
    table = table.copy()
    for column, key in ((DIFF, "diff"), (LOW, "ci_low"), (HIGH, "ci_high"), (P_HOLM, "p_holm"),
                        (SAME, "distinguishable")):
        table[column] = [tested.get(name, {}).get(key) for name in table["combination"]]
    for column in (DIFF, LOW, HIGH, P_HOLM):
        table[column] = table[column].astype(float).round(4)
    return table
