"""Run `axiom serve` as a real subprocess on free loopback ports, against a real ChromaDB server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from axiom.config import ENV_VARS
from tests.support.chroma_server import free_port
from tests.support.waiting import WaitError, poll_until, wait_for_http

REPO = Path(__file__).resolve().parents[2]
TINY_CORPUS = REPO / "tests" / "fixtures" / "tiny_corpus"

API_KEYS = ("svc-key-alpha-7f3c9a", "svc-key-bravo-41d2e8")
OPENAI_SECRET = "sk-test-never-log-me-5b8e2c1d"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


class AxiomServer:
    """`axiom serve` in a subprocess: its own work folder, config file, ports and captured stderr (the
    log)."""

    def __init__(self, workdir: Path, *, env: dict[str, str], config: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.sidecar_port = free_port()
        self.data_root = workdir / "data"
        if not self.data_root.exists():
            shutil.copytree(TINY_CORPUS, self.data_root)
        base = yaml.safe_load((REPO / "config.yaml").read_text())
        overrides = {"store": {"bm25_dir": str(workdir / "bm25"), "path": str(workdir / "chroma")},
                     "embeddings": {"cache_dir": str(workdir / "embedding-cache")},
                     "service": {"data_root": str(self.data_root)}}
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(_deep_merge(_deep_merge(base, overrides), config or {})))
        clean = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k not in ("AXIOM_CONFIG",)}
        self.env = {**clean, "AXIOM_CONFIG": str(self.config_path), "LOG_FORMAT": "json",
                    "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "ANONYMIZED_TELEMETRY": "False",
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **env}
        self.log_path = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sidecar(self) -> str:
        return f"http://127.0.0.1:{self.sidecar_port}"

    def start(self, timeout: float = 180.0) -> AxiomServer:
        return self.launch().wait_ready(timeout)

    def launch(self) -> AxiomServer:
        """Start the process without waiting for it (it loads the model while other things start)."""
        cmd = [sys.executable, "-m", "axiom.cli", "serve", "--host", "127.0.0.1", "--port",
               str(self.api_port),
               "--sidecar-port", str(self.sidecar_port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 180.0) -> AxiomServer:
        """Until both ports answer HTTP (any status: 503 while the store is unreachable is an answer too)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        try:
            for url in (f"{self.sidecar}/health", f"{self.api}/health"):
                wait_for_http(url, timeout=max(1.0, deadline - time.monotonic()), expect_status=None,
                              process=self.proc, log=self.log_path, what="axiom serve")
        except WaitError:
            self.kill()
            raise
        return self

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """Every non-empty line of the server's stderr, parsed; fails on a line that is not a JSON object."""
        records = []
        for n, line in enumerate(self.log_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"log line {n} is not JSON: {line[:300]!r}")
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def wait_for_log(self, predicate: Callable[[list[dict[str, Any]]], bool], *, what: str,
                     timeout: float = 10.0) -> None:
        """Until `predicate(records)` holds for the log so far (some lines, the access line in particular, are
        written after the response). A line still being written is skipped here; log_records() checks them
        all."""
        def records_so_far() -> list[dict[str, Any]]:
            out = []
            for line in self.log_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
            return out

        poll_until(lambda: predicate(records_so_far()), timeout=timeout, message=f"{what} in {self.log_path}")

    def wait_for_access_line(self, request_id: str, timeout: float = 10.0) -> None:
        """Until the access line of request `request_id` (the last line a request writes) is in the log."""
        self.wait_for_log(lambda records: any(rec.get("request_id") == request_id
                                              and rec.get("logger") == "axiom.service.access"
                                              for rec in records),
                          what=f"the access line of request {request_id}", timeout=timeout)


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=60, **kwargs)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text parsed with prometheus_client's own parser: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
