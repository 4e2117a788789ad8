"""`python -m bench.ray_ingest [DATASET] [--docs N] [--address HOST:PORT] [--repeat R]`: distributed ingest
(`axiom ingest --ray`) against the local one and the raw encode floor, in chunks per second.

The first N documents of a BEIR corpus (default ../shared/datasets/scifact, N 600; `title + " " + text` per
file, as the other benchmarks) are ingested into a fresh collection of a real ChromaDB server (`chroma run` on
loopback) each time, by the `axiom` CLI in a subprocess, as a user runs it:

- local: `axiom ingest` (one process, torch's threads on every core);
- ray, 1 actor / 2 actors: `axiom ingest --ray ADDRESS` with ingest.ray_actors 1 and 2 (1 CPU and 1 torch
  thread each), on a local cluster of two 1-CPU nodes (a head and a joining node,
  tests/support/ray_cluster.py, token authentication on), or on the cluster at --address;
- the floors: the model's own `encode` of the same chunk texts (batch 32) in this process, with torch's
  default threads and with 1 thread (what one 1-CPU actor can do at best).

Ingest seconds are the report's `seconds` (model loads excluded: `model_load_seconds`; for Ray the actors'
start). The Ray rows add the driver-side overhead per batch (`ray.overhead_seconds_per_batch`: the call's wall
time x actors minus the actors' busy time, over the batches), the bytes sent and returned, and how long both
actors embedded at once. Prints a Markdown table; writes bench/results/ray_ingest-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import DEFAULT_DATASET, REPO, write_corpus_files, write_result

ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "ANONYMIZED_TELEMETRY": "False", "RAGAS_DO_NOT_TRACK": "true", "NO_PROXY": "127.0.0.1,localhost",
       "no_proxy": "127.0.0.1,localhost"}


def corpus_subset(dataset: Path, docs: int) -> dict[str, str]:
    from axiom.evaluation.datasets import load_beir

    beir = load_beir(dataset)
    corpus = {d: (v.get("title", "") + " " + v.get("text", "")).strip() for d, v in beir.corpus.items()}
    return dict(list(corpus.items())[:docs])


def chunk_texts(folder: Path) -> list[str]:
    """The chunk texts an ingest of `folder` embeds (the repository's chunking settings)."""
    from axiom.chunking import chunk_document
    from axiom.config import load_settings
    from axiom.documents import discover, parse, read_bytes, sha256_bytes

    cfg = load_settings(REPO / "config.yaml", environ={})
    files, _ = discover([folder], cfg.ingest.extensions)
    texts: list[str] = []
    for file in files:
        data = read_bytes(file, cfg.ingest.max_file_size_mb)
        doc = parse(file, data, sha256_bytes(data))
        texts += [c.text for c in chunk_document(doc, cfg.chunking.chunk_size, cfg.chunking.chunk_overlap)]
    return texts


def encode_floor(texts: list[str], threads: int | None) -> dict[str, Any]:
    import torch

    from axiom.embeddings import LocalEmbedder

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = LocalEmbedder("all-MiniLM-L6-v2").model
        model.encode(texts[:32], batch_size=32, show_progress_bar=False)  # warm
        t0 = time.perf_counter()
        model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
                     show_progress_bar=False)
        seconds = time.perf_counter() - t0
        return {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds,
                "torch_threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(before)


def ingest(corpus: Path, work: Path, name: str, server: Any, extra_env: dict[str, str], *,
           address: str | None = None, actors: int = 0, batch_size: int = 64) -> dict[str, Any]:
    """One `axiom ingest` into a fresh collection `name` of the server; its report plus chunks/s."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["store"].update({"host": server.host, "port": server.port, "collection": name,
                            "bm25_dir": str(work / "bm25")})
    config["embeddings"].update({"cache_enabled": False, "cache_dir": str(work / "embedding-cache")})
    config["ingest"].update({"ray_actors": actors, "ray_batch_size": batch_size})
    config["logging"].update({"level": "WARNING", "format": "text"})
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "axiom.cli", "--config", str(path), "ingest", str(corpus), "--json"]
    if address:
        cmd += ["--ray", address]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "AXIOM_"))}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**env, **ENV, **extra_env})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    report["process_seconds"] = wall
    report["chunks_per_s"] = report["chunks_embedded"] / report["seconds"] if report["seconds"] else None
    return report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(result: dict[str, Any]) -> str:
    floor = result["floors"]["default_threads"]["chunks_per_s"]
    lines = ["| measure | chunks | seconds (median) | chunks/s | vs encode floor | "
             "overhead / batch | notes |",
             "|---|---|---|---|---|---|---|"]
    for key in ("floor_1_thread", "default_threads"):
        f = result["floors"][key]
        lines.append(f"| encode floor, {f['torch_threads']} torch thread(s) | {f['chunks']} | "
                     f"{f['seconds']:.1f} | {f['chunks_per_s']:.1f} | {f['chunks_per_s'] / floor:.2f} | "
                     "| model.encode, batch 32 |")
    for label, runs in result["rows"].items():
        seconds = median([r["seconds"] for r in runs])
        chunks = runs[0]["chunks_embedded"]
        ray = runs[0].get("ray") or {}
        overhead = median([r["ray"]["overhead_seconds_per_batch"] for r in runs]) if ray else None
        notes = (f"{ray['batches']} batches, {ray['bytes_sent'] / 1e6:.1f} MB out, "
                 f"{ray['bytes_returned'] / 1e6:.1f} MB back, both busy {ray['parallel_seconds']:.1f} s, "
                 f"actor start {median([r['model_load_seconds'] for r in runs]):.1f} s") if ray else (
                 f"model load {median([r['model_load_seconds'] for r in runs]):.1f} s")
        lines.append(f"| {label} | {chunks} | {seconds:.1f} | {chunks / seconds:.1f} | "
                     f"{chunks / seconds / floor:.2f} | "
                     f"{'' if overhead is None else f'{overhead * 1000:.0f} ms'} | {notes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ray_ingest", description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET, help="BEIR folder")
    ap.add_argument("--docs", type=int, default=600, help="the first N documents of the corpus (default 600)")
    ap.add_argument("--address", help="an existing Ray cluster (HEAD:PORT) instead of a local two-node one")
    ap.add_argument("--batch-size", type=int, default=64, help="texts per Ray task (ingest.ray_batch_size)")
    ap.add_argument("--repeat", type=int, default=1, help="ingests per row (median reported)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    if not (args.dataset / "corpus.jsonl").is_file():
        print(f"bench.ray_ingest: {args.dataset} is not a BEIR folder (no corpus.jsonl)", file=sys.stderr)
        return 2
    from tests.support.chroma_server import ChromaServer
    from tests.support.ray_cluster import RayCluster

    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result: dict[str, Any] = {"dataset": str(args.dataset), "docs": args.docs, "batch_size": args.batch_size,
                              "repeat": args.repeat, "started": started, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="axiom-ray-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        write_corpus_files(corpus_subset(args.dataset, args.docs), corpus)
        texts = chunk_texts(corpus)
        result["chunks"] = len(texts)
        result["floors"] = {"floor_1_thread": encode_floor(texts, 1),
                            "default_threads": encode_floor(texts, None)}
        server = ChromaServer(work / "chroma").start()
        cluster = None
        try:
            env: dict[str, str] = {}
            address = args.address
            if address is None:
                cluster = RayCluster(head_cpus=1, worker_cpus=[1], log_dir=None).start()
                address, env = cluster.address, cluster.env
            result["cluster"] = address if args.address else "local: head 1 CPU + 1 node of 1 CPU"
            rows: dict[str, list[dict[str, Any]]] = {"local ingest": [], "ray, 1 actor": [],
                                                     "ray, 2 actors": []}
            for i in range(args.repeat):
                rows["local ingest"].append(ingest(corpus, work, f"bench-local-{i}", server, env))
                for actors in (1, 2):
                    rows[f"ray, {actors} actor{'s' if actors > 1 else ''}"].append(
                        ingest(corpus, work, f"bench-ray{actors}-{i}", server, env, address=address,
                               actors=actors,
                               batch_size=args.batch_size))
            result["rows"] = rows
        finally:
            if cluster is not None:
                cluster.stop()
            server.stop()
    path = write_result(result, args.out, f"ray_ingest-{started}")
    print(table(result))
    print(f"\nload {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}; "
          f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
