"""The cost-curves benchmark (bench/cost_curves.py): its fits, its corpus selection, its golden set, and one
tiny run of the whole script on the vendored PubMedQA BEIR fixture (two corpus sizes, one question-set
size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cost_curves import fit, golden_lines, last_sentence, main, select_documents

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "pubmedqa-beir"


def test_fit_recovers_a_power_law_and_a_line() -> None:
    power = fit([(x, 3.0 * x ** 1.5) for x in (10, 40, 90)])
    assert power is not None and power["exponent"] == pytest.approx(1.5) and power["points"] == 3
    line = fit([(x, 20.0 + 0.25 * x) for x in (100, 200, 400)])
    assert (
        line is not None and line["fixed"] == pytest.approx(20.0) and line["per_unit"] == pytest.approx(0.25)
    )
    assert 0 < line["exponent"] < 1  # a fixed cost flattens the power law
    assert fit([(5, 1.0), (5, 2.0)]) is None  # one size: nothing to fit


def test_selection_keeps_every_judged_document_first() -> None:
    corpus = {f"d{i}": f"text {i}" for i in range(10)}
    chosen = select_documents(corpus, ["d7", "d9", "d7"], 4)
    assert list(chosen) == ["d0", "d1", "d7", "d9"]  # corpus order, the judged ones always in
    with pytest.raises(SystemExit, match="3 documents are judged"):
        select_documents(corpus, ["d1", "d2", "d3"], 2)


def test_golden_reference_is_a_sentence_of_the_judged_document() -> None:
    corpus = {"a": "Title words. First finding here. The conclusion is 42.", "b": "Other."}
    assert last_sentence(corpus["a"]) == "The conclusion is 42."
    [line] = golden_lines({"q": "What is it?"}, {"q": {"b": 0, "a": 1}}, corpus, ["q"])
    item = json.loads(line)
    assert item["relevant_sources"] == ["a.txt"] and item["reference"] == "The conclusion is 42."
    assert item["reference_contexts"] == [item["reference"]] and item["reference"] in corpus["a"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_curves_run_on_the_vendored_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dataset", str(FIXTURE), "--docs", "45,90", "--questions", "4", "--out",
                 str(tmp_path)]) == 0
    [written] = tmp_path.glob("cost-curves-*.json")
    result = json.loads(written.read_text())
    ingests, evals = result["ingest"], result["evaluation"]
    assert [r["documents"] for r in ingests] == [45, 90] and ingests[0]["chunks"] < ingests[1]["chunks"]
    assert [(r["documents"], r["questions"]) for r in evals] == [(45, 4), (90, 4)]
    for row in ingests + evals:  # each one process's own figures
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 100
    # the evaluation searched the store the ingest built: its own ingest was an up-to-date check
    assert [r["ingest"]["chunks_embedded"] for r in evals] == [0, 0]
    assert {"ingest wall_s ~ chunks", "eval wall_s ~ documents @ 4 questions"} <= set(result["fits"])
    assert "| ingest | 45 |" in capsys.readouterr().out
