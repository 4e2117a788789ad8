"""Retrieval metrics with ranx, per query and averaged, plus latency percentiles.

Conventions (as trec_eval):
- linear gains (ranx `ndcg`, not `ndcg_burges`); a document is relevant when its judgement is >= 1;
- Precision@k divides by k even when fewer than k documents were retrieved;
- a ranking given with scores is ordered by score (descending), ties by document id (ascending), and handed to
  ranx as ranks (scores n, n-1, ..., 1), so ranx never sees a tie;
- a judged query with no retrieved documents (or missing from the run) scores 0 on every metric: it is never
  dropped (ranx itself would drop it, or fail when every ranking is empty);
- queries without any relevant judgement cannot be scored and are left out (reported by the caller).

Golden sets judge relevance at the *source* level: a retrieved chunk is relevant when its source is one of
the item's `relevant_sources`. A ranking of chunks becomes a ranking of sources by keeping each source's first
(best-ranked) occurrence and dropping its later chunks, so several chunks of one relevant file count once
(otherwise recall could exceed 1 and precision would reward redundancy). Rank k is then the k-th distinct
source.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# The metrics computed for golden sets (source level). Cut-offs are fixed so runs with different top_k
# compare.
RETRIEVAL_METRICS: tuple[str, ...] = (
    "recall@1", "recall@5", "recall@10", "precision@1", "precision@5", "hit_rate@1", "hit_rate@5",
    "hit_rate@10", "mrr@10", "ndcg@10", "map@10",
)
# The metrics printed by `axiom retrieval-eval beir`.
BEIR_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@10", "precision@1")
# How deep to retrieve so that every cut-off above is filled.
RETRIEVAL_DEPTH = 10
_compiled_code_cached = False


def cache_compiled_code() -> int:
    """Keep every numba compilation ranx triggers on disk, across processes.

    ranx compiles its metrics with numba's on-disk cache (`cache=True`), but it builds its Qrels and Run from
    numba typed Dict/List objects, whose operations numba compiles in every process without a cache: 6 s of
    every evaluation on 2 cores (a third of `axiom eval` of the sample set). This turns numba's own on-disk
    cache on for those operations (numba's standard location: beside numba's sources when writable, else the
    user's cache folder), so they compile once per environment (`make install` and the image build do it
    ahead). Returns how many functions were switched to the cache (0 when numba's layout has moved, or no
    cache folder is writable: then they compile per process, as before). Idempotent."""
    global _compiled_code_cached
    if _compiled_code_cached:
        return 0
    _compiled_code_cached = True
    try:
        from numba.core.registry import CPUDispatcher
        from numba.typed import typeddict, typedlist
    except ImportError:  # numba moved its typed containers: only the speed-up is lost
        return 0
    switched = 0
    for module in (typeddict, typedlist):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher):
                try:
                    function.enable_caching()
                except RuntimeError:  # "no locator available": no writable cache folder
                    return switched
                switched += 1
    return switched


def compile_metrics() -> float:
    """Compile (or load from numba's on-disk cache) everything an evaluation's metrics need, now: what `make
    install` and the image build run once, so that the first evaluation does not pay for it. Returns the
    seconds it took."""
    import time

    t0 = time.perf_counter()
    golden_retrieval_metrics({"q1": ["a"], "q2": ["b"]}, {"q1": ["a", "b"], "q2": ["c"]})
    return time.perf_counter() - t0


def metric_depth(metrics: Iterable[str]) -> int:
    """The deepest cut-off among metric names like 'ndcg@10' (0 when none has one)."""
    depth = 0
    for name in metrics:
        if "@" in name:
            depth = max(depth, int(name.rsplit("@", 1)[1]))
    return depth


def dedupe(ids: Iterable[str]) -> list[str]:
    """Keep the first (best-ranked) occurrence of each id, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for value in ids:
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def order_by_score(scored: Mapping[str, float]) -> list[str]:
    """Document ids by score descending, ties broken by document id ascending (deterministic)."""
    return [doc for doc, _ in sorted(scored.items(), key=lambda kv: (-float(kv[1]), kv[0]))]


def evaluate_rankings(qrels: Mapping[str, Mapping[str, float]], rankings: Mapping[str, Sequence[str]],
                      metrics: Sequence[str] = RETRIEVAL_METRICS) -> dict[str, dict[str, float]]:
    """Per-query metric values: {metric: {query_id: value}} for every query with a relevant judgement.

    `rankings` maps query id -> ranked document ids (best first; duplicates after the first are ignored).
    Queries missing from `rankings` or with an empty ranking score 0.
    """
    from ranx import Qrels, Run, evaluate

    cache_compiled_code()
    judged = {qid: {doc: int(rel) for doc, rel in docs.items()} for qid, docs in qrels.items()
              if any(rel >= 1 for rel in docs.values())}
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    if not judged:
        return out
    ranked = {qid: dedupe(rankings.get(qid) or ()) for qid in judged}
    scored = [qid for qid in judged if ranked[qid]]
    for qid in judged:
        if not ranked[qid]:
            for m in metrics:
                out[m][qid] = 0.0
    if not scored:
        return out
    run_dict = {qid: {doc: float(len(ranked[qid]) - i) for i, doc in enumerate(ranked[qid])}
                for qid in scored}
    qrels_obj = Qrels({qid: judged[qid] for qid in scored})
    run_obj = Run(run_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's "unsafe cast" type-safety warnings on every call
        values = evaluate(qrels_obj, run_obj, list(metrics), return_mean=False, make_comparable=False)
    if len(metrics) == 1:
        values = {metrics[0]: values}
    order = list(qrels_obj.keys())  # ranx sorts query ids; its per-query arrays follow that order
    for m in metrics:
        for qid, value in zip(order, np.asarray(values[m], dtype=float).tolist(), strict=True):
            out[m][qid] = float(value)
    return out


def evaluate_run(qrels: Mapping[str, Mapping[str, float]], run: Mapping[str, Mapping[str, float]],
                 metrics: Sequence[str] = RETRIEVAL_METRICS) -> dict[str, dict[str, float]]:
    """Like `evaluate_rankings` for a scored run {query: {doc: score}} (ties by doc id)."""
    return evaluate_rankings(qrels, {qid: order_by_score(docs) for qid, docs in run.items()}, metrics)


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {m: (float(np.mean(list(v.values()))) if v else float("nan")) for m, v in per_query.items()}


def source_ranking(sources: Sequence[str]) -> list[str]:
    """A ranking of chunk sources as a ranking of distinct sources (first occurrence kept)."""
    return dedupe(sources)


def golden_retrieval_metrics(relevant: Mapping[str, Sequence[str]],
                             retrieved_sources: Mapping[str, Sequence[str]],
                             metrics: Sequence[str] = RETRIEVAL_METRICS) -> dict[str, dict[str, float]]:
    """Source-level metrics for a golden set: `relevant` {item id: relevant sources}, `retrieved_sources`
    {item id: sources of the retrieved chunks in rank order}. Items without relevant sources are left out."""
    qrels = {qid: dict.fromkeys(srcs, 1) for qid, srcs in relevant.items() if srcs}
    rankings = {qid: source_ranking(srcs) for qid, srcs in retrieved_sources.items()}
    return evaluate_rankings(qrels, rankings, metrics)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), NaN for no values."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.percentile(clean, q)) if clean else float("nan")


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50 / p95 / mean / max in milliseconds of a list of durations in seconds."""
    clean = [float(v) for v in seconds if v is not None and not math.isnan(v)]
    if not clean:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None, "max_ms": None}
    return {"n": len(clean), "p50_ms": round(percentile(clean, 50) * 1000, 3),
            "p95_ms": round(percentile(clean, 95) * 1000, 3),
            "mean_ms": round(float(np.mean(clean)) * 1000, 3),
            "max_ms": round(max(clean) * 1000, 3)}
