"""Repeated runs of a real stochastic source (the extractive generator sampling at temperature 1, seeded) on
the tiny corpus: real model, real embedded ChromaDB, real run folders; every repetition kept, compared and
gated."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from axiom.errors import DatasetError
from axiom.evaluation.compare import compare_runs
from axiom.evaluation.gate import gate_record, gate_run, load_baseline, make_baseline, write_baseline
from axiom.evaluation.repeats import noise_sources
from axiom.evaluation.run_documents import MetricsDocument
from axiom.evaluation.run_folder import RunRecord, load_run
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from axiom.evaluation.verdict import StatsConfig
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings

ANSWER_METRICS = ("rouge_l", "chrf", "semantic_similarity")
SAMPLED = "extractive sampling at temperature 1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, embedder) -> dict[str, RunRecord]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("repeats")
    settings = build_settings(root, generation={"temperature": 1.0, "seed": 7})
    source = AnswerSource.pipeline(TINY_CORPUS)

    def run(name: str, repeat: int = 1) -> RunRecord:
        return run_evaluation(settings, TINY_GOLDEN, source,
                              EvaluationOptions(name=name, repeat=repeat, embedder=embedder, judge=False))

    return {"three": run("three", 3), "again": run("again", 3), "once": run("once"),
            "root": root}  # type: ignore[dict-item]


def test_every_repetition_is_kept_and_a_question_is_its_mean(runs: dict) -> None:
    run: RunRecord = runs["three"]
    table = pd.read_parquet(run.path / "repeats.parquet")
    assert len(table) == 18 and list(table["repeat"].unique()) == [1, 2, 3]
    assert {"id", "repeat", "answer", *ANSWER_METRICS} <= set(table.columns)
    assert "ndcg@10" not in table.columns  # retrieval is deterministic and not repeated
    by_question = table.groupby("id")["answer"].nunique()
    assert (by_question > 1).sum() >= 3  # the generator samples: repetitions answer differently
    results = run.results.set_index("id")
    for metric in ANSWER_METRICS:
        means = table.groupby("id")[metric].mean()
        assert np.allclose(results.loc[means.index, metric], means.values, rtol=0, atol=1e-12), metric
    first = table[table["repeat"] == 1].set_index("id")["answer"]
    assert (results.loc[first.index, "answer"] == first).all()
    loaded = load_run(run.path)
    assert loaded.per_repetition("chrf") == {qid: list(v) for qid, v in
                                             table.groupby("id", sort=False)["chrf"].apply(list).items()}
    metrics = json.loads((run.path / "metrics.json").read_text())
    repeats = metrics["repeats"]
    assert repeats["n"] == 3 and repeats["table"] == "repeats.parquet"
    assert set(repeats["run_variance"]) >= set(ANSWER_METRICS)
    assert any(repeats["spread"][m] > 0 for m in ANSWER_METRICS)
    assert all(len(repeats["means"][m]) == 3 for m in ANSWER_METRICS)


def test_a_seeded_repeated_run_is_reproducible_and_its_first_repetition_is_a_single_run(runs: dict) -> None:
    three = pd.read_parquet(runs["three"].path / "repeats.parquet")
    again = pd.read_parquet(runs["again"].path / "repeats.parquet")
    pd.testing.assert_frame_equal(three, again)
    once = runs["once"]
    assert not (once.path / "repeats.parquet").exists() and once.repeats is None
    assert list(once.results["answer"]) == list(three[three["repeat"] == 1]["answer"])
    assert noise_sources(once.manifest) == [SAMPLED]


def test_compare_uses_the_repetitions_and_says_when_noise_is_not_measured(runs: dict) -> None:
    config = StatsConfig(bootstrap_samples=200, permutations=500)
    both = compare_runs(runs["three"], runs["again"], config=config)
    assert both.noise_note is None and "run-to-run noise" not in both.verdict
    assert both.metrics["chrf"].repeats == (3, 3) and both.metrics["chrf"].delta == 0.0
    assert both.metrics["ndcg@10"].repeats == (1, 1)
    single = compare_runs(runs["once"], runs["three"], config=config)
    assert single.noise_note is not None
    assert single.noise_note.startswith(f"run-to-run noise is not measured: A ({SAMPLED}) was run once")
    assert single.verdict.endswith(single.noise_note)
    assert single.metrics["chrf"].repeats == (1, 3)


def test_the_gate_holds_a_repeated_run_to_a_repeated_baseline(runs: dict) -> None:
    three, again = runs["three"], runs["again"]
    baseline = make_baseline(three)
    assert baseline["measured"]["repeats"] == 3 and baseline["measured"]["noise_sources"] == [SAMPLED]
    varied = [m for m in ANSWER_METRICS if "spread" in baseline["metrics"][m]]
    assert varied and all(len(v) == 3 for m in varied
                          for v in baseline["metrics"][m]["per_repetition"].values())
    path = write_baseline(baseline, runs["root"] / "baseline.json")
    loaded = load_baseline(path)
    repeats = {m: again.per_repetition(m) for m in ANSWER_METRICS}
    gate = gate_run(again.results, again.metrics.metrics, loaded, config=StatsConfig(permutations=500),
                    repeats=repeats, noise=noise_sources(again.manifest))
    assert gate.passed and "run-to-run noise" not in gate.verdict
    assert all(gate.statistics[m].repeats == (3, 3) for m in ANSWER_METRICS)
    once = runs["once"]
    single = gate_run(once.results, once.metrics.metrics, loaded, config=StatsConfig(permutations=500),
                      noise=noise_sources(once.manifest))
    assert "run-to-run noise is not measured: this run (extractive sampling" in single.verdict
    assert any(n.startswith("run-to-run noise is not measured") for n in single.notes)


def test_a_saved_run_is_gated_again_exactly_as_run_evaluation_gated_it(runs: dict, embedder) -> None:  # noqa: ANN001
    settings = build_settings(runs["root"], generation={"temperature": 1.0, "seed": 7})
    gated = run_evaluation(settings, TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                           EvaluationOptions(name="gated", repeat=3, baseline=runs["three"].path,
                                             embedder=embedder, judge=False))
    assert gated.gate is not None and gated.gate.checked
    assert all(gated.gate.statistics[m].repeats == (3, 3) for m in ANSWER_METRICS)
    saved = json.loads((gated.path / "metrics.json").read_text())["gate"]
    regated = gate_record(load_run(gated.path), load_baseline(runs["three"].path),
                          StatsConfig.from_settings(settings.evaluation))
    assert json.loads(json.dumps(regated.to_dict())) == saved == json.loads(json.dumps(gated.gate.to_dict()))
    # a repeated, gated run's metrics.json through `MetricsDocument` and back: the same text, the gate last
    text = (gated.path / "metrics.json").read_text(encoding="utf-8")
    doc = MetricsDocument.from_dict(json.loads(text))
    assert json.dumps(doc.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n" == text
    assert list(doc.to_dict())[-2:] == ["repeats", "gate"] and doc == load_run(gated.path).metrics
    assert doc.gate == saved and doc.repeat_count == 3 and doc.repeats is not None
    assert doc.repeats.table == "repeats.parquet" and set(doc.spread) >= set(ANSWER_METRICS)


def test_a_baseline_with_malformed_repetitions_is_refused(runs: dict) -> None:
    baseline = make_baseline(runs["three"])
    varied = next(m for m in ANSWER_METRICS if "per_repetition" in baseline["metrics"][m])
    qid = next(iter(baseline["metrics"][varied]["per_repetition"]))
    baseline["metrics"][varied]["per_repetition"][qid] = ["high", 0.5, 0.5]
    path = write_baseline(baseline, runs["root"] / "bad-baseline.json")
    with pytest.raises(DatasetError,
                       match=f"metrics.{varied}.per_repetition: expected an object of question id"):
        load_baseline(path)
