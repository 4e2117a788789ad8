"""Shared pieces of the reliability matrix: the `axiom` CLI as a real subprocess (optionally as an
unprivileged user), the store's contents as a comparable snapshot, and one `axiom serve` shared by the API,
exposure and load tests (the session's keyed server of tests/support/served.py: the real ChromaDB server,
API keys and an OpenAI key set)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from axiom.config import ENV_VARS, Settings
from axiom.store import ChromaStore
from tests.service.conftest import AxiomServer
from tests.support.served import KEYED_MAX_BODY, KeyedService

REPO = Path(__file__).resolve().parents[2]
UNPRIVILEGED = 65534  # nobody

BASE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "ANONYMIZED_TELEMETRY": "False", "RAGAS_DO_NOT_TRACK": "true", "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost", "PYTHONPATH": str(REPO)}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any Axiom setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "AXIOM_CONFIG"}
    return {**env, **BASE_ENV, **(extra or {})}


def run_cli(args: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            as_unprivileged: bool = False, timeout: float = 300, prelude: str = "",
            preexec_fn: Any = None) -> CliResult:
    """`python -m axiom.cli ARGS` in a subprocess; `prelude` is Python run before `main` (test hooks such as a
    smaller flush batch); `as_unprivileged` runs it as UID 65534 when the tests run as root."""
    code = f"import sys\n{prelude}\nfrom axiom.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    cmd = [sys.executable, "-c", code, *args]
    if as_unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs setpriv to drop privileges"
        cmd = [setpriv, f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO,
                          env=clean_environ(env), preexec_fn=preexec_fn)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def store_snapshot(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every chunk of the collection: {id: {source, doc_hash, n_chunks, text}}; fails on a duplicate id."""
    rows: dict[str, dict[str, Any]] = {}
    store = ChromaStore(settings.store)
    for c in store.iter_chunks(with_text=True):
        assert c.id not in rows, f"duplicate chunk id {c.id}"
        rows[c.id] = {"source": c.metadata.get("source"), "doc_hash": c.metadata.get("doc_hash"),
                      "n_chunks": c.metadata.get("n_chunks"), "text": c.text}
    return rows


def tree(path: Path) -> list[str]:
    """Every entry under `path` (relative, sorted); [] when it does not exist."""
    if not path.exists():
        return []
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder an unprivileged user can enter and write (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="axiom-rel-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the session's keyed `axiom serve` (tests/support/served.py) for the API matrix, the exposure checks and
# the load test
SERVICE_MAX_BODY = KEYED_MAX_BODY


@pytest.fixture(scope="session")
def reliability_server(keyed_service: KeyedService) -> AxiomServer:
    """`axiom serve` with API keys and an OPENAI_API_KEY set (extractive answers), the tiny corpus
    ingested (shared with tests/evaluation/test_endpoint.py: nothing here ingests or stops it)."""
    return keyed_service.server
