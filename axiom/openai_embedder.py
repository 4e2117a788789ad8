"""The remote embedding model: an OpenAI-compatible `/embeddings` endpoint (`embeddings.provider: openai`),
called through `axiom.llm` (the one openai client and its retry policy)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from axiom.config import GenerationSettings
from axiom.embedding_keys import ModelKey


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint (honours OPENAI_BASE_URL) via `axiom.llm`."""

    def __init__(self, model: str, generation: GenerationSettings, *, batch_size: int = 256) -> None:
        from axiom.llm import LLMClient

        self.model_id = model
        self.batch_size = batch_size
        self._client = LLMClient.from_settings(generation)
        self._dimension: int | None = None
        url = urlsplit(generation.base_url or "https://api.openai.com/v1")
        self.endpoint = f"{url.hostname or ''}:{url.port or ''}"  # never the credentials a URL may carry

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

    def cache_key(self) -> ModelKey | None:
        """The persistent cache's key (None until the first call told the dimension: no probe is sent for
        it)."""
        if self._dimension is None:
            return None
        dim = self._dimension
        return ModelKey(f"openai|{self.endpoint}|{self.model_id}|dim={dim}", dim,
                        f"openai {self.model_id} ({dim}d)")
