"""Evaluation runs: answer a golden set, score it, and record everything in a run folder (its layout,
`RunRecord` and `load_run`: run_folder.py; what the folder holds: run_docs.py; what produced it:
provenance.py; the per-metric summaries of metrics.json: summary.py).

The answers come from one source (`AnswerSource`, answered.py): Axiom's own pipeline (the default), a
responses file written by any system (`AnswerSource.from_responses`, responses.py) or a deployed system asked
over HTTP (`AnswerSource.from_endpoint`, endpoint.py). How the run runs and where it writes are its
`EvaluationOptions` (run_inputs.py): `run_evaluation(settings, dataset, source, options)`. Everything after
the answers is shared: scoring, the run folder, compare, the gate, the notebooks. An item its source did not
answer is unmeasured on every metric, with the reason.

The dataset (and its sources, and a responses file) are validated before anything is ingested or written.

Pipeline retrieval is batched (one embedding call for all questions) and goes `RETRIEVAL_DEPTH` (10) deep
whatever top_k is, so the retrieval metrics are a property of the retriever and runs with different top_k
compare; the first top_k hits are the generator's contexts. Because retrieval is one batch, a question's
`retrieval_seconds` is its share of the batch (batch time / questions); generation is timed per question.
Another system's ranking is as deep as it says (`retrieved`); its retrieval metrics are computed only when it
gives one.

`run_evaluation` runs these steps in order: validate, prepare (settings, pipeline, the model loaded before any
clock), answer (pipeline: retrieve and answer; or read the responses, or ask the endpoint), score (retrieval,
evidence and answer metrics, repeated when asked), tabulate per question, summarise (metrics.json), describe
(manifest.json, its `timings`: seconds per stage), gate, write the folder (and `options.save_responses`). The
questions answered and the current stage are shown on stderr (`axiom.progress`), never on stdout.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from axiom.config import Settings
from axiom.evaluation.answered import Answered, AnswerSource, ItemAnswer
from axiom.evaluation.datasets import EvalItem
from axiom.evaluation.evidence import evidence_scores
from axiom.evaluation.gate import gate_record
from axiom.evaluation.provenance import collection_fingerprint
from axiom.evaluation.repeats import mean_over_repetitions
from axiom.evaluation.responses import write_responses
from axiom.evaluation.retrieval_metrics import RETRIEVAL_DEPTH, RETRIEVAL_METRICS, golden_retrieval_metrics
from axiom.evaluation.run_docs import Scored, manifest_doc, metrics_doc, repeats_frame, results_frame
from axiom.evaluation.run_documents import Manifest, MetricsDocument
from axiom.evaluation.run_folder import RunRecord, _json_clean, utc_now, write_run_folder
from axiom.evaluation.run_inputs import (  # re-exported: moved there
    NO_DATASET,
    EvaluationOptions,
    _check_sources_in_collection,
    _Inputs,
    _validate,
    prepare_settings,
)
from axiom.evaluation.spans import EVIDENCE_METRICS
from axiom.evaluation.summary import mean_ok
from axiom.evaluation.verdict import StatsConfig
from axiom.progress import Progress

if TYPE_CHECKING:
    from axiom.embeddings import Embedder
    from axiom.evaluation.answer_metrics import AnswerScores, MetricScore, ScoreInput
    from axiom.evaluation.endpoint_config import EndpointConfig
    from axiom.pipeline import RAGPipeline
    from axiom.store import ChromaStore
    from axiom.types import Answer, Hit

log = logging.getLogger(__name__)

__all__ = ["NO_DATASET", "NO_RANKING", "NO_REFERENCE_CONTEXTS", "NO_RELEVANT", "AnswerSource",
           "EvaluationOptions", "prepare_settings", "run_evaluation"]

NO_RANKING = "the system gave no retrieved sources for this item"
NO_RELEVANT = "no relevant_sources for this item"
NO_REFERENCE_CONTEXTS = "no reference_contexts for this item"


# -- the steps of a run ---------------------------------------------------------------------------
def _item_answer(answer: Answer, hits: list[Hit], share: float) -> ItemAnswer:
    generate = float(answer.timings.get("generate", float("nan")))
    return ItemAnswer(answer=answer.answer, contexts=tuple(h.text for h in answer.contexts),
                      context_sources=tuple(h.source for h in answer.contexts),
                      retrieved=tuple(h.source for h in hits), retrieved_texts=tuple(h.text for h in hits),
                      chunk_ids=tuple(h.chunk_id for h in hits), retrieval_seconds=share,
                      generation_seconds=generate, latency_seconds=share + generate, usage=dict(answer.usage),
                      generator=answer.generator, degraded=bool(answer.degraded))


def _retrieve_and_answer(pipeline: RAGPipeline, inputs: _Inputs, shown: Progress) -> Answered:
    """Ingest the corpus (incremental), retrieve for every question in one batch, answer each question."""
    ingest_report = None
    if inputs.corpus is not None:
        with shown.stage("ingest", "ingesting the corpus"):
            ingest_report = pipeline.ingest([inputs.corpus], prune=True, progress=shown.mode is not None)
    index_info = collection_fingerprint(pipeline)
    k = pipeline.settings.retrieval.top_k  # the generator's contexts; retrieval goes deeper, for the metrics
    depth = max(k, RETRIEVAL_DEPTH)
    with shown.stage("retrieve", f"retrieving for {len(inputs.items)} questions (one batch)"):
        t0 = time.perf_counter()
        hit_lists = pipeline.retrieve_batch([it.question for it in inputs.items], top_k=depth)
        retrieval_batch = time.perf_counter() - t0
    share = retrieval_batch / max(1, len(inputs.items))
    with shown.stage("answer", "answering"):
        pipeline.prepare_answers([hits[:k] for hits in hit_lists])  # the generator's embedding, one batch
        answers = [pipeline.answer(item.question, hits[:k])
                   for item, hits in shown.each(zip(inputs.items, hit_lists, strict=True), len(inputs.items))]

    repetition = itertools.count(1)

    def again() -> list[ItemAnswer]:  # repetition r draws from its own stream (a sampling generator differs)
        pipeline.generator.start_repetition(next(repetition))
        return [_item_answer(pipeline.answer(it.question, hits[:k]), hits, share)
                for it, hits in zip(inputs.items, hit_lists, strict=True)]

    return Answered(kind="pipeline", answers=[_item_answer(a, h, share) for a, h in zip(answers, hit_lists,
                                                                                          strict=True)],
                    source={"kind": "pipeline"}, generator=pipeline.generator.name, again=again, depth=depth,
                    retrieval_batch=retrieval_batch, ingest=ingest_report, index=index_info)


def _external_answers(inputs: _Inputs, endpoint: EndpointConfig | None, top_k: int,
                      shown: Progress) -> Answered:
    """The answers of another system: the responses file read at validation, or the endpoint asked now."""
    if inputs.responses is not None:
        return inputs.responses
    from axiom.evaluation.endpoint import ask_endpoint  # httpx and tenacity: only when asking an endpoint

    assert endpoint is not None
    with shown.stage("answer", f"asking the endpoint ({len(inputs.items)} questions, "
                               f"{endpoint.concurrency} at a time)"):
        return ask_endpoint(inputs.items, endpoint, top_k=top_k, shown=shown)


def _score_inputs(items: list[EvalItem], answers: list[ItemAnswer]) -> list[ScoreInput]:
    """What the answer metrics see, for the answered items only."""
    from axiom.evaluation.answer_metrics import ScoreInput  # ragas: slow to import, so only when scoring

    return [ScoreInput(id=it.id, question=it.question, answer=a.answer, reference=it.reference,
                       contexts=a.contexts, reference_contexts=it.reference_contexts,
                       short_answer=it.expected_short_answer) for it, a in zip(items, answers, strict=True)
            if a.answered]


def _per_item(items: list[EvalItem], answers: list[ItemAnswer], per: dict[str, float], why_not: str,
              *, ranked: bool = False, evidence: bool = False) -> list[MetricScore]:
    """A metric computed for some items: the unanswered ones are unmeasured (their failure), the others
    without a value not applicable (why: what the item lacks first, else `why_not`)."""
    from axiom.evaluation.answer_metrics import MetricScore  # ragas: slow to import (loaded by the scoring)

    scores = []
    for it, a in zip(items, answers, strict=True):
        if not a.answered:
            scores.append(MetricScore(math.nan, "unmeasured", a.failure))
        elif it.id in per:
            scores.append(MetricScore(per[it.id]))
        elif evidence and not it.reference_contexts:
            scores.append(MetricScore(math.nan, "not_applicable", NO_REFERENCE_CONTEXTS))
        else:
            scores.append(MetricScore(math.nan, "not_applicable",
                                      NO_RANKING if ranked and a.retrieved is None else why_not))
    return scores


def _expand(answers: list[ItemAnswer], scores: list[MetricScore]) -> list[MetricScore]:
    """Answer-metric scores of the answered items spread back over every item (the others unmeasured)."""
    from axiom.evaluation.answer_metrics import MetricScore  # ragas: slow to import (loaded by the scoring)

    measured = iter(scores)
    return [next(measured) if a.answered else MetricScore(math.nan, "unmeasured", a.failure) for a in answers]


def _values(scores: list[MetricScore]) -> list[float]:
    return [s.value for s in scores]


def _score_answers(items: list[EvalItem], answers: list[ItemAnswer], run_settings: Settings,
                   embedder: Embedder, *, judge: bool, use_cache: bool = True) -> AnswerScores:
    from axiom.evaluation.answer_metrics import score_answers  # ragas: slow to import

    return score_answers(_score_inputs(items, answers), run_settings, embedder, judge=judge,
                         use_cache=use_cache)


def _score(inputs: _Inputs, answered: Answered, run_settings: Settings, embedder: Embedder, *, judge: bool,
           repeat: int, shown: Progress, store: ChromaStore | None) -> Scored:
    """Retrieval metrics, answer metrics (answered and scored `repeat` times: every repetition's per-question
    values kept, the run's value of a question its mean over them) and evidence metrics, per question."""
    from axiom.evaluation.answer_metrics import judge_config  # ragas: slow to import

    items, answers = inputs.items, answered.answers
    judged = ", then the LLM judge" if judge and judge_config(run_settings) is not None else ""
    with shown.stage("score", f"scoring answers (offline metrics{judged})"):
        ranked = [(it, a) for it, a in zip(items, answers, strict=True)
                  if a.answered and a.retrieved is not None]
        retrieval = golden_retrieval_metrics({it.id: it.relevant_sources for it, _ in ranked},
                                             {it.id: list(a.retrieved or ()) for it, a in ranked})
        scored = _score_answers(items, answers, run_settings, embedder, judge=judge)
    repeat_means: dict[str, list[float | None]] = {m: [mean_ok(scored.scores[m])]
                                                   for m in scored.metric_names}
    per_repetition = {m: [_values(_expand(answers, scored.scores[m]))] for m in scored.metric_names}
    repeat_answers = [[a.answer for a in answers]]
    for r in range(2, repeat + 1):  # run-to-run variance of the generator and the judge
        with shown.stage("repeat", f"repeat {r}/{repeat}: answering and scoring again{judged}"):
            again = answered.again()
            rescored = _score_answers(items, again, run_settings, embedder, judge=judge, use_cache=False)
        for m in scored.metric_names:
            repeat_means[m].append(mean_ok(rescored.scores.get(m, [])))
            per_repetition[m].append(_values(_expand(again, rescored.scores[m])) if m in rescored.scores
                                     else [math.nan] * len(items))
        repeat_answers.append([a.answer for a in again])
    evidence_stage = "locating reference passages" if inputs.corpus else "evidence (n/a: no corpus)"
    with shown.stage("evidence", evidence_stage):
        evidence, evidence_labels = evidence_scores(items, answered, inputs.corpus, run_settings, store)
    out = Scored(answers=scored, repeat_means=repeat_means, evidence_labels=evidence_labels)
    if repeat > 1:
        out.per_repetition, out.repeat_answers = per_repetition, repeat_answers
    if answered.gives_rankings:  # a system that ranks nothing has no retrieval metrics (the gate skips them)
        for m in RETRIEVAL_METRICS:
            out.add(m, _per_item(items, answers, retrieval.get(m, {}), NO_RELEVANT, ranked=True))
    for m in EVIDENCE_METRICS:
        out.add(m, _per_item(items, answers, evidence.get(m, {}), evidence_labels["why_not"], evidence=True))
    for m in scored.metric_names:
        first = _expand(answers, scored.scores[m])
        out.add(m, mean_over_repetitions(first, per_repetition[m]) if repeat > 1 else first)
    for name, per_row in scored.details.items():  # per answered row, spread back over every question
        measured = iter(per_row)
        out.details[name] = [next(measured) if a.answered else [] for a in answers]
    return out


def _warm(embedder: Embedder) -> None:
    warm = getattr(embedder, "warm_up", None)
    if callable(warm):
        warm()
    else:
        _ = embedder.dimension


# -- the run --------------------------------------------------------------------------------------
PIPELINE = AnswerSource()  # Axiom's pipeline over the configured collection (no corpus to ingest)
DEFAULTS = EvaluationOptions()


def run_evaluation(settings: Settings, dataset: str | Path | None, source: AnswerSource = PIPELINE,
                   options: EvaluationOptions = DEFAULTS) -> RunRecord:
    """Evaluate a golden set end to end and write a run folder. See the module docstring.

    `settings` are final: the face resolved its overrides (retriever, top_k, collection) into them through
    `Settings.with_overrides`, and nothing here applies them again. `dataset`: the golden set (JSONL); None
    when the `source` is a responses file whose lines carry their own questions (reference-free).

    `source` (`AnswerSource`, answered.py): Axiom's pipeline (the default: the configured collection; over a
    corpus, `AnswerSource.pipeline(corpus)`, in the corpus's own collection (`prepare_settings`) unless
    `own_collection` is False: the face chose the collection, `--collection`, a notebook's session); or a
    responses file or an endpoint, with which the corpus only adds the evidence metrics (nothing is ingested)
    and `retrieval.top_k` fills the endpoint template's `{top_k}`.

    `options` (`EvaluationOptions`, run_inputs.py): the run's name and folder, the baseline, `repeat`,
    `judge`, `progress`, `save_responses` (the run's answers written as a responses file) and `embedder` (an
    already loaded embedding model to reuse: tests, notebooks). `repeat` > 1 answers and scores the questions
    that many times (the judge's cache bypassed; a sampling generator draws each repetition from its own
    stream): every repetition's answers and answer-metric values go to repeats.parquet, an answer metric's
    value of a question (results.parquet, metrics.json, compare, the gate) is its mean over the repetitions,
    and the run-to-run variance enters the gate's test and interval (axiom.evaluation.repeats); the spread
    (range of the repetition means) is reported. Retrieval is not repeated (it is deterministic).

    Raises DatasetError before doing anything when the dataset (or the responses file) is malformed. The
    gate's result is in the record; `GateResult.raise_if_failed` turns a failure into an exit. `progress`
    (stderr): None, the CLI's default, shows it except inside a notebook kernel (a notebook's output stays as
    it was); False never.
    """
    from axiom.embeddings import caching_embedder, make_embedder

    started = utc_now()
    t_start = time.perf_counter()
    external = source.external
    inputs = _validate(settings, dataset, source, options)

    # one memo (and the on-disk embedding cache) for every text of the run: questions, sentences, answers
    embedder = caching_embedder(settings,
                                options.embedder or make_embedder(settings.embeddings, settings.generation))
    work_before = embedder.stats()  # a shared memo (notebooks) counts earlier runs too
    run_settings = (prepare_settings(settings, corpus_path=inputs.corpus, model_id=embedder.model_id)
                    if source.own_collection and not external and inputs.corpus is not None else settings)
    pipeline: RAGPipeline | None = None
    if not external:
        from axiom.pipeline import RAGPipeline
        from axiom.store import ChromaStore

        # the run's chunks go through the run's memo and disk cache, as its questions and answers do
        pipeline = RAGPipeline(run_settings, embedder, ChromaStore(run_settings.store),
                               cache_chunk_vectors=True)
        if inputs.corpus is None:
            _check_sources_in_collection(pipeline, inputs)
        # connect first: a store that cannot be reached fails before the model loads
        pipeline.store.get_collection()
    with Progress("eval", unit="question", verb="answered", enabled=options.progress) as shown:
        with shown.stage("model_load", "loading the embedding model"):
            if pipeline is not None:
                pipeline.warm_up()  # so that no stage's clock (retrieval above all) includes it
            else:
                _warm(embedder)
        answered = (_retrieve_and_answer(pipeline, inputs, shown) if pipeline is not None
                    else _external_answers(inputs, source.endpoint, run_settings.retrieval.top_k, shown))
        scored = _score(inputs, answered, run_settings, embedder, judge=options.judge,
                        repeat=options.repeat, shown=shown,
                        store=pipeline.store if pipeline is not None else None)
        results = results_frame(inputs.items, answered, scored)
        doc = metrics_doc(results, answered, scored, run_settings, options.repeat)
        prepared = _Run(started, t_start, run_settings, embedder.model_id, pipeline)
        manifest = _describe(options, prepared, inputs, answered, scored)
        gate = None
        repeats_table = repeats_frame(inputs.items, scored)
        if inputs.baseline is not None:  # gated as its saved folder would be (the folder is written below)
            unsaved = RunRecord(path=Path(), manifest=manifest, metrics=doc, results=results,
                                repeats=repeats_table)
            gate = gate_record(unsaved, inputs.baseline, StatsConfig.from_settings(run_settings.evaluation))
            doc = replace(doc, gate=gate.to_dict())
        if dataset is None and manifest.dataset is not None:  # the responses' own questions (no references)
            manifest = replace(manifest, dataset=replace(manifest.dataset, from_responses=True))
        manifest = replace(
            manifest, timings={key: round(seconds, 3) for key, seconds in shown.timings.items()},
            # texts the model embedded in this run, and those the memo and the on-disk cache answered
            embedding_work={key: value - work_before.get(key, 0)
                            for key, value in embedder.stats().items() if key != "cached_vectors"})
        runs_dir = Path(options.out_dir if options.out_dir is not None else run_settings.evaluation.runs_dir)
        with shown.stage("write", "writing the run folder"):
            path = write_run_folder(runs_dir, options.name, started, manifest, doc, results,
                                    repeats=repeats_table)
            if options.save_responses is not None:
                write_responses(options.save_responses, inputs.items, answered.answers, run=path.name)
    log.info("evaluation run written to %s", path)
    clean = MetricsDocument.from_dict(_json_clean(doc.to_dict()))  # NaN -> None, as metrics.json holds
    return RunRecord(path=path, manifest=manifest, metrics=clean, results=results, gate=gate,
                     repeats=repeats_table)


@dataclass(frozen=True)
class _Run:
    """What `run_evaluation` prepared, for the manifest: its start, the run's settings, the embedding model
    and the pipeline (None: another system answered)."""

    started: datetime
    t_start: float
    run_settings: Settings
    model_id: str
    pipeline: RAGPipeline | None


def _describe(options: EvaluationOptions, run: _Run, inputs: _Inputs, answered: Answered,
              scored: Scored) -> Manifest:
    from axiom.evaluation.answer_metrics import judge_config  # ragas: slow to import

    judge_cfg = judge_config(run.run_settings) if options.judge else None
    return manifest_doc(name=options.name, started=run.started, seconds=time.perf_counter() - run.t_start,
                        run_settings=run.run_settings, dataset=inputs.dataset,
                        items=inputs.items, corpus_info=inputs.corpus_info, answered=answered, scored=scored,
                        model_id=run.model_id,
                        judge=({"model": judge_cfg.model, "base_url": judge_cfg.base_url}
                               if judge_cfg else None),
                        store_where=run.pipeline.store.where if run.pipeline is not None else None,
                        baseline=options.baseline)
