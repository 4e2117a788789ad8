"""What the two apps share: one RAGPipeline (built once), the query cache, the health checker and the ingest
lock.

Thread safety. Requests run in the threadpool, so the pipeline is used from many threads at once:
- the embedding model is wrapped in `SerialEmbedder`, one call at a time: a Hugging Face fast tokenizer raises
  `RuntimeError: Already borrowed` when two threads use it together, and on a small CPU box parallel encodes
  only compete for the same cores (torch already uses them all inside one call). Questions and answer
  sentences reach it through the pipeline's `CachingEmbedder` (`RAGPipeline.query_embedder`), whose hits
  neither wait for the model nor count as the `embed` stage;
- the retrievers are built up front, so no two requests race to build (and write) the same BM25 index;
- ingests are serialised by a lock (a second concurrent one gets 409).

Overload (see `axiom.service.limits`): the state holds the concurrency cap and, with the `openai` generator,
the process's LLM circuit breaker, which /health reports (200 `degraded` while it is not closed) and /metrics
exports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axiom import __version__
from axiom.breaker import CircuitBreaker
from axiom.config import Settings
from axiom.embedding_keys import ModelKey, model_key
from axiom.embeddings import Embedder, make_embedder
from axiom.errors import StoreError
from axiom.llm import LLMClient
from axiom.local_embedder import set_torch_threads
from axiom.observability import IN_FLIGHT, LLM_CIRCUIT_OPEN, stage
from axiom.pipeline import RAGPipeline
from axiom.retrieval import RETRIEVERS
from axiom.service.cache import QueryCache
from axiom.service.limits import ConcurrencyLimit
from axiom.source_tree import RootDir
from axiom.store import ChromaStore

log = logging.getLogger(__name__)


class SerialEmbedder:
    """An Embedder that lets one thread at a time into the model, and times each call as the `embed` stage.
    It does not cache (`axiom.embeddings.CachingEmbedder` does, around it)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self._lock = threading.RLock()

    @property
    def dimension(self) -> int:
        with self._lock:
            return self.inner.dimension

    def cache_key(self) -> ModelKey | None:
        """The inner model's key for the persistent embedding cache: these are its vectors."""
        with self._lock:
            return model_key(self.inner)

    @property
    def max_seq_length(self) -> int | None:
        with self._lock:
            return getattr(self.inner, "max_seq_length", None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock, stage("embed"):  # the stage times the model, not the wait for it
            return self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return self.inner.count_tokens(text)

    def warm_up(self) -> None:
        """Load the model now (not on the first request)."""
        with self._lock:
            self.inner.embed(["warm up"])


@dataclass
class HealthReport:
    ok: bool
    payload: dict[str, Any]

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503


class HealthChecker:
    """The store check behind /health: heartbeat, collection and count, in its own small thread pool with a
    deadline, on its own ChromaStore (so it never waits behind query traffic). Never touches the embedding
    model or the LLM."""

    def __init__(self, settings: Settings, *, generator_name: str,
                 breaker: CircuitBreaker | None = None) -> None:
        self.settings = settings
        self.store = ChromaStore(settings.store)
        self.timeout = settings.service.health_timeout_seconds
        self.generator_name = generator_name
        self.breaker = breaker
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="axiom-health")

    @property
    def shown_location(self) -> str:
        """Where the store is, as /health (no key) may show it: a server's address, never the embedded store's
        folder (an absolute path on the server)."""
        return self.store.where if self.settings.store.mode == "server" else "embedded ChromaDB"

    def _public(self, reason: str) -> str:
        return reason.replace(self.store.where, self.shown_location)

    def _probe(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.store.heartbeat()
        heartbeat_ms = (time.perf_counter() - t0) * 1000
        version = self.store.data_version()  # re-reads the collection: notices a dropped one
        chunks = self.store.count() if version >= 0 else None
        return {"heartbeat_ms": round(heartbeat_ms, 2), "exists": version >= 0, "chunks": chunks,
                "data_version": version if version >= 0 else None, "model": self.store.embedding_model}

    def _base(self) -> dict[str, Any]:
        s = self.settings
        generator: dict[str, Any] = {"name": self.generator_name}
        if self.generator_name == "openai":
            generator["model"] = s.generation.model
        payload = {
            "chroma": {"mode": s.store.mode, "location": self.shown_location},
            "collection": {"name": s.store.collection, "chunks": None},
            "embedding_model": s.embeddings.model,
            "generator": generator,
            "version": __version__,
        }
        if self.breaker is not None:
            payload["llm_circuit"] = self.breaker.snapshot()
        return payload

    async def check(self) -> HealthReport:
        """Returns within about `health_timeout_seconds` (a hung probe is abandoned in its own pool)."""
        payload = self._base()
        t0 = time.perf_counter()
        try:
            probe = await asyncio.wait_for(asyncio.wrap_future(self._pool.submit(self._probe)), self.timeout)
        except TimeoutError:
            reason = f"ChromaDB did not answer within {self.timeout:g}s ({payload['chroma']['location']})"
            return self._unavailable(payload, reason)
        except StoreError as exc:
            return self._unavailable(payload, exc.message)
        except Exception as exc:  # a health check reports, it does not crash
            return self._unavailable(payload, f"store check failed: {type(exc).__name__}: {exc}")
        payload["chroma"]["heartbeat_ms"] = probe["heartbeat_ms"]
        payload["collection"]["chunks"] = probe["chunks"]
        payload["collection"]["data_version"] = probe["data_version"]
        if probe["model"]:
            payload["embedding_model"] = probe["model"]
        payload["check_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if not probe["exists"]:
            return self._unavailable(
                payload, f"collection {self.settings.store.collection!r} does not exist "
                         f"on {payload['chroma']['location']}; ingest documents first "
                         "(POST /ingest or axiom ingest)")
        if self.breaker is not None and payload["llm_circuit"]["state"] != "closed":
            # still 200: every query is answered, extractively (degraded), until a trial call to the LLM
            # succeeds
            return HealthReport(True, {"status": "degraded", "reason": self.breaker.describe(), **payload})
        return HealthReport(True, {"status": "ok", **payload})

    def _unavailable(self, payload: dict[str, Any], reason: str) -> HealthReport:
        return HealthReport(False, {"status": "unavailable", "reason": self._public(reason), **payload})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class ServiceState:
    settings: Settings
    pipeline: RAGPipeline
    cache: QueryCache[dict[str, Any]]  # answers' JSON payloads
    health: HealthChecker
    data_root: Path
    limit: ConcurrencyLimit
    breaker: CircuitBreaker | None = None  # the LLM's, with the openai generator
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)
    # the data root, opened once (at start-up, or at the first ingest that finds it): /ingest resolves and
    # reads every path beneath this descriptor and never by the root's path again (see axiom.source_tree)
    data_root_dir: RootDir | None = None

    def open_data_root(self) -> RootDir | None:
        """The open data root; None while it does not exist (then every /ingest path is refused)."""
        if self.data_root_dir is None:
            try:
                self.data_root_dir = RootDir.open(self.data_root)
            except OSError as exc:
                log.warning("the data root %s cannot be opened (%s): POST /ingest refuses every path",
                            self.data_root, exc.strerror)
                return None
            self.data_root = self.data_root_dir.real
        return self.data_root_dir

    @property
    def generator_name(self) -> str:
        return self.settings.generation.resolved_provider

    def close(self) -> None:
        self.health.close()
        if self.data_root_dir is not None:
            self.data_root_dir.close()


def build_state(settings: Settings, *, warm_up: bool = True) -> ServiceState:
    """Build the shared pipeline once (and load the embedding model unless `warm_up` is False)."""
    if settings.ingest.follow_symlinks:
        log.warning("ingest.follow_symlinks is on; the service ingests without following symlinks, so "
                    "nothing outside the data root is read")
        settings = settings.with_overrides({"ingest.follow_symlinks": False},
                                           origin="axiom serve (it never follows symlinks)")
    set_torch_threads(settings.service.torch_threads)
    embedder = SerialEmbedder(make_embedder(settings.embeddings, settings.generation))
    pipeline = RAGPipeline(settings, embedder, ChromaStore(settings.store))
    breaker: CircuitBreaker | None = None
    client = getattr(pipeline.generator, "client", None)
    if isinstance(client, LLMClient):  # the openai generator: one breaker on its LLM for the process
        llm_breaker = client.breaker = CircuitBreaker.from_settings(settings.generation)
        LLM_CIRCUIT_OPEN.set_function(lambda: 0.0 if llm_breaker.state == "closed" else 1.0)
        breaker = llm_breaker
    else:
        LLM_CIRCUIT_OPEN.set_function(lambda: 0.0)
    for name in RETRIEVERS:  # built up front: see the module docstring
        pipeline.retriever(name)
    if warm_up:
        t0 = time.perf_counter()
        embedder.warm_up()
        log.info("embedding model %s loaded in %.1fs", embedder.model_id, time.perf_counter() - t0)
    cache: QueryCache[dict[str, Any]] = QueryCache(settings.service.cache_size,
                                                   settings.service.cache_ttl_seconds)
    health = HealthChecker(settings, generator_name=settings.generation.resolved_provider, breaker=breaker)
    limit = ConcurrencyLimit.from_settings(settings.service)
    IN_FLIGHT.set_function(lambda: limit.in_flight)
    # connect both stores now: the first connection imports chromadb (seconds), which no request should pay
    # for
    for store in (pipeline.store, health.store):
        try:
            store.heartbeat()
        except StoreError as exc:
            log.warning("ChromaDB is not reachable yet (/health answers 503 until it is): %s", exc.message)
            break
    state = ServiceState(settings=settings, pipeline=pipeline, cache=cache, health=health,
                         data_root=Path(settings.service.data_root).resolve(), limit=limit, breaker=breaker)
    state.open_data_root()
    return state
