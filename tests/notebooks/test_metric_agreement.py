"""05_metric_agreement: committed clean, and run end to end by `axiom notebooks run` (papermill, in-process
CLI) on a score table of two systems and partial labels with a known answer."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from axiom.cli import main
from tests.notebooks.conftest import write_test_config
from tests.notebooks.test_notebooks import test_committed_clean as committed_clean

NAME = "05_metric_agreement"


def test_05_committed_clean() -> None:
    committed_clean(NAME)


def test_05_runs_and_shows_the_agreement(tmp_path: Path, clean_kernel_env: None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(9)
    scores, labels = tmp_path / "scores.jsonl", tmp_path / "labels.jsonl"
    with scores.open("w") as f, labels.open("w") as g:
        for model, share in (("alpha", 0.3), ("beta", 0.8)):
            truth = rng.random(40) < share
            for i, yes in enumerate(truth):
                f.write(json.dumps({"id": f"q{i}", "model": model, "exact": float(yes),
                                    "noise": rng.random()}) + "\n")
                if i < 25:
                    g.write(json.dumps({"id": f"q{i}", "model": model, "faithful": bool(yes)}) + "\n")
    config = write_test_config(tmp_path)
    code = main(["--config", str(config), "notebooks", "run", NAME, "-p", "runs", f"[{scores}]", "-p",
                 "labels",
                 str(labels), "-p", "samples", "200", "--out", str(tmp_path / "runs"), "--name", "agree",
                 "--no-html"])
    out, err = capsys.readouterr()
    assert code == 0, err
    folder = Path(out.strip().splitlines()[-1].removeprefix("run folder: "))
    nb = nbformat.read(folder / f"{NAME}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the ROC curves
    tables = [o.data["text/plain"] for o in outputs if "text/html" in o.get("data", {})]
    agreement_table, ranking_table, estimates_table = tables
    assert "exact" in agreement_table and "1.000 [1.000, 1.000]" in agreement_table
    assert "beta > alpha" in ranking_table
    (ranking_html,) = [o.data["text/html"] for o in outputs
                       if "P(people's order)" in o.get("data", {}).get("text/html", "")]
    assert "beta &gt; alpha 1.00" in ranking_html and "kendall_tau [95% CI]" in ranking_html
    assert "ppi" in estimates_table and "alpha" in estimates_table
