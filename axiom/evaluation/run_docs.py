"""What an evaluation run writes, whatever answered its questions: the per-question table (results.parquet /
results.csv), metrics.json and manifest.json (the folder itself: run_folder.py; the steps: runs.py).

Scores arrive as `Scored`: per metric one `MetricScore` (value, status, reason) per question, in question
order. An item its source could not answer is a row like any other, with an empty answer, `answered` False and
the reason in `failure` and in `notes` (one entry per metric it left unmeasured).

A repeated run (`axiom eval --repeat N`, N > 1) also writes repeats.parquet (`repeats_frame`): one row per
question and repetition (`id`, `repeat` 1..N, `answer`, every answer metric's value in that repetition). In
results.parquet an answer metric's column is then the question's mean over the repetitions that measured it
(what compare and the gate test) and `answer` is the first repetition's; readers of results.parquet are
unchanged. metrics.json's `repeats` gives N, the spread and means of the repetitions, and per metric the
variance that run-level noise adds to the run's mean (axiom.evaluation.repeats.run_variance); a metric that
varies from run to run has a two-level bootstrap interval (questions resampled, plus the run level:
axiom.evaluation.repeats.two_level_bootstrap_ci).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.evaluation.answered import Answered
from axiom.evaluation.datasets import EvalItem, file_sha256
from axiom.evaluation.provenance import git_state, package_versions, platform_info
from axiom.evaluation.retrieval_metrics import latency_summary
from axiom.evaluation.run_documents import DatasetInfo, GeneratorInfo, Manifest, MetricsDocument, Unanswered
from axiom.evaluation.run_folder import iso, utc_now
from axiom.evaluation.summary import MetricSummary, repeat_summary, summarise_metric

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from axiom.evaluation.answer_metrics import AnswerScores, MetricScore

CONVENTIONS = {
    "relevance": "source level: a chunk is relevant when its source is in relevant_sources; repeated "
                 "sources in a ranking keep their first (best) rank",
    "empty_rankings": "a question with nothing retrieved scores 0, never dropped",
    "unmeasured": "a failed or unparsable judge call, or a question its source did not answer (no response, "
                  "a failed endpoint call), is NaN with a reason, never 0"}


@dataclass
class Scored:
    """Per metric (in the order added) one `MetricScore` per question, in question order."""

    scores: dict[str, list[MetricScore]] = field(default_factory=dict)
    answers: AnswerScores | None = None
    repeat_means: dict[str, list[float | None]] = field(default_factory=dict)
    # a repeated run: per answer metric, per repetition, one value per question; and each repetition's answers
    per_repetition: dict[str, list[list[float]]] = field(default_factory=dict)
    repeat_answers: list[list[str]] = field(default_factory=list)
    evidence_labels: dict[str, Any] = field(default_factory=dict)
    details: dict[str, list[Any]] = field(default_factory=dict)  # boundary: JSON, a value per question

    def add(self, metric: str, scores: list[MetricScore]) -> None:
        self.scores[metric] = scores

    def values(self, metric: str) -> list[float]:
        """One metric's per-question values (NaN: unmeasured or not applicable)."""
        return [s.value for s in self.scores[metric]]

    def repetition_values(self, ids: list[str]) -> dict[str, dict[str, list[float]]]:
        """{metric: {question id: its value in each repetition}} of a repeated run; empty otherwise."""
        return {m: {qid: [rep[q] for rep in reps] for q, qid in enumerate(ids)}
                for m, reps in self.per_repetition.items()}


def results_frame(items: list[EvalItem], answered: Answered, scored: Scored) -> pd.DataFrame:
    """One row per question: what was asked, retrieved and answered, timings, tokens, every metric, notes."""
    import pandas as pd

    records = []
    for idx, (item, a) in enumerate(zip(items, answered.answers, strict=True)):
        notes = {m: f"{scores[idx].status}: {scores[idx].reason}" for m, scores in scored.scores.items()
                 if scores[idx].status != "ok"}
        row: dict[str, Any] = {
            "id": item.id, "question": item.question, "reference": item.reference, "answer": a.answer,
            "contexts": list(a.contexts), "sources": list(a.context_sources),
            "retrieved_sources": list(a.retrieved or ()), "retrieved_chunk_ids": list(a.chunk_ids),
            "relevant_sources": list(item.relevant_sources), "group": item.cluster, "generator": a.generator,
            "degraded": bool(a.degraded), "answered": a.answered, "failure": a.failure or "",
            "retrieval_seconds": a.retrieval_seconds, "generation_seconds": a.generation_seconds,
            "latency_seconds": a.latency_seconds,
            "prompt_tokens": int(a.usage.get("prompt_tokens", 0)),
            "completion_tokens": int(a.usage.get("completion_tokens", 0)),
        }
        for m, scores in scored.scores.items():
            row[m] = float(scores[idx].value)
        for name, per_question in scored.details.items():  # JSON text, the same in the parquet and the CSV
            row[name] = json.dumps(per_question[idx], ensure_ascii=False)
        row["notes"] = json.dumps(notes, ensure_ascii=False) if notes else ""
        records.append(row)
    return pd.DataFrame.from_records(records)


def repeats_frame(items: list[EvalItem], scored: Scored) -> pd.DataFrame | None:
    """repeats.parquet: one row per question and repetition (None for a run that was not repeated)."""
    import pandas as pd

    if not scored.per_repetition:
        return None
    records = []
    for r, answers in enumerate(scored.repeat_answers):
        for q, item in enumerate(items):
            row: dict[str, Any] = {"id": item.id, "repeat": r + 1, "answer": answers[q]}
            for m, reps in scored.per_repetition.items():
                row[m] = float(reps[r][q])
            records.append(row)
    return pd.DataFrame.from_records(records)


def _repeated_intervals(summary: dict[str, MetricSummary], ids: list[str], scored: Scored, samples: int,
                        seed: int) -> dict[str, float]:
    """Per repeated metric the run variance of its mean; where it is above 0, the metric's interval becomes
    the two-level bootstrap one (questions resampled, plus the run level)."""
    import numpy as np

    from axiom.evaluation.repeats import repeat_matrix, run_variance, two_level_bootstrap_ci

    variance: dict[str, float] = {}
    for m, per_question in scored.repetition_values(ids).items():
        means = np.asarray(scored.values(m), dtype=float)
        matrix = repeat_matrix(per_question, ids, means)[~np.isnan(means)]
        term = run_variance(matrix)
        variance[m] = term[0]
        if variance[m] > 0 and summary[m].get("mean") is not None:
            low, high = two_level_bootstrap_ci(means[~np.isnan(means)], [term], samples=samples, seed=seed,
                                               label=m)
            summary[m]["ci_low"], summary[m]["ci_high"] = round(low, 6), round(high, 6)
            summary[m]["ci_method"] = "two-level bootstrap"
    return variance


def _generation_usage(results: pd.DataFrame, run_settings: Settings, generator: str) -> dict[str, Any]:
    from axiom.evaluation.answer_metrics import cost_usd, price_for  # ragas: slow to import

    prompt = int(results["prompt_tokens"].sum()) if len(results) else 0
    completion = int(results["completion_tokens"].sum()) if len(results) else 0
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if generator == "openai":
        usage["model"] = run_settings.generation.model
        usage["cost_usd"] = cost_usd(price_for(run_settings, run_settings.generation.model), prompt,
                                     completion)
    return usage


def metrics_doc(results: pd.DataFrame, answered: Answered, scored: Scored, run_settings: Settings,
                repeat: int) -> MetricsDocument:
    """metrics.json: per-metric summaries with intervals, latency, usage, degraded answers, repeats (the gate
    is added by run_evaluation)."""
    ev = run_settings.evaluation
    summary = {m: summarise_metric(scores, samples=ev.bootstrap_samples, seed=ev.seed, label=m)
               for m, scores in scored.scores.items()}
    run_var = _repeated_intervals(summary, [str(i) for i in results["id"]], scored, ev.bootstrap_samples,
                                  ev.seed)
    judge_stats = scored.answers.judge if scored.answers is not None else None
    if answered.kind == "pipeline":
        latency: dict[str, Any] = {
            "retrieval_batch_seconds": round(answered.retrieval_batch, 6),
            "retrieval": latency_summary(results["retrieval_seconds"].tolist()),
            "generation": latency_summary(results["generation_seconds"].tolist()),
            "question": latency_summary(results["latency_seconds"].tolist()),
            "note": "retrieval is one batch: a question's retrieval time is its share of the batch"}
    else:
        latency = {"question": latency_summary(results["latency_seconds"].tolist()),
                   "note": ("the endpoint's reported latency, else the request's wall time (the successful "
                            "attempt)" if answered.kind == "endpoint" else "the responses' latency_ms")}
    return MetricsDocument(
        metrics=summary,
        confidence={"level": 0.95, "method": "percentile bootstrap of the mean over questions",
                    "samples": ev.bootstrap_samples, "seed": ev.seed},
        latency=latency,
        usage={"generation": _generation_usage(results, run_settings, answered.generator),
               "judge": judge_stats.to_dict() if judge_stats else None},
        degraded_answers=int(results["degraded"].sum()) if len(results) else 0,
        unanswered=Unanswered(n=answered.unanswered,
                              reasons=_top_reasons(a.failure for a in answered.answers if a.failure)),
        repeats=repeat_summary(scored.repeat_means, repeat, run_var),
    )


def _top_reasons(reasons: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])


def manifest_doc(*, name: str, started: datetime, seconds: float, run_settings: Settings,
                 dataset: Path, items: list[EvalItem], corpus_info: dict[str, Any] | None, answered: Answered,
                 scored: Scored, model_id: str, judge: dict[str, Any] | None, store_where: str | None,
                 baseline: str | Path | None) -> Manifest:
    """manifest.json: everything that produced the run. For a responses file or an endpoint, `source` says
    which (file hash, or URL without credentials, mapping and timing) and the pipeline's own fields are
    empty."""
    own = answered.kind == "pipeline"
    generator = answered.generator
    return Manifest(
        name=name,
        started=iso(started), ended=iso(utc_now()), seconds=round(seconds, 3),
        seed=run_settings.evaluation.seed,
        source=answered.source,
        dataset=DatasetInfo(path=str(dataset), sha256=file_sha256(dataset), items=len(items)),
        corpus=corpus_info,
        ingest=answered.ingest.to_dict() if answered.ingest else None,
        collection=run_settings.store.collection if own else None, store=store_where if own else None,
        index=answered.index,
        evidence_labels={k: v for k, v in scored.evidence_labels.items() if k != "why_not"},
        embedding_model=model_id,
        retriever=run_settings.retrieval.retriever if own else None,
        top_k=run_settings.retrieval.top_k if own else answered.source.get("top_k"),
        retrieval_depth=answered.depth,
        generator=GeneratorInfo(name=generator,
                                model=run_settings.generation.model if generator == "openai" else None),
        judge=judge,
        conventions=dict(CONVENTIONS),
        settings=run_settings.redacted(),
        versions=package_versions(),
        git=git_state(),
        platform=platform_info(),
        baseline=str(baseline) if baseline is not None else None,
    )
