"""`python -m bench [DATASET] [--quick] [--repeat N]`: every hot path beside its floor, measured in one run.

Writes bench/results/<timestamp>.json and prints a Markdown table. Timings are reported as ratios to a floor
measured in the same run, because these machines are noisy. The ingest rows ingest a subset (judged documents
plus N others) twice over; the retrieval, evaluation and API rows search the whole corpus, which Axiom ingests
once into bench/cache/ and finds there on later runs (bench/search_store.py). See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_DATASET,
    QUICK_DATASET,
    REPO,
    Figure,
    percentile,
    timed,
    write_corpus_files,
    write_result,
)


def bench_ingest(corpus_dir: Path, work: Path, repeat: int) -> dict[str, Any]:
    ratio, cpu_ratio, reratio, rss, runs = Figure(), Figure(), Figure(), Figure(), []
    for i in range(repeat):
        store = work / f"ingest-store-{i}"
        out = subprocess.run([sys.executable, "-m", "bench.ingest_worker", str(corpus_dir), "--store",
                              str(store)],
                             capture_output=True, text=True, check=True, cwd=REPO)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        ratio.values.append(run["ingest_s"] / run["encode_floor_s"])
        cpu_ratio.values.append(run["ingest_cpu_s"] / run["encode_floor_cpu_s"])
        reratio.values.append(run["reingest_s"] / run["ingest_s"])
        rss.values.append(run["peak_rss_mb"])
    return {"runs": runs, "ingest_over_encode": ratio.to_dict(),
            "ingest_over_encode_cpu": cpu_ratio.to_dict(),
            "reingest_over_ingest": reratio.to_dict(),
            "peak_rss_mb": rss.to_dict()}


def parse_docs(value: str) -> int | None:
    return None if str(value).lower() == "all" else int(value)


def select(corpus: dict[str, str], qrels: dict[str, dict[str, int]], others: int | None) -> dict[str, str]:
    """Every judged document plus the first `others` of the rest (all of them when None), in corpus order."""
    if others is None:
        return dict(corpus)
    judged = {d for rel in qrels.values() for d in rel}
    keep = judged | set([d for d in corpus if d not in judged][:others])
    return {d: t for d, t in corpus.items() if d in keep}


def doc_id(source: str) -> str:
    """The BEIR document id of a chunk: its file is `<doc id>.txt`."""
    return source[:-4] if source.endswith(".txt") else source


def cold(pipeline: Any) -> Any:
    """The pipeline with its query-embedding memo emptied: a timing includes encoding the questions, as the
    floor's does (the memo would otherwise answer every repeated question for free)."""
    pipeline.query_embedder.clear()
    pipeline.query_embedder.persistent = None  # and no on-disk embedding cache: the floor has none
    return pipeline


def axiom_eval(pipeline: Any, texts: list[str], qids: list[str], qrels: dict[str, dict[str, int]],
               k: int) -> Any:
    """Retrieval-only evaluation through Axiom: one batched retrieval of chunks, then the ranx metrics over
    the documents they come from (a document ranks where its best chunk ranks), as Axiom's evaluations
    score."""
    from axiom.evaluation.retrieval_metrics import BEIR_METRICS, evaluate_rankings, mean_metrics

    runs = pipeline.retrieve_batch(texts, top_k=k, retriever="dense")
    return mean_metrics(evaluate_rankings(qrels, {qid: [doc_id(h.source) for h in hits]
                                                  for qid, hits in zip(qids, runs, strict=True)},
                                          BEIR_METRICS))


def floor_eval(model: Any, collection: Any, batch_size: int, texts: list[str], qids: list[str],
               qrels: dict[str, dict[str, int]], k: int) -> Any:
    """The floor: one batched model.encode, raw collection.query calls, the same chunk -> document mapping,
    ranx."""
    from ranx import Qrels, Run, evaluate

    from axiom.evaluation.retrieval_metrics import BEIR_METRICS

    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    run: dict[str, dict[str, float]] = {}
    group = max(1, 10_000 // k)  # SQLite's variable limit, as Axiom's store does
    for i in range(0, len(texts), group):
        res = collection.query(query_embeddings=vectors[i:i + group], n_results=k, include=["metadatas"])
        for qid, metas in zip(qids[i:i + group], res["metadatas"], strict=True):
            ranked: dict[str, float] = {}
            for rank, meta in enumerate(metas):
                ranked.setdefault(doc_id(str(meta["source"])), float(k - rank))
            run[qid] = ranked or {"-": 0.0}
    judged = {q: d for q, d in qrels.items() if any(v >= 1 for v in d.values())}
    return evaluate(Qrels(judged), Run({q: run.get(q, {"-": 0.0}) for q in judged}), list(BEIR_METRICS))


def bench_retrieval(pipeline: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], repeat: int
                    ) -> dict[str, Any]:
    texts = list(queries.values())
    qids = list(queries)
    k = 10
    model = pipeline.embedder.model
    collection = pipeline.store.require()
    include = ["metadatas", "documents", "distances"]  # what Axiom's hits carry

    def floor_one(q: str) -> Any:
        return collection.query(query_embeddings=model.encode([q], normalize_embeddings=True,
                                                              convert_to_numpy=True,
                                                              show_progress_bar=False), n_results=k,
                                include=include)

    dense: list[float] = []
    floor: list[float] = []
    hybrid: list[float] = []
    pipeline.retrieve(texts[0], top_k=k, retriever="hybrid")  # warm: BM25 index built, HNSW in memory
    floor_one(texts[0])
    for i, q in enumerate(texts):
        # alternate which of the pair runs first, so drift in the machine's load does not favour either
        first, second = ("dense", "floor") if i % 2 == 0 else ("floor", "dense")
        for which in (first, second):
            if which == "dense":
                dense.append(timed(lambda q=q: cold(pipeline).retrieve(q, top_k=k, retriever="dense"))[0])
            else:
                floor.append(timed(lambda q=q: floor_one(q))[0])
        hybrid.append(timed(lambda q=q: cold(pipeline).retrieve(q, top_k=k, retriever="hybrid"))[0])
    paired = [d / f for d, f in zip(dense, floor, strict=True)]

    depth = 100
    batch = pipeline.embedder.batch_size
    eval_ratio, sweep_ratio = Figure(), Figure()
    # warm both (ranx compiles with numba first)
    floor_eval(model, collection, batch, texts, qids, qrels, depth)
    axiom_eval(pipeline, texts, qids, qrels, depth)
    metrics = {}
    for i in range(repeat):
        order = ("floor", "axiom") if i % 2 == 0 else ("axiom", "floor")
        t: dict[str, float] = {}
        for which in order:
            if which == "floor":
                t["floor"], floor_metrics = timed(
                    lambda: floor_eval(model, collection, batch, texts, qids, qrels, depth)
                )
            else:
                t["axiom"], metrics = timed(lambda: axiom_eval(cold(pipeline), texts, qids, qrels, depth))
        eval_ratio.values.append(t["axiom"] / t["floor"])
        # a top_k sweep retrieves once at the deepest k and cuts the ranking for the others
        t_sweep, _ = timed(lambda: sweep_top_k(cold(pipeline), texts, qids, qrels, (3, 5, 10, 20)))
        sweep_ratio.values.append(t_sweep / t["axiom"])
    p50_d, p50_f, p50_h = percentile(dense, .5), percentile(floor, .5), percentile(hybrid, .5)
    return {
        "queries": len(texts),
        "dense_p50_ms": p50_d * 1e3, "dense_p95_ms": percentile(dense, .95) * 1e3,
        "floor_p50_ms": p50_f * 1e3, "floor_p95_ms": percentile(floor, .95) * 1e3,
        "hybrid_p50_ms": p50_h * 1e3, "hybrid_p95_ms": percentile(hybrid, .95) * 1e3,
        "dense_over_floor_p50": p50_d / p50_f, "dense_over_floor_paired_median": percentile(paired, .5),
        "hybrid_over_dense_p50": p50_h / p50_d,
        "eval_over_floor": eval_ratio.to_dict(), "sweep4_over_eval": sweep_ratio.to_dict(),
        "axiom_metrics": metrics, "floor_metrics": {m: float(v) for m, v in floor_metrics.items()},
    }


def sweep_top_k(pipeline: Any, texts: list[str], qids: list[str], qrels: dict[str, dict[str, int]],
                ks: tuple[int, ...]) -> dict[int, Any]:
    from axiom.evaluation.retrieval_metrics import BEIR_METRICS, evaluate_rankings, mean_metrics

    runs = pipeline.retrieve_batch(texts, top_k=max(ks), retriever="dense")
    docs = {qid: [doc_id(h.source) for h in hits] for qid, hits in zip(qids, runs, strict=True)}
    return {k: mean_metrics(evaluate_rankings(qrels, {qid: ranked[:k] for qid, ranked in docs.items()},
                                              BEIR_METRICS))
            for k in ks}


def bench_notebook(work: Path, repeat: int) -> dict[str, Any]:
    """03_evaluate through papermill vs run_evaluation, each in a fresh process (same start-up and imports) on
    a store already holding the corpus, alternating which goes first."""
    store, out = work / "nb-store", work / "nb-runs"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "CHROMA_", "AXIOM_", "LLM_", "EMBEDDING_", "EVAL_LLM_"))}
    env["EMBEDDING_CACHE_ENABLED"] = "false"  # both sides embed their texts (the kernel inherits this)

    def run(how: str) -> tuple[float, dict[str, Any]]:
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out_ = subprocess.run([sys.executable, "-m", "bench.notebook_worker", how, "--store", str(store),
                               "--out", str(out)], capture_output=True, text=True, cwd=REPO, env=env)
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out_.returncode != 0:
            raise RuntimeError(f"notebook_worker {how} failed:\n{out_.stderr[-3000:]}")
        # CPU time of the worker and every descendant it waited for (the kernel, for papermill)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        return wall, {**json.loads(out_.stdout.strip().splitlines()[-1]), "cpu_s": cpu}

    first_ingest, _ = run("prepare")  # ingests the corpus into the collection both use (not part of the pair)
    diff, cpu_diff, notebook_s, api_s = Figure(), Figure(), Figure(), Figure()
    inner: list[dict[str, Any]] = []
    for i in range(repeat):
        walls: dict[str, float] = {}
        cpus: dict[str, float] = {}
        for how in (("notebook", "api") if i % 2 == 0 else ("api", "notebook")):
            walls[how], reported = run(how)
            cpus[how] = reported["cpu_s"]
            inner.append({**reported, "wall_s": walls[how]})
        diff.values.append(walls["notebook"] - walls["api"])
        cpu_diff.values.append(cpus["notebook"] - cpus["api"])
        notebook_s.values.append(walls["notebook"])
        api_s.values.append(walls["api"])
    return {"notebook_minus_api_s": diff.to_dict(), "notebook_minus_api_cpu_s": cpu_diff.to_dict(),
            "notebook_s": notebook_s.to_dict(), "api_s": api_s.to_dict(),
            "prepare_ingest_s": first_ingest, "runs": inner}


def table(result: dict[str, Any]) -> str:
    ing, ret = result.get("ingest", {}), result.get("retrieval", {})
    nb, api, ss = result.get("notebook", {}), result.get("api", {}), result.get("search_store", {})
    api1 = result.get("api_one_thread", {})
    nan = float("nan")

    def med(fig: dict[str, Any] | None, fmt: str = ".3f") -> str:
        if not fig or fig.get("median") is None:
            return "n/a"
        return f"{fig['median']:{fmt}} (min {fig['min']:{fmt}}, max {fig['max']:{fmt}}, n={fig['n']})"

    runs = ing.get("runs") or [{}]
    chunks = runs[0].get("chunks", 0)
    rows = [
        (f"full ingest ({chunks} chunks) / model.encode of the same texts", med(ing.get("ingest_over_encode"))
         + f"; CPU time {med(ing.get('ingest_over_encode_cpu'))}", "<= 1.10"),
        ("unchanged re-ingest / first ingest", med(ing.get("reingest_over_ingest"), ".4f"), "<= 0.03"),
        (f"searched store: {result.get('search_documents', 0)} documents = {ss.get('chunks', 0)} chunks, "
         "ingested by Axiom into the bench cache",
         (f"reused: up-to-date check {ss.get('ingest_s', 0):.1f} s, 0 embedded"
                                           if ss.get("reused") else
                                           f"built in this run: {ss.get('embedded_now', 0)} chunks embedded "
                                           f"in {ss.get('ingest_s', 0):.0f} s"), "report"),
        ("dense retrieval p50 / (encode + raw collection.query) p50",
         f"{ret.get('dense_over_floor_p50', nan):.3f} ({ret.get('dense_p50_ms', 0):.1f} ms vs "
         f"{ret.get('floor_p50_ms', 0):.1f} ms; p95 {ret.get('dense_p95_ms', 0):.1f} vs "
         f"{ret.get('floor_p95_ms', 0):.1f} ms; median of paired ratios "
         f"{ret.get('dense_over_floor_paired_median', nan):.3f})", "<= 1.15"),
        ("hybrid p50 / dense p50", f"{ret.get('hybrid_over_dense_p50', nan):.3f} "
         f"({ret.get('hybrid_p50_ms', 0):.1f} ms)", "report"),
        (f"retrieval-only evaluation of {ret.get('queries', 0)} queries / (batched "
         "encode + raw queries + ranx)",
         med(ret.get("eval_over_floor")), "<= 1.20"),
        ("top_k sweep of 4 values / one evaluation", med(ret.get("sweep4_over_eval")), "<= 1.30"),
        ("notebook (papermill) evaluation - the same evaluation through the API (s)",
         med(nb.get("notebook_minus_api_s"), ".2f") + (f"; {nb['notebook_s']['median']:.1f} s vs "
                                                       f"{nb['api_s']['median']:.1f} s; CPU time "
                                                       f"{med(nb.get('notebook_minus_api_cpu_s'), '+.2f')} s"
                                                       if nb.get("api_s") else ""),
         "<= +3 s"),
        ("peak RSS of the full ingest (MB)", med(ing.get("peak_rss_mb"), ".0f"), "<= 1500"),
        (f"API /query throughput, extractive, {api.get('clients', 8)} concurrent clients",
         f"{api['req_per_s']:.2f} req/s, p50 {api['p50_ms']:.0f} ms, p95 {api['p95_ms']:.0f} ms "
         f"({api['ok']} ok, {api['errors']} errors)" if api.get("req_per_s") is not None else "n/a",
         "report req/s, p95"),
        ("the same with `service.torch_threads: 1`",
         f"{api1['req_per_s']:.2f} req/s, p50 {api1['p50_ms']:.0f} ms, p95 {api1['p95_ms']:.0f} ms "
         f"({api1['ok']} ok, {api1['errors']} errors)" if api1.get("req_per_s") is not None else "n/a",
         "report req/s, p95"),
    ]
    from bench.eval_floor import rows as evaluation_rows

    rows += evaluation_rows(result.get("evaluation", {}))
    lines = ["| measure | result (median, min, max) | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("dataset", nargs="?", type=Path, help=f"BEIR folder (default {DEFAULT_DATASET})")
    ap.add_argument("--quick", action="store_true", help=f"use {QUICK_DATASET}")
    ap.add_argument("--repeat", type=int, default=None,
                    help="repetitions of the evaluation and notebook measures (default 3 quick, 3 full)")
    ap.add_argument("--ingest-repeat", type=int, default=1,
                    help="repetitions of the ingest measure (default 1)")
    ap.add_argument("--eval-repeat", type=int, default=2,
                    help="pairs of whole evaluation / floor processes per evaluation row (default 2)")
    ap.add_argument("--large", action="store_true",
                    help="also the 500-question PubMedQA evaluation row (about 8 min on 2 cores)")
    ap.add_argument("--notebook-repeat", type=int, default=None,
                    help="pairs of notebook / API evaluations (default 1 quick, 2 full; a pair takes about "
                         "75 s on 2 cores, and one pair is noisier than the difference it measures)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--ingest-docs", default=None,
                    help="the ingest rows ingest the judged documents plus the first N others, or 'all' "
                         "(default: 50 quick, 100 full; see BENCHMARKS.md for why)")
    ap.add_argument("--search-docs", default="all",
                    help="the retrieval, evaluation and API rows search the judged documents plus the first "
                         "N others, or 'all' (default: all)")
    ap.add_argument("--cache-dir", type=Path, default=REPO / "bench" / "cache",
                    help="where the searched corpus is ingested once and kept between "
                         "runs (default bench/cache)")
    ap.add_argument("--api-requests", type=int, default=None, help="timed /query requests per client "
                                                                   "(default 5 quick, 12 full)")
    ap.add_argument("--pubmedqa", type=Path, default=None,
                    help="PubMedQA PQA-L train/dev qa.jsonl for the 500-question evaluation row (default "
                         "../shared/datasets/pubmedqa-pqal-traindev/qa.jsonl)")
    ap.add_argument("--skip", action="append", default=[],
                    choices=("notebook", "api", "api-threads", "evaluation"),
                    help="leave a measure out (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    dataset = args.dataset or (QUICK_DATASET if args.quick else DEFAULT_DATASET)
    repeat = args.repeat or 3
    notebook_repeat = args.notebook_repeat or (1 if args.quick else 2)
    ingest_docs = parse_docs(args.ingest_docs if args.ingest_docs is not None
                             else ("50" if args.quick else "100"))
    search_docs = parse_docs(args.search_docs)
    api_requests = args.api_requests or (5 if args.quick else 12)
    if not (dataset / "corpus.jsonl").is_file():
        print(f"bench: {dataset} is not a BEIR folder (no corpus.jsonl)", file=sys.stderr)
        return 2
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    t_start = time.perf_counter()
    from axiom.evaluation.datasets import load_beir

    beir = load_beir(dataset, args.split)
    corpus = {doc_id: (d.get("title", "") + " " + d.get("text", "")).strip()
              for doc_id, d in beir.corpus.items()}
    queries, qrels = beir.queries, beir.qrels
    total_docs = len(corpus)
    ingest_corpus = select(corpus, qrels, ingest_docs)
    search_corpus = select(corpus, qrels, search_docs)
    result: dict[str, Any] = {"dataset": str(dataset), "split": args.split, "started": started,
                              "documents": len(ingest_corpus), "search_documents": len(search_corpus),
                              "corpus_documents": total_docs, "ingest_docs": ingest_docs,
                              "search_docs": search_docs,
                              "queries": len(queries), "repeat": repeat, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="axiom-bench-") as tmp:
        work = Path(tmp)
        write_corpus_files(ingest_corpus, work / "corpus")
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        result["ingest"] = bench_ingest(work / "corpus", work, args.ingest_repeat)
        phases["ingest"] = time.perf_counter() - t0
        from bench.search_store import COLLECTION, open_search_store

        # the retrieval rows search the whole selected corpus, ingested by Axiom once and kept in the cache
        t0 = time.perf_counter()
        search, pipeline = open_search_store(search_corpus, dataset.name, args.cache_dir)
        result["search_store"] = search.to_dict()
        phases["search_store"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result["retrieval"] = bench_retrieval(pipeline, queries, qrels, repeat)
        phases["retrieval"] = time.perf_counter() - t0
        if "notebook" not in args.skip:
            t0 = time.perf_counter()
            result["notebook"] = bench_notebook(work, notebook_repeat)
            phases["notebook"] = time.perf_counter() - t0
        if "evaluation" not in args.skip:
            from bench.eval_floor import PUBMEDQA_SOURCE, bench_evaluation

            t0 = time.perf_counter()
            result["evaluation"] = bench_evaluation(args.cache_dir, repeat=args.eval_repeat, large_repeat=1,
                                                    pubmedqa_source=args.pubmedqa or PUBMEDQA_SOURCE,
                                                    large=args.large)
            phases["evaluation"] = time.perf_counter() - t0
        if "api" not in args.skip:
            from bench.api_bench import bench_api

            t0 = time.perf_counter()
            result["api"] = bench_api(search.store, COLLECTION, list(queries.values()), work / "api",
                                      requests_per_client=api_requests)
            if "api-threads" not in args.skip:
                # the service's torch threads: one per encode against torch's default (one per core)
                result["api_one_thread"] = bench_api(search.store, COLLECTION, list(queries.values()),
                                                     work / "api-1", requests_per_client=api_requests,
                                                     torch_threads=1)
            phases["api"] = time.perf_counter() - t0
        result["phases_s"] = phases
    result["seconds"] = time.perf_counter() - t_start
    path = write_result(result, args.out, started)
    print(table(result))
    load = ", ".join(f"{x:.2f}" for x in result["load_before"]) + " -> " + ", ".join(
        f"{x:.2f}" for x in result["load_after"])
    ss = result["search_store"]
    print(f"\ningest rows: {result['documents']} of {total_docs} documents; retrieval rows: "
          f"{result['search_documents']} documents = {ss['chunks']} chunks ("
          + (f"store reused from {ss['folder']}, up-to-date check {ss['ingest_s']:.1f} s" if ss["reused"] else
             f"{ss['embedded_now']} chunks embedded into {ss['folder']} in {ss['ingest_s']:.0f} s")
          + ")")
    print(f"{len(queries)} queries; load average {load}; "
          f"{result['machine']['cores']} cores, torch threads {result['machine']['torch_threads']}")
    print(f"written {path} ({result['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
