"""One evaluation entry point: `run_evaluation(settings, dataset, source, options)`, the answer source and the
run's options two frozen values that check themselves when they are made (issue 28, item 2). Nothing here
loads a model."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import axiom.evaluation
from axiom.cli import main
from axiom.errors import UsageError
from axiom.evaluation.answered import BOTH_SOURCES, SOURCE_KINDS
from axiom.evaluation.endpoint_config import load_endpoint_config
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, clean_env, write_config

AXIOM_MAPPING = Path(__file__).resolve().parents[2] / "evaluation" / "endpoints" / "axiom.yaml"
URL = "http://127.0.0.1:9/q"  # never asked: nothing here gets as far as answering


def test_run_evaluation_takes_at_most_four_parameters() -> None:
    parameters = inspect.signature(run_evaluation).parameters
    assert len(parameters) <= 4 and list(parameters) == ["settings", "dataset", "source", "options"]
    assert parameters["source"].default == AnswerSource()  # Axiom's pipeline over the configured collection
    assert parameters["options"].default == EvaluationOptions()
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters.values())


@pytest.mark.parametrize(("value", "field", "new"), [
    (AnswerSource.pipeline(TINY_CORPUS), "corpus", Path("elsewhere")),
    (AnswerSource.pipeline(TINY_CORPUS), "own_collection", False),
    (EvaluationOptions(), "repeat", 3),
    (EvaluationOptions(), "name", "other"),
])
def test_the_source_and_the_options_are_frozen(value: object, field: str, new: object) -> None:
    assert dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, new)
    assert getattr(value, field) != new


def test_the_three_kinds_of_source() -> None:
    endpoint = load_endpoint_config(url=URL)
    pipeline = AnswerSource.pipeline(str(TINY_CORPUS), own_collection=False)
    responses = AnswerSource.from_responses("answers.jsonl", corpus=str(TINY_CORPUS))
    asked = AnswerSource.from_endpoint(endpoint)
    assert [s.kind for s in (pipeline, responses, asked)] == list(SOURCE_KINDS)
    assert [s.external for s in (pipeline, responses, asked)] == [False, True, True]
    assert pipeline.corpus == TINY_CORPUS and not pipeline.own_collection and pipeline.responses is None
    assert responses.responses == Path("answers.jsonl") and responses.corpus == TINY_CORPUS
    assert asked.endpoint is endpoint and asked.corpus is None and asked.own_collection
    assert AnswerSource().kind == "pipeline" and AnswerSource().corpus is None
    # the fields given directly (a face with optional inputs) are the same values as the constructors'
    assert AnswerSource(corpus=str(TINY_CORPUS), responses="answers.jsonl") == responses  # type: ignore[arg-type]


def test_a_source_with_two_kinds_of_answers_is_refused() -> None:
    with pytest.raises(UsageError) as info:
        AnswerSource(responses=Path("r.jsonl"), endpoint=load_endpoint_config(url=URL))
    assert info.value.message == BOTH_SOURCES and info.value.exit_code == 2
    with pytest.raises(UsageError, match="mutually exclusive"):
        dataclasses.replace(AnswerSource.from_responses("r.jsonl"), endpoint=load_endpoint_config(url=URL))


@pytest.mark.parametrize("repeat", [0, -2])
def test_options_refuse_fewer_than_one_repetition(repeat: int) -> None:
    with pytest.raises(UsageError) as info:
        EvaluationOptions(repeat=repeat)
    assert info.value.message == f"--repeat must be at least 1, got {repeat}" and info.value.exit_code == 2
    assert EvaluationOptions(repeat=1).repeat == 1


def test_the_package_exports_the_entry_point_and_its_two_values() -> None:
    assert axiom.evaluation.run_evaluation is run_evaluation
    assert axiom.evaluation.AnswerSource is AnswerSource
    assert axiom.evaluation.EvaluationOptions is EvaluationOptions


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("flags", "message"), [
    # argparse refuses --responses with --endpoint; with --endpoint-config alone the source refuses
    (["--responses", "r.jsonl", "--endpoint-config", str(AXIOM_MAPPING)], BOTH_SOURCES),
    (["--repeat", "0"], "--repeat must be at least 1, got 0"),
])
def test_cli_eval_refuses_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], flags: list[str],
                                         message: str) -> None:
    clean_env(monkeypatch)
    monkeypatch.setattr(axiom.evaluation.runs, "run_evaluation",
                        lambda *a, **k: pytest.fail("run_evaluation reached"))
    config = write_config(tmp_path)
    code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                 *flags])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == f"axiom: error: {message}"
    assert not (tmp_path / "runs").exists()
