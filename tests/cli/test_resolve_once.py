"""Settings are resolved once, at the face: `--top-k`, `--retriever` and `--collection` enter through
`settings_for` (`Settings.with_overrides`) and reach `run_evaluation` and the pipeline only inside the
settings; the one limit of top_k is the settings model's (`query --top-k 101`: test_cli.py), and the help
texts, the service's request model and the pipeline quote it. Nothing here loads a model."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import axiom.evaluation.runs
from axiom.cli import build_parser, main
from axiom.config import RetrievalSettings, Settings
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from tests.evaluation.helpers import clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger


def _model_limit() -> tuple[int, int]:
    """top_k's bounds as the settings model enforces them (read from pydantic, not from axiom)."""
    bounds = {type(m).__name__: m for m in RetrievalSettings.model_fields["top_k"].metadata}
    return bounds["Ge"].ge, bounds["Le"].le


@pytest.mark.parametrize("command", ["query", "eval"])
def test_top_k_help_quotes_the_settings_limit(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    low, high = _model_limit()
    assert "--top-k K contexts" in out and f", {low}-{high} (default: retrieval.top_k)" in out, out
    assert "1000" not in out, out


def test_run_evaluation_takes_no_override() -> None:
    """The overrides travel in the settings only: neither run_evaluation nor its answer source or options has
    a parameter to apply them again."""
    parameters = inspect.signature(run_evaluation).parameters
    assert list(parameters) == ["settings", "dataset", "source", "options"], list(parameters)
    for holder in (AnswerSource, EvaluationOptions):
        fields = {f.name for f in dataclasses.fields(holder)}
        assert not {"top_k", "retriever", "collection", "settings"} & fields, (holder, fields)


class _Record:
    gate = None

    def summary(self) -> dict[str, Any]:
        return {"run": "fake"}

    def summary_table(self) -> str:
        return "fake"


@pytest.mark.parametrize(("flags", "own_collection", "collection"), [
    (["--collection", "mine"], False, "mine"),
    ([], True, "axiom"),  # the corpus's own collection, chosen by run_evaluation (it knows the model)
])
def test_eval_hands_the_flags_over_once_in_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], flags: list[str],
                                                        own_collection: bool, collection: str) -> None:
    clean_env(monkeypatch)
    seen: dict[str, Any] = {}

    def fake_run(settings: Settings, dataset: str, source: AnswerSource,
                 options: EvaluationOptions) -> _Record:
        seen.update(settings=settings, dataset=dataset, source=source, options=options)
        return _Record()

    monkeypatch.setattr(axiom.evaluation.runs, "run_evaluation", fake_run)
    config = write_config(tmp_path / "work", store={"collection": "axiom"})
    assert main(["--config", str(config), "eval", "--dataset", "d.jsonl", "--corpus", "c", "--top-k", "3",
                 "--retriever", "bm25", *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run": "fake"}
    settings = seen["settings"]
    assert (settings.retrieval.top_k, settings.retrieval.retriever, settings.store.collection) == (
        3, "bm25", collection)
    assert seen["source"] == AnswerSource.pipeline("c", own_collection=own_collection), seen["source"]
    assert seen["dataset"] == "d.jsonl" and seen["options"] == EvaluationOptions(), seen["options"]


@pytest.mark.parametrize(("flags", "words"), [
    (["--retriever", "bm25"], "--retriever applies to Axiom's own pipeline, not to --responses"),
    (["--retriever", "bm25", "--collection", "mine"],
     "--retriever, --collection apply to Axiom's own pipeline, not to --responses"),
])
def test_eval_refuses_pipeline_flags_with_another_systems_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str],
        words: str) -> None:
    clean_env(monkeypatch)
    monkeypatch.setattr(axiom.evaluation.runs, "run_evaluation",
                        lambda *a, **k: pytest.fail("run_evaluation reached"))
    config = write_config(tmp_path / "work")
    assert main(["--config", str(config), "eval", "--dataset", "d.jsonl", "--responses", "r.jsonl",
                 *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"axiom: error: {words}",
                   "axiom: hint: the system under test retrieves and answers on its own; --corpus only adds "
                   "the evidence metrics"], err


def test_the_pipeline_holds_a_callers_own_top_k_to_the_settings_limit() -> None:
    from axiom.errors import UsageError
    from axiom.pipeline import RAGPipeline

    low, high = _model_limit()
    pipeline: Any = SimpleNamespace(settings=Settings().with_overrides({"retrieval.top_k": 7}, origin="test"))
    assert RAGPipeline._top_k(pipeline, None) == 7  # the settings' value, as the face resolved it
    assert RAGPipeline._top_k(pipeline, high) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(UsageError, match=f"top_k must be between {low} and {high}, got {bad}"):
            RAGPipeline._top_k(pipeline, bad)


def test_the_service_request_model_quotes_the_settings_limit() -> None:
    from axiom.service.app import query_request_model

    schema = query_request_model(100).model_json_schema()["properties"]["top_k"]
    low, high = _model_limit()
    integer = next(option for option in schema["anyOf"] if option.get("type") == "integer")
    assert (integer["minimum"], integer["maximum"]) == (low, high), schema
    assert f"{low}-{high}" in schema["description"], schema
