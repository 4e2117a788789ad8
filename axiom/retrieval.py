"""Retrievers behind one seam: `retrieve(query, k) -> list[Hit]` and `retrieve_batch(queries, k)`.

- `dense`: query embedding + ChromaDB nearest neighbours (cosine).
- `bm25`: bm25s over the stored chunks (stemmed, stopwords removed), persisted beside the store and rebuilt
  when the collection's data_version moves.
- `hybrid`: weighted reciprocal rank fusion (RRF) of the two rankings.

New kinds register in `RETRIEVERS`.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from axiom.config import RetrievalSettings, StoreSettings
from axiom.embeddings import Embedder
from axiom.store import ChromaStore
from axiom.types import Hit

log = logging.getLogger(__name__)


class Retriever(Protocol):
    name: str

    def retrieve(self, query: str, k: int) -> list[Hit]: ...

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...


class DenseRetriever:
    name = "dense"

    def __init__(self, store: ChromaStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return self.search_vectors(self.embedder.embed(list(queries)), k)

    def retrieve_vectors(self, queries: Sequence[str], vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """As retrieve_batch, with the queries already embedded (the pipeline reuses the vectors)."""
        return self.search_vectors(vectors, k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        return self.store.query(vectors, k)


def bm25_index_dir(store: StoreSettings) -> Path:
    """Where the BM25 index of a collection lives: beside an embedded store, or under bm25_dir for a
    server."""
    if store.mode == "embedded":
        base = Path(store.path)
        return base.with_name(base.name + "-bm25") / store.collection
    return Path(store.bm25_dir) / f"{store.host}_{store.port}" / store.collection


# one row of the BM25 index: chunk id, source, page, text
_Row = tuple[str, str, int | None, str]


class BM25Retriever:
    name = "bm25"

    def __init__(self, store: ChromaStore, index_dir: Path, *, stemmer: str | None = "english",
                 stopwords: str | None = "en") -> None:
        self.store = store
        self.index_dir = index_dir
        self.stemmer_name = stemmer
        self.stopwords = stopwords
        self._lock = threading.Lock()
        self._version: int | None = None
        # (bm25s model, rows: id, source, page, text), replaced as one object so that a reader never pairs a
        # new model with old rows while another thread rebuilds
        self._index: tuple[Any, list[_Row]] = (None, [])  # boundary: the bm25s model (untyped)
        self._stemmer = None
        if stemmer:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(texts), stopwords=self.stopwords or [], stemmer=self._stemmer,
                              return_ids=False, show_progress=False)

    def _signature(self, version: int) -> dict[str, object]:
        collection = self.store.get_collection()
        return {"data_version": version, "collection": self.store.settings.collection,
                "collection_id": str(collection.id) if collection is not None else None,
                "stemmer": self.stemmer_name, "stopwords": self.stopwords, "format": 1}

    def _load(self, version: int) -> bool:
        import bm25s

        meta_file = self.index_dir / "axiom.json"
        if not meta_file.is_file():
            return False
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("signature") != self._signature(version):
                return False
            rows = json.loads((self.index_dir / "rows.json").read_text())
            model = bm25s.BM25.load(str(self.index_dir), show_progress=False) if rows else None
        except (OSError, ValueError) as exc:
            log.warning("BM25 index at %s unreadable (%s); rebuilding", self.index_dir, exc)
            return False
        self._index = (model, [tuple(r) for r in rows])
        return True

    def _build(self, version: int) -> None:
        import bm25s

        rows = [(c.id, str(c.metadata.get("source", "")), c.metadata.get("page"), c.text or "")
                for c in self.store.iter_chunks(with_text=True)]
        model = None
        if rows:
            model = bm25s.BM25()
            model.index(self._tokenize([r[3] for r in rows]), show_progress=False)
        # write to a temporary folder, then swap it in: a crash never leaves a half-written index
        tmp = self.index_dir.with_name(self.index_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if model is not None:
            model.save(str(tmp), show_progress=False)
        (tmp / "rows.json").write_text(json.dumps(rows))
        (tmp / "axiom.json").write_text(json.dumps({"signature": self._signature(version)}))
        shutil.rmtree(self.index_dir, ignore_errors=True)
        tmp.rename(self.index_dir)
        self._index = (model, rows)
        log.info("BM25 index built over %d chunks at %s", len(rows), self.index_dir)

    def ensure_fresh(self) -> None:
        version = self.store.data_version()
        with self._lock:
            if version == self._version:
                return
            if not self._load(version):
                self._build(version)
            self._version = version

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        self.ensure_fresh()
        model, rows = self._index
        if model is None or not rows:
            return [[] for _ in queries]
        k_eff = min(k, len(rows))
        docs, scores = model.retrieve(self._tokenize(queries), k=k_eff, show_progress=False, n_threads=1)
        out: list[list[Hit]] = []
        for doc_row, score_row in zip(docs, scores, strict=True):
            hits = []
            for idx, score in zip(doc_row, score_row, strict=True):
                if score <= 0:
                    continue
                cid, source, page, text = rows[int(idx)]
                hits.append(Hit(chunk_id=cid, source=source, page=page, score=float(score), text=text))
            out.append(hits)
        return out


def rrf_fuse(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int,
             rrf_k: int = 60) -> list[Hit]:
    """Weighted reciprocal rank fusion: score(d) = sum_i w_i / (rrf_k + rank_i(d)), ranks from 1.

    Ties break by chunk id so the result is deterministic.
    """
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            first.setdefault(hit.chunk_id, hit)
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))[:k]
    return [Hit(chunk_id=cid, source=first[cid].source, page=first[cid].page, score=scores[cid],
                text=first[cid].text) for cid in order]


class HybridRetriever:
    name = "hybrid"

    def __init__(self, dense: DenseRetriever, bm25: BM25Retriever, *, candidates: int = 100, rrf_k: int = 60,
                 dense_weight: float = 1.0, bm25_weight: float = 1.0) -> None:
        self.dense = dense
        self.bm25 = bm25
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.weights = (dense_weight, bm25_weight)

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return self.retrieve_vectors(queries, self.dense.embedder.embed(list(queries)), k)

    def retrieve_vectors(self, queries: Sequence[str], vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """As retrieve_batch, with the queries already embedded (the pipeline reuses the vectors)."""
        depth = max(k, self.candidates)
        dense = self.dense.search_vectors(vectors, depth)
        lexical = self.bm25.retrieve_batch(queries, depth)
        return [rrf_fuse((d, b), self.weights, k, self.rrf_k) for d, b in zip(dense, lexical, strict=True)]


RetrieverFactory = Callable[[ChromaStore, Embedder, RetrievalSettings, dict[str, Retriever]], Retriever]


def _dense(store: ChromaStore, embedder: Embedder, cfg: RetrievalSettings,
           built: dict[str, Retriever]) -> Retriever:
    return DenseRetriever(store, embedder)


def _bm25(store: ChromaStore, embedder: Embedder, cfg: RetrievalSettings,
          built: dict[str, Retriever]) -> Retriever:
    return BM25Retriever(store, bm25_index_dir(store.settings), stemmer=cfg.bm25_stemmer,
                         stopwords=cfg.bm25_stopwords)


def _hybrid(store: ChromaStore, embedder: Embedder, cfg: RetrievalSettings,
            built: dict[str, Retriever]) -> Retriever:
    dense = built.get("dense") or _dense(store, embedder, cfg, built)
    bm25 = built.get("bm25") or _bm25(store, embedder, cfg, built)
    assert isinstance(dense, DenseRetriever) and isinstance(bm25, BM25Retriever)
    return HybridRetriever(dense, bm25, candidates=cfg.candidates, rrf_k=cfg.rrf_k,
                           dense_weight=cfg.dense_weight, bm25_weight=cfg.bm25_weight)


# config name -> factory; `hybrid` reuses the dense and bm25 retrievers already built
RETRIEVERS: dict[str, RetrieverFactory] = {"dense": _dense, "bm25": _bm25, "hybrid": _hybrid}
