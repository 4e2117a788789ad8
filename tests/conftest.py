"""Shared fixtures: settings in a temporary folder, one embedding model per session, a real ChromaDB
server (`chroma run`), and the loopback OpenAI-compatible stand-in."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from axiom.observability import apply_process_defaults

# The test process calls the library as a face does (the CLI, the service, a notebook session): the same
# process defaults (no analytics, no progress bars of the model loader on stderr), set before any model stack
# is imported, so a test's output does not depend on which test happened to run first in its process.
apply_process_defaults()

from axiom.config import Settings  # noqa: E402
from axiom.embeddings import LocalEmbedder  # noqa: E402
from axiom.pipeline import RAGPipeline  # noqa: E402
from axiom.store import ChromaStore  # noqa: E402
from tests.support.chroma_server import ChromaServer  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402
from tests.support.settings import build_settings  # noqa: E402

# The session's shared `axiom serve`s, one per configuration: `keyed_service`, `fresh_service`.
pytest_plugins = ["tests.support.served"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

# The tiers that follow from a test's folder (the `slow` tier is marked per test). `make check` deselects them
# all.
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
    "tests/service/test_overload.py",  # the service at and over its caps, a hung LLM, the breaker: load
    "tests/service/test_service_resilience.py",  # ChromaDB stopped and restarted under the service, SIGTERM
}


# `make check` and `make test` run on pytest-xdist workers; the tests of one group run on one worker, in file
# order. Every module is a group (its module-scoped servers start once, and tests that rely on the order of
# their module keep it); a folder whose modules share a session-wide thing is one group (the images and the
# container report, the executed notebooks and their Jupyter server, the Ray tests' nodes), and so are the
# modules that share one of the session's `axiom serve`s (tests/support/served.py: one server per
# configuration, started once on the worker that runs the group). (xdist's own `--dist loadgroup` cannot do
# this with pytest 9.2: it renames `item._nodeid`, which pytest 9 no longer reads, so its groups are silently
# ignored.)
SHARED_FOLDER_GROUPS = {"containers": "docker", "notebooks": "notebooks", "distributed": "ray"}
# the server fixture -> the modules that use it (tests/test_tiers.py checks that every user is listed)
SERVER_GROUPS = {
    "keyed_service": ("tests/evaluation/test_endpoint.py", "tests/reliability/test_exposure.py",
                      "tests/reliability/test_api_inputs.py", "tests/reliability/test_load_soak.py"),
    # in file order: the module that only reads the fresh server first, then the one that ingests into it
    "fresh_service": ("tests/service/test_hardening.py", "tests/service/test_service.py"),
}
SHARED_MODULE_GROUPS = {module: fixture for fixture, modules in SERVER_GROUPS.items() for module in modules}
# The groups that take longest (minutes each, measured in the CI runs of docs/TESTING.md), handed out first,
# so no long group starts last on a worker while the others are idle; every other group follows, largest
# first. (The compose cluster profile's test stays in the "docker" group, after the stack test: run side by
# side with it on a loaded 2-core machine, its Ray worker nodes timed out registering with the head, twice in
# two runs.)
LONGEST_GROUPS = ("docker", "ray", "notebooks", "tests/bench/test_cost_curves.py",
                  "tests/bench/test_bench_smoke.py", "tests/test_lock_install.py")


def xdist_group_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    if module in SHARED_MODULE_GROUPS:
        return SHARED_MODULE_GROUPS[module]
    parts = module.split("/")
    if len(parts) > 2 and parts[1] in SHARED_FOLDER_GROUPS:
        return SHARED_FOLDER_GROUPS[parts[1]]
    return module


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The items with LONGEST_GROUPS' groups first (in that order), then the other groups by size, largest
    first; a group's items keep their order (a stable sort), so every module stays together."""
    groups = [xdist_group_of(item.nodeid) for item in items]
    sizes = Counter(groups)
    first = {group: groups.index(group) for group in sizes}
    rank = {group: i for i, group in enumerate(LONGEST_GROUPS)}
    order = sorted(range(len(items)), key=lambda i: (rank.get(groups[i], len(rank)), -sizes[groups[i]],
                                                     first[groups[i]]))
    return [items[i] for i in order]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """xdist's scope scheduling (a scope goes to one worker, as a whole) with the groups above as scopes,
        handed out in the order of the collection (`longest_first`), not xdist's by-size order."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    config.option.loadscopereorder = False
    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # on an xdist worker: every worker sorts its identical collection alike
    if hasattr(config, "workerinput"):
        items[:] = longest_first(items)
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(REPO).as_posix()
        parts = rel.split("/")
        if len(parts) > 2 and parts[1] in FOLDER_TIERS and rel not in FAST_IN_TIER_FOLDERS:
            item.add_marker(FOLDER_TIERS[parts[1]])
        if rel in SLOW_MODULES:
            item.add_marker("slow")


# The container tests' report (image sizes, build and start-up times): collected where those tests run, handed
# from an xdist worker to the controller when the worker finishes, printed at the end of the run.
CONTAINER_REPORT = pytest.StashKey[list[str]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # set on an xdist worker only
    if workeroutput is not None:
        workeroutput["container_report"] = session.config.stash.get(CONTAINER_REPORT, [])


def pytest_testnodedown(node: Any, error: Any) -> None:
    lines = getattr(node, "workeroutput", {}).get("container_report") or []
    node.config.stash.setdefault(CONTAINER_REPORT, []).extend(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(CONTAINER_REPORT, [])
    if lines:
        terminalreporter.section("container test report")
        for line in lines:
            terminalreporter.write_line(line)


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
    """Settings with every path under tmp_path (tests/support/settings.py's builder, at config.yaml's log
    level); keyword overrides are nested dicts per section, `environ` the environment variables it sees."""

    def build(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        logging_section = {"level": "INFO", **overrides.pop("logging", {})}
        return build_settings(tmp_path, environ=environ, logging=logging_section, **overrides)

    return build


@pytest.fixture
def make_pipeline(make_settings: Callable[..., Settings],
                  embedder: LocalEmbedder) -> Callable[..., RAGPipeline]:
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
