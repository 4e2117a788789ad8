"""Retrieval metrics: hand-computed values, and ranx against an independent plain-Python implementation."""

from __future__ import annotations

import math
import random

import pytest

from axiom.evaluation.retrieval_metrics import (
    evaluate_rankings,
    evaluate_run,
    golden_retrieval_metrics,
    latency_summary,
    mean_metrics,
)

METRICS = ["recall@1", "recall@5", "precision@1", "precision@5", "hit_rate@1", "hit_rate@5", "mrr@10",
           "ndcg@10", "map@10"]


def test_hand_computed_example() -> None:
    # relevant d1, d3; ranking d2, d1, d4, d3
    got = evaluate_rankings({"q": {"d1": 1, "d3": 1}}, {"q": ["d2", "d1", "d4", "d3"]}, METRICS)
    v = {m: got[m]["q"] for m in METRICS}
    assert v["recall@1"] == 0.0
    assert v["recall@5"] == 1.0
    assert v["precision@1"] == 0.0
    assert v["precision@5"] == pytest.approx(2 / 5)  # divided by k, as trec_eval
    assert v["hit_rate@1"] == 0.0 and v["hit_rate@5"] == 1.0
    assert v["mrr@10"] == pytest.approx(0.5)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert v["ndcg@10"] == pytest.approx(dcg / idcg)  # 0.6509
    assert v["map@10"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_empty_and_missing_rankings_count_as_zero() -> None:
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}, "c": {"d3": 1}}
    got = evaluate_rankings(qrels, {"a": ["d1"], "b": []}, ["ndcg@10", "recall@5"])
    assert got["ndcg@10"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert mean_metrics(got)["recall@5"] == pytest.approx(1 / 3)
    # every ranking empty (ranx alone fails on this)
    got = evaluate_rankings(qrels, {}, ["mrr@10"])
    assert got["mrr@10"] == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_ties_break_by_doc_id() -> None:
    got = evaluate_run({"q": {"a": 1}}, {"q": {"b": 0.5, "a": 0.5, "c": 0.9}}, ["mrr@10"])
    assert got["mrr@10"]["q"] == pytest.approx(0.5)  # c first, then a (before b)


def test_source_level_dedupe_keeps_first_rank() -> None:
    got = golden_retrieval_metrics({"q": ["b.md"], "skip": []},
                                   {"q": ["a.md", "a.md", "a.md", "b.md"], "skip": ["a.md"]},
                                   ["mrr@10", "recall@5"])
    assert got["mrr@10"] == {"q": 0.5}  # b.md is the 2nd distinct source; items without sources are left out
    assert got["recall@5"]["q"] == 1.0


def test_latency_summary() -> None:
    s = latency_summary([0.010, 0.020, 0.030, 0.040, float("nan")])
    assert s["n"] == 4 and s["p50_ms"] == pytest.approx(25.0) and s["max_ms"] == pytest.approx(40.0)
    assert latency_summary([])["p50_ms"] is None


# -- an independent implementation -----------------------------------------------------------------
def _ref(rels: dict[str, int], ranking: list[str], k: int) -> dict[str, float]:
    relevant = {d for d, r in rels.items() if r >= 1}
    top = ranking[:k]
    hits = [1 if d in relevant else 0 for d in top]
    recall = sum(hits) / len(relevant)
    precision = sum(hits) / k
    rr = next((1 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    ap = sum(sum(hits[: i + 1]) / (i + 1) for i, h in enumerate(hits) if h) / len(relevant)
    return {f"recall@{k}": recall, f"precision@{k}": precision, f"mrr@{k}": rr, f"ndcg@{k}": dcg / idcg,
            f"map@{k}": ap, f"hit_rate@{k}": float(any(hits))}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_independent_implementation_on_random_runs(seed: int) -> None:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(40)]
    qrels, rankings = {}, {}
    for q in range(60):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 6))}
        rankings[qid] = rng.sample(docs, rng.randint(0, 25))
    metrics = [f"{name}@{k}" for k in (1, 5, 10)
               for name in ("recall", "precision", "mrr", "ndcg", "map", "hit_rate")]
    got = evaluate_rankings(qrels, rankings, metrics)
    for qid in qrels:
        for k in (1, 5, 10):
            expected = _ref(qrels[qid], rankings[qid], k)
            for name, value in expected.items():
                assert got[name][qid] == pytest.approx(value, abs=1e-9), (qid, name)


_CACHE_PROBE = """
import json
from axiom.evaluation.retrieval_metrics import compile_metrics
compile_metrics()
from numba.core.registry import CPUDispatcher
from numba.typed import typeddict, typedlist
stats = [f.stats for m in (typeddict, typedlist) for f in vars(m).values() if isinstance(f, CPUDispatcher)]
print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
"""


def test_numba_compilations_of_the_metrics_are_kept_on_disk_across_processes() -> None:
    """ranx builds its Qrels/Run from numba typed containers, compiled per process unless cached: after one
    process compiled them, a fresh process loads every one of them from numba's on-disk cache."""
    import json
    import subprocess
    import sys

    runs = [json.loads(subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    assert runs[1]["misses"] == 0, runs
    assert runs[1]["hits"] > 0, runs
