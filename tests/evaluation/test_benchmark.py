"""`axiom retrieval-eval beir` on a small synthetic BEIR folder (the SciFact numbers are measured by hand: see
evaluation/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axiom.cli import main
from axiom.evaluation.benchmark import run_beir
from tests.evaluation.helpers import build_settings, clean_env, write_config

DOCS = {
    "bees": ("Honey bees", "A queen honey bee lays up to two thousand eggs a day in summer."),
    "dance": ("Waggle dance", "Worker bees share the direction of flowers with a waggle dance."),
    "volcano": ("Mauna Loa", "Mauna Loa in Hawaii is the largest active volcano on Earth by volume."),
    "tambora": ("Tambora", "The eruption of Mount Tambora in 1815 caused the year without a summer."),
    "tea": ("Tea", "Green and black tea both come from the leaves of Camellia sinensis."),
    "court": ("Tea at court", "Catherine of Braganza made tea drinking fashionable at the English court."),
    "noise1": ("Granite", "Granite is an igneous rock with large crystals of quartz and feldspar."),
    "noise2": ("Bread", "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."),
}
QUERIES = {"q1": "how many eggs does a queen bee lay", "q2": "largest volcano by volume",
           "q3": "which plant does tea come from", "q4": "eruption that caused a year without summer"}
QRELS = [("q1", "bees"), ("q2", "volcano"), ("q3", "tea"), ("q4", "tambora"), ("q4", "noise1")]


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "minibeir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": t, "text": x})
                                                   for k, (t, x) in DOCS.items()) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v})
                                                    for k, v in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                               + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS))
    return folder


@pytest.mark.slow
def test_run_beir_dense_and_hybrid(beir_folder: Path, tmp_path: Path, embedder) -> None:  # noqa: ANN001
    settings = build_settings(tmp_path / "state")
    result = run_beir(settings, beir_folder, retrievers=["dense", "hybrid"], embedder=embedder)
    assert result["collection"] == "beir-minibeir-all-minilm-l6-v2"
    assert (
        result["documents"] == 8 and result["queries"] == 4 and result["timings"]["documents_embedded"] == 8
    )
    dense = result["retrievers"]["dense"]["metrics"]
    assert set(dense) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map@10", "precision@1"}
    assert dense["mrr@10"] == 1.0 and dense["recall@10"] == 1.0  # all 8 documents come back
    assert dense["ndcg@10"] < 1.0 and dense["map@10"] < 1.0  # q4's second relevant document ranks low
    assert [c["b"] for c in result["comparisons"]] == ["hybrid"]
    assert result["comparisons"][0]["metrics"]["ndcg@10"]["n"] == 4
    assert "one family" not in result["comparisons"][0]["test"]  # one comparison: alpha as configured
    again = run_beir(settings, beir_folder, retrievers=["dense"], embedder=embedder)
    assert again["timings"]["documents_embedded"] == 0 and again["metrics"] == result["metrics"]
    # --compare bm25,hybrid: two comparisons are one family, alpha split between them
    three = run_beir(settings, beir_folder, retrievers=["dense", "bm25", "hybrid"], embedder=embedder)
    assert [c["b"] for c in three["comparisons"]] == ["bm25", "hybrid"]
    for comparison in three["comparisons"]:
        assert "alpha 0.025 each: one family of 2 comparisons (Bonferroni)" in comparison["test"]


def test_cli_bench_json(beir_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "state")
    assert main(["--config", str(config), "retrieval-eval", "beir", str(beir_folder), "--retriever", "bm25",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["retriever"] == "bm25" and 0 < payload["metrics"]["ndcg@10"] <= 1
    assert {"index_seconds", "query_batch_seconds", "ms_per_query"} <= set(payload["timings"])
    assert main(["--config", str(config), "retrieval-eval", "beir", str(tmp_path / "missing")]) == 2
