"""The evaluation floor of `make bench` (bench/eval_floor.py): the texts an evaluation had the model embed are
recorded, and the floor process encodes exactly those and queries the evaluation's collection. Whole
processes, on the tiny test corpus; one pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval_floor import eval_against_floor, rows
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN


@pytest.mark.timeout(900)
def test_evaluation_against_its_floor(tmp_path: Path) -> None:
    result = eval_against_floor(TINY_GOLDEN, TINY_CORPUS, tmp_path / "home", repeat=1)
    questions = [json.loads(line)["question"] for line in TINY_GOLDEN.read_text().splitlines()
                 if line.strip()]
    recorded = json.loads((tmp_path / "home" / "texts.json").read_text())["texts"]
    # the questions (retrieval), the generator's sentences, the answers and references (metrics): embedded
    # once
    assert set(questions) <= set(recorded) and len(recorded) == len(set(recorded)) > 2 * len(questions)
    assert result["questions"] == len(questions) and result["texts_embedded"] == len(recorded)
    floor = result["floor_timings"][0]
    assert floor["texts_encoded"] == len(recorded) and floor["queries"] == len(questions)
    assert result["axiom_s"]["n"] == result["floor_s"]["n"] == 1 and result["axiom_over_floor"]["median"] > 0
    assert set(result["axiom_timings"][0]) >= {"model_load", "retrieve", "answer", "score"}
    assert rows({"sample": result})[0][2] == "<= 1.4"
