"""Evaluation runs: answer a golden set with the pipeline, score it, and record everything in a run folder
(its layout, `RunRecord` and `load_run`: run_folder.py; what produced it: provenance.py; the per-metric
summaries of metrics.json: summary.py).

The dataset (and its sources) are validated before anything is ingested or written.

Retrieval is batched (one embedding call for all questions) and goes `RETRIEVAL_DEPTH` (10) deep whatever
top_k is, so the retrieval metrics are a property of the retriever and runs with different top_k compare;
the first top_k hits are the generator's contexts. Because retrieval is one batch, a question's
`retrieval_seconds` is its share of the batch (batch time / questions); generation is timed per question.

`run_evaluation` runs these steps in order: validate, prepare (settings, pipeline, the model loaded before any
clock), retrieve and answer, score (retrieval, evidence and answer metrics, repeated when asked), tabulate per
question, summarise (metrics.json), gate, describe (manifest.json, its `timings`: seconds per stage), write the
folder. The questions answered and the current stage are shown on stderr (`axiom.progress`), never on stdout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.errors import ConfigError, DatasetError, UsageError
from axiom.evaluation.datasets import EvalItem, file_sha256, load_golden
from axiom.evaluation.gate import gate_run, load_baseline
from axiom.evaluation.naming import collection_name
from axiom.evaluation.provenance import (
    collection_fingerprint,
    corpus_fingerprint,
    git_state,
    package_versions,
    platform_info,
)
from axiom.evaluation.retrieval_metrics import (
    RETRIEVAL_DEPTH,
    RETRIEVAL_METRICS,
    golden_retrieval_metrics,
    latency_summary,
)
from axiom.evaluation.run_folder import RunRecord, _json_clean, iso, utc_now, write_run_folder
from axiom.evaluation.spans import EVIDENCE_METRICS, evidence_metrics, locate_passages, retrieved_chunk_spans
from axiom.evaluation.spans import METHODS as SPAN_METHODS
from axiom.evaluation.summary import mean_ok, repeat_summary, summarise_metric
from axiom.evaluation.verdict import StatsConfig
from axiom.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

    from axiom.embeddings import Embedder
    from axiom.evaluation.answer_metrics import AnswerScores, ScoreInput
    from axiom.pipeline import RAGPipeline
    from axiom.types import Answer, Hit, IngestReport

log = logging.getLogger(__name__)

CONVENTIONS = {
    "relevance": "source level: a chunk is relevant when its source is in relevant_sources; repeated "
                 "sources in a ranking keep their first (best) rank",
    "empty_rankings": "a question with nothing retrieved scores 0, never dropped",
    "unmeasured": "a failed or unparsable judge call is NaN with a reason, never 0"}


# -- settings -------------------------------------------------------------------------------------
def prepare_settings(settings: Settings, *, corpus_path: str | Path | None, retriever: str | None,
                     top_k: int | None, collection: str | None, model_id: str) -> Settings:
    """The settings a run uses: retriever / top_k overrides, and its own collection for a given corpus (named
    from the corpus folder, a hash of its absolute path and the embedding model) so that nothing else
    ingested into the default collection changes the results. A bad override raises UsageError naming the
    setting."""
    if not collection and corpus_path is not None:
        resolved = Path(corpus_path).resolve()
        salt = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
        collection = collection_name("eval", resolved.stem or "corpus", model_id, salt=salt)
    overrides = {"retrieval.retriever": retriever or None, "retrieval.top_k": top_k,
                 "store.collection": collection or None}
    try:
        return settings.with_overrides(overrides, origin="axiom eval options")
    except ConfigError as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc


# -- the steps of a run ---------------------------------------------------------------------------
@dataclass
class _Inputs:
    """Step 1: the validated inputs."""

    dataset: Path
    corpus: Path | None
    corpus_info: dict[str, Any] | None
    items: list[EvalItem]
    baseline: dict[str, Any] | None


@dataclass
class _Answered:
    """Step 3: what the pipeline retrieved (`depth` deep) and answered (from the first `top_k` hits)."""

    ingest: IngestReport | None
    index: dict[str, Any]
    hit_lists: list[list[Hit]]
    answers: list[Answer]
    retrieval_batch: float  # seconds for the whole batch
    depth: int
    generator: str


@dataclass
class _Scored:
    """Step 4: per metric one value, status and reason per question, in question order."""

    order: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, list[str | None]] = field(default_factory=dict)
    answers: AnswerScores | None = None
    repeat_means: dict[str, list[float | None]] = field(default_factory=dict)
    evidence_labels: dict[str, Any] = field(default_factory=dict)

    def add(self, metric: str, values: list[float], statuses: list[str], reasons: list[str | None]) -> None:
        self.order.append(metric)
        self.values[metric], self.statuses[metric], self.reasons[metric] = values, statuses, reasons

    def add_per_item(self, metric: str, items: list[EvalItem], per: dict[str, float], why_not: str) -> None:
        """A metric computed for some items only (the others are not applicable, for `why_not`)."""
        self.add(metric, [per.get(it.id, float("nan")) for it in items],
                 ["ok" if it.id in per else "not_applicable" for it in items],
                 [None if it.id in per else why_not for it in items])


def _validate(settings: Settings, dataset_path: str | Path, corpus_path: str | Path | None,
              baseline: str | Path | None, repeat: int) -> _Inputs:
    """The arguments, the dataset (and its sources against the corpus files) and the baseline, before anything
    is touched."""
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    dataset = Path(dataset_path)
    corpus = Path(corpus_path) if corpus_path is not None else None
    if corpus is not None and not corpus.exists():
        raise UsageError(f"corpus {corpus} does not exist")
    corpus_info, known = corpus_fingerprint(corpus, settings) if corpus is not None else (None, None)
    items = load_golden(dataset, known_sources=known)
    baseline_data = load_baseline(baseline) if baseline is not None else None
    return _Inputs(dataset, corpus, corpus_info, items, baseline_data)


def _check_sources_in_collection(pipeline: RAGPipeline, inputs: _Inputs) -> None:
    """Without a corpus, the dataset's relevant sources must be in the collection (when it exists)."""
    if pipeline.store.get_collection() is None:
        return
    stored = {str(c.metadata.get("source", "")) for c in pipeline.store.iter_chunks()}
    collection = pipeline.settings.store.collection
    unknown = [f"line {it.line}: unknown source(s) {', '.join(repr(s) for s in it.relevant_sources if s not in stored)} "
               f"(not in collection {collection!r})"
               for it in inputs.items if any(s not in stored for s in it.relevant_sources)]
    if unknown:
        raise DatasetError(str(inputs.dataset), unknown)


def _retrieve_and_answer(pipeline: RAGPipeline, inputs: _Inputs, shown: Progress) -> _Answered:
    """Ingest the corpus (incremental), retrieve for every question in one batch, answer each question."""
    ingest_report = None
    if inputs.corpus is not None:
        with shown.stage("ingest", "ingesting the corpus"):
            ingest_report = pipeline.ingest([inputs.corpus], prune=True, progress=shown.mode is not None)
    index_info = collection_fingerprint(pipeline)
    k = pipeline.settings.retrieval.top_k
    depth = max(k, RETRIEVAL_DEPTH)
    with shown.stage("retrieve", f"retrieving for {len(inputs.items)} questions (one batch)"):
        t0 = time.perf_counter()
        hit_lists = pipeline.retrieve_batch([it.question for it in inputs.items], top_k=depth,
                                            retriever=pipeline.settings.retrieval.retriever)
        retrieval_batch = time.perf_counter() - t0
    with shown.stage("answer", "answering"):
        answers = [pipeline.answer(item.question, hits[:k])
                   for item, hits in shown.each(zip(inputs.items, hit_lists, strict=True), len(inputs.items))]
    return _Answered(ingest_report, index_info, hit_lists, answers, retrieval_batch, depth, pipeline.generator.name)


def _score_inputs(items: list[EvalItem], answers: list[Answer]) -> list[ScoreInput]:
    from axiom.evaluation.answer_metrics import ScoreInput  # ragas: slow to import, so only when scoring

    return [ScoreInput(id=it.id, question=it.question, answer=a.answer, reference=it.reference,
                       contexts=tuple(h.text for h in a.contexts), reference_contexts=it.reference_contexts,
                       short_answer=it.expected_short_answer) for it, a in zip(items, answers, strict=True)]


def _score(pipeline: RAGPipeline, inputs: _Inputs, answered: _Answered, settings: Settings, embedder: Embedder,
           *, judge: bool, repeat: int, shown: Progress) -> _Scored:
    """Retrieval metrics, answer metrics (answered and scored `repeat` times for the run-to-run spread, the
    first repetition's values kept) and evidence metrics, per question."""
    from axiom.evaluation.answer_metrics import judge_config, score_answers  # ragas: slow to import

    items, hit_lists = inputs.items, answered.hit_lists
    run_settings = pipeline.settings
    k = run_settings.retrieval.top_k
    judged = ", then the LLM judge" if judge and judge_config(run_settings) is not None else ""
    with shown.stage("score", f"scoring answers (offline metrics{judged})"):
        retrieval = golden_retrieval_metrics({it.id: it.relevant_sources for it in items},
                                             {it.id: [h.source for h in hits]
                                              for it, hits in zip(items, hit_lists, strict=True)})
        scored = score_answers(_score_inputs(items, answered.answers), run_settings, embedder, judge=judge)
    repeat_means: dict[str, list[float | None]] = {m: [mean_ok(scored.scores[m])] for m in scored.metric_names}
    for r in range(2, repeat + 1):  # run-to-run spread of the generator and the judge
        with shown.stage("repeat", f"repeat {r}/{repeat}: answering and scoring again{judged}"):
            again = [pipeline.answer(it.question, hits[:k]) for it, hits in zip(items, hit_lists, strict=True)]
            rescored = score_answers(_score_inputs(items, again), run_settings, embedder, judge=judge, use_cache=False)
        for m in scored.metric_names:
            repeat_means[m].append(mean_ok(rescored.scores.get(m, [])))
    with shown.stage("evidence", "locating reference passages" if inputs.corpus else "evidence (n/a: no corpus)"):
        evidence, evidence_labels = evidence_scores(items, hit_lists, pipeline, inputs.corpus, settings)
    out = _Scored(answers=scored, repeat_means=repeat_means, evidence_labels=evidence_labels)
    for m in RETRIEVAL_METRICS:
        out.add_per_item(m, items, retrieval.get(m, {}), "no relevant_sources for this item")
    for m in EVIDENCE_METRICS:
        out.add_per_item(m, items, evidence.get(m, {}), evidence_labels["why_not"])
    for m in scored.metric_names:
        scores = scored.scores[m]
        out.add(m, [s.value for s in scores], [s.status for s in scores], [s.reason for s in scores])
    return out


def _results_frame(inputs: _Inputs, answered: _Answered, scored: _Scored) -> pd.DataFrame:
    """One row per question: what was asked, retrieved and answered, timings, tokens, every metric, notes."""
    import pandas as pd

    per_question_retrieval = answered.retrieval_batch / max(1, len(inputs.items))
    records = []
    rows = zip(inputs.items, answered.hit_lists, answered.answers, strict=True)
    for idx, (item, hits, answer) in enumerate(rows):
        notes = {m: f"{scored.statuses[m][idx]}: {scored.reasons[m][idx]}" for m in scored.order
                 if scored.statuses[m][idx] != "ok"}
        row: dict[str, Any] = {
            "id": item.id, "question": item.question, "reference": item.reference, "answer": answer.answer,
            "contexts": [h.text for h in answer.contexts], "sources": [h.source for h in answer.contexts],
            "retrieved_sources": [h.source for h in hits], "retrieved_chunk_ids": [h.chunk_id for h in hits],
            "relevant_sources": list(item.relevant_sources), "generator": answer.generator,
            "degraded": bool(answer.degraded), "retrieval_seconds": per_question_retrieval,
            "generation_seconds": float(answer.timings.get("generate", float("nan"))),
            "prompt_tokens": int(answer.usage.get("prompt_tokens", 0)),
            "completion_tokens": int(answer.usage.get("completion_tokens", 0)),
        }
        for m in scored.order:
            row[m] = float(scored.values[m][idx])
        row["notes"] = json.dumps(notes, ensure_ascii=False) if notes else ""
        records.append(row)
    return pd.DataFrame.from_records(records)


def _generation_usage(results: pd.DataFrame, run_settings: Settings, generator: str) -> dict[str, Any]:
    from axiom.evaluation.answer_metrics import cost_usd, price_for  # ragas: slow to import

    prompt = int(results["prompt_tokens"].sum()) if len(results) else 0
    completion = int(results["completion_tokens"].sum()) if len(results) else 0
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if generator == "openai":
        usage["model"] = run_settings.generation.model
        usage["cost_usd"] = cost_usd(price_for(run_settings, run_settings.generation.model), prompt, completion)
    return usage


def _metrics_doc(results: pd.DataFrame, answered: _Answered, scored: _Scored, run_settings: Settings,
                 settings: Settings, repeat: int) -> dict[str, Any]:
    """metrics.json: per-metric summaries with intervals, latency, usage, degraded answers, repeats."""
    ev = settings.evaluation
    summary = {m: summarise_metric(scored.values[m], scored.statuses[m], scored.reasons[m],
                                   samples=ev.bootstrap_samples, seed=ev.seed, label=m) for m in scored.order}
    judge_stats = scored.answers.judge if scored.answers is not None else None
    return {
        "metrics": summary,
        "confidence": {"level": 0.95, "method": "percentile bootstrap of the mean over questions",
                       "samples": ev.bootstrap_samples, "seed": ev.seed},
        "latency": {"retrieval_batch_seconds": round(answered.retrieval_batch, 6),
                    "retrieval": latency_summary(results["retrieval_seconds"].tolist()),
                    "generation": latency_summary(results["generation_seconds"].tolist()),
                    "question": latency_summary((results["retrieval_seconds"] + results["generation_seconds"]).tolist()),
                    "note": "retrieval is one batch: a question's retrieval time is its share of the batch"},
        "usage": {"generation": _generation_usage(results, run_settings, answered.generator),
                  "judge": judge_stats.to_dict() if judge_stats else None},
        "degraded_answers": int(results["degraded"].sum()) if len(results) else 0,
        "repeats": repeat_summary(scored.repeat_means, repeat),
    }


def _manifest(*, name: str, started: datetime, seconds: float, settings: Settings, pipeline: RAGPipeline,
              inputs: _Inputs, answered: _Answered, scored: _Scored, embedder: Embedder, judge: bool,
              baseline: str | Path | None) -> dict[str, Any]:
    """manifest.json: everything that produced the run."""
    from axiom.evaluation.answer_metrics import judge_config  # ragas: slow to import

    run_settings = pipeline.settings
    judge_cfg = judge_config(run_settings) if judge else None
    generator = answered.generator
    manifest = {
        "name": name,
        "started": iso(started), "ended": iso(utc_now()), "seconds": round(seconds, 3),
        "seed": settings.evaluation.seed,
        "dataset": {"path": str(inputs.dataset), "sha256": file_sha256(inputs.dataset), "items": len(inputs.items)},
        "corpus": inputs.corpus_info,
        "ingest": answered.ingest.to_dict() if answered.ingest else None,
        "collection": run_settings.store.collection, "store": pipeline.store.where,
        "index": answered.index,
        "evidence_labels": {k: v for k, v in scored.evidence_labels.items() if k != "why_not"},
        "embedding_model": embedder.model_id,
        "retriever": run_settings.retrieval.retriever, "top_k": run_settings.retrieval.top_k,
        "retrieval_depth": answered.depth,
        "generator": {"name": generator, "model": run_settings.generation.model if generator == "openai" else None},
        "judge": ({"model": judge_cfg.model, "base_url": judge_cfg.base_url} if judge_cfg else None),
        "conventions": dict(CONVENTIONS),
        "settings": run_settings.redacted(),
        "versions": package_versions(),
        "git": git_state(),
        "platform": platform_info(),
    }
    if baseline is not None:
        manifest["baseline"] = str(baseline)
    return manifest


# -- the run --------------------------------------------------------------------------------------
def run_evaluation(settings: Settings, dataset_path: str | Path, corpus_path: str | Path | None = None, *,
                   name: str = "eval", retriever: str | None = None, top_k: int | None = None,
                   out_dir: str | Path | None = None, baseline: str | Path | None = None,
                   judge: bool = True, collection: str | None = None,
                   embedder: Embedder | None = None, repeat: int = 1, progress: bool | None = None) -> RunRecord:
    """Evaluate a golden set end to end and write a run folder. See the module docstring.

    `embedder` reuses an already loaded embedding model (tests, notebooks). `repeat` > 1 answers and scores
    the questions that many times (the judge's cache bypassed) and records each metric's run-to-run spread;
    the run's per-question values are those of the first repetition. Raises DatasetError before doing
    anything when the dataset is malformed. The gate's result is in the record; `GateResult.raise_if_failed`
    turns a failure into an exit. `progress` (stderr): None, the CLI's default, shows it except inside a
    notebook kernel (a notebook's output stays as it was); False never (`axiom.progress.progress_mode`).
    """
    from axiom.embeddings import make_embedder
    from axiom.pipeline import RAGPipeline
    from axiom.store import ChromaStore

    started = utc_now()
    t_start = time.perf_counter()
    inputs = _validate(settings, dataset_path, corpus_path, baseline, repeat)

    embedder = embedder or make_embedder(settings.embeddings, settings.generation)
    run_settings = prepare_settings(settings, corpus_path=inputs.corpus, retriever=retriever, top_k=top_k,
                                    collection=collection, model_id=embedder.model_id)
    pipeline = RAGPipeline(run_settings, embedder, ChromaStore(run_settings.store))
    if inputs.corpus is None:
        _check_sources_in_collection(pipeline, inputs)
    pipeline.store.get_collection()  # connect first: a store that cannot be reached fails before the model loads
    with Progress("eval", unit="question", verb="answered", enabled=progress) as shown:
        with shown.stage("model_load", "loading the embedding model"):
            pipeline.warm_up()  # so that no stage's clock (retrieval above all) includes it
        answered = _retrieve_and_answer(pipeline, inputs, shown)
        scored = _score(pipeline, inputs, answered, settings, embedder, judge=judge, repeat=repeat, shown=shown)
        results = _results_frame(inputs, answered, scored)
        metrics_doc = _metrics_doc(results, answered, scored, run_settings, settings, repeat)
        gate = None
        if inputs.baseline is not None:
            gate = gate_run(results, metrics_doc["metrics"], inputs.baseline,
                            config=StatsConfig.from_settings(settings.evaluation),
                            spread=metrics_doc["repeats"]["spread"])
            metrics_doc["gate"] = gate.to_dict()
        manifest = _manifest(name=name, started=started, seconds=time.perf_counter() - t_start, settings=settings,
                             pipeline=pipeline, inputs=inputs, answered=answered, scored=scored, embedder=embedder,
                             judge=judge, baseline=baseline)
        manifest["timings"] = {key: round(seconds, 3) for key, seconds in shown.timings.items()}
        runs_dir = Path(out_dir) if out_dir is not None else Path(settings.evaluation.runs_dir)
        with shown.stage("write", "writing the run folder"):
            path = write_run_folder(runs_dir, name, started, manifest, metrics_doc, results)
    log.info("evaluation run written to %s", path)
    return RunRecord(path=path, manifest=manifest, metrics=_json_clean(metrics_doc), results=results, gate=gate)


# -- evidence -------------------------------------------------------------------------------------
def evidence_scores(items: list[Any], hit_lists: list[list[Any]], pipeline: RAGPipeline, corpus: Path | None,
                    settings: Settings) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Evidence recall / precision (spans.py) of the retrieved chunks, and how the labels were located.
    Needs the corpus files: without `corpus` every item is not applicable."""
    if corpus is None:
        return {}, {"why_not": "no corpus given: reference passages are located in the corpus files"}
    located = locate_passages(items, corpus, settings, cache_dir=settings.evaluation.span_cache_dir)
    chunk_ids = {it.id: [h.chunk_id for h in hits] for it, hits in zip(items, hit_lists, strict=True)}
    scores = evidence_metrics(located, retrieved_chunk_spans(pipeline.store, chunk_ids))
    methods = Counter(p.method for passages in located.values() for p in passages)
    return scores, {"passages": sum(methods.values()), **{m: methods.get(m, 0) for m in SPAN_METHODS},
                    "why_not": "no reference context of this item was located in the corpus"}
