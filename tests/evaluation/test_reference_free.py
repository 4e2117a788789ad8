"""Reference-free evaluation: a golden set of questions alone is valid; the metrics that need what its items
lack (reference answer, reference contexts, relevant sources, a corpus) are n/a with the reason, never a
refusal and never 0; `axiom eval --responses FILE` without `--dataset` takes the questions from the file;
compare and the gate report n/a metrics as such; `axiom dataset audit` says which metrics a set supports; a
file with hundreds of bad lines is summarised (real model, real subprocess-free CLI `main`, extractive
generator, no
judge)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from axiom.cli import main
from axiom.errors import DatasetError
from axiom.evaluation.datasets import (
    MAX_REPORTED_PROBLEMS,
    EvalItem,
    file_sha256,
    golden_from_responses,
    load_golden,
    parse_golden_lines,
    problem_kind,
)
from axiom.evaluation.metric_support import FAMILIES, metric_support
from axiom.evaluation.retrieval_metrics import RETRIEVAL_METRICS
from axiom.evaluation.run_documents import DatasetInfo
from axiom.evaluation.run_folder import load_run
from axiom.evaluation.spans import EVIDENCE_METRICS
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger

NO_REFERENCE = "no reference answer for this item"
REFERENCE_METRICS = ("rouge_l", "chrf", "semantic_similarity")


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tiny_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TINY_GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]


def _responses(golden: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A system's answers to the tiny set, written from its reference contexts: each answer the first context,
    every other line with a ranking of sources."""
    out = []
    for i, g in enumerate(golden):
        contexts = list(g.get("reference_contexts") or ["No passage was found."])
        line = {"id": g["id"], "question": g["question"], "answer": contexts[0], "contexts": contexts}
        if i % 2 == 0:
            line["retrieved"] = list(g.get("relevant_sources") or ["a.md"])
        out.append(line)
    return out


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference-free")
    golden = _tiny_lines()
    return {"root": root, "config": write_config(root),
            "questions": _write(root / "questions.jsonl",
                                [{"id": g["id"], "question": g["question"]} for g in golden]),
            "responses": _write(root / "responses.jsonl", _responses(golden))}


@pytest.fixture(scope="module")
def runs(files: dict[str, Path]) -> dict[str, Any]:
    """Three CLI runs of the same responses: with the questions-only set (and the corpus), without --dataset,
    and with the full tiny set (its baseline saved, to gate the reference-free run against)."""
    mp = pytest.MonkeyPatch()
    clean_env(mp)
    out: dict[str, Any] = {}
    try:
        config, root = files["config"], files["root"]
        argv = ["--config", config, "eval", "--responses", files["responses"], "--out", root / "runs",
                "--json"]
        out["with_dataset"] = main([str(a) for a in argv
                                    + ["--dataset", files["questions"], "--corpus", TINY_CORPUS,
                                                            "--name", "questions-only"]])
        out["without_dataset"] = main([str(a) for a in argv + ["--name", "from-responses"]])
        out["full"] = main([str(a) for a in argv + ["--dataset", TINY_GOLDEN, "--name", "full",
                                                    "--save-baseline", root / "baseline.json"]])
        folders = sorted((root / "runs").iterdir())
        out["folders"] = {f.name.split("-", 1)[1]: f for f in folders}
    finally:
        mp.undo()
    return out


# -- the dataset
# ----------------------------------------------------------------------------------------------
def test_a_question_alone_is_a_valid_item() -> None:
    lines = [json.dumps({"id": "a", "question": "Q?"}),
             json.dumps({"id": "b", "question": "Q?", "reference": None}),
             json.dumps({"id": "c", "question": "Q?", "reference": "  "}),
             json.dumps({"id": "d", "question": "Q?", "reference": "In 1480."})]
    items, problems = parse_golden_lines(lines)
    assert [it.id for it in items] == ["a", "b", "d"]
    assert items[0].reference is None and items[1].reference is None and items[2].reference == "In 1480."
    assert problems == ["line 3: field 'reference' is blank"]
    assert items[0].expected_short_answer is None and items[2].expected_short_answer == "In 1480."
    assert "reference" not in items[0].to_dict() and items[2].to_dict()["reference"] == "In 1480."
    assert parse_golden_lines([json.dumps(items[0].to_dict())])[0] == [EvalItem(id="a", question="Q?")]


def test_three_hundred_bad_lines_are_summarised(files: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ([json.dumps({"id": f"m{i}", "reference": "R"}) for i in range(150)]   # missing question
             + ["{not json" for _ in range(100)]
             + [json.dumps({"id": f"u{i}", "question": "Q?", "colour": i}) for i in range(50)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_golden(bad)
    assert info.value.total == 300
    problems = info.value.problems
    assert problems[:MAX_REPORTED_PROBLEMS] == [f"line {n}: missing field 'question'" for n in range(1, 21)]
    assert problems[MAX_REPORTED_PROBLEMS] == "... and 280 more; 300 problems by kind:"
    assert problems[MAX_REPORTED_PROBLEMS + 1:] == [
        "150 x missing field 'question'", "100 x not valid JSON",
        "50 x unknown field(s) 'colour'; allowed: group, id, metadata, question, reference, "
        "reference_contexts, relevant_sources, short_answer"]

    clean_env(monkeypatch)
    code, out, err = cli(capsys, "--config", files["config"], "eval", "--dataset", bad, "--responses",
                         files["responses"])
    assert code == 2 and out == ""
    assert (
        "300 problem(s)" in err
        and "150 x missing field 'question'" in err
        and "line 151: not valid JSON" not in err
    )
    assert len(err.splitlines()) < 40, err


def test_problem_kinds() -> None:
    assert problem_kind("line 9: duplicate id 'q1' (first used on line 2)") == "duplicate id ..."
    assert (
        problem_kind("line 4: unknown source(s) 'a.md', 'b.md' (not in the corpus)")
        == "unknown source(s) ..."
    )
    assert problem_kind("line 5: reference_contexts[3] is blank") == "reference_contexts[N] is blank"
    assert problem_kind("corpus.jsonl line 3: duplicate _id 'x'") == "duplicate _id ..."
    assert problem_kind("qrels/test.tsv line 12: unknown query 'q7'") == "unknown query ..."


def test_golden_from_responses_needs_ids_and_questions(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl", [{"id": "a", "question": "Q?", "answer": "", "contexts": []},
                                         {"id": "b", "answer": "", "contexts": []},
                                         {"id": "a", "question": "Q2?", "answer": "", "contexts": []}])
    with pytest.raises(DatasetError) as info:
        golden_from_responses(path)
    assert info.value.problems == [
        "line 2: missing field 'question' (without --dataset, every response carries its id and question)",
        "line 3: duplicate id 'a' (first used on line 1)"]
    path = _write(tmp_path / "ok.jsonl", [{"id": "a", "question": "Q?", "answer": "", "contexts": []}])
    assert golden_from_responses(path) == [EvalItem(id="a", question="Q?")]


# -- the metrics
# ----------------------------------------------------------------------------------------------
def test_metric_support_names_every_metric_of_a_run() -> None:
    from axiom.evaluation.answer_metrics import GROUNDEDNESS_METRICS, JUDGE_METRICS, OFFLINE_METRICS

    listed = [m for family in FAMILIES for m in family.metrics]
    assert sorted(listed) == sorted(RETRIEVAL_METRICS + EVIDENCE_METRICS + OFFLINE_METRICS
                                    + GROUNDEDNESS_METRICS
                                    + JUDGE_METRICS)
    items = [EvalItem(id="a", question="Q?"), EvalItem(id="b", question="Q?", reference="In 1480.",
                                                       reference_contexts=("It was built in 1480.",))]
    rows = {r["family"]: r for r in metric_support(items, corpus=False)}
    assert rows["reference answer"]["status"] == "partly" and rows["reference answer"]["items"] == 1
    assert rows["retrieval"]["status"] == "n/a" and rows["retrieval"]["why"] == "no item has relevant_sources"
    assert rows["evidence"]["status"] == "n/a" and "--corpus" in rows["evidence"]["why"]
    assert (
        rows["groundedness (judged)"]["status"] == "supported" and rows["groundedness (judged)"]["items"] == 2
    )
    assert rows["groundedness"]["status"] == "supported" and rows["groundedness"]["items"] == 2
    assert {r["family"]: r["status"] for r in metric_support(items[1:],
                                                             corpus=True)}["evidence"] == "supported"


def test_judged_reference_metrics_are_not_applicable_without_a_reference(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    from axiom.evaluation.answer_metrics import ScoreInput, score_judged
    from axiom.evaluation.answer_metrics.judge import JudgeConfig

    config = JudgeConfig(model="judge", base_url="http://127.0.0.1:9/v1", api_key="x", concurrency=1,
                         timeout=1.0,
                         max_retries=0, cache_dir=tmp_path / "cache", prices=None)
    row = ScoreInput(id="a", question="Q?", answer="An answer.", reference=None, contexts=("A passage.",))
    scores, stats = score_judged([row], config, embedder,
                                 metrics=("llm_context_precision", "llm_context_recall",
                                          "factual_correctness"))
    for name, values in scores.items():
        assert (values[0].status, values[0].reason) == ("not_applicable", NO_REFERENCE), name
        assert math.isnan(values[0].value)
    assert stats.calls == 0


# -- runs, compare, gate, audit
# -------------------------------------------------------------------------------
def test_questions_only_set_is_evaluated(runs: dict[str, Any]) -> None:
    assert runs["with_dataset"] == 0
    run = load_run(runs["folders"]["questions-only"])
    metrics = run.metrics.metrics
    for name in REFERENCE_METRICS:
        assert (
            metrics[name]["mean"] is None and metrics[name]["n"] == 0 and metrics[name]["not_applicable"] == 6
        )
        assert metrics[name]["not_applicable_reasons"] == {NO_REFERENCE: 6}
        assert run.results[name].isna().all()  # never 0
    assert metrics["ndcg@10"]["not_applicable_reasons"] == {
        "no relevant_sources for this item": 3, "the system gave no retrieved sources for this item": 3}
    assert metrics["evidence_recall@5"]["not_applicable_reasons"] == {
        "no reference_contexts for this item": 6
    }
    assert metrics["nonllm_context_recall"]["not_applicable_reasons"] == {
        "no reference_contexts for this item": 6
    }
    assert all(r is None for r in run.results["reference"])


def test_responses_without_a_dataset(runs: dict[str, Any], files: dict[str, Path]) -> None:
    assert runs["without_dataset"] == 0
    run = load_run(runs["folders"]["from-responses"])
    responses = files["responses"]
    assert run.manifest.dataset == DatasetInfo(path=str(responses), sha256=file_sha256(responses), items=6,
                                               from_responses=True)
    assert list(run.results["id"]) == [g["id"] for g in _tiny_lines()]
    assert run.metrics.metrics["rouge_l"]["not_applicable_reasons"] == {NO_REFERENCE: 6}
    assert run.metrics.unanswered.n == 0


def test_eval_without_dataset_or_questions_is_refused(files: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    code, out, err = cli(capsys, "--config", files["config"], "eval", "--name", "none", "--out", tmp_path)
    assert code == 2 and "--dataset is needed unless --responses FILE" in err
    bare = _write(tmp_path / "bare.jsonl", [{"id": "t01", "answer": "x", "contexts": []}])
    code, out, err = cli(capsys, "--config", files["config"], "eval", "--responses", bare, "--out", tmp_path)
    assert code == 2 and "line 1: missing field 'question'" in err
    assert not list(tmp_path.glob("*-eval"))


def test_compare_reports_not_applicable_metrics(runs: dict[str, Any], files: dict[str, Path],
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    a, b = runs["folders"]["questions-only"], runs["folders"]["from-responses"]
    code, out, err = cli(capsys, "--config", files["config"], "compare", a, b)
    assert code == 0, err
    assert (
        f"not compared, n/a in both runs ({NO_REFERENCE}): {', '.join(REFERENCE_METRICS)}" in out.splitlines()
    )
    code, out, _ = cli(capsys, "--config", files["config"], "compare", a, b, "--json")
    result = json.loads(out)
    assert result["not_applicable"]["rouge_l"] == NO_REFERENCE and "rouge_l" not in result["metrics"]


def test_a_metric_the_baseline_measured_and_this_run_cannot_fails_the_gate(
        runs: dict[str, Any], files: dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert runs["full"] == 0
    baseline = json.loads((files["root"] / "baseline.json").read_text())
    assert baseline["metrics"]["rouge_l"]["mean"] > 0  # the full set measures it
    clean_env(monkeypatch)
    gated = ["--config", files["config"], "eval", "--dataset", files["questions"], "--responses",
             files["responses"],
             "--out", files["root"] / "gated", "--json"]
    # Against the full set's baseline: the reference-based metrics were measured there and are lost here.
    code, out, err = cli(capsys, *gated, "--name", "gated-full", "--baseline",
                         files["root"] / "baseline.json",
                         "--fail-on-regression")
    assert code == 3, err
    gate = json.loads(out)["gate"]
    assert gate["passed"] is False
    assert (f"rouge_l: not applicable to any question of this run ({NO_REFERENCE}), but the baseline "
            f"measured it ({baseline['metrics']['rouge_l']['mean']})") in gate["failures"]


def test_audit_says_which_metrics_the_set_supports(files: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    clean_env(monkeypatch)
    code, out, err = cli(capsys, "--config", files["config"], "dataset", "audit", files["questions"],
                         "--corpus",
                         TINY_CORPUS, "--runs", files["root"] / "no-runs")
    assert code == 0, err
    assert "metrics this set supports (6 question(s)):" in out
    lines = out.splitlines()
    assert any(line.split()[:5] == ["reference", "answer", "n/a", "0", "no"] for line in lines), out
    assert any(line.split()[:4] == ["groundedness", "(judged)", "supported", "6"] for line in lines), out
    code, out, _ = cli(capsys, "--config", files["config"], "dataset", "audit", TINY_GOLDEN, "--corpus",
                       TINY_CORPUS,
                       "--runs", files["root"] / "no-runs", "--json")
    statuses = {r["family"]: r["status"] for r in json.loads(out)["metrics"]}
    assert statuses["reference answer"] == "supported" and statuses["evidence"] == "supported"
