"""`axiom sweep` end to end on the tiny corpus: one warm kernel, the second combination embeds no chunk, and
the kernel builds its settings from the --config file the command was given (the store below comes from
it)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from axiom.cli import main
from tests.notebooks.conftest import TINY_CORPUS, TINY_GOLDEN, write_test_config


@pytest.mark.timeout(600)
def test_sweep_over_top_k(clean_kernel_env: None, tmp_path: Path) -> None:
    argv = ["--config", str(write_test_config(tmp_path)), "sweep", "--grid", "top_k=1,2", "-p", "corpus",
            str(TINY_CORPUS), "-p", "dataset", str(TINY_GOLDEN), "--out", str(tmp_path / "sweeps"), "--name",
            "k",
            "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    result = json.loads(out.getvalue())
    folder = Path(result["folder"])
    assert {"summary.csv", "summary.md", "summary.png", "sweep.json",
            "runs"} <= {p.name for p in folder.iterdir()}
    runs = result["runs"]
    assert [r["combination"] for r in runs] == [{"top_k": 1}, {"top_k": 2}]
    # same chunking: no new embedding
    assert runs[0]["chunks_embedded"] == 6 and runs[1]["chunks_embedded"] == 0
    assert runs[1]["files_unchanged"] == 3
    assert runs[1]["embedding"]["cache_hits"] > 0
    assert runs[1]["embedding"]["texts_embedded"] < runs[0]["embedding"]["texts_embedded"]
    for r in runs:
        run = Path(r["run"])
        assert run.parent == folder / "runs" and (run / "03_evaluate.ipynb").is_file()
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["top_k"] == r["combination"]["top_k"]
        # from --config, not the repo's
        assert manifest["store"] == f"embedded ChromaDB at {tmp_path / 'chroma'}"
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["rank"]) == [1, 2] and set(summary["top_k"]) == {1, 2}
    # the metrics came back with each run (run_evaluation's record, handed off by the notebook) and are the
    # ones its run folder's metrics.json holds
    for _, row in summary.iterrows():
        written = json.loads((folder / "runs" / row["run"] / "metrics.json").read_text())["metrics"]
        for metric in ("semantic_similarity", "ndcg@10"):
            assert row[metric] == pytest.approx(round(written[metric]["mean"], 4), abs=1e-9), row["run"]
    assert summary["semantic_similarity"].is_monotonic_decreasing
    # the runner-up against the best, on the same questions of their run folders (evaluation/versus_best.py)
    best, second = summary.iloc[0], summary.iloc[1]
    assert pd.isna(best["vs best: diff"]) and 0 < second["vs best: p (Holm)"] <= 1
    assert second["vs best: diff"] == pytest.approx(
        second["semantic_similarity"] - best["semantic_similarity"], abs=1e-3
    )
    assert (second["vs best: unadjusted ci_low"] <= second["vs best: diff"]
            <= second["vs best: unadjusted ci_high"])
    assert result["metric"] == "semantic_similarity" and result["ratio_to_first_run"] > 0
    assert "sweep cost" in (folder / "summary.md").read_text()
