"""Comparing two evaluation runs question by question.

`compare_runs(a, b)`: for every metric both runs have, the paired statistics and verdict of
`verdict.compare_metrics` (the function the gate uses too: identical numbers in every face; questions grouped
by the `group` column the runs wrote, none for older runs), the overall verdict line, the questions that
changed most (largest summed absolute change over all metrics), and the settings that differ. Baselines and
the gate live in `gate.py`.

Repeated runs (`axiom eval --repeat N`) are compared on each question's mean over the repetitions, with their
run-to-run variance in the test, the interval and the MDE (`repeats.compare_with_repeats`, which the gate uses
too); the spread is reported, never a dead band. A stochastic run made once (an LLM generator or judge, an
endpoint, extractive sampling) gets a note in the verdict that run-to-run noise is not measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from axiom.errors import UsageError
from axiom.evaluation.clusters import question_groups
from axiom.evaluation.family import summary as family_summary
from axiom.evaluation.repeats import compare_with_repeats, noise_note, noise_sources
from axiom.evaluation.run_documents import Change, Comparison, QuestionChange
from axiom.evaluation.stats import ZERO
from axiom.evaluation.summary import not_applicable_reason
from axiom.evaluation.verdict import StatsConfig, is_finite, metrics_table, verdict_line

if TYPE_CHECKING:
    from axiom.evaluation.run_documents import Manifest
    from axiom.evaluation.run_folder import RunRecord

# Settings that never change a result, left out of a comparison's differences: where runs, caches, the
# store's files, the BM25 index and the log are kept (a notebook run records them absolute, anchored to the
# project folder, a CLI run as given; what a store holds is compared through the collection and corpus).
NOT_A_DIFFERENCE = ("runs_dir", "judge_cache_dir", "span_cache_dir", "embeddings.cache_dir",
                    "embeddings.cache_enabled", "embeddings.cache_max_mb",
                    "store.path", "store.bm25_dir", "logging.file", "service.data_root")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:  # boundary: a JSON object
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _inputs(manifest: Manifest) -> dict[str, Any]:
    """What a run read and which code ran, beside its settings: the keys a comparison reports when they
    differ (None where the manifest has no such part)."""
    dataset, git = manifest.dataset, manifest.git
    return {"dataset.sha256": dataset.sha256 if dataset is not None else None,
            "corpus.sha256": (manifest.corpus or {}).get("sha256"),
            "git.commit": git.commit if git is not None else None,
            "git.dirty": git.dirty if git is not None else None,
            "embedding_model": manifest.embedding_model, "collection": manifest.collection,
            "index.sha256": (manifest.index or {}).get("sha256")}


def run_spread(record: RunRecord) -> dict[str, float]:
    """Run-to-run spread per metric of a repeated run (`axiom eval --repeat`; reported only); empty for a
    single run."""
    return record.metrics.spread


def _repeats_of(record: RunRecord) -> int:
    return record.metrics.repeat_count


def compare_runs(a: RunRecord, b: RunRecord, *, config: StatsConfig | None = None, top: int = 5,
                 primaries: Sequence[str] | None = None) -> Comparison:
    """Per-metric paired statistics and verdicts of run B against run A, the verdict line, the family (the
    primaries and their outcomes: `primaries`, default family.DEFAULT_PRIMARIES), plus the questions that
    changed most and the settings that differ."""
    config = config or StatsConfig()
    measured_a = {m for m, s in a.metrics.metrics.items() if s.get("n")}
    measured_b = {m for m, s in b.metrics.metrics.items() if s.get("n")}
    # metrics both runs compute and at least one measured (n/a for every question in both: nothing to compare)
    metrics = [m for m in a.metric_names if m in b.metric_names and m in a.results and m in b.results
               and (m in measured_a or m in measured_b)]
    unknown = [m for m in primaries or () if m not in metrics]
    if unknown:
        raise UsageError(f"--primary {', '.join(unknown)}: not a metric both runs measured",
                         hint="compared: " + ", ".join(metrics))
    per_a = {m: a.per_question(m) for m in metrics}
    per_b = {m: b.per_question(m) for m in metrics}
    spread_a, spread_b = run_spread(a), run_spread(b)
    spread = {m: max(float(spread_a.get(m) or 0.0), float(spread_b.get(m) or 0.0)) for m in metrics}
    groups = question_groups(b.results) | question_groups(a.results)  # A's groups win where both name one
    reps_a = {m: a.per_repetition(m) for m in metrics}
    reps_b = {m: b.per_repetition(m) for m in metrics}
    out_metrics = compare_with_repeats(per_a, per_b, config=config, metrics=metrics, spread=spread,
                                       reps_a=reps_a,
                                       reps_b=reps_b, groups=groups or None, primaries=primaries)
    note = noise_note([("A", noise_sources(a.manifest), _repeats_of(a)),
                       ("B", noise_sources(b.manifest), _repeats_of(b))])

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
            if is_finite(va) and is_finite(vb) and abs(vb - va) > ZERO:
                deltas[m] = Change(a=round(va, 6), b=round(vb, 6), delta=round(vb - va, 6))
        total = sum(abs(d.delta) for d in deltas.values())
        changes.append(QuestionChange(id=qid, question=questions.get(qid, ""),
                                      total_abs_change=round(total, 6),
                                      answer_changed=answers_a.get(qid) != answers_b.get(qid),
                                      changes=deltas))
    changes.sort(key=lambda c: (-c.total_abs_change, c.id))

    fa, fb = _flatten(a.manifest.settings), _flatten(b.manifest.settings)
    differences = [f"{key}: {fa.get(key)!r} -> {fb.get(key)!r}" for key in sorted(set(fa) | set(fb))
                   if fa.get(key) != fb.get(key) and not key.endswith(NOT_A_DIFFERENCE)]
    inputs_a, inputs_b = _inputs(a.manifest), _inputs(b.manifest)
    differences += [f"{key}: {inputs_a[key]!r} -> {inputs_b[key]!r}" for key in inputs_a
                    if inputs_a[key] != inputs_b[key]]
    not_applicable = {m: not_applicable_reason(a.metrics.metrics[m]) or not_applicable_reason(
                          b.metrics.metrics[m]) or "unmeasured"
                      for m in a.metric_names if m in b.metric_names and m not in metrics
                      and m in a.metrics.metrics and m in b.metrics.metrics
                      and m not in measured_a and m not in measured_b}
    return Comparison(
        a=str(a.path), b=str(b.path), questions_a=len(ids_a), questions_b=len(ids_b),
        common_questions=len(common),
        verdict=verdict_line(out_metrics, alpha=config.alpha) + (f"; {note}" if note else ""),
        noise_note=note, family=family_summary(out_metrics),
        test=config.describe(), config=config.to_dict(), metrics=out_metrics,
        changed_most=[c for c in changes if c.total_abs_change > 0][:top],
        unchanged_questions=sum(1 for c in changes if c.total_abs_change == 0),
        differences=sorted(dict.fromkeys(differences)),
        not_applicable=not_applicable,
    )


def comparison_text(result: Comparison) -> str:
    """The comparison as `axiom compare` prints it."""
    lines = [f"verdict: {result.verdict}", f"A: {result.a}", f"B: {result.b}",
             f"questions: A {result.questions_a}, B {result.questions_b}, {result.common_questions} "
             f"in both (n per metric: the questions both measured); {result.test}"]
    if result.differences:
        lines.append("differences: " + "; ".join(result.differences[:12]))
    lines += metrics_table(result.metrics)
    not_compared: dict[str, list[str]] = {}  # why -> the metrics no question measured in either run
    for name, reason in result.not_applicable.items():
        not_compared.setdefault(reason, []).append(name)
    lines += [f"not compared, unmeasured in both runs: {', '.join(names)}" if reason == "unmeasured" else
              f"not compared, n/a in both runs ({reason}): {', '.join(names)}"
              for reason, names in not_compared.items()]
    if result.changed_most:
        lines.append("questions that changed most (B - A):")
        for c in result.changed_most:
            detail = ", ".join(f"{m} {d.a:.2f}->{d.b:.2f}" for m, d in
                               sorted(c.changes.items(), key=lambda kv: -abs(kv[1].delta))[:4])
            lines.append(f"  {c.id} (sum |change| {c.total_abs_change:.2f}"
                         f"{', answer changed' if c.answer_changed else ''}): {detail}")
            lines.append(f"      {c.question}")
    lines.append(f"{result.unchanged_questions} question(s) unchanged on every metric")
    if result.prediction_powered is not None:  # `axiom compare --labels`: see axiom.evaluation.labelled
        lines.append("human-judged difference B - A (prediction-powered, 95% CI):")
        lines += [f"  {e['label']} from {e['metric']}: {e.get('text') or e.get('note')}"
                  for e in result.prediction_powered]
    return "\n".join(lines)
