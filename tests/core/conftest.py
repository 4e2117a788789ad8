"""Fixtures for the core test set: the same store tests against the embedded client and a real server."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from axiom.config import Settings
from axiom.embeddings import LocalEmbedder
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.support.settings import build_settings

REPO = Path(__file__).resolve().parents[2]


class CachedEmbedder:
    """The session's real MiniLM with a memo of the vectors it already computed.

    Every vector is the model's own output; the memo only saves re-encoding tiny_corpus in every test (the
    pipeline still counts those chunks as embedded: it cannot see the memo).
    """

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self._memo: dict[str, np.ndarray] = {}

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._memo[text] = vector
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


@pytest.fixture(scope="session")
def cached_embedder(embedder: LocalEmbedder) -> CachedEmbedder:
    return CachedEmbedder(embedder)


@pytest.fixture
def core_pipeline(make_settings: Callable[..., Settings], cached_embedder: CachedEmbedder
                  ) -> Callable[..., RAGPipeline]:
    """Like `make_pipeline` (embedded store under tmp_path), with the memoising embedder."""

    def build(settings: Settings | None = None, **overrides: Any) -> RAGPipeline:
        settings = settings or make_settings(**overrides)
        return RAGPipeline(settings, cached_embedder, ChromaStore(settings.store))

    return build


@pytest.fixture(scope="module")
def shared_ingested(tmp_path_factory: pytest.TempPathFactory, cached_embedder: CachedEmbedder,
                    tiny_corpus: Path) -> RAGPipeline:
    """tiny_corpus ingested once per module into an embedded store: for tests that only read."""
    settings = build_settings(tmp_path_factory.mktemp("shared"))
    pipeline = RAGPipeline(settings, cached_embedder, ChromaStore(settings.store))
    pipeline.ingest([tiny_corpus])
    return pipeline


class RenamedEmbedder:
    """A real embedder (the session's MiniLM, possibly memoised) reporting another `model_id`.

    Not a mock of anything: every call goes to the real model. It only lets a test open a collection
    "as another model" without loading a second model.
    """

    def __init__(self, inner: Any, model_id: str) -> None:
        self.inner = inner
        self.model_id = model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


@pytest.fixture(params=["embedded", "server"])
def store_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def unique_collection() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def server_collections() -> Iterator[list[dict[str, Any]]]:
    """Store settings of server collections a test creates; dropped afterwards to keep the shared server
    small."""
    created: list[dict[str, Any]] = []
    yield created
    for store in created:
        ChromaStore(Settings(store=store).store).drop()


@pytest.fixture
def store_overrides(store_mode: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """`store` settings for the mode: embedded under tmp_path, or a unique collection on the real server."""
    if store_mode == "embedded":
        return {}
    server = request.getfixturevalue("chroma_server")
    return {"host": server.host, "port": server.port, "collection": unique_collection()}


@pytest.fixture
def mode_pipeline(make_settings: Callable[..., Settings], cached_embedder: CachedEmbedder,
                  store_overrides: dict[str, Any], server_collections: list[dict[str, Any]]
                  ) -> Callable[..., RAGPipeline]:
    """Pipelines on the parametrized store; every call in one test reaches the same collection unless
    `collection=` names another one. `embedder_=` swaps the embedder (e.g. a RenamedEmbedder)."""

    def build(*, collection: str | None = None, embedder_: Any = None, **overrides: Any) -> RAGPipeline:
        store = dict(store_overrides)
        if collection is not None:
            store["collection"] = collection
        store.update(overrides.pop("store", {}))
        if store.get("host"):
            server_collections.append({k: store[k] for k in ("host", "port", "collection")})
        settings = make_settings(store=store, **overrides)
        return RAGPipeline(settings, embedder_ or cached_embedder, ChromaStore(settings.store))

    return build


@pytest.fixture
def corpus_copy(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A writable copy of tiny_corpus (tests change and delete files in it)."""
    target = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, target)
    return target
