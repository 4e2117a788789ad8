"""bench/outcome_simulation.py on a small replication count: every drop comes out with its outcome rates and
their intervals, in the printed table and the JSON, and a drop of twice the margin at n 250 is a
regression."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import outcome_simulation


def test_the_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    assert outcome_simulation.main(["--reps", "5", "--permutations", "300", "--bootstrap", "200",
                                    "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    assert (
        out.with_suffix(".md").read_text(encoding="utf-8") == data["table"] + "\n"
        and data["table"] in printed
    )
    assert [row["drop"] for row in data["rows"]] == list(outcome_simulation.DROPS)
    for row in data["rows"]:
        assert sum(row[k]["hits"] for k in ("regression", "non-inferior", "inconclusive")) == 5
        for key in ("regression", "non-inferior", "inconclusive", "gate_failed", "secondary_claim"):
            low, high = row[key]["ci"]
            assert 0.0 <= low <= row[key]["rate"] <= high <= 1.0
        assert f"| {row['drop']:g} | " in printed
    beyond = data["rows"][-1]  # twice the margin, 250 questions: the drop is about 4.5 standard errors
    assert beyond["regression"]["hits"] >= 4 and beyond["non-inferior"]["hits"] == 0


def test_the_pairs_draw_what_they_say() -> None:
    a, b = outcome_simulation._pair(np.random.default_rng(1), 4000, 0.02)
    diff = {m: np.mean([b[m][q] - a[m][q] for q in a[m]]) for m in a}
    assert diff["ndcg@10"] == pytest.approx(-0.02, abs=0.004)
    assert all(abs(diff[m]) < 0.004 for m in a if m != "ndcg@10")
