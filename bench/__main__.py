"""`python -m bench [DATASET] [--quick] [--repeat N]`: every hot path beside its floor, measured in one run.

Writes bench/results/<timestamp>.json and prints a Markdown table. Timings are reported as ratios to a floor
measured in the same run, because these machines are noisy. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_DATASET, QUICK_DATASET, REPO, Figure, machine_facts, percentile, timed


def write_corpus_files(corpus: dict[str, str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, text in corpus.items():
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")


def bench_ingest(corpus_dir: Path, work: Path, repeat: int) -> dict[str, Any]:
    ratio, reratio, rss, runs = Figure(), Figure(), Figure(), []
    for i in range(repeat):
        store = work / f"ingest-store-{i}"
        out = subprocess.run([sys.executable, "-m", "bench.ingest_worker", str(corpus_dir), "--store", str(store)],
                             capture_output=True, text=True, check=True, cwd=REPO)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        ratio.values.append(run["ingest_s"] / run["encode_floor_s"])
        reratio.values.append(run["reingest_s"] / run["ingest_s"])
        rss.values.append(run["peak_rss_mb"])
    return {"runs": runs, "ingest_over_encode": ratio.to_dict(), "reingest_over_ingest": reratio.to_dict(),
            "peak_rss_mb": rss.to_dict()}


def axiom_eval_k(pipeline: Any, texts: list[str], qids: list[str], qrels: dict[str, dict[str, int]], k: int) -> Any:
    """Retrieval-only evaluation through Axiom: batched retrieval, then the ranx metrics."""
    from axiom.evaluation.retrieval_metrics import evaluate_run, mean_metrics

    runs = pipeline.retrieve_batch(texts, top_k=k, retriever="dense")
    return mean_metrics(evaluate_run(qrels, {qid: {h.chunk_id: h.score for h in hits}
                                             for qid, hits in zip(qids, runs, strict=True)}))


def bench_retrieval(pipeline: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], repeat: int
                    ) -> dict[str, Any]:
    texts = list(queries.values())
    qids = list(queries)
    k = 10
    model = pipeline.embedder.model
    collection = pipeline.store.require()
    dense, floor, hybrid = [], [], []
    pipeline.retrieve(texts[0], top_k=k, retriever="hybrid")  # warm: BM25 index loaded, HNSW in memory
    for q in texts:
        dense.append(timed(lambda q=q: pipeline.retrieve(q, top_k=k, retriever="dense"))[0])
        floor.append(timed(lambda q=q: collection.query(
            query_embeddings=model.encode([q], normalize_embeddings=True, convert_to_numpy=True), n_results=k))[0])
        hybrid.append(timed(lambda q=q: pipeline.retrieve(q, top_k=k, retriever="hybrid"))[0])

    def axiom_eval() -> Any:
        return axiom_eval_k(pipeline, texts, qids, qrels, 100)

    def floor_eval() -> Any:
        from ranx import Qrels, Run, evaluate

        from axiom.evaluation.retrieval_metrics import RETRIEVAL_METRICS

        vectors = model.encode(texts, batch_size=pipeline.embedder.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True)
        res = collection.query(query_embeddings=vectors, n_results=100, include=["distances"])
        run = {qid: {d: 1 - s for d, s in zip(ids, dists, strict=True)}
               for qid, ids, dists in zip(qids, res["ids"], res["distances"], strict=True)}
        return evaluate(Qrels(qrels), Run(run), list(RETRIEVAL_METRICS))

    eval_ratio, sweep_ratio = Figure(), Figure()
    floor_eval()  # warm both paths (ranx compiles its metrics with numba on first use)
    axiom_eval()
    for _ in range(repeat):
        t_floor, _ = timed(floor_eval)
        t_axiom, _ = timed(axiom_eval)
        eval_ratio.values.append(t_axiom / t_floor)
        # a top_k sweep retrieves once at the deepest k and cuts the ranking for the others
        t_sweep, _ = timed(lambda: sweep_top_k(pipeline, texts, qids, qrels, (3, 5, 10, 20)))
        sweep_ratio.values.append(t_sweep / t_axiom)
    p50_d, p50_f, p50_h = percentile(dense, .5), percentile(floor, .5), percentile(hybrid, .5)
    return {
        "dense_p50_ms": p50_d * 1e3, "dense_p95_ms": percentile(dense, .95) * 1e3,
        "floor_p50_ms": p50_f * 1e3, "floor_p95_ms": percentile(floor, .95) * 1e3,
        "hybrid_p50_ms": p50_h * 1e3, "hybrid_p95_ms": percentile(hybrid, .95) * 1e3,
        "dense_over_floor_p50": p50_d / p50_f, "hybrid_over_dense_p50": p50_h / p50_d,
        "eval_over_floor": eval_ratio.to_dict(), "sweep4_over_eval": sweep_ratio.to_dict(),
    }


def sweep_top_k(pipeline: Any, texts: list[str], qids: list[str], qrels: dict[str, dict[str, int]],
                ks: tuple[int, ...]) -> dict[int, Any]:
    from axiom.evaluation.retrieval_metrics import evaluate_run, mean_metrics

    runs = pipeline.retrieve_batch(texts, top_k=max(ks), retriever="dense")
    return {k: mean_metrics(evaluate_run(qrels, {qid: {h.chunk_id: h.score for h in hits[:k]}
                                                 for qid, hits in zip(qids, runs, strict=True)}))
            for k in ks}


def table(result: dict[str, Any]) -> str:
    ing, ret = result.get("ingest", {}), result.get("retrieval", {})

    def med(fig: dict[str, Any] | None) -> str:
        if not fig or fig.get("median") is None:
            return "n/a"
        return f"{fig['median']:.3f} (min {fig['min']:.3f}, max {fig['max']:.3f}, n={fig['n']})"

    rows = [
        ("full ingest / model.encode of the same texts", med(ing.get("ingest_over_encode")), "<= 1.10"),
        ("unchanged re-ingest / first ingest", med(ing.get("reingest_over_ingest")), "<= 0.03"),
        ("dense retrieval p50 / (encode + raw collection.query) p50",
         f"{ret.get('dense_over_floor_p50', float('nan')):.3f} ({ret.get('dense_p50_ms', 0):.1f} ms vs "
         f"{ret.get('floor_p50_ms', 0):.1f} ms; p95 {ret.get('dense_p95_ms', 0):.1f} ms)", "<= 1.15"),
        ("hybrid p50 / dense p50", f"{ret.get('hybrid_over_dense_p50', float('nan')):.3f} "
         f"({ret.get('hybrid_p50_ms', 0):.1f} ms)", "report"),
        ("retrieval-only evaluation / (batched encode + raw queries + ranx)", med(ret.get("eval_over_floor")), "<= 1.20"),
        ("top_k sweep of 4 values / one evaluation", med(ret.get("sweep4_over_eval")), "<= 1.30"),
        ("peak RSS of the full ingest (MB)", med(ing.get("peak_rss_mb")), "<= 1500"),
    ]
    for name, value, goal in result.get("extra_rows", []):
        rows.append((name, value, goal))
    lines = ["| measure | result (median, min, max) | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("dataset", nargs="?", type=Path, help=f"BEIR folder (default {DEFAULT_DATASET})")
    ap.add_argument("--quick", action="store_true", help=f"use {QUICK_DATASET}")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (default 3 quick, 1 full)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-docs", type=int, default=None,
                    help="keep only the judged documents plus the first N others (smoke runs)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    dataset = args.dataset or (QUICK_DATASET if args.quick else DEFAULT_DATASET)
    repeat = args.repeat or (3 if args.quick else 1)
    if not (dataset / "corpus.jsonl").is_file():
        print(f"bench: {dataset} is not a BEIR folder (no corpus.jsonl)", file=sys.stderr)
        return 2
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    from axiom.evaluation.datasets import load_beir

    beir = load_beir(dataset, args.split)
    corpus = {doc_id: (d.get("title", "") + " " + d.get("text", "")).strip() for doc_id, d in beir.corpus.items()}
    queries, qrels = beir.queries, beir.qrels
    if args.max_docs is not None:
        judged = {d for rel in qrels.values() for d in rel}
        others = [d for d in corpus if d not in judged][: args.max_docs]
        corpus = {d: t for d, t in corpus.items() if d in judged or d in set(others)}
    result: dict[str, Any] = {"dataset": str(dataset), "split": args.split, "started": started,
                              "documents": len(corpus), "queries": len(queries), "repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="axiom-bench-") as tmp:
        work = Path(tmp)
        write_corpus_files(corpus, work / "corpus")
        t0 = time.perf_counter()
        result["ingest"] = bench_ingest(work / "corpus", work, repeat)
        from axiom.config import load_settings
        from axiom.pipeline import RAGPipeline

        settings = load_settings(REPO / "config.yaml", environ={"CHROMA_PATH": str(work / "ingest-store-0"),
                                                                 "AXIOM_COLLECTION": "bench-ingest"})
        pipeline = RAGPipeline.from_settings(settings)
        # retrieval over whole documents (as BEIR scores them): index the records into their own collection
        settings_docs = load_settings(REPO / "config.yaml", environ={"CHROMA_PATH": str(work / "docs-store"),
                                                                      "AXIOM_COLLECTION": "bench-docs"})
        docs = RAGPipeline(settings_docs, pipeline.embedder, type(pipeline.store)(settings_docs.store))
        docs.index_records(list(corpus.items()))
        result["retrieval"] = bench_retrieval(docs, queries, qrels, repeat)
        result["seconds"] = time.perf_counter() - t0
    result["machine"] = machine_facts()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{started}.json"
    path.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"\nwritten {path} ({result['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
