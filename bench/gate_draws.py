"""The gate calibration's draws (`bench.gate_calibration`): random question subsets, the baseline and a run
restricted to them, the real `gate_run` per draw, and the counting over draws (false alarms, power,
Clopper-Pearson intervals, medians, full-set differences)."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.gate_variants import NULL, VARIANTS

if TYPE_CHECKING:
    import pandas as pd

    from axiom.evaluation.run_folder import RunRecord
    from axiom.evaluation.verdict import StatsConfig


# -- subsets and the gate --------------------------------------------------------------------------
def draw_subset(ids: Sequence[str], size: int, draw: int) -> list[str]:
    """`size` of the ids without replacement, numpy seed `draw`, in the ids' order."""
    rng = np.random.default_rng(draw)
    chosen = set(rng.choice(len(ids), size=size, replace=False).tolist())
    return [qid for i, qid in enumerate(ids) if i in chosen]


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and not math.isnan(float(x))


def restrict_baseline(baseline: Mapping[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    """The baseline as if measured on these questions only: per-question values, n and mean per metric
    (the interval is dropped; the gate does not read it). Metrics with no value left are dropped."""
    keep = set(ids)
    metrics: dict[str, Any] = {}
    for name, entry in baseline["metrics"].items():
        per = {k: v for k, v in (entry.get("per_question") or {}).items() if k in keep and _finite(v)}
        if not per:
            continue
        metrics[name] = {**entry, "per_question": per, "n": len(per),
                         "mean": float(np.mean(list(per.values()))),
                         "ci_low": None, "ci_high": None}
    dataset = dict(baseline.get("dataset") or {}, items=len(ids))
    return {**baseline, "metrics": metrics, "dataset": dataset}


def restrict_results(results: pd.DataFrame, metric_names: Sequence[str], ids: Sequence[str]
                     ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The run's rows for these questions and its summary recomputed over them (mean over measured values,
    n), which is what `gate_run` reads."""
    keep = set(ids)
    subset = results[results["id"].astype(str).isin(keep)].reset_index(drop=True)
    summary: dict[str, dict[str, Any]] = {}
    for name in metric_names:
        if name not in subset.columns:
            continue
        values = [float(v) for v in subset[name] if _finite(v)]
        summary[name] = {"mean": float(np.mean(values)) if values else None, "n": len(values)}
    return subset, summary


def failed_metrics(gate: Any) -> list[str]:
    """The metric each gate failure names (`<metric>: ...`)."""
    return [f.split(":", 1)[0] for f in gate.failures]


def gate_draw(baseline: Mapping[str, Any], record: RunRecord, ids: Sequence[str], config: StatsConfig
              ) -> dict[str, Any]:
    """One draw: the real gate on the subset. Returns what the table aggregates."""
    from axiom.evaluation.gate import gate_run
    from axiom.evaluation.verdict import BETTER, WORSE

    base = restrict_baseline(baseline, ids)
    results, summary = restrict_results(record.results, record.metric_names, ids)
    gate = gate_run(results, summary, base, config=config)
    st = gate.statistics
    return {"seed": config.seed, "n": len(ids), "failed": not gate.passed, "failures": list(gate.failures),
            "named": failed_metrics(gate),
            "worse": [m for m, e in st.items() if e.verdict == WORSE],
            "better": [m for m, e in st.items() if e.verdict == BETTER],
            "delta": {m: e.delta for m, e in st.items()},
            "mde": {m: e.mde for m, e in st.items()},
            "p_adj": {m: e.p_adj for m, e in st.items()},
            "n_by_metric": {m: e.n for m, e in st.items()}}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return low, high


def _median(values: Sequence[Any]) -> float | None:
    clean = [float(v) for v in values if _finite(v)]
    return statistics.median(clean) if clean else None


def summarise_variant(name: str, kind: str, what: str, draws: list[dict[str, Any]],
                      metrics: Sequence[str]) -> dict[str, Any]:
    failures = sum(1 for d in draws if d["failed"])
    low, high = clopper_pearson(failures, len(draws))
    named = Counter(m for d in draws for m in d["named"])
    worse = Counter(m for d in draws for m in d["worse"])
    better = Counter(m for d in draws for m in d["better"])
    return {"variant": name, "kind": kind, "what": what, "draws": len(draws), "failures": failures,
            "rate": failures / len(draws) if draws else None, "ci95": [low, high],
            "named": named.most_common(), "worse_verdicts": worse.most_common(),
            "better_verdicts": better.most_common(),
            "median_delta": {m: _median([d["delta"].get(m) for d in draws]) for m in metrics},
            "median_mde": {m: _median([d["mde"].get(m) for d in draws]) for m in metrics}}


def full_set_differences(baseline: RunRecord, other: RunRecord, metrics: Sequence[str]) -> dict[str, Any]:
    """Per metric, on the whole set: how many questions' values differ from the baseline at all (beyond the
    statistics core's tie tolerance) and the largest |difference|."""
    from axiom.evaluation.stats import ZERO

    out: dict[str, Any] = {}
    for m in metrics:
        a, b = baseline.per_question(m), other.per_question(m)
        diffs = [b[i] - a[i] for i in a if i in b and _finite(a[i]) and _finite(b[i])]
        nonzero = [abs(x) for x in diffs if abs(x) > ZERO]
        exact = [x for x in diffs if x != 0.0]
        out[m] = {"pairs": len(diffs), "differ": len(nonzero), "differ_bitwise": len(exact),
                  "max_abs": max((abs(x) for x in diffs), default=0.0)}
    return out


def calibrate(records: Mapping[str, RunRecord], *, draws: int, subset: int, base_config: StatsConfig,
              log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The draws of every variant against the baseline run (see `bench.gate_calibration`'s docstring)."""
    from axiom.evaluation.gate import make_baseline

    baseline_record = records["baseline"]
    baseline = make_baseline(baseline_record)
    metrics = list(baseline["metrics"])
    ids = [str(i) for i in baseline_record.results["id"]]
    if subset > len(ids):
        raise ValueError(f"--subset {subset} is larger than the set ({len(ids)} questions)")
    subsets = {d: draw_subset(ids, subset, d) for d in range(1, draws + 1)}
    per_variant: dict[str, list[dict[str, Any]]] = {}
    for name, _kind, _what in VARIANTS:
        t0 = time.perf_counter()
        per_variant[name] = [gate_draw(baseline, records[name], subsets[d],
                                       dataclasses.replace(base_config, seed=d)) for d in subsets]
        log(f"  {name}: {draws} gate runs in {time.perf_counter() - t0:.1f} s, "
            f"{sum(x['failed'] for x in per_variant[name])} failed")
    variants = [summarise_variant(name, kind, what, per_variant[name], metrics)
                for name, kind, what in VARIANTS]
    null_draws = [d for name, kind, _ in VARIANTS if kind == NULL for d in per_variant[name]]
    detectable = {m: {"median_mde": _median([d["mde"].get(m) for d in null_draws]),
                      "baseline_mean": baseline["metrics"][m]["mean"],
                      "median_n": _median([d["n_by_metric"].get(m) for d in null_draws])} for m in metrics}
    null_differences = {name: full_set_differences(baseline_record, records[name], metrics)
                        for name, kind, _ in VARIANTS if kind == NULL}
    return {"metrics": metrics, "variants": variants, "detectable": detectable,
            "null_differences": null_differences, "draws": per_variant,
            "null_gate_runs": len(null_draws),
            "null_failures": sum(1 for d in null_draws if d["failed"])}

