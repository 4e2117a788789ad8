"""`run_evaluation` / `axiom eval` progress and stage timings: progress over the questions and the current
stage on stderr (never stdout), off on request and inside a notebook kernel, and the embedding model's load
timed apart from retrieval (manifest `timings`). A stand-in model (tests/support/slow_embedder.py) keeps these
fast."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import axiom.embeddings
from axiom.cli import main
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings, clean_env, write_config
from tests.support.slow_embedder import SlowLoadingEmbedder

QUESTIONS = sum(1 for line in TINY_GOLDEN.read_text().splitlines() if line.strip())
LOAD = 2.0


class KernelStream(io.StringIO):
    """Looks like a Jupyter kernel's stderr (ipykernel.iostream.OutStream)."""


KernelStream.__module__ = "ipykernel.iostream"


def test_eval_progress_on_stderr_names_each_stage_and_counts_questions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = build_settings(tmp_path)
    record = run_evaluation(settings, TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                            EvaluationOptions(name="progress", judge=False, embedder=SlowLoadingEmbedder(0.0),
                                              progress=True))
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    ours = [ln for ln in err if ln.startswith("eval: ")]
    expected_order = ["eval: loading the embedding model", "eval: ingesting the corpus", "eval: retrieving",
                      f"eval: {QUESTIONS}/{QUESTIONS} questions answered",
                      "eval: scoring answers (offline metrics)",
                      "eval: locating reference passages", "eval: writing the run folder"]
    positions = [next((i for i, ln in enumerate(ours) if ln.startswith(step)), -1) for step in expected_order]
    assert -1 not in positions and positions == sorted(positions), ours
    assert any(ln.startswith("ingest: ") and "chunks embedded" in ln for ln in err), err
    assert record.manifest.timings is not None
    assert record.manifest.timings.keys() >= {"model_load", "ingest", "retrieve", "answer", "score",
                                              "evidence"}


def test_eval_progress_off_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_evaluation(build_settings(tmp_path), TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                   EvaluationOptions(name="quiet", judge=False, embedder=SlowLoadingEmbedder(0.0),
                                     progress=False))
    assert capsys.readouterr() == ("", "")


def test_eval_in_a_notebook_kernel_stays_quiet_by_default(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """03_evaluate.ipynb calls run_evaluation without `progress`: its output stays as it was (no progress)."""
    kernel = KernelStream()
    monkeypatch.setattr(sys, "stderr", kernel)
    run_evaluation(build_settings(tmp_path), TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                   EvaluationOptions(name="notebook", judge=False, embedder=SlowLoadingEmbedder(0.0)))
    assert kernel.getvalue() == ""


def test_eval_retrieval_timing_does_not_include_the_model_load(tmp_path: Path) -> None:
    """Without a corpus the first embedding is the questions' batch: the model must be loaded before its
    clock."""
    settings = build_settings(tmp_path, store={"collection": "preloaded"})
    RAGPipeline(settings, SlowLoadingEmbedder(0.0),
                ChromaStore(settings.store)).ingest([TINY_CORPUS], progress=False)
    record = run_evaluation(settings, TINY_GOLDEN, AnswerSource.pipeline(),
                            EvaluationOptions(name="cold", judge=False, embedder=SlowLoadingEmbedder(LOAD),
                                              progress=False))
    timings = record.manifest.timings
    assert timings is not None
    assert timings["model_load"] >= 0.9 * LOAD, timings
    batch = record.metrics.latency["retrieval_batch_seconds"]
    assert batch < timings["model_load"] and timings["retrieve"] < timings["model_load"], (batch, timings)


@pytest.mark.usefixtures("restore_logging")
def test_cli_eval_json_keeps_stdout_for_the_result_and_shows_progress_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    monkeypatch.setattr(axiom.embeddings, "make_embedder", lambda *a, **k: SlowLoadingEmbedder(0.5))
    config = write_config(tmp_path / "work")
    code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                 "--no-judge", "--json", "--out", str(tmp_path / "runs")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)  # exactly one JSON object: nothing else on stdout
    assert summary
    assert f"eval: {QUESTIONS}/{QUESTIONS} questions answered" in captured.err.splitlines(), captured.err
    run = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["timings"]["model_load"] >= 0.45, manifest["timings"]
