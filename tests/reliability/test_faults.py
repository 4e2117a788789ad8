"""Faults and their recovery, with the real parts: a `chroma run` server killed in the middle of an ingest,
the LLM endpoint (the loopback OpenAI-compatible stand-in) failing in every way the issue lists, and a full
disk under the runs folder.

`kill -9` of the ingest process itself is tests/core/test_kill_ingest.py (re-run equals a clean ingest, no
duplicate ids); a ChromaDB outage while `axiom serve` runs is tests/service/test_service_resilience.py."""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from axiom.chunking import chunk_document
from axiom.cli import main
from axiom.config import Settings, load_settings
from axiom.errors import EvaluationError
from axiom.generation import EXTRACTIVE_PREFIX, make_generator
from axiom.types import Hit
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, clean_env, write_config
from tests.reliability.conftest import REPO, CliResult, clean_environ, run_cli, store_snapshot, tree
from tests.support.chroma_server import ChromaServer, free_port
from tests.support.documents import load_documents
from tests.support.fake_openai import FakeOpenAIServer, Reply

KEY = "sk-reliability-canary-3f9d1c7e"
FLUSH = 32
CHUNKING = {"chunk_size": 200, "chunk_overlap": 40}


def small_corpus(root: Path, files: int = 60) -> None:
    """`files` files of three one-chunk paragraphs (~180 chunks of a few dozen tokens: cheap to embed)."""
    words = sorted({w.lower() for f in TINY_CORPUS.iterdir() for w in f.read_text().split() if w.isalpha()})
    rnd = random.Random(11)
    for i in range(files):
        paragraphs = []
        for _ in range(3):
            text = ""
            while len(text) < 120:
                text += " ".join(rnd.choice(words) for _ in range(8)).capitalize() + ". "
            paragraphs.append(text.strip()[:180].rsplit(" ", 1)[0] + ".")
        folder = root / f"part{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i:03d}.txt").write_text("\n\n".join(paragraphs))


# -- ChromaDB server killed during an ingest
# ---------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_chroma_killed_during_ingest_fails_clearly_and_a_rerun_gives_the_clean_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        restore_logging: None) -> None:
    corpus = tmp_path / "corpus"
    small_corpus(corpus)
    docs, skipped = load_documents([corpus])
    expected = {c.id for d in docs for c in chunk_document(d, **CHUNKING)}
    total = len(expected)
    assert skipped == [] and total > 4 * FLUSH

    server = ChromaServer(tmp_path / "chroma-data").start()
    try:
        config = write_config(tmp_path / "work", chunking=CHUNKING,
                              store={"host": server.host, "port": server.port, "collection": "killed-server",
                                     "timeout_seconds": 2})
        settings = load_settings(config, environ={})
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys, axiom.pipeline\n"
             f"axiom.pipeline.FLUSH_CHUNKS = {FLUSH}\n"
             "from axiom.cli import main\nsys.exit(main(sys.argv[1:]))",
             "--config", str(config), "ingest", str(corpus), "--json"],
            cwd=REPO, env=clean_environ({"LOG_LEVEL": "WARNING"}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True)
        from axiom.store import ChromaStore

        watcher = ChromaStore(settings.store)
        seen: list[int] = []
        try:
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    count = watcher.count()
                except Exception:  # noqa: BLE001 (the collection appears during the run)
                    count = 0
                if not seen or seen[-1] != count:
                    seen.append(count)
                if 0 < count < total:
                    server.kill()  # SIGKILL of `chroma run`, mid-ingest
                    break
                time.sleep(0.05)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1, (seen, proc.returncode, err[-2000:])
        error = json.loads(out)  # no report, only the error object: the ingest did not claim to finish
        assert set(error) >= {"error", "type",
                              "exit_code"} and error["exit_code"] == 1 and "chunks" not in error
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("axiom: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        assert f"ChromaDB server {server.host}:{server.port}" in lines[0], lines[0]
        assert "failed on" in lines[0] or "cannot reach" in lines[0], lines[0]

        server.start()  # same port, same data folder
        left = ChromaStore(settings.store).count()
        assert 0 < left < total, (left, total, seen)

        clean_env(monkeypatch)
        capsys.readouterr()
        assert main(["--config", str(config), "ingest", str(corpus), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["chunks_total"] == total and report["files_skipped"] == []
        # only what was missing (+ at most one batch)
        assert report["chunks_embedded"] <= total - left + FLUSH
        stored = store_snapshot(settings)  # fails on a duplicate id
        assert set(stored) == expected
        assert all(row["n_chunks"] and row["doc_hash"] for row in stored.values())
    finally:
        server.stop()


# -- the LLM endpoint
# ------------------------------------------------------------------------------------------
CONTEXTS = [Hit("c-1", "bees.md", None, 0.9, "A queen bee can lay up to 2,000 eggs a day in summer."),
            Hit("c-2", "lava.md", None, 0.5, "Mauna Loa is the largest active volcano by volume.")]
JUNK = Reply(200, "this is not JSON at all")
EMPTY = Reply(200, {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []})

# name -> (reply repeated for every attempt or None for a closed port, settings, reason words, min seconds)
LLM_FAULTS: dict[str, tuple[Reply | None, dict, str, float]] = {
    "429_retry_after": (Reply(429, {"error": {"message": "slow"}}, {"Retry-After": "1"}), {}, "HTTP 429",
                        2.0),
    "429_no_retry_after": (Reply(429, {"error": {"message": "slow"}}), {}, "HTTP 429", 0.0),
    "500": (Reply(500, {"error": {"message": "boom"}}), {}, "HTTP 500", 0.0),
    "502": (Reply(502, "<html>bad gateway</html>"), {}, "HTTP 502", 0.0),
    "503": (Reply(503, {"error": {"message": "overloaded"}}), {}, "HTTP 503", 0.0),
    "connection_refused": (None, {}, "cannot connect to the LLM endpoint", 0.0),
    "read_timeout": (Reply(200, {"choices": []}, delay=1.5), {"timeout_seconds": 0.4},
                     "LLM request timed out",
                     1.2),
    "malformed_json": (JUNK, {}, "malformed reply from the LLM endpoint", 0.0),
    "empty_choices": (EMPTY, {}, "no choices in the reply", 0.0),
}
MAX_RETRIES = 2


@pytest.mark.parametrize("fault", list(LLM_FAULTS))
def test_llm_fault_is_retried_as_configured_then_answered_extractively_and_flagged(
        make_settings: Callable[..., Settings], embedder, fault: str,  # noqa: ANN001
        caplog: pytest.LogCaptureFixture) -> None:
    reply, extra, words, min_seconds = LLM_FAULTS[fault]
    with FakeOpenAIServer() as fake:
        base_url = fake.base_url if reply is not None else f"http://127.0.0.1:{free_port()}/v1"
        if reply is not None:
            fake.enqueue(*[reply] * (MAX_RETRIES + 1))
        settings = make_settings(generation={"provider": "openai", "api_key": KEY, "base_url": base_url,
                                             "model": "fake-model", "max_retries": MAX_RETRIES,
                                             "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05,
                                             "timeout_seconds": 5.0, **extra})
        generator = make_generator(settings.generation, embedder)
        t0 = time.perf_counter()
        with caplog.at_level(logging.DEBUG):
            answer = generator.generate("How many eggs does a queen bee lay?", CONTEXTS)
        elapsed = time.perf_counter() - t0
        calls = fake.calls()
    if reply is not None:
        assert calls == MAX_RETRIES + 1, calls  # retried exactly as configured
    assert elapsed >= min_seconds, elapsed  # Retry-After / the read timeout were waited for
    assert elapsed < 30
    assert answer.degraded is True and answer.generator == "extractive"
    assert answer.degraded_reason == (f"chat completion failed after {MAX_RETRIES + 1} attempt(s): "
                                      + answer.degraded_reason.split(": ", 1)[1])
    assert words in answer.degraded_reason, answer.degraded_reason
    assert answer.answer.startswith(EXTRACTIVE_PREFIX) and answer.citations
    assert answer.to_dict()["degraded"] is True
    assert KEY not in caplog.text and KEY not in json.dumps(answer.to_dict())


def _always(status: int) -> Callable[[str, dict], Reply]:
    # retry-after-ms keeps the judge client's own backoff (0.5-8 s per retry) out of the test's time
    return lambda path, body: Reply(status, {"error": {"message": f"down ({status})"}},
                                    {"retry-after-ms": "20"})


@pytest.mark.timeout(600)
def test_evaluation_with_a_failing_llm_completes_and_counts_what_was_unmeasured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        restore_logging: None) -> None:
    """Generator and judge on an endpoint that answers 502 to everything: `axiom eval` still exits 0, every
    answer is degraded (extractive), every LLM-judged metric is unmeasured with the reason, and the run says
    how
    many."""
    clean_env(monkeypatch)
    with FakeOpenAIServer(_always(502)) as fake:
        config = write_config(tmp_path / "work",
                              generation={"max_retries": 1, "backoff_initial_seconds": 0.01,
                                                             "backoff_max_seconds": 0.05})
        for name, value in {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url, "LLM_PROVIDER": "openai",
                            "LLM_MODEL": "fake-model", "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus",
                     str(TINY_CORPUS),
                     "--name", "llm-down", "--json"])
        captured = capsys.readouterr()
        result = CliResult(code, captured.out, captured.err)
        assert fake.calls() > 0
    assert result.code == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    run = Path(summary["run"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["degraded_answers"] == summary["questions"] == 6
    judged = ("faithfulness", "answer_relevancy", "llm_context_precision", "llm_context_recall",
              "factual_correctness")
    for name in judged:
        m = metrics["metrics"][name]
        assert m["mean"] is None and m["n"] == 0, (name, m)
        assert m["unmeasured"] + m["not_applicable"] == 6 and m["unmeasured"] >= 1, (name, m)
        assert all("502" in reason for reason in m["unmeasured_reasons"]), (name, m)
    assert metrics["metrics"]["recall@5"]["n"] == 6  # the offline metrics are all there
    assert metrics["metrics"]["rouge_l"]["n"] == 6
    results = json.loads((run / "manifest.json").read_text())
    assert results["generator"]["name"] == "openai"
    # the secret: nowhere in the run folder or the logs of a run that failed at every LLM call
    for path in run.iterdir():
        assert KEY.encode() not in path.read_bytes(), path.name
    assert KEY not in result.stderr and KEY not in result.stdout


# -- a full disk under the runs folder
# ---------------------------------------------------------------------------
def _tmpfs_possible() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None and shutil.which("umount") is not None


def _limit_file_size() -> None:  # in the child, before exec: writes past 1 KiB fail with EFBIG
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["small_filesystem", "write_error"])
def test_disk_full_under_the_runs_folder_fails_cleanly_leaving_no_partial_run(
        tmp_path: Path, chroma_server: ChromaServer, mode: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    """`small_filesystem`: the runs folder on a 16 KiB tmpfs (as root; otherwise it falls back to the injected
    write error). `write_error`: the eval process's file size limit (RLIMIT_FSIZE, 1 KiB) makes every larger
    write fail at the file layer, which works for any user. The store is the ChromaDB server, so the only
    local files the run writes are the run folder's."""
    runs = tmp_path / "runs"
    runs.mkdir()
    config = write_config(tmp_path / "work", store={"host": chroma_server.host, "port": chroma_server.port,
                                                    "collection": f"disk-full-{mode.replace('_', '-')}"},
                          embeddings={"cache_enabled": False})
    mounted = False
    if mode == "small_filesystem" and _tmpfs_possible():
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0777", "tmpfs", str(runs)],
                                 capture_output=True).returncode == 0
    try:
        args = ["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                "--name", "full", "--retriever", "dense", "--out", str(runs)]
        if mounted:  # the CLI's main in this process (the model is loaded already): only the tmpfs is small
            clean_env(monkeypatch)
            monkeypatch.setenv("LOG_LEVEL", "WARNING")
            capsys.readouterr()
            code = main(args)
            captured = capsys.readouterr()
            result = CliResult(code, captured.out, captured.err)
        else:  # a subprocess: the file size limit must not reach pytest's own files
            result = run_cli(args, env={"LOG_LEVEL": "WARNING"}, preexec_fn=_limit_file_size)
        assert result.code == EvaluationError.exit_code == 1, result.stderr[-3000:]
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("axiom: error:")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
        reason = "No space left on device" if mounted else "File too large"
        assert f"cannot write the run folder under {runs}" in lines[0] and reason in lines[0], lines[0]
        assert "no partial run was left behind" in lines[0]
        assert tree(runs) == []  # no run folder, complete or not, and no working folder
    finally:
        if mounted:
            subprocess.run(["umount", str(runs)], check=True)
    if mode == "small_filesystem":
        print(f"\ndisk full: {'a 16 KiB tmpfs' if mounted else 'the injected write error (no tmpfs here)'}")
