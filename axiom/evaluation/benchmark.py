"""BEIR benchmarks: index every document whole (`(title + " " + text).strip()`, no chunking, as MTEB does),
retrieve for every judged query in one batch, score with ranx (document level, trec_eval conventions), and
optionally compare retrievers with a paired randomisation test over queries.

The collection is named from the dataset folder and the embedding model (`beir-scifact-all-minilm-l6-v2`) in
the configured store, so a second run re-uses the vectors (`index_records` only embeds missing ids).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.errors import UsageError
from axiom.evaluation.datasets import load_beir
from axiom.evaluation.naming import beir_collection
from axiom.evaluation.retrieval_metrics import BEIR_METRICS, evaluate_rankings, mean_metrics, metric_depth
from axiom.evaluation.verdict import StatsConfig, compare_metrics, metrics_table, verdict_line
from axiom.evaluation.verdict_entry import VerdictEntry
from axiom.retrieval import RETRIEVERS

if TYPE_CHECKING:
    from axiom.embeddings import Embedder

log = logging.getLogger(__name__)


def run_beir(settings: Settings, folder: str | Path, *, retrievers: Sequence[str] = ("dense",),
             split: str = "test",
             metrics: Sequence[str] = BEIR_METRICS, embedder: Embedder | None = None, seed: int | None = None,
             collection: str | None = None) -> dict[str, Any]:
    """Benchmark one or more retrievers on a BEIR folder; the first retriever is the reference of the paired
    comparisons. Returns a JSON-ready dict."""
    from axiom.embeddings import make_embedder
    from axiom.pipeline import RAGPipeline
    from axiom.store import ChromaStore

    retrievers = list(dict.fromkeys(retrievers))
    unknown = [r for r in retrievers if r not in RETRIEVERS]
    if not retrievers or unknown:
        raise UsageError(f"unknown retriever(s) {', '.join(unknown) or '(none)'}; "
                         f"expected: {', '.join(RETRIEVERS)}")
    folder = Path(folder)
    t0 = time.perf_counter()
    data = load_beir(folder, split)
    load_seconds = time.perf_counter() - t0

    embedder = embedder or make_embedder(settings.embeddings, settings.generation)
    name = collection or beir_collection(folder, embedder.model_id)
    bench_settings = settings.model_copy(deep=True)
    bench_settings.store.collection = name
    pipeline = RAGPipeline(bench_settings, embedder, ChromaStore(bench_settings.store))

    t0 = time.perf_counter()
    records = [(doc_id, (doc["title"] + " " + doc["text"]).strip()) for doc_id, doc in data.corpus.items()]
    embedded = pipeline.index_records(records)
    index_seconds = time.perf_counter() - t0
    stored = pipeline.store.count()
    if stored != len(records):
        log.warning("collection %s holds %d records, the corpus has %d (another corpus "
                    "with the same folder name?)",
                    name, stored, len(records))

    query_ids = list(data.queries)
    texts = [data.queries[q] for q in query_ids]
    depth = max(metric_depth(metrics), 1)
    per_retriever: dict[str, Any] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for retriever in retrievers:
        t0 = time.perf_counter()
        pipeline.retrieve_batch(texts[:1], top_k=depth, retriever=retriever)  # loads the model / BM25 index
        warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        hit_lists = pipeline.retrieve_batch(texts, top_k=depth, retriever=retriever)
        seconds = time.perf_counter() - t0
        rankings = {qid: [h.chunk_id for h in hits] for qid, hits in zip(query_ids, hit_lists, strict=True)}
        scores = evaluate_rankings(data.qrels, rankings, metrics)
        per_query[retriever] = scores
        per_retriever[retriever] = {
            "metrics": {m: round(v, 4) for m, v in mean_metrics(scores).items()},
            "timings": {"warmup_seconds": round(warmup, 3), "query_batch_seconds": round(seconds, 3),
                        "ms_per_query": round(seconds / max(1, len(texts)) * 1000, 3)},
            "empty_rankings": sum(1 for hits in hit_lists if not hits),
        }
        log.info("bench %s %s: %s", folder.name, retriever, per_retriever[retriever]["metrics"])

    config = StatsConfig.from_settings(settings.evaluation)
    if seed is not None:
        config = StatsConfig(**(config.to_dict() | {"seed": seed}))
    comparisons = []
    reference = retrievers[0]
    pairs = len(retrievers) - 1
    if pairs > 1:  # one family: alpha split over the comparisons (each pair corrects over its metrics within)
        config = StatsConfig(**(config.to_dict() | {"alpha": config.alpha / pairs}))
    family = (
        f", alpha {config.alpha:g} each: one family of {pairs} comparisons (Bonferroni)" if pairs > 1 else ""
    )
    for other in retrievers[1:]:
        stats = compare_metrics(per_query[reference], per_query[other], config=config, metrics=list(metrics))
        comparisons.append({"a": reference, "b": other,
                            "test": config.describe() + " (over queries)" + family,
                            "verdict": verdict_line(stats, subject=other, alpha=config.alpha),
                            "metrics": {m: e.to_dict() for m, e in stats.items()}})
    primary = per_retriever[reference]
    return {
        "dataset": folder.name, "path": str(folder), "split": split,
        "documents": len(data.corpus), "queries": len(query_ids),
        "judgements": sum(len(v) for v in data.qrels.values()),
        "embedding_model": embedder.model_id,
        "max_seq_length": getattr(embedder, "max_seq_length", None),
        "collection": name, "store": pipeline.store.where,
        "retriever": reference, "metrics": primary["metrics"],
        "timings": {"load_seconds": round(load_seconds, 3), "index_seconds": round(index_seconds, 3),
                    "documents_embedded": embedded, **primary["timings"]},
        "retrievers": per_retriever,
        "comparisons": comparisons,
        "settings": {"retrieval": bench_settings.retrieval.model_dump()},
    }


def bench_text(result: dict[str, Any]) -> str:
    lines = [f"{result['dataset']} ({result['split']}): {result['queries']} queries, {result['documents']} "
             f"documents, model {result['embedding_model']}, collection {result['collection']}",
             f"indexing {result['timings']['index_seconds']}s "
             f"({result['timings']['documents_embedded']} embedded)"]
    metrics = list(result["metrics"])
    lines.append(f"{'retriever':<10} " + " ".join(f"{m:>11}" for m in metrics) + f" {'s/batch':>9}")
    for name, r in result["retrievers"].items():
        lines.append(f"{name:<10} " + " ".join(f"{r['metrics'][m]:>11.4f}" for m in metrics)
                     + f" {r['timings']['query_batch_seconds']:>9.2f}")
    for comp in result["comparisons"]:
        lines.append(f"{comp['b']} vs {comp['a']} ({comp['test']}):")
        lines.append(f"  verdict: {comp['verdict']}")
        lines += ["  " + line for line in metrics_table({m: VerdictEntry.from_dict(e)
                                                          for m, e in comp["metrics"].items()})]
    return "\n".join(lines)
