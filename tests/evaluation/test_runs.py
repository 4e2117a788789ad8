"""End-to-end runs on the tiny corpus (real model, real embedded ChromaDB, extractive generator)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from axiom.cli import main
from axiom.comparison_report import compare_all
from axiom.errors import DatasetError, UsageError
from axiom.evaluation.compare import compare_runs
from axiom.evaluation.datasets import file_sha256
from axiom.evaluation.gate import gate_run, load_baseline, make_baseline, write_baseline
from axiom.evaluation.run_documents import (
    DatasetInfo,
    GeneratorInfo,
    Manifest,
    MetricsDocument,
    Repeats,
    Unanswered,
)
from axiom.evaluation.run_folder import RunRecord, load_run, read_manifest, read_metrics
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from axiom.evaluation.verdict import TOO_FEW, StatsConfig
from tests.evaluation.helpers import (
    TINY_CORPUS,
    TINY_GOLDEN,
    build_settings,
    clean_env,
    keys_in_order,
    write_config,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, embedder) -> dict[str, RunRecord]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("runs")
    settings = build_settings(root)
    tiny = AnswerSource.pipeline(TINY_CORPUS)
    options = EvaluationOptions(name="tiny", embedder=embedder, judge=False)
    first = run_evaluation(settings, TINY_GOLDEN, tiny, options)
    again = run_evaluation(settings, TINY_GOLDEN, tiny, options)
    top1 = run_evaluation(settings.with_overrides({"retrieval.top_k": 1}, origin="test"), TINY_GOLDEN, tiny,
                          EvaluationOptions(name="tiny-k1", embedder=embedder, judge=False))
    return {"first": first, "again": again, "top1": top1, "root": root}  # type: ignore[dict-item]


def test_run_folder(runs: dict) -> None:
    run: RunRecord = runs["first"]
    files = sorted(p.name for p in run.path.iterdir())
    assert files == ["manifest.json", "metrics.json", "results.csv", "results.parquet"]
    assert run.path.name.endswith("-tiny") and run.path.parent == runs["root"] / "runs"
    assert not [p for p in run.path.parent.iterdir() if p.name.startswith(".tmp-")]
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["dataset"]["sha256"] == file_sha256(TINY_GOLDEN)
    assert len(manifest["corpus"]["sha256"]) == 64 and manifest["corpus"]["files"] == 3
    assert manifest["embedding_model"] == "all-MiniLM-L6-v2"
    assert manifest["generator"]["name"] == "extractive"
    assert manifest["seed"] == 42 and manifest["started"] <= manifest["ended"]
    assert {"commit", "dirty"} <= set(manifest["git"])
    assert manifest["versions"]["ragas"] and manifest["versions"]["ranx"]
    assert manifest["settings"]["generation"]["api_key"] is None
    assert manifest["collection"].startswith("eval-tiny_corpus-")

    results = pd.read_parquet(run.path / "results.parquet")
    assert list(results["id"]) == ["t01", "t02", "t03", "t04", "t05", "t06"]
    for column in ("question", "reference", "answer", "contexts", "sources", "retrieval_seconds", "ndcg@10",
                   "rouge_l", "chrf", "semantic_similarity", "nonllm_context_recall"):
        assert column in results.columns, column
    assert len(results["contexts"][0]) == 5  # top_k 5 of the six chunks of the tiny corpus
    # the cluster of each question: no item names a group, so its first relevant source (else its own id)
    assert list(results["group"]) == [str(s[0]) if len(s) else str(i)
                                      for i, s in zip(results["id"], results["relevant_sources"],
                                                      strict=True)]
    assert len(pd.read_csv(run.path / "results.csv")) == 6

    metrics = json.loads((run.path / "metrics.json").read_text())
    ndcg = metrics["metrics"]["ndcg@10"]
    assert ndcg["n"] == 6 and ndcg["ci_low"] <= ndcg["mean"] <= ndcg["ci_high"]
    assert metrics["metrics"]["exact_match"]["not_applicable"] == 6  # long references, no short answers
    assert metrics["latency"]["generation"]["p95_ms"] > 0
    assert metrics["usage"]["judge"] is None
    assert metrics["metrics"]["recall@5"]["mean"] == 1.0  # every tiny question finds its document


def test_same_inputs_give_same_metrics(runs: dict) -> None:
    a, b = runs["first"], runs["again"]
    assert a.path != b.path
    for metric in a.metric_names:
        va, vb = a.results[metric].tolist(), b.results[metric].tolist()
        assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(va, vb, strict=True)), metric
    assert a.metrics.metrics == b.metrics.metrics
    loaded = load_run(a.path)
    assert loaded.metrics.metrics == a.metrics.metrics


def test_manifest_round_trips(runs: dict) -> None:
    """A real run folder's manifest.json through the `Manifest` dataclass and back: the same dict, its keys
    (nested ones too) in the same order, and the same bytes when written as the run folder writes it."""
    run: RunRecord = runs["first"]
    text = (run.path / "manifest.json").read_text(encoding="utf-8")
    written = json.loads(text)
    manifest = Manifest.from_dict(written)
    assert manifest == read_manifest(run.path) == load_run(run.path).manifest and not manifest.extra
    again = manifest.to_dict()
    assert again == written and keys_in_order(again) == keys_in_order(written)
    assert json.dumps(again, indent=2, ensure_ascii=False, allow_nan=False) + "\n" == text
    # the record in memory is what was written (the file's strings lose URL credentials; there are none)
    assert run.manifest.to_dict() == written and isinstance(run.manifest.dataset, DatasetInfo)
    # read by attribute: what the gate, compare and the notebooks read
    assert run.manifest.dataset.sha256 == written["dataset"]["sha256"] == file_sha256(TINY_GOLDEN)
    assert run.manifest.generator == GeneratorInfo(name="extractive", model=None)
    assert run.manifest.source_kind == "pipeline" and run.manifest.timings == written["timings"]
    assert list(written)[-2:] == ["timings", "embedding_work"] and "baseline" not in written


def test_metrics_round_trips(runs: dict) -> None:
    """A real run folder's metrics.json through the `MetricsDocument` dataclass and back: the same dict, its
    keys (nested ones too) in the same order, and the same bytes when written as the run folder writes it."""
    run: RunRecord = runs["first"]
    text = (run.path / "metrics.json").read_text(encoding="utf-8")
    written = json.loads(text)
    doc = MetricsDocument.from_dict(written)
    assert doc == read_metrics(run.path) == load_run(run.path).metrics == run.metrics and not doc.extra
    again = doc.to_dict()
    assert again == written and keys_in_order(again) == keys_in_order(written)
    assert json.dumps(again, indent=2, ensure_ascii=False, allow_nan=False) + "\n" == text
    assert list(written) == ["metrics", "confidence", "latency", "usage", "degraded_answers", "unanswered",
                             "repeats"]  # no gate: this run had no baseline
    # read by attribute: what the gate, compare, the reports and the notebooks read
    assert run.metrics.metrics["ndcg@10"] == written["metrics"]["ndcg@10"] and run.metric_names == list(
        written["metrics"])
    assert run.metrics.unanswered == Unanswered(n=0, reasons={}) and run.metrics.degraded_answers == 0
    assert isinstance(run.metrics.repeats, Repeats) and run.metrics.repeats.n == 1 == run.metrics.repeat_count
    assert run.metrics.spread == written["repeats"]["spread"]
    assert run.metrics.gate is None and run.gate is None
    assert run.metrics.latency["generation"] == written["latency"]["generation"]
    assert run.metrics.confidence["samples"] == written["confidence"]["samples"]
    assert run.metrics.usage["judge"] is None


def test_where_files_are_kept_is_no_difference(runs: dict) -> None:
    """A notebook run records its paths anchored to the project folder, a CLI run as given: the same store
    and log elsewhere is no difference between two runs; a setting that changes results still is."""
    first: RunRecord = runs["first"]
    settings = json.loads(json.dumps(first.manifest.settings))
    settings["store"]["path"] = "/elsewhere/.axiom/chroma"
    settings["store"]["bm25_dir"] = "/elsewhere/.axiom/bm25"
    settings["logging"]["file"] = "/elsewhere/logs/axiom.log"
    moved = replace(first, manifest=replace(first.manifest, settings=settings))
    assert compare_runs(first, moved).differences == []
    settings["retrieval"]["top_k"] = 2
    assert compare_runs(first, moved).differences == ["retrieval.top_k: 5 -> 2"]


def test_compare_runs_differing_in_top_k(runs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    result = compare_runs(runs["first"], runs["top1"])
    assert "retrieval.top_k: 5 -> 1" in result.differences
    ndcg = result.metrics["ndcg@10"]  # retrieval goes 10 deep whatever top_k is: unchanged
    assert ndcg.delta == 0 and ndcg.p == 1.0 and ndcg.ties == 6
    # every nDCG here is 0 or 1: Tango's paired score interval, which six ties leave wide (not the bootstrap's
    # [0, 0])
    assert ndcg.interval == "tango score" and ndcg.ci[0] < -0.2
    assert ndcg.ci[0] == pytest.approx(-ndcg.ci[1], abs=1e-12)  # six ties: symmetric around 0
    assert ndcg.groups == len(set(runs["first"].results["group"]))  # one group per relevant document
    changed = result.metrics["groundedness"]  # answered from one context instead of five; a primary
    assert changed.n == 6 and changed.p is not None and changed.p_adj >= changed.p
    # a metric at one value on every question in both runs is reported, not tested (no p_adj) nor counted
    assert all((r.p_adj is None) == (r.role == "constant") for r in result.metrics.values())
    assert result.family["primaries"] == ["ndcg@10", "evidence_recall@10", "groundedness"]
    assert set(result.family["outcomes"].values()) == {"inconclusive"}  # six questions prove nothing
    # six questions: even a unanimous change cannot survive the correction over the metrics
    assert {r.verdict for r in result.metrics.values()} == {TOO_FEW}
    assert "exact_match" not in result.metrics  # no question has a short answer: measured in neither run
    assert result.changed_most and result.changed_most[0].changes
    assert main(["compare", str(runs["first"].path), str(runs["top1"].path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: B: primary ndcg@10 inconclusive (")
    assert "; too few questions to tell on recall@1 (n 6)" in out
    assert "p_adj" in out and "MDE" in out and "questions that changed most" in out
    assert main(["compare", str(runs["first"].path), str(runs["top1"].path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload == json.loads(json.dumps(result.to_dict()))  # the JSON is the comparison's dict
    assert payload["verdict"] == result.verdict
    for entry in payload["metrics"].values():
        assert {"a", "b", "delta", "ci", "p", "p_adj", "mde", "n", "verdict"} <= set(entry)
    rouge = payload["metrics"]["rouge_l"]
    assert rouge["wins"] + rouge["losses"] + rouge["ties"] == 6


def test_gate_compare_and_notebook_statistics_are_identical(runs: dict, tmp_path: Path) -> None:
    """One pair of runs, three faces: `axiom compare`, the gate (through a baseline file written to disk and
    read back) and 04_compare_runs's comparison give byte-identical statistics."""
    first, top1 = runs["first"], runs["top1"]
    settings = build_settings(tmp_path)
    config = StatsConfig.from_settings(settings.evaluation)
    compared = compare_runs(first, top1, config=config).metrics
    baseline = load_baseline(write_baseline(make_baseline(first), tmp_path / "baseline.json"))
    gated = gate_run(top1.results, top1.metrics.metrics, baseline, config=config).statistics
    notebook = compare_all([first, top1], settings=settings)[0].metrics
    as_bytes = [json.dumps({m: e.to_dict() for m, e in x.items()}).encode()
                for x in (compared, gated, notebook)]
    assert as_bytes[0] == as_bytes[1] == as_bytes[2]
    measured = [m for m, s in first.metrics.metrics.items() if s["n"]]
    assert set(compared) == set(gated) == set(measured)  # every metric measured, in all three


def test_baseline_keeps_full_precision(runs: dict, tmp_path: Path) -> None:
    first = runs["first"]
    saved = load_baseline(write_baseline(make_baseline(first), tmp_path / "b.json"))
    for metric in ("chrf", "semantic_similarity"):
        assert saved["metrics"][metric]["per_question"] == {k: v
                                                            for k, v in first.per_question(metric).items()}
    assert "threshold" not in saved["metrics"]["ndcg@10"]  # floors only when asked for
    assert saved["metrics"]["ndcg@10"]["min_delta"] == 0.01


def test_gate(runs: dict) -> None:
    run: RunRecord = runs["again"]
    baseline = make_baseline(runs["first"])
    gate = gate_run(run.results, run.metrics.metrics, baseline)
    assert gate.passed, gate.failures
    assert gate.verdict.startswith("this run: primary ndcg@10 inconclusive (")
    assert gate.family["outcomes"] == {m: "inconclusive"
                                       for m in ("ndcg@10", "evidence_recall@10", "groundedness")}

    strict = make_baseline(runs["first"], floor_margin=0.0)
    # a floor tighter than one question's weight (1/6 here) is loosened to it
    assert strict["metrics"]["ndcg@10"]["threshold"] == pytest.approx(math.floor((1 - 1 / 6) * 100) / 100)
    strict["metrics"]["rouge_l"]["mean"] = 1.0
    strict["metrics"]["rouge_l"]["threshold"] = 0.99
    strict["metrics"]["chrf"]["per_question"] = {i: 1.0 for i in strict["metrics"]["chrf"]["per_question"]}
    strict["metrics"]["chrf"]["mean"] = 1.0
    strict["metrics"]["chrf"].pop("threshold")
    gate = gate_run(run.results, run.metrics.metrics, strict)
    assert not gate.passed
    mean = run.metrics.metrics["rouge_l"]["mean"]
    assert gate.failures == [f"rouge_l: {mean:.4f} is below its floor {1 - 1 / 6:.4f} (baseline 1.0000)"]
    assert any("rouge_l: floor 0.9900 is tighter than one question's weight" in n for n in gate.notes)
    # chrf dropped on every question, but six questions cannot show it after correction: not a failure
    assert (
        gate.checked["chrf"]["stats"].verdict == TOO_FEW and gate.checked["chrf"]["stats"].losses == 6
    )


def test_malformed_dataset_writes_nothing(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.jsonl"
    lines = TINY_GOLDEN.read_text().splitlines()
    lines[1] = "{broken"
    lines[3] = lines[3].replace('"b.txt"', '"nowhere.txt"')
    bad.write_text("\n".join(lines + [lines[0]]) + "\n")
    settings = build_settings(tmp_path)
    with pytest.raises(DatasetError) as info:
        run_evaluation(settings, bad, AnswerSource.pipeline(TINY_CORPUS),
                       EvaluationOptions(name="bad", embedder=embedder, judge=False))
    assert [p.split(":")[0] for p in info.value.problems] == ["line 2", "line 4", "line 7"]
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "chroma").exists()


def test_cli_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\nnot json\n')
    assert main(["--config", str(config), "eval", "--dataset", str(bad), "--corpus", str(TINY_CORPUS)]) == 2
    err = capsys.readouterr().err
    assert "line 1: missing field 'question'" in err and "line 2: not valid JSON" in err
    assert not (tmp_path / "runs").exists()

    baseline = tmp_path / "baseline.json"
    code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                 "--name", "cli", "--save-baseline", str(baseline), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["questions"] == 6 and Path(payload["run"]).is_dir()
    saved = json.loads(baseline.read_text())
    assert saved["format"] == 3 and "threshold" not in saved["metrics"]["mrr@10"]
    assert saved["primary"] == ["ndcg@10", "evidence_recall@10", "groundedness"]
    saved["metrics"]["mrr@10"].update(mean=1.5, threshold=1.5)
    baseline.write_text(json.dumps(saved))
    code = main(["--config", str(config), "eval", "--dataset", str(TINY_GOLDEN), "--corpus", str(TINY_CORPUS),
                 "--name", "cli", "--baseline", str(baseline), "--fail-on-regression"])
    captured = capsys.readouterr()
    assert code == 3
    assert f"mrr@10: 1.0000 is below its floor {1.5 - 1 / 6:.4f}" in captured.err
    assert captured.out.startswith("verdict: this run:")
    assert "baseline gate FAILED" in captured.out and "95% CI" in captured.out
    assert len([p for p in (tmp_path / "runs").iterdir() if p.name.endswith("-cli")]) == 2  # gated run kept


def test_repeat_records_the_run_to_run_spread(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    """Offline generation is deterministic: two repetitions give the same means, a spread of 0 per answer
    metric, and the run keeps the first repetition's values (the same as a single run's)."""
    settings = build_settings(tmp_path)
    tiny = AnswerSource.pipeline(TINY_CORPUS)
    single = run_evaluation(settings, TINY_GOLDEN, tiny, EvaluationOptions(name="once", embedder=embedder,
                                                                            judge=False))
    twice = run_evaluation(settings, TINY_GOLDEN, tiny, EvaluationOptions(name="twice", embedder=embedder,
                                                                           judge=False, repeat=2))
    repeats = json.loads((twice.path / "metrics.json").read_text())["repeats"]
    assert repeats["n"] == 2 and set(repeats["spread"]) >= {"rouge_l", "chrf", "semantic_similarity"}
    assert all(v == 0.0 for v in repeats["spread"].values())
    assert all(len(v) == 2 and v[0] == v[1] for v in repeats["means"].values())
    assert twice.metrics.metrics == single.metrics.metrics
    assert make_baseline(twice)["measured"]["repeats"] == 2
    with pytest.raises(UsageError, match="--repeat must be at least 1, got 0"):
        run_evaluation(settings, TINY_GOLDEN, tiny,
                       EvaluationOptions(name="zero", embedder=embedder, judge=False, repeat=0))
