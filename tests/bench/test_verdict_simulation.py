"""bench/verdict_simulation.py on a tiny replication count: every cell comes out with its size, coverage and
their intervals, in the printed table and the JSON (the shape, not the numbers: those need 2,000
replications)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import verdict_simulation


def test_the_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    assert verdict_simulation.main(["--reps", "4", "--permutations", "200", "--bootstrap", "100",
                                    "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["reps"] == 4 and len(data["cells"]) == len(verdict_simulation.CELLS)
    assert out.with_suffix(".md").read_text(encoding="utf-8") == data["table"] + "\n"
    assert (
        data["table"] in printed
        and "| design | interval | size | attainable | coverage (effect) | coverage (null) |" in printed
    )
    for cell, result in zip(verdict_simulation.CELLS, data["cells"], strict=True):
        assert result["cell"]["name"] == cell.name and f"| {cell.name} | " in printed
        assert result["cell"]["n"] == cell.n and result["cell"]["groups"] == len(cell.group_sizes)
        for key in ("size", "coverage", "coverage_null"):
            rate = result[key]
            assert rate["reps"] == 4 and 0 <= rate["hits"] <= 4
            assert 0.0 <= rate["low"] <= rate["rate"] <= rate["high"] <= 1.0
        expected = "tango score" if cell.kind == "binary" else (
            "cluster bootstrap-t" if cell.use_groups and max(cell.group_sizes) > 1 else "bootstrap")
        assert result["interval"] == expected
        assert (result["attainable_size"] is None) == (cell.kind != "binary")


def test_the_designs_draw_what_they_say() -> None:
    rng = np.random.default_rng(0)
    binary = next(c for c in verdict_simulation.CELLS if c.name == "0/1 at 0.95, n 250")
    a, b = zip(*(verdict_simulation._binary(binary, rng, effect=True) for _ in range(200)), strict=True)
    assert np.mean(a) == pytest.approx(0.95, abs=0.005) and np.mean(b) == pytest.approx(0.93, abs=0.005)
    ceiling = next(c for c in verdict_simulation.CELLS if c.name == "0/1 at 0.99, n 250")
    a, b = zip(*(verdict_simulation._binary(ceiling, rng, effect=True) for _ in range(400)), strict=True)
    assert np.mean(a) == pytest.approx(0.99, abs=0.002) and np.mean(b) == pytest.approx(0.97, abs=0.003)
    clustered = next(c for c in verdict_simulation.CELLS if c.name == "continuous, 250 in 25 groups")
    diffs = [np.subtract(*verdict_simulation._continuous(clustered, rng, effect=True)[::-1])
             for _ in range(200)]
    assert np.mean(diffs) == pytest.approx(-0.02, abs=0.005)


def test_an_unknown_cell_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict_simulation.main(["--cells", "no such design", "--reps", "1"]) == 2
    assert "no cell matches 'no such design'" in capsys.readouterr().err
