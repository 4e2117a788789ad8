"""Runs in its own process so its peak RSS is the ingest's: first ingest, unchanged re-ingest, and the
`model.encode` floor on the same chunk texts with the same batch size. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import resource
import time

from axiom.config import load_settings
from axiom.pipeline import RAGPipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--store", required=True)
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    settings = load_settings(args.config, environ={"CHROMA_PATH": args.store, "AXIOM_COLLECTION": "bench-ingest"})
    pipeline = RAGPipeline.from_settings(settings)
    embedder = pipeline.embedder
    embedder.embed(["warm up the model"])  # model load is not part of either measure
    t0 = time.perf_counter()
    first = pipeline.ingest([args.corpus], progress=False)
    t_first = time.perf_counter() - t0
    rss_after_ingest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    again = pipeline.ingest([args.corpus], progress=False)
    t_again = time.perf_counter() - t0
    texts = [c.text for c in pipeline.store.iter_chunks(with_text=True)]
    model = embedder.model  # the raw sentence-transformers model: the floor
    t0 = time.perf_counter()
    model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                 show_progress_bar=False)
    t_floor = time.perf_counter() - t0
    print(json.dumps({"ingest_s": t_first, "reingest_s": t_again, "encode_floor_s": t_floor,
                      "chunks": first.chunks_total, "embedded": first.chunks_embedded,
                      "reingest_embedded": again.chunks_embedded, "files": len(first.files_ingested),
                      "peak_rss_mb": rss_after_ingest}))


if __name__ == "__main__":
    main()
