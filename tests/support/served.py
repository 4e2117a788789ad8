"""One `axiom serve` per configuration per session (issue 25), shared by the modules that need that
configuration instead of a server started per module (10-16 s of a 2-core machine each: uvicorn, torch, the
model). The modules of one configuration are one xdist group (tests/conftest.py), so the whole group runs on
one worker and its server starts once; every server is stopped at the end of the session.

- `keyed_service`: API keys and an OpenAI key set (extractive answers), on the session's ChromaDB server,
  over a collection that an in-process evaluation of the tiny golden set ingested (the tiny corpus; top_k 10,
  so the service's ranking is as deep as the in-process one's). Nothing that uses it ingests, deletes or
  stops it: the endpoint evaluation, the API input matrix, the exposure checks and the load test.
- `fresh_service`: API keys and an OpenAI key set, on the ChromaDB server, over a collection nothing has
  ingested yet. A module that only reads it (`take()`) shares it while it is still fresh; the one module that
  ingests into it (`take(mutates=True)`) gets it last; asked for after that, it is a new server again, so a
  module that relies on a fresh store always gets one, whatever the order the modules run in.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.service.conftest import API_KEYS, OPENAI_SECRET, TINY_CORPUS, AxiomServer
from tests.support.chroma_server import ChromaServer
from tests.support.settings import build_settings

if TYPE_CHECKING:
    from axiom.embeddings import LocalEmbedder
    from axiom.evaluation.run_folder import RunRecord

TINY_GOLDEN = TINY_CORPUS.parent / "tiny_golden.jsonl"
KEYED_MAX_BODY = 262_144  # the keyed service's service.max_body_bytes
FRESH_MAX_BODY = 65_536  # the fresh service's


def keyed_env(chroma_server: ChromaServer, collection: str) -> dict[str, str]:
    return {"CHROMA_HOST": chroma_server.host, "CHROMA_PORT": str(chroma_server.port),
            "AXIOM_COLLECTION": collection, "AXIOM_API_KEYS": ",".join(API_KEYS),
            "OPENAI_API_KEY": OPENAI_SECRET, "LLM_PROVIDER": "extractive", "LOG_LEVEL": "INFO"}


@dataclass(frozen=True)
class KeyedService:
    server: AxiomServer
    collection: str
    in_process: RunRecord  # the in-process evaluation that ingested the collection: what HTTP must give
    root: Path


@pytest.fixture(scope="session")
def keyed_service(chroma_server: ChromaServer, tmp_path_factory: pytest.TempPathFactory,
                  embedder: LocalEmbedder) -> Iterator[KeyedService]:
    from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

    root = tmp_path_factory.mktemp("keyed-service")
    collection = f"keyed_svc_{uuid.uuid4().hex[:8]}"
    settings = build_settings(root, store={"host": chroma_server.host, "port": chroma_server.port,
                                           "collection": collection}, retrieval={"top_k": 10})
    in_process = run_evaluation(settings, TINY_GOLDEN,
                                AnswerSource.pipeline(TINY_CORPUS, own_collection=False),
                                EvaluationOptions(name="in-process", embedder=embedder, judge=False))
    server = AxiomServer(root / "serve", env=keyed_env(chroma_server, collection),
                         config={"service": {"max_body_bytes": KEYED_MAX_BODY, "cache_size": 256}})
    try:
        yield KeyedService(server.start(), collection, in_process, root)
    finally:
        if server.proc is not None:
            server.terminate()


class FreshServices:
    """Hands out a server whose collection nothing has ingested (see the module's docstring)."""

    def __init__(self, chroma_server: ChromaServer, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.chroma_server, self.tmp_path_factory = chroma_server, tmp_path_factory
        self.fresh: AxiomServer | None = None
        self.started: list[AxiomServer] = []

    def take(self, *, mutates: bool = False) -> AxiomServer:
        """The fresh server (started on first use); `mutates`: the caller ingests into it, so it is handed to
        nobody after this."""
        server = self.fresh or self._start()
        self.fresh = None if mutates else server
        return server

    def _start(self) -> AxiomServer:
        server = AxiomServer(
            self.tmp_path_factory.mktemp("fresh-service"),
            env=keyed_env(self.chroma_server, f"svc_api_{uuid.uuid4().hex[:8]}"),
            config={"service": {"max_body_bytes": FRESH_MAX_BODY, "cache_size": 64,
                                "cache_ttl_seconds": 600}})
        self.started.append(server)
        return server.start()

    def stop(self) -> None:
        """Every server started, each stopped even when another one hung (terminate() kills a hung one)."""
        hung = []
        for server in self.started:
            try:
                server.terminate()
            except subprocess.TimeoutExpired as exc:
                hung.append(exc)
        if hung:
            raise hung[0]


@pytest.fixture(scope="session")
def fresh_service(chroma_server: ChromaServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshServices]:
    services = FreshServices(chroma_server, tmp_path_factory)
    try:
        yield services
    finally:
        services.stop()
