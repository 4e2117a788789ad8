"""Baselines and the regression gate.

A baseline (`evaluation/baselines/*.json`, format 3; formats 1 and 2 still load) declares its `primary`
metrics (family.py; a baseline without the list gets family.DEFAULT_PRIMARIES) and holds per metric the
measured mean, its interval, n, the per-question values at full precision (they are data, not display; for a
repeated run, each question's mean over the repetitions), the practical margin `min_delta`, and optionally an
absolute floor `threshold`; when the baseline run was repeated and the metric varied, also the run-to-run
`spread` (reported only) and `per_repetition` (question id -> its value in each repetition), so that the
run-to-run variance of the baseline enters the test (axiom.evaluation.repeats). `measured.noise_sources` says
what made the baseline run stochastic.

`gate_record` gates a run record (`run_evaluation`'s run before its folder is written, or a saved run read
back: the same function for both) through `gate_run`, which compares a run with its baseline through
`verdict.compare_metrics`, the same function as `axiom compare` (so the statistics are identical), over the
metrics both have, corrected together, with the questions grouped by the run's `group` column (the golden
items' groups) when it has one. The gate fails when

- a primary metric's outcome is `regression` (outcomes.py: the one-sided test, Holm over the primaries,
  rejects "no drop" and the drop is at least its `min_delta`, default `DEFAULT_MIN_DELTA`; with repeated runs,
  a test whose null includes the run-to-run variance of both sides); `non-inferior` and `inconclusive` pass,
  and a secondary metric that is worse (max-T over the secondaries) is reported in the notes, not gated, or
- a metric the baseline measured has no question measured in this run (left unmeasured: failed calls, missing
  answers; or not applicable to any question, for want of what it needs: a set without references, an
  evaluation without --corpus; only a metric n/a in the baseline too is noted and not gated), or
- a metric has a floor and its mean is below it. Floors are optional and never tighter than one question's
  weight:
  a floor above (baseline mean - 1/n) is lowered to that, since one question can move a mean by 1/n.

Metrics the run does not compute at all (judge metrics in an offline run) are skipped and listed. The verdict
is a `GateResult`, defined with the run record that holds it (run_folder.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import DatasetError, UsageError
from axiom.evaluation.clusters import question_groups
from axiom.evaluation.family import SECONDARY, default_primaries
from axiom.evaluation.family import summary as family_summary
from axiom.evaluation.outcomes import DEFAULT_MIN_DELTA, REGRESSION
from axiom.evaluation.repeats import (
    RepeatValues,
    compare_with_repeats,
    noise_note,
    noise_sources,
    repetitions,
)
from axiom.evaluation.run_documents import Manifest
from axiom.evaluation.run_folder import GateCheck, GateResult, RunRecord, load_run, per_question
from axiom.evaluation.summary import MetricSummary, not_applicable_reason
from axiom.evaluation.verdict import (
    WORSE,
    StatsConfig,
    is_finite,
    verdict_line,
)

if TYPE_CHECKING:
    import pandas as pd

    from axiom.evaluation.run_documents import DatasetInfo, GeneratorInfo, GitState

BASELINE_FORMAT = 3  # 3: the `primary` list; 2: full-precision per-question values

__all__ = ["BASELINE_FORMAT", "DEFAULT_MIN_DELTA", "gate_record", "gate_run", "load_baseline",
           "make_baseline", "write_baseline"]


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file, or a run folder used as a baseline. Raises DatasetError / UsageError when unusable."""
    path = Path(path)
    if path.is_dir():
        return make_baseline(load_run(path)) | {"_path": str(path)}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(str(path), [f"not a readable JSON baseline: {exc}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise DatasetError(str(path), ["expected an object with a non-empty 'metrics' object"])
    problems = []
    for name, entry in data["metrics"].items():
        if not isinstance(entry, dict):
            problems.append(f"metrics.{name}: expected an object")
            continue
        for key in ("mean", "threshold", "min_delta", "spread"):
            if entry.get(key) is not None and not isinstance(entry[key], (int, float)):
                problems.append(f"metrics.{name}.{key}: expected a number")
        if entry.get("per_question") is not None and not isinstance(entry["per_question"], dict):
            problems.append(f"metrics.{name}.per_question: expected an object of question id -> value")
        repeated = entry.get("per_repetition")
        if repeated is not None and not (isinstance(repeated, dict) and all(
                isinstance(v, list) and all(x is None or isinstance(x, (int, float)) for x in v)
                for v in repeated.values())):
            problems.append(f"metrics.{name}.per_repetition: expected an object of question id -> a list of "
                            f"values (null: unmeasured), one per repetition")
    if data.get("min_delta") is not None and not isinstance(data["min_delta"], (int, float)):
        problems.append("min_delta: expected a number")
    primary = data.get("primary")
    if primary is not None and not (isinstance(primary, list) and primary
                                    and all(isinstance(m, str) for m in primary)):
        problems.append("primary: expected a non-empty list of metric names")
    elif primary is not None:
        problems += [f"primary: {m!r} is not one of the baseline's metrics" for m in primary
                     if m not in data["metrics"]]
    if problems:
        raise DatasetError(str(path), problems)
    data["_path"] = str(path)
    return data


def make_baseline(record: RunRecord, *, floor_margin: float | None = None,
                  min_delta: float = DEFAULT_MIN_DELTA,
                  primaries: Sequence[str] | None = None) -> dict[str, Any]:
    """A baseline from a run: its `primary` metrics (`primaries`, default family.DEFAULT_PRIMARIES among the
    measured metrics), per measured metric its mean, interval, n, full-precision per-question values,
    `min_delta`, the run's repeat spread; a floor `floor_margin` below the mean (and at least one question's
    weight below it) only when a margin is given. UsageError for a primary the run did not measure."""
    metrics: dict[str, Any] = {}
    spread = record.metrics.spread
    for name, summary in record.metrics.metrics.items():
        mean = summary.get("mean")
        if mean is None:
            continue
        entry: dict[str, Any] = {"mean": mean, "ci_low": summary.get("ci_low"),
                                 "ci_high": summary.get("ci_high"),
                                 "n": summary.get("n"), "min_delta": min_delta}
        if spread.get(name):
            entry["spread"] = spread[name]
            entry["per_repetition"] = {k: [None if not is_finite(x) else x for x in v]
                                       for k, v in record.per_repetition(name).items()}
        if floor_margin is not None and summary.get("n"):
            floor = min(mean - floor_margin, mean - 1.0 / summary["n"])
            entry["threshold"] = max(0.0, math.floor(floor * 100 + 1e-9) / 100)
        entry["per_question"] = {k: v for k, v in record.per_question(name).items() if is_finite(v)}
        metrics[name] = entry
    manifest = record.manifest
    unknown = [m for m in primaries or () if m not in metrics]
    if unknown:
        raise UsageError(f"--primary {', '.join(unknown)}: not measured in this run",
                         hint="measured: " + ", ".join(metrics))
    return {
        "format": BASELINE_FORMAT,
        "description": (f"Measured by `axiom eval` ({manifest.name}); the gate fails a primary metric "
                        "whose one-sided test shows a drop of at least its min_delta (a regression)"
                        + (f", or a metric below its floor ({floor_margin} below the mean)"
                           if floor_margin is not None
                           else "")),
        "primary": list(primaries) if primaries else default_primaries(list(metrics)),
        "dataset": _as_dict(manifest.dataset), "corpus": {k: (manifest.corpus or {}).get(k)
                                                          for k in ("path", "sha256", "files")},
        "measured": {"run_id": record.path.name, "started": manifest.started,
                     "git": _as_dict(manifest.git), "embedding_model": manifest.embedding_model,
                     "index": manifest.index, "retriever": manifest.retriever,
                     "top_k": manifest.top_k,
                     "repeats": record.metrics.repeat_count,
                     "generator": _as_dict(manifest.generator), "judge": manifest.judge,
                     "noise_sources": noise_sources(manifest)},
        "min_delta": min_delta, "metrics": metrics,
    }


def _as_dict(part: DatasetInfo | GeneratorInfo | GitState | None) -> dict[str, Any] | None:
    """A manifest's part as its JSON object in the baseline file (None when the manifest has none)."""
    return part.to_dict() if part is not None else None


def write_baseline(baseline: Mapping[str, Any], target: str | Path) -> Path:  # boundary: a JSON object
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in baseline.items() if not k.startswith("_")}
    target.write_text(json.dumps(clean, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def _baseline_noise(baseline: Mapping[str, Any]) -> list[str]:  # boundary: a JSON object
    """What made the baseline run stochastic (older baselines: from their generator and judge)."""
    measured = baseline.get("measured") or {}
    if "noise_sources" in measured:
        return [str(s) for s in measured["noise_sources"] or []]
    return noise_sources(Manifest.from_dict({"generator": measured.get("generator"),
                                             "judge": measured.get("judge")}))


def gate_record(record: RunRecord, baseline: Mapping[str, Any],  # boundary: a JSON object
                config: StatsConfig | None = None) -> GateResult:
    """Check a run record against a baseline: `gate_run` of its results and metric summaries, with its repeat
    spread, every repetition's values (a repeated run's repeats table) and what makes it stochastic (its
    manifest). The one owner of gating a run: `run_evaluation` (before the folder is written) and a saved run
    read back with `load_run` are gated alike."""
    repeats = {m: values for m in record.metric_names if (values := record.per_repetition(m))}
    return gate_run(record.results, record.metrics.metrics, baseline, config=config,
                    spread=record.metrics.spread, repeats=repeats,
                    noise=noise_sources(record.manifest))


def gate_run(results: pd.DataFrame, summary: Mapping[str, MetricSummary],
             baseline: Mapping[str, Any], *,  # boundary: a JSON object
             config: StatsConfig | None = None, spread: Mapping[str, float] | None = None,
             repeats: Mapping[str, RepeatValues] | None = None, noise: Sequence[str] = ()) -> GateResult:
    """Check a run (its per-question results and metric summary) against a baseline (see the module doc).

    `repeats`: a repeated run's per-question values in each repetition ({metric: {id: [values]}}), tested with
    the baseline's `per_repetition`; `spread` is reported; `noise`: what makes this run stochastic (a run of a
    stochastic source made once gets a note in the verdict that run-to-run noise is not measured)."""
    config = config or StatsConfig()
    default_min_delta = float(baseline.get("min_delta", DEFAULT_MIN_DELTA))
    gate = GateResult(baseline=str(baseline.get("_path", "baseline")), config=config.to_dict())
    entries = baseline["metrics"]
    names = [m for m in entries if m in summary]
    gate.skipped = [m for m in entries if m not in summary]
    per_base = {m: {str(k): float(v) for k, v in (entries[m].get("per_question") or {}).items()}
                for m in names}
    per_run = {m: per_question(results, m) for m in names}
    both_spread = {m: max(float(entries[m].get("spread") or 0.0), float((spread or {}).get(m) or 0.0))
                   for m in names}
    # the run's golden items name the groups (none for an older run's table)
    groups = question_groups(results)
    base_reps = {m: {str(k): [math.nan if x is None else float(x) for x in v]
                     for k, v in (entries[m].get("per_repetition") or {}).items()} for m in names}
    declared = baseline.get("primary")
    primaries = [m for m in declared if m in names] if declared else default_primaries(names)
    margins = {m: float(entries[m].get("min_delta", default_min_delta)) for m in names}
    statistics = compare_with_repeats(per_base, per_run, config=config, metrics=names, spread=both_spread,
                                      reps_a=base_reps, reps_b=repeats or {}, groups=groups or None,
                                      primaries=primaries, margins=margins)
    gate.family = family_summary(statistics)
    if declared and [m for m in declared if m not in names]:
        gate.notes.append("primary metrics of the baseline not computed in this run (not gated): "
                          + ", ".join(m for m in declared if m not in names))
    if any(not entries[m].get("per_question") for m in names):
        gate.notes.append("metrics without per-question values in the baseline cannot be tested: "
                          + ", ".join(m for m in names if not entries[m].get("per_question")))
    if baseline.get("format", 1) < 2:
        gate.notes.append("baseline format 1 stores rounded per-question values; regenerate it with "
                          "--save-baseline for exact ties")
    for name in names:
        entry, st, mean = entries[name], statistics[name], summary[name].get("mean")
        base_mean = entry.get("mean")
        min_delta = float(entry.get("min_delta", default_min_delta))
        check: GateCheck = {"value": mean, "baseline": base_mean, "min_delta": min_delta, "stats": st}
        gate.checked[name] = check
        why_not = not_applicable_reason(summary[name])
        if mean is None and why_not is not None:  # n/a for the whole set (what it needs, no item has)
            check["not_applicable"] = why_not
            if base_mean is None:  # n/a in the baseline as well: nothing to hold it to
                gate.notes.append(f"{name}: not applicable to any question of this "
                                  f"run ({why_not}); not gated")
            else:  # the baseline measured it: losing it (a set without references, no --corpus) is a failure
                gate.failures.append(f"{name}: not applicable to any question of this run ({why_not}), "
                                     f"but the baseline measured it ({base_mean})")
            continue
        if mean is None:
            gate.failures.append(f"{name}: no question measured in this run (baseline {base_mean})")
            continue
        threshold = entry.get("threshold")
        if threshold is not None:
            effective = threshold
            if base_mean is not None and entry.get("n"):  # never tighter than one question's weight
                effective = min(threshold, base_mean - 1.0 / float(entry["n"]))
            if effective != threshold:
                gate.notes.append(f"{name}: floor {threshold:.4f} is tighter than one question's weight; "
                                  f"using {effective:.4f}")
            check["threshold"] = effective
            if mean < effective:
                base = "?" if base_mean is None else f"{base_mean:.4f}"
                gate.failures.append(f"{name}: {mean:.4f} is below its floor {effective:.4f} "
                                     f"(baseline {base})")
        if st.outcome == REGRESSION:
            low, high = st.ci
            gate.failures.append(f"{name}: regression against the baseline (primary), {st.b:.4f} vs "
                                 f"{st.a:.4f} (delta {st.delta:+.4f} [{low:+.4f}, {high:+.4f}] 95% CI "
                                 f"unadjusted, one-sided p_adj {st.p_drop_adj:.4g}, n {st.n}; a drop "
                                 f"of at least the margin {min_delta})")
    worse = [m for m, st in statistics.items() if st.role == SECONDARY and st.verdict == WORSE]
    if worse:
        gate.notes.append("worse after the correction over the secondary metrics (reported, not gated): "
                          + ", ".join(worse))
    gate.verdict = verdict_line(statistics, subject="this run", alpha=config.alpha)
    run_n = max((repetitions(v) for v in (repeats or {}).values()), default=1)
    base_n = int((baseline.get("measured") or {}).get("repeats") or 1)
    note = noise_note([("the baseline", _baseline_noise(baseline), base_n), ("this run", list(noise), run_n)])
    if note:
        gate.verdict += "; " + note
        gate.notes.append(note)
    ds = baseline.get("dataset") or {}
    ids = [str(i) for i in results["id"]] if len(results) else []
    if ds.get("items") is not None and len(ids) != ds.get("items"):
        gate.notes.append(f"the baseline was measured on {ds.get('items')} "
                          f"questions, this run has {len(ids)}")
    return gate
