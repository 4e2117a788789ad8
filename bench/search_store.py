"""The store the retrieval rows search: the benchmark corpus ingested by Axiom, kept between runs.

Embedding the whole of SciFact (14,590 chunks) is one pass of the model over the corpus: 12-27 minutes on
2 cores, which is the physical floor of building any dense index of it. The first run pays it; later runs find
the store already holding every chunk and pay only Axiom's unchanged re-ingest (about a second), because
`RAGPipeline.ingest` embeds only what is not stored yet. An interrupted build is resumed the same way.

The cache folder is keyed by everything that changes the chunks or their vectors: the documents' ids and
texts, the embedding model, the chunking. A different selection or setting gets its own folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, write_corpus_files

COLLECTION = "bench-corpus"


@dataclass
class SearchStore:
    folder: Path  # holds corpus/ (one .txt per document), store/ (ChromaDB) and bm25/
    documents: int
    chunks: int
    embedded_now: int  # chunks this run embedded: all of them when the store was built now, 0 when reused
    ingest_s: float  # the build, or the up-to-date check when nothing changed
    reused: bool

    @property
    def store(self) -> Path:
        return self.folder / "store"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder)}


def cache_key(corpus: dict[str, str], settings: Any) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"model": settings.embeddings.model, "provider": settings.embeddings.provider,
                              "chunk_size": settings.chunking.chunk_size,
                              "chunk_overlap": settings.chunking.chunk_overlap}, sort_keys=True).encode())
    for doc_id in sorted(corpus):
        digest.update(doc_id.encode() + b"\0" + corpus[doc_id].encode() + b"\0")
    return digest.hexdigest()[:16]


def open_search_store(corpus: dict[str, str], name: str, cache_dir: Path, *, progress: bool = True
                      ) -> tuple[SearchStore, Any]:
    """Ingest `corpus` into `cache_dir/<name>-<key>/` (embedding only what is missing) and return the store
    and a pipeline over it."""
    from axiom.config import load_settings
    from axiom.pipeline import RAGPipeline

    base = load_settings(REPO / "config.yaml", environ={})
    folder = cache_dir / f"{name}-{cache_key(corpus, base)}"
    write_corpus_files(corpus, folder / "corpus")
    settings = load_settings(REPO / "config.yaml", environ={"CHROMA_PATH": str(folder / "store"),
                                                             "AXIOM_COLLECTION": COLLECTION},
                             overrides={"store": {"bm25_dir": str(folder / "bm25")}})
    pipeline = RAGPipeline.from_settings(settings)
    t0 = time.perf_counter()
    report = pipeline.ingest([folder / "corpus"], prune=True, progress=progress)
    seconds = time.perf_counter() - t0
    return SearchStore(folder=folder, documents=len(corpus), chunks=report.chunks_total,
                       embedded_now=report.chunks_embedded, ingest_s=seconds,
                       reused=report.chunks_embedded == 0), pipeline
