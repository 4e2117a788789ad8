"""Shared fixtures: settings in a temporary folder, one embedding model per session, a real ChromaDB
server (`chroma run`), and the loopback OpenAI-compatible stand-in."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from axiom.config import Settings, load_settings
from axiom.embeddings import LocalEmbedder
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.support.chroma_server import ChromaServer
from tests.support.fake_openai import FakeOpenAIServer

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

# The tiers that follow from a test's folder (the `slow` tier is marked per test). `make check` deselects them all.
FOLDER_TIERS = {"containers": "docker", "distributed": "ray", "notebooks": "notebooks"}
# Pure unit tests inside a tier's folder: they start nothing and stay in the fast tier.
FAST_IN_TIER_FOLDERS = {"tests/notebooks/test_units.py", "tests/containers/test_environment_pins.py"}
# Whole modules of the slow tier (load, soak, kill/restart, whole benchmark runs); single slow tests carry
# @pytest.mark.slow themselves.
SLOW_MODULES = {
    "tests/reliability/test_load_soak.py",  # 10 s of 50 clients on a real server
    "tests/core/test_kill_ingest.py",  # kill -9 of an ingest, then a re-run
    "tests/reliability/test_faults.py",  # a ChromaDB server killed mid-ingest, a full disk, every LLM fault
    "tests/bench/test_bench_smoke.py",  # the benchmark suite, one repetition
    "tests/bench/test_eval_floor.py",  # whole evaluation processes and their floor
    "tests/service/test_ingest_race.py",  # a real server ingesting for 25 s under file and folder swaps
    "tests/reliability/test_hostile_endpoint.py",  # hostile replies to whole CLI processes, their peak memory
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(REPO).as_posix()
        parts = rel.split("/")
        if len(parts) > 2 and parts[1] in FOLDER_TIERS and rel not in FAST_IN_TIER_FOLDERS:
            item.add_marker(FOLDER_TIERS[parts[1]])
        if rel in SLOW_MODULES:
            item.add_marker("slow")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_corpus() -> Path:
    return FIXTURES / "tiny_corpus"


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The packaged MiniLM, loaded once for the whole session."""
    model = LocalEmbedder("all-MiniLM-L6-v2")
    _ = model.model
    return model


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with the store under tmp_path; keyword overrides are nested dicts per section."""

    def build(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        base: dict[str, Any] = {"store": {"path": str(tmp_path / "chroma"), "bm25_dir": str(tmp_path / "bm25")},
                                "evaluation": {"runs_dir": str(tmp_path / "runs"),
                                               "judge_cache_dir": str(tmp_path / "judge-cache")},
                                "embeddings": {"cache_dir": str(tmp_path / "embedding-cache")},
                                "logging": {"format": "text"}}
        for section, values in overrides.items():
            base.setdefault(section, {}).update(values)
        return load_settings(REPO / "config.yaml", environ=environ or {}, overrides=base)

    return build


@pytest.fixture
def make_pipeline(make_settings: Callable[..., Settings], embedder: LocalEmbedder) -> Callable[..., RAGPipeline]:
    """A pipeline sharing the session's embedding model."""

    def build(settings: Settings | None = None, **overrides: Any) -> RAGPipeline:
        settings = settings or make_settings(**overrides)
        return RAGPipeline(settings, embedder, ChromaStore(settings.store))

    return build


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real ChromaDB server on a free loopback port, shared by the session."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI's `main` configures the root logger (onto the captured stderr): put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
