"""Runs in its own process so its peak RSS is the ingest's: first ingest, unchanged re-ingest, and the
`model.encode` floor on the same chunk texts with the same batch size. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import resource
import time

from axiom.config import load_settings
from axiom.pipeline import RAGPipeline


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--store", required=True)
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    settings = load_settings(args.config,
                             environ={"CHROMA_PATH": args.store, "AXIOM_COLLECTION": "bench-ingest"})
    pipeline = RAGPipeline.from_settings(settings)
    embedder = pipeline.embedder
    # Process start-up is not part of either measure: the model load and `import chromadb` + opening the
    # client (lazy in ChromaStore) are fixed costs of any process that ingests, timed here on their own.
    t0 = time.perf_counter()
    embedder.embed(["warm up the model"])
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = pipeline.store.client
    t_store = time.perf_counter() - t0
    c0, t0 = cpu_seconds(), time.perf_counter()
    first = pipeline.ingest([args.corpus], progress=False)
    t_first, cpu_first = time.perf_counter() - t0, cpu_seconds() - c0
    rss_after_ingest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    again = pipeline.ingest([args.corpus], progress=False)
    t_again = time.perf_counter() - t0
    texts = [c.text for c in pipeline.store.iter_chunks(with_text=True)]
    model = embedder.model  # the raw sentence-transformers model: the floor
    c0, t0 = cpu_seconds(), time.perf_counter()
    model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                 show_progress_bar=False)
    t_floor, cpu_floor = time.perf_counter() - t0, cpu_seconds() - c0
    print(json.dumps({"ingest_s": t_first, "reingest_s": t_again, "encode_floor_s": t_floor,
                      "ingest_cpu_s": cpu_first, "encode_floor_cpu_s": cpu_floor, "model_load_s": t_model,
                      "store_open_s": t_store,
                      "chunks": first.chunks_total, "embedded": first.chunks_embedded,
                      "reingest_embedded": again.chunks_embedded, "files": len(first.files_ingested),
                      "peak_rss_mb": rss_after_ingest}))


if __name__ == "__main__":
    main()
