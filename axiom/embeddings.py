"""Embedding models behind one seam: `Embedder.embed(texts) -> ndarray` (float32, L2-normalised rows), the
one embedding memo in front of them, and the functions that build both from the settings.

The models: `axiom.local_embedder.LocalEmbedder` (sentence-transformers, the packaged MiniLM by default) and
`axiom.openai_embedder.OpenAIEmbedder` (an OpenAI-compatible endpoint); `make_embedder` picks one from the
settings. `CachingEmbedder` is the one embedding memo: a bounded in-memory LRU, then (optionally) the
persistent cache of `axiom.embedding_cache`, then the model. `caching_embedder(settings, model)` builds it
from the settings; every face and the pipeline go through it. A model's vectors are cached on disk under its
`ModelKey` (`axiom.embedding_keys`); a model without a key (a hub name, a test stand-in) is memoised in memory
only.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from axiom.config import EmbeddingSettings, GenerationSettings, Settings
from axiom.embedding_cache import FILE_NAME, MB, PersistentEmbeddingCache, shared_cache
from axiom.embedding_keys import ModelKey, model_key
from axiom.local_embedder import LocalEmbedder
from axiom.openai_embedder import OpenAIEmbedder

__all__ = ["CachingEmbedder", "Embedder", "LocalEmbedder", "caching_embedder", "make_embedder",
           "persistent_cache", "uncached"]


class Embedder(Protocol):
    model_id: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class CachingEmbedder:
    """An Embedder that remembers the vectors it computed: bounded LRU keyed by the sha256 of the text,
    thread-safe. The one embedding memo of the package: wrap a model once and share the wrapper, and a
    question, chunk, answer or sentence embedded once is not embedded again. `stats()` says how much work
    was saved. The inner model is called outside the lock (concurrent misses of one text may both embed it;
    the vectors are identical).

    `persistent`: the second level (`axiom.embedding_cache`): memory misses are looked up there, and only
    what is still missing goes to the model, whose vectors are written there. Used only when the model has a
    `ModelKey`. `clear()` empties the memory alone; set `persistent = None` to bypass the disk level
    (benchmarks timing the model's work)."""

    def __init__(self, inner: Embedder, max_entries: int = 200_000, *,
                 persistent: PersistentEmbeddingCache | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.model_id = inner.model_id
        self.max_entries = max_entries
        self.persistent = persistent
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._key_lock = threading.Lock()  # the key may load the model: not under the memo's lock
        self._key: ModelKey | None = None
        self.requested = 0
        self.embedded = 0
        self.disk_hits = 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self.inner, "max_seq_length", None)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def warm_up(self) -> None:
        """Load the inner model now (outside any timed stage), if it loads lazily."""
        warm = getattr(self.inner, "warm_up", None)
        if callable(warm):
            warm()
        else:
            _ = self.inner.dimension

    def _disk(self) -> tuple[PersistentEmbeddingCache, ModelKey] | None:
        disk = self.persistent
        if disk is None:
            return None
        if self._key is None:  # computed once it is known (a remote model's after its first call)
            with self._key_lock:
                self._key = self._key or model_key(self.inner)
        return (disk, self._key) if self._key is not None else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.embed([])
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        with self._lock:
            missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        stored: dict[bytes, np.ndarray] = {}
        disk = self._disk() if missing else None
        if disk is not None:
            stored = disk[0].get_many(disk[1].key, list(missing), disk[1].dimension)
        todo = {k: t for k, t in missing.items() if k not in stored}
        fresh = self.inner.embed(list(todo.values())) if todo else None
        if fresh is not None and len(fresh):
            disk = self._disk()
            if disk is not None and fresh.shape[1] == disk[1].dimension:
                disk[0].put_many(disk[1].key, zip(todo, fresh, strict=True), label=disk[1].label)
            elif disk is not None:  # the model's dimension changed under its key: none of its stored vectors
                self._key, stored, todo = None, {}, missing
                fresh = self.inner.embed(list(todo.values()))
        with self._lock:
            self.requested += len(texts)
            self.disk_hits += len(stored)
            found: dict[bytes, np.ndarray] = dict(stored)
            if fresh is not None:
                self.embedded += len(todo)
                found.update(zip(todo, fresh, strict=True))
            self._vectors.update(found)
            rows = []
            for k, text in zip(keys, texts, strict=True):
                vector = found.get(k)
                if vector is None:
                    vector = self._vectors.get(k)
                    if vector is None:  # evicted by another thread since the check: rare, embed it again
                        vector = self.inner.embed([text])[0]
                        self.embedded += 1
                    self._vectors[k] = vector
                self._vectors.move_to_end(k)
                rows.append(vector)
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)
        return np.vstack(rows).astype(np.float32, copy=False)

    def clear(self) -> None:
        """Forget every vector held in memory (benchmarks time the model work with a cold memo); the
        persistent cache is left alone (`persistent = None` bypasses it)."""
        with self._lock:
            self._vectors.clear()

    def stats(self) -> dict[str, int]:
        """Texts asked for, embedded by the model, and served from the memo (`cache_hits`); with a disk level
        also `memory_hits` and `disk_hits` (their sum is `cache_hits`)."""
        with self._lock:
            out = {"texts_requested": self.requested, "texts_embedded": self.embedded,
                   "cache_hits": self.requested - self.embedded, "cached_vectors": len(self._vectors)}
            if self.persistent is not None or self.disk_hits:
                out["memory_hits"] = self.requested - self.embedded - self.disk_hits
                out["disk_hits"] = self.disk_hits
            return out


def make_embedder(settings: EmbeddingSettings, generation: GenerationSettings) -> Embedder:
    if settings.provider == "openai":
        return OpenAIEmbedder(settings.model, generation)
    return LocalEmbedder(settings.model, batch_size=settings.batch_size, device=settings.device)


def persistent_cache(settings: Settings) -> PersistentEmbeddingCache | None:
    """The persistent embedding cache of these settings (the process's one object for its file), or None when
    `embeddings.cache_enabled` is off. Opening it is lazy: nothing is created before a vector is looked up."""
    if not settings.embeddings.cache_enabled:
        return None
    return shared_cache(settings.embedding_cache_dir / FILE_NAME, int(settings.embeddings.cache_max_mb * MB))


def caching_embedder(settings: Settings | None, inner: Embedder, *, max_entries: int = 200_000,
                     rebind: bool = False) -> CachingEmbedder:
    """The one place that puts a model behind the embedding memo and sets its disk level
    (tests/test_owners.py fails when another module of axiom does either): a bare model gets a new memo with
    the persistent cache of `settings` (memory only when `settings` is None or `embeddings.cache_enabled` is
    off); a memo is returned as it is, its disk level kept, unless `rebind` sets it to the one of `settings`
    (a notebook kernel's memo)."""
    if isinstance(inner, CachingEmbedder):
        if rebind:
            inner.persistent = None if settings is None else persistent_cache(settings)
        return inner
    disk = None if settings is None else persistent_cache(settings)
    return CachingEmbedder(inner, max_entries, persistent=disk)


def uncached(embedder: Embedder) -> Embedder:
    """The model under the memo: `embedder.inner` for a CachingEmbedder, else `embedder` itself."""
    return embedder.inner if isinstance(embedder, CachingEmbedder) else embedder
