"""bench/ppi_coverage.py on a small synthetic data set of the RAGTruth shape: the table comes out, and a
metric that is the label itself makes PPI exact (coverage 1, width far below the labels alone); the
groundedness predictor reads the cached out-of-fold scores and aligns them with the labels by model and
question."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import ppi_coverage
from bench.groundedness_scores import scores_file


def test_content_word_share():
    assert ppi_coverage.content_word_share("Paris is the capital of France", ["France: capital Paris"]) == 1.0
    assert ppi_coverage.content_word_share("Berlin capital", ["Paris is the capital"]) == 0.5
    assert ppi_coverage.content_word_share("", ["anything"]) == 0.0


def test_the_table_on_a_synthetic_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rng = np.random.default_rng(0)
    with (tmp_path / "labels.jsonl").open("w") as labels:
        for model in ppi_coverage.MODELS:
            with (tmp_path / f"responses-{model}.jsonl").open("w") as responses:
                for i in range(120):
                    faithful = bool(rng.random() < 0.6)
                    answer = "alpha beta gamma delta" if faithful else "zeta theta kappa lambda"
                    responses.write(json.dumps({"id": str(i), "answer": answer,
                                                "contexts": ["alpha beta gamma delta"]}) + "\n")
                    labels.write(json.dumps({"id": str(i), "model": model, "human_faithful": faithful})
                                 + "\n")
    out_json = tmp_path / "out.json"
    assert ppi_coverage.main(["--dataset", str(tmp_path), "--predictor", "content-words", "--subsets", "30",
                              "--sizes", "20,40", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "| llama-2-70b-chat - llama-2-7b-chat |" in printed and "30 random labelled subsets" in printed
    results = json.loads(out_json.read_text())
    assert len(results) == 5 * 2
    for r in results:  # the metric is the label (share 1 or 0): no residual, PPI exact, width ~ sqrt(n/N)
        assert r["ppi"]["coverage"] == 1.0
        assert r["ppi"]["mean_width"] < 0.65 * r["labels alone"]["mean_width"]


def test_groundedness_scores_come_from_the_cache_aligned_by_model_and_id(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]):
    rng = np.random.default_rng(1)
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    questions = 100
    (data / "golden.jsonl").write_text("".join(json.dumps({"id": str(i), "question": f"q {i}"}) + "\n"
                                               for i in range(questions)))
    faithful = {m: rng.random(questions) < share
                for m, share in zip(ppi_coverage.MODELS, (0.4, 0.5, 0.7, 0.6),
                                                                        strict=True)}
    with (data / "labels.jsonl").open("w") as labels:
        for model in ppi_coverage.MODELS:
            (data / f"responses-{model}.jsonl").write_text("".join(
                json.dumps({"id": str(i), "answer": "words", "contexts": ["other words"]}) + "\n"
                for i in range(questions)))
            for i in range(questions):
                labels.write(json.dumps({"id": str(i), "model": model,
                                         "human_faithful": bool(faithful[model][i]),
                                         "spans": []}) + "\n")
    # the cache as bench/groundedness_scores.py writes it: answers sorted by (id, model), a score list per
    # name; the score is the label, so PPI is exact only if the scores are matched to the right answers
    answers = sorted((str(i), m) for m in ppi_coverage.MODELS for i in range(questions))
    cache.mkdir()
    scores_file(data, cache).write_text(json.dumps({"answers": answers, "scores": {
        "groundedness": [float(faithful[m][int(i)]) for i, m in answers]}}))
    out_json = tmp_path / "out.json"
    assert ppi_coverage.main(["--dataset", str(data), "--cache", str(cache), "--subsets", "30", "--sizes",
                              "20",
                              "--json", str(out_json)]) == 0
    assert "metric = out-of-fold groundedness" in capsys.readouterr().out
    results = json.loads(out_json.read_text())
    assert len(results) == 5
    for r in results:
        assert r["metric_correlation"] == pytest.approx(1.0) and r["ppi"]["coverage"] == 1.0
