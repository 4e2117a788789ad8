"""Responses files: a run of Axiom's pipeline saved with --save-responses and re-scored with --responses gives
identical metrics; a file with bad lines is refused naming every line; items without a response are
unmeasured; compare and the gate work between a pipeline run and a responses run (real model, real embedded
ChromaDB, extractive generator)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from axiom.cli import main
from axiom.errors import DatasetError
from axiom.evaluation.datasets import file_sha256, load_golden
from axiom.evaluation.responses import load_responses
from axiom.evaluation.retrieval_metrics import RETRIEVAL_METRICS
from axiom.evaluation.run_documents import Unanswered
from axiom.evaluation.run_folder import RunRecord, load_run
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from axiom.evaluation.spans import EVIDENCE_METRICS
from axiom.evaluation.verdict import TOO_FEW
from tests.evaluation.helpers import REPO, TINY_CORPUS, TINY_GOLDEN, build_settings, clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, embedder) -> dict[str, Any]:  # noqa: ANN001
    """A pipeline run of the tiny set that writes its responses file, and a baseline with floors from it."""
    root = tmp_path_factory.mktemp("responses")
    settings = build_settings(root)
    target = root / "saved" / "responses.jsonl"
    run = run_evaluation(settings, TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                         EvaluationOptions(name="pipeline", embedder=embedder, judge=False,
                                           save_responses=target))
    return {"root": root, "run": run, "file": target}


def test_saved_responses_file(saved: dict[str, Any]) -> None:
    lines = [json.loads(line) for line in saved["file"].read_text(encoding="utf-8").splitlines()]
    run: RunRecord = saved["run"]
    assert [r["id"] for r in lines] == list(run.results["id"])
    first = lines[0]
    assert {"id", "question", "answer", "contexts", "retrieved", "retrieved_contexts", "latency_ms",
            "metadata"} <= set(first)
    assert first["answer"] == run.results["answer"][0]
    assert first["contexts"] == list(run.results["contexts"][0])
    assert first["retrieved"] == list(run.results["retrieved_sources"][0])
    assert first["metadata"]["run"] == run.path.name and first["metadata"]["generator"] == "extractive"
    assert saved["file"].stat().st_mode & 0o777 == 0o600
    assert len(load_responses(saved["file"], load_golden(TINY_GOLDEN))) == 6


def assert_identical(a: RunRecord, b: RunRecord, *, tolerance: dict[str, float] | None = None) -> int:
    """Every metric of every question equal (NaN for NaN); returns how many values were compared."""
    assert a.metric_names == b.metric_names
    compared = 0
    for metric in a.metric_names:
        for x, y in zip(a.results[metric], b.results[metric], strict=True):
            x, y = float(x), float(y)
            if metric in (tolerance or {}) and not math.isnan(x):
                assert abs(x - y) <= tolerance[metric], (metric, x, y)
            else:
                assert same(x, y), (metric, x, y)
            compared += 1
    return compared


def test_rescoring_saved_responses_gives_identical_metrics(saved: dict[str, Any],
                                                           embedder) -> None:  # noqa: ANN001
    """In the same process (the embedding memo shared, as in a notebook): bit for bit, every metric."""
    rescored = run_evaluation(build_settings(saved["root"]), TINY_GOLDEN,
                              AnswerSource.from_responses(saved["file"], corpus=TINY_CORPUS),
                              EvaluationOptions(name="rescored-here", embedder=embedder, judge=False))
    pipeline: RunRecord = saved["run"]
    assert assert_identical(pipeline, rescored) == len(pipeline.metric_names) * 6
    assert rescored.metrics.metrics == pipeline.metrics.metrics


def test_rescoring_saved_responses_with_the_cli(saved: dict[str, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Elsewhere (a fresh process state and embedding cache): identical on every metric but semantic
    similarity, whose answer and reference vectors are computed in other batches than the pipeline run's
    (float32 batch effects of the embedding model, below 1e-6)."""
    clean_env(monkeypatch)
    config = write_config(tmp_path)
    code, out, err = cli(capsys, "--config", config, "eval", "--dataset", TINY_GOLDEN, "--responses",
                         saved["file"],
                         "--corpus", TINY_CORPUS, "--name", "rescored", "--no-judge", "--json")
    assert code == 0, err
    rescored = load_run(json.loads(out)["run"])
    pipeline: RunRecord = saved["run"]
    assert assert_identical(pipeline, rescored, tolerance={"semantic_similarity": 1e-6}) == \
        len(pipeline.metric_names) * 6
    others = {m for m in pipeline.metric_names if m != "semantic_similarity"}
    assert {m: s for m, s in rescored.metrics.metrics.items() if m in others} == \
        {m: s for m, s in pipeline.metrics.metrics.items() if m in others}
    assert set(EVIDENCE_METRICS) <= set(rescored.metric_names)  # located from the saved passages' texts
    assert rescored.metrics.metrics["evidence_recall@5"]["n"] == 6
    manifest = rescored.manifest
    assert manifest.source_kind == "responses" and manifest.source is not None
    assert manifest.source["sha256"] == file_sha256(saved["file"])
    assert manifest.source["missing"] == 0 and manifest.collection is None and manifest.ingest is None
    located = manifest.evidence_labels["ranked_passages"]
    assert located["exact"] == located["passages"] == 36  # six chunks ranked for each of six questions
    assert not (tmp_path / "chroma").exists()  # nothing was ingested


def test_bad_lines_are_refused_naming_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path)
    good = {"id": "t01", "answer": "2,000 eggs a day.", "contexts": ["A queen can lay up to 2,000 eggs."]}
    lines = [
        json.dumps(good),                                                       # 1 fine
        "{not json",                                                            # 2 bad JSON
        json.dumps({"id": "t99", "answer": "x", "contexts": []}),               # 3 unknown id
        json.dumps({**good, "contexts": "one string"}),                         # 4 duplicate id (t01)
        json.dumps({"id": "t02", "answer": 42, "contexts": ["c"]}),             # 5 answer not a string
        json.dumps({"id": "t03", "answer": "a", "contexts": ["c", 7]}),         # 6 a context not a string
        json.dumps({"id": "t04", "answer": "a", "contexts": [], "score": 1}),   # 7 unknown field
        json.dumps({"id": "t05", "answer": "a"}),                               # 8 no contexts
        json.dumps({"id": "t06", "answer": "a", "contexts": [], "latency_ms": -1, "retrieved": "c.md"}),  # 9
        "",                                                                     # blank: ignored
        "[1, 2]",                                                               # 11 not an object
        '{"id": "t07", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",    # 12 nested too deep
        '{"id": "t08", "answer": "a", "contexts": [], "latency_ms": ' + "5" * 5000 + "}",  # 13 a huge number
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = cli(capsys, "--config", config, "eval", "--dataset", TINY_GOLDEN, "--responses", bad)
    assert code == 2
    for needle in ("line 2: not valid JSON", "line 3: unknown id 't99'",
                   "line 4: duplicate id 't01' (first used on line 1)",
                   "line 5: field 'answer' must be a string",
                   "line 6: contexts[1] must be a string",
                   "line 7: unknown field(s) 'score'", "line 8: missing field 'contexts'",
                   "line 9: field 'retrieved' must be a list", "line 9: field 'latency_ms'",
                   "line 11: expected a JSON object", "line 12: nested deeper than 64 levels",
                   "line 13: a number is 5000 characters long; the limit is 100"):
        assert needle in err, (needle, err)
    assert "line 1:" not in err and "line 10" not in err
    assert err.startswith("axiom: error: ") and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(DatasetError) as info:
        load_responses(bad, load_golden(TINY_GOLDEN))
    assert len(info.value.problems) == 12  # eleven bad lines, line 9 with two problems


def test_items_without_a_response_are_unmeasured(saved: dict[str, Any], tmp_path: Path,
                                                 embedder) -> None:  # noqa: ANN001
    partial = tmp_path / "partial.jsonl"
    kept = [line for line in saved["file"].read_text().splitlines()
            if json.loads(line)["id"] not in ("t02", "t05")]
    partial.write_text("\n".join(kept) + "\n")
    run = run_evaluation(build_settings(tmp_path), TINY_GOLDEN, AnswerSource.from_responses(partial),
                         EvaluationOptions(name="partial", embedder=embedder, judge=False))
    metrics = run.metrics.metrics
    reason = "no response for this item in partial.jsonl"
    for metric in ("rouge_l", "semantic_similarity", "ndcg@10", "evidence_recall@5"):
        assert metrics[metric]["unmeasured"] == 2, metric
        assert metrics[metric]["unmeasured_reasons"] == {reason: 2}, metric
    assert metrics["rouge_l"]["n"] == 4 and metrics["ndcg@10"]["n"] == 4
    assert metrics["evidence_recall@5"]["not_applicable"] == 4  # no corpus given
    row = run.results.set_index("id").loc["t02"]
    assert not row["answered"] and row["failure"] == reason and math.isnan(row["rouge_l"])
    assert json.loads(row["notes"])["rouge_l"] == f"unmeasured: {reason}"
    assert (run.manifest.source or {})["missing_ids"] == ["t02", "t05"]
    assert run.metrics.unanswered == Unanswered(n=2, reasons={reason: 2})
    per_pipeline = saved["run"].per_question("rouge_l")
    assert all(v == per_pipeline[k] for k, v in run.per_question("rouge_l").items() if not math.isnan(v))


def test_compare_and_gate_across_sources(saved: dict[str, Any], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`axiom compare` and the gate between a pipeline run and responses runs: the same answers are the same
    (every metric tied, gate passes); answers that say nothing fall below the baseline's floors (exit 3); a
    system that gives no ranking has its retrieval metrics skipped by the gate, not failed."""
    clean_env(monkeypatch)
    config = write_config(tmp_path)
    pipeline: RunRecord = saved["run"]
    baseline = tmp_path / "baseline.json"
    code, out, err = cli(capsys, "--config", config, "eval", "--dataset", TINY_GOLDEN, "--responses",
                         saved["file"],
                         "--corpus", TINY_CORPUS, "--name", "same", "--no-judge", "--baseline", pipeline.path,
                         "--fail-on-regression", "--save-baseline", baseline, "--floor-margin", "0.05",
                         "--json")
    assert code == 0, err
    same_run = json.loads(out)["run"]
    assert json.loads(out)["gate"]["passed"]

    code, out, err = cli(capsys, "compare", pipeline.path, same_run, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["common_questions"] == 6 and result["metrics"]
    exact = {m: r for m, r in result["metrics"].items() if m != "semantic_similarity"}
    assert exact and all(r["delta"] == 0 and r["ties"] == r["n"] for r in exact.values())
    assert abs(result["metrics"]["semantic_similarity"]["delta"]) < 1e-6  # other batches: see the test above
    assert {r["verdict"] for r in result["metrics"].values()} == {TOO_FEW}

    blank = tmp_path / "blank.jsonl"
    blank.write_text("".join(json.dumps({"id": it.id, "answer": "I cannot tell.", "contexts": []}) + "\n"
                             for it in load_golden(TINY_GOLDEN)))
    code, out, err = cli(capsys, "--config", config, "eval", "--dataset", TINY_GOLDEN, "--responses", blank,
                         "--corpus", TINY_CORPUS, "--name", "blank", "--no-judge", "--baseline", baseline,
                         "--fail-on-regression")
    assert code == 3, err
    assert "rouge_l:" in err and "below its floor" in err
    assert out.startswith("verdict: this run:")
    assert "not compared (not computed in this run): " + ", ".join(RETRIEVAL_METRICS) in out
    code, out, err = cli(capsys, "compare", pipeline.path, same_run)
    assert code == 0 and out.startswith("verdict: ")


@pytest.mark.notebooks
def test_the_evaluation_notebook_scores_a_responses_file(saved: dict[str, Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """03_evaluate with `-p responses FILE` (through `axiom notebooks run`, a real kernel): a responses run,
    the same metrics as the pipeline run it was saved from, and its own responses file written back."""
    clean_env(monkeypatch)
    monkeypatch.setenv("AXIOM_PROJECT_ROOT", str(REPO))
    for name, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}.items():
        monkeypatch.setenv(name, value)
    again = tmp_path / "again.jsonl"
    code, out, err = cli(capsys, "--config", write_config(tmp_path), "notebooks", "run", "03_evaluate",
                         "-p", "responses", saved["file"], "-p", "corpus", TINY_CORPUS, "-p", "dataset",
                         TINY_GOLDEN,
                         "-p", "judge", "false", "-p", "save_responses", again, "--out", tmp_path / "runs",
                         "--name", "nb-responses")
    assert code == 0, err
    run = load_run(out.strip().splitlines()[-1].removeprefix("run folder: "))
    assert run.manifest.source_kind == "responses" and (run.path / "03_evaluate.ipynb").is_file()
    assert assert_identical(saved["run"], run, tolerance={"semantic_similarity": 1e-6})
    assert [json.loads(line)["answer"]
            for line in again.read_text().splitlines()] == list(run.results["answer"])
