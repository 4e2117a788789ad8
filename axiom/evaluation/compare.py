"""Comparing runs, and the regression gate against a committed baseline.

`compare_runs(a, b)`: for every metric both runs have, the paired difference over the questions both measured
(mean of B - A), a two-sided paired randomisation (sign-flip) test p-value (10,000 permutations from a fixed
seed, exact enumeration for tiny sets), wins / losses / ties per question, and the questions that changed
most (largest summed absolute change over all metrics).

Baselines (`evaluation/baselines/*.json`) hold per metric the measured mean, its per-question values and a
threshold. `gate_run` fails a metric when
- its mean is below the threshold, or
- it is significantly worse than the baseline: paired test p < alpha (default 0.05) and mean difference below
  -min_delta (default 0.01), over the questions both measured, or
- the baseline measured it but this run measured no item of it (all unmeasured).
Metrics the run does not compute at all (e.g. judge metrics in an offline run) are skipped and listed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from axiom.errors import DatasetError, RegressionError, UsageError
from axiom.evaluation.stats import paired_randomisation_test

if TYPE_CHECKING:
    import pandas as pd

    from axiom.evaluation.runs import RunRecord

BASELINE_FORMAT = 1
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_DELTA = 0.01
DEFAULT_MARGIN = 0.05
TIE_EPSILON = 1e-9
# metrics where a lower value is better are not gated (none among the quality metrics today)
LOWER_IS_BETTER: frozenset[str] = frozenset()


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and not math.isnan(float(x))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def paired_metric(a: Mapping[str, float], b: Mapping[str, float], *, seed: int, label: str) -> dict[str, Any]:
    """Paired comparison of per-question values {id: value} of one metric (B relative to A)."""
    ids = [i for i in a if i in b and _finite(a[i]) and _finite(b[i])]
    xa = np.asarray([a[i] for i in ids], dtype=float)
    xb = np.asarray([b[i] for i in ids], dtype=float)
    diff = xb - xa
    return {
        "n": len(ids),
        "a": round(float(xa.mean()), 6) if ids else None,
        "b": round(float(xb.mean()), 6) if ids else None,
        "delta": round(float(diff.mean()), 6) if ids else None,
        "p_value": round(paired_randomisation_test(xa, xb, seed=seed, label=label), 6) if ids else None,
        "wins": int(np.sum(diff > TIE_EPSILON)), "losses": int(np.sum(diff < -TIE_EPSILON)),
        "ties": int(np.sum(np.abs(diff) <= TIE_EPSILON)),
    }


def compare_runs(a: RunRecord, b: RunRecord, *, seed: int = 42, top: int = 5, alpha: float = DEFAULT_ALPHA
                 ) -> dict[str, Any]:
    """Per-metric paired deltas and p-values of run B against run A, plus the questions that changed most."""
    metrics = [m for m in a.metric_names if m in b.metric_names and m in a.results and m in b.results]
    per_a = {m: a.per_question(m) for m in metrics}
    per_b = {m: b.per_question(m) for m in metrics}
    out_metrics = {m: paired_metric(per_a[m], per_b[m], seed=seed, label=m) for m in metrics}
    for r in out_metrics.values():
        r["significant"] = bool(r["p_value"] is not None and r["p_value"] < alpha)

    ids_a = [str(i) for i in a.results["id"]]
    ids_b = set(str(i) for i in b.results["id"])
    common = [i for i in ids_a if i in ids_b]
    answers_a = dict(zip(a.results["id"].astype(str), a.results["answer"], strict=True))
    answers_b = dict(zip(b.results["id"].astype(str), b.results["answer"], strict=True))
    questions = dict(zip(a.results["id"].astype(str), a.results["question"], strict=True))
    changes = []
    for qid in common:
        deltas = {}
        for m in metrics:
            va, vb = per_a[m].get(qid), per_b[m].get(qid)
            if _finite(va) and _finite(vb) and abs(vb - va) > TIE_EPSILON:
                deltas[m] = {"a": round(va, 6), "b": round(vb, 6), "delta": round(vb - va, 6)}
        total = sum(abs(d["delta"]) for d in deltas.values())
        changes.append({"id": qid, "question": questions.get(qid, ""), "total_abs_change": round(total, 6),
                        "answer_changed": answers_a.get(qid) != answers_b.get(qid), "changes": deltas})
    changes.sort(key=lambda c: (-c["total_abs_change"], c["id"]))

    fa, fb = _flatten(a.manifest.get("settings", {})), _flatten(b.manifest.get("settings", {}))
    differences = [f"{key}: {fa.get(key)!r} -> {fb.get(key)!r}" for key in sorted(set(fa) | set(fb))
                   if fa.get(key) != fb.get(key) and not key.endswith(("runs_dir", "judge_cache_dir"))]
    for key in ("dataset.sha256", "corpus.sha256", "git.commit", "git.dirty", "embedding_model", "collection",
                "index.sha256"):
        va, vb = _flatten(a.manifest).get(key), _flatten(b.manifest).get(key)
        if va != vb:
            differences.append(f"{key}: {va!r} -> {vb!r}")
    return {
        "a": str(a.path), "b": str(b.path), "questions_a": len(ids_a), "questions_b": len(ids_b),
        "common_questions": len(common), "test": "paired randomisation (sign-flip), two-sided",
        "alpha": alpha, "seed": seed, "metrics": out_metrics,
        "changed_most": [c for c in changes if c["total_abs_change"] > 0][:top],
        "unchanged_questions": sum(1 for c in changes if c["total_abs_change"] == 0),
        "differences": sorted(dict.fromkeys(differences)),
    }


def comparison_text(result: Mapping[str, Any]) -> str:
    lines = [f"A: {result['a']}", f"B: {result['b']}",
             f"{result['common_questions']} questions in common; {result['test']}; * p < {result['alpha']}"]
    if result.get("differences"):
        lines.append("differences: " + "; ".join(result["differences"][:12]))
    lines.append(f"{'metric':<26} {'A':>7} {'B':>7} {'delta':>8} {'p':>7}  {'W/L/T':<10}")
    for m, r in result["metrics"].items():
        if r["n"] == 0:
            lines.append(f"{m:<26} {'-':>7} {'-':>7} {'-':>8} {'-':>7}  (no question measured in both)")
            continue
        mark = "*" if r["significant"] else " "
        lines.append(f"{m:<26} {r['a']:>7.3f} {r['b']:>7.3f} {r['delta']:>+8.3f} {r['p_value']:>7.4f}{mark} "
                     f"{r['wins']}/{r['losses']}/{r['ties']}")
    if result["changed_most"]:
        lines.append("questions that changed most (B - A):")
        for c in result["changed_most"]:
            detail = ", ".join(f"{m} {d['a']:.2f}->{d['b']:.2f}" for m, d in
                               sorted(c["changes"].items(), key=lambda kv: -abs(kv[1]["delta"]))[:4])
            lines.append(f"  {c['id']} (sum |change| {c['total_abs_change']:.2f}"
                         f"{', answer changed' if c['answer_changed'] else ''}): {detail}")
            lines.append(f"      {c['question']}")
    lines.append(f"{result['unchanged_questions']} question(s) unchanged on every metric")
    return "\n".join(lines)


# -- baselines and the gate -------------------------------------------------------------------------
def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file, or a run folder used as a baseline. Raises DatasetError / UsageError when unusable."""
    path = Path(path)
    if path.is_dir():
        from axiom.evaluation.runs import load_run

        return make_baseline(load_run(path), margin=None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(str(path), [f"not a readable JSON baseline: {exc}"]) from None
    problems = []
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise DatasetError(str(path), ["expected an object with a non-empty 'metrics' object"])
    for name, entry in data["metrics"].items():
        if not isinstance(entry, dict):
            problems.append(f"metrics.{name}: expected an object")
            continue
        for key in ("mean", "threshold"):
            if entry.get(key) is not None and not isinstance(entry[key], (int, float)):
                problems.append(f"metrics.{name}.{key}: expected a number")
        if entry.get("per_question") is not None and not isinstance(entry["per_question"], dict):
            problems.append(f"metrics.{name}.per_question: expected an object of question id -> value")
    for key in ("alpha", "min_delta"):
        if data.get(key) is not None and not isinstance(data[key], (int, float)):
            problems.append(f"{key}: expected a number")
    if problems:
        raise DatasetError(str(path), problems)
    data["_path"] = str(path)
    return data


def make_baseline(record: RunRecord, *, margin: float | None = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA,
                  min_delta: float = DEFAULT_MIN_DELTA) -> dict[str, Any]:
    """A baseline from a run: means and per-question values of every measured metric; thresholds `margin`
    below the measured means (rounded down to 0.01), none when margin is None."""
    metrics: dict[str, Any] = {}
    for name, summary in record.metrics.get("metrics", {}).items():
        mean = summary.get("mean")
        if mean is None:
            continue
        entry: dict[str, Any] = {"mean": mean, "ci_low": summary.get("ci_low"), "ci_high": summary.get("ci_high"),
                                 "n": summary.get("n")}
        if margin is not None and name not in LOWER_IS_BETTER:
            entry["threshold"] = max(0.0, math.floor((mean - margin) * 100 + 1e-9) / 100)
        per = record.per_question(name)
        entry["per_question"] = {k: round(v, 6) for k, v in per.items() if _finite(v)}
        metrics[name] = entry
    manifest = record.manifest
    return {
        "format": BASELINE_FORMAT,
        "description": (f"Measured by `axiom eval` ({manifest.get('name')}); thresholds {margin} below the measured "
                        "means" if margin is not None else "run folder used as a baseline (no thresholds)"),
        "dataset": manifest.get("dataset"), "corpus": {k: (manifest.get("corpus") or {}).get(k)
                                                       for k in ("path", "sha256", "files")},
        "measured": {"run_id": manifest.get("run_id", record.path.name), "started": manifest.get("started"),
                     "git": manifest.get("git"), "embedding_model": manifest.get("embedding_model"),
                     "index": manifest.get("index"), "retriever": manifest.get("retriever"),
                     "top_k": manifest.get("top_k"),
                     "generator": manifest.get("generator"), "judge": manifest.get("judge")},
        "alpha": alpha, "min_delta": min_delta, "metrics": metrics,
        "_path": str(record.path),
    }


@dataclass
class GateResult:
    baseline: str
    failures: list[str] = field(default_factory=list)
    checked: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        return cls(baseline=str(data.get("baseline", "")), failures=list(data.get("failures", [])),
                   checked=dict(data.get("checked", {})), skipped=list(data.get("skipped", [])),
                   notes=list(data.get("notes", [])))

    def raise_if_failed(self, run_folder: str | Path | None) -> None:
        """The gate's verdict as an exit: RegressionError (exit code 3) naming every regressed metric."""
        if not self.passed:
            raise RegressionError("; ".join(self.failures), hint=f"run folder {run_folder}")

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "passed": self.passed, "failures": list(self.failures),
                "checked": self.checked, "skipped": list(self.skipped), "notes": list(self.notes)}

    def text(self) -> str:
        if self.passed:
            head = f"baseline gate PASSED against {self.baseline} ({len(self.checked)} metrics checked)"
        else:
            head = f"baseline gate FAILED against {self.baseline}: {len(self.failures)} metric(s) regressed"
        lines = [head] + [f"  - {f}" for f in self.failures]
        lines += [f"  note: {n}" for n in self.notes]
        if self.skipped:
            lines.append(f"  not compared (not computed in this run): {', '.join(self.skipped)}")
        return "\n".join(lines)


def gate_run(results: pd.DataFrame, summary: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Any], *,
             seed: int = 42) -> GateResult:
    """Check a run (its per-question results and metric summary) against a baseline."""
    alpha = float(baseline.get("alpha", DEFAULT_ALPHA))
    min_delta = float(baseline.get("min_delta", DEFAULT_MIN_DELTA))
    gate = GateResult(baseline=str(baseline.get("_path", "baseline")))
    ids = [str(i) for i in results["id"]] if len(results) else []
    ds = baseline.get("dataset") or {}
    for name, entry in baseline["metrics"].items():
        if name not in summary:
            gate.skipped.append(name)
            continue
        mean = summary[name].get("mean")
        base_mean = entry.get("mean")
        threshold = entry.get("threshold")
        check: dict[str, Any] = {"value": mean, "baseline": base_mean, "threshold": threshold}
        if mean is None:
            gate.failures.append(f"{name}: no question measured in this run (baseline {base_mean})")
            gate.checked[name] = check
            continue
        lower_better = name in LOWER_IS_BETTER
        if threshold is not None and ((mean > threshold) if lower_better else (mean < threshold)):
            gate.failures.append(f"{name}: {mean:.4f} is {'above' if lower_better else 'below'} the threshold "
                                 f"{threshold:.4f} (baseline {base_mean if base_mean is None else f'{base_mean:.4f}'})")
        per_base = entry.get("per_question") or {}
        if per_base and name in results.columns:
            current = {i: float(v) for i, v in zip(ids, results[name], strict=True)}
            paired = paired_metric(per_base, current, seed=seed, label=name)
            check.update(paired=paired)
            delta = paired["delta"]
            worse = delta is not None and ((delta > min_delta) if lower_better else (delta < -min_delta))
            if worse and paired["p_value"] is not None and paired["p_value"] < alpha:
                gate.failures.append(f"{name}: {paired['b']:.4f} is significantly worse than the baseline "
                                     f"{paired['a']:.4f} (delta {delta:+.4f}, p={paired['p_value']:.4f}, "
                                     f"n={paired['n']})")
        gate.checked[name] = check
    if ds.get("sha256") and ds.get("items") is not None and len(ids) != ds.get("items"):
        gate.notes.append(f"the baseline was measured on {ds.get('items')} questions, this run has {len(ids)}")
    return gate
