"""The notebooks: committed clean, run end to end by `axiom notebooks run` (papermill), re-run by nbval with
their outputs checked, and a failing cell reported with the notebook, the cell and the error.

nbval runs notebooks as they are stored, and the committed notebooks have neither outputs (nothing to check)
nor tiny-corpus parameters. So the nbval test takes the notebooks executed by the end-to-end run, which carry
both the outputs (the reference) and papermill's injected-parameters cell, re-parameterises them with
papermill (`prepare_only`, keeping the outputs) to a fresh store and runs folder, and runs `pytest
--nbval-lax` over those copies in a subprocess: every cell must run without error, and the cells tagged
`nbval-check-output` must reproduce the reference outputs exactly from a fresh store in fresh kernels. One
checked cell's reference output is tampered with and must be the only failure, which shows the check is live.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from axiom.cli import main
from axiom.notebook.runner import run_notebooks
from tests.notebooks.conftest import (
    ALL_NOTEBOOKS,
    KEY_CANARY,
    NOTEBOOKS,
    REPO,
    TINY_CORPUS,
    TINY_GOLDEN,
    write_test_config,
)

CHECK = "nbval-check-output"


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _images(nb: Any) -> int:
    return sum(1 for c in _code_cells(nb) for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


# -- committed clean -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_committed_clean(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"stray notebook metadata: {set(nb.metadata)}"
    assert nb.cells[0].cell_type == "markdown", "a notebook starts by saying what the reader will see"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"
        assert not {"papermill", "execution"} & set(cell.metadata), f"{name} cell {i}: {set(cell.metadata)}"
        assert "injected-parameters" not in cell.metadata.get("tags", []), "an executed copy was committed"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{name}: {len(params)} cells tagged parameters"
    # papermill injects literals after it: the parameters cell holds plain literal assignments only
    for stmt in ast.parse(params[0].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.dump(stmt)
        ast.literal_eval(stmt.value)
    # thin: no function or class definitions, no loops; every code cell but the parameters is a few lines
    for cell in _code_cells(nb):
        if cell is params[0]:
            continue
        tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.startswith("%")))
        assert not [n for n in ast.walk(tree)
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While))]
        assert len(cell.source.splitlines()) <= 12, cell.source
    assert any(CHECK in c.metadata.get("tags", []) for c in nb.cells)


def test_nbstripout_finds_nothing_to_strip() -> None:
    """What `make strip-notebooks` would change: nothing."""
    keys = "metadata.papermill cell.metadata.papermill cell.metadata.execution"
    done = subprocess.run([str(Path(sys.executable).with_name("nbstripout")), "--verify", "--extra-keys",
                           keys,
                           *sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- papermill end to end through `axiom notebooks run` ----------------------------------------------
def test_run_folder_holds_everything(executed: dict[str, Any]) -> None:
    folder: Path = executed["folder"]
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "metrics.json", "results.parquet", "results.csv", "report.html"} <= names
    assert {f"{n}.ipynb" for n in ALL_NOTEBOOKS} <= names
    assert folder.parent == executed["runs"] and folder.name.endswith("-tiny")
    assert not [p for p in executed["runs"].iterdir() if p.name.startswith(".")], "working folder left behind"
    assert executed["stdout"].strip().splitlines()[-1] == f"run folder: {folder}"
    print(f"seed run {executed['seed_seconds']:.1f}s\n" + executed["stdout"])

    metrics = executed["metrics"]["metrics"]
    assert metrics["ndcg@10"]["n"] == 6 and metrics["ndcg@10"]["mean"] == 1.0
    assert metrics["recall@5"]["mean"] == 1.0
    assert metrics["semantic_similarity"]["ci_low"] <= metrics["semantic_similarity"]["mean"] <= 1.0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "tiny" and manifest["dataset"]["items"] == 6
    assert manifest["corpus"]["files"] == 3 and manifest["collection"].startswith("eval-tiny_corpus-")
    assert manifest["ingest"]["chunks_embedded"] == 0  # 01_ingest had embedded them into the same collection
    assert len(pd.read_parquet(folder / "results.parquet")) == 6


def test_executed_notebooks(executed: dict[str, Any]) -> None:
    folder: Path = executed["folder"]
    for name in ALL_NOTEBOOKS:
        nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        params = nb.metadata["papermill"]["parameters"]
        assert params.get("name", "tiny") == "tiny"
        # where the notebook works comes from the runner, as parameters: the project and the --config file
        assert params["project_root"] == str(REPO)
        assert Path(params["config"]) == Path(executed["config"]).resolve()
        for cell in _code_cells(nb):
            assert cell.execution_count is not None, f"{name}: a cell did not run"
            assert not [o for o in cell.outputs if o.output_type == "error"], f"{name}: {cell.source}"
    ingest = nbformat.read(folder / "01_ingest.ipynb", as_version=4)
    assert _images(ingest) == 1  # the chunk length histogram
    files = next(c for c in ingest.cells if "ingest_files" in c.source).outputs[0].data["text/plain"]
    assert "a.md" in files and "ingested" in files
    assert _images(nbformat.read(folder / "03_evaluate.ipynb", as_version=4)) == 2  # metrics + latency
    assert _images(nbformat.read(folder / "04_compare_runs.ipynb", as_version=4)) == 1  # deltas
    query = nbformat.read(folder / "02_query.ipynb", as_version=4)
    side = next(c for c in query.cells if "rankings_side_by_side" in c.source).outputs[0].data["text/html"]
    assert all(r in side for r in ("dense", "bm25", "hybrid"))
    compare = nbformat.read(folder / "04_compare_runs.ipynb", as_version=4)
    diffs = next(c for c in compare.cells if "differences_table" in c.source).outputs[0].data["text/plain"]
    assert "retrieval.top_k" in diffs and "2 -> 5" in diffs  # the seed run (top_k 2) against this one


def test_no_key_in_executed_notebooks_or_run_files(executed: dict[str, Any]) -> None:
    """The e2e run had OPENAI_API_KEY set: no executed notebook, report, manifest or result may hold it."""
    files = [p for p in executed["runs"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "manifest.json" for p in files)
    leaked = [str(p) for p in files if KEY_CANARY.encode() in p.read_bytes()]
    assert not leaked, f"the API key appears in {leaked}"
    assert KEY_CANARY not in executed["stdout"]


def test_html_report(executed: dict[str, Any]) -> None:
    html = (executed["folder"] / "report.html").read_text()
    # no code
    assert "hl-ipython3" not in html and "run_evaluation(" not in html and "open_session" not in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 2
    assert 'alt="chart: Summary"' in html and 'alt="chart: Latency"' in html
    assert html.count("<table") >= 4 and "semantic_similarity" in html and "Per question, worst first" in html
    for repr_text in ("&lt;Figure size", "<Figure size", "object at 0x", "&lt;IPython", "Loading weights"):
        assert repr_text not in html, repr_text


# -- a failing cell ----------------------------------------------------------------------------------
def test_failing_cell_names_notebook_cell_and_error(clean_kernel_env: None, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--config", str(write_test_config(tmp_path)), "notebooks", "run", "03_evaluate", "-p",
            "retriever",
            "nonsense", "-p", "corpus", str(TINY_CORPUS), "-p", "dataset", str(TINY_GOLDEN), "--out",
            str(tmp_path / "runs"), "--name", "broken"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # cell 3 of the committed notebook (markdown, parameters, setup); In [3] after papermill's injected cell
    assert "03_evaluate.ipynb: cell 3 (In [3]) raised ConfigError" in err, err
    assert "retrieval.retriever" in err and "nonsense" in err
    kept = Path(re.search(r"partially executed notebook is kept at (\S+)", err).group(1))
    assert kept.is_file() and kept.parent.name.endswith("-broken-failed")
    nb = nbformat.read(kept, as_version=4)
    code = _code_cells(nb)
    failing = next(c for c in code if any(o.output_type == "error" for o in c.outputs))
    assert "open_session" in failing.source
    assert all(not c.outputs for c in code[code.index(failing) + 1:])  # nothing ran after it
    assert not list((tmp_path / "runs").glob(".nb-*")), "working folder left behind"


def test_unknown_parameter_is_a_usage_error(tmp_path: Path, clean_kernel_env: None) -> None:
    from axiom.config import load_settings
    from axiom.errors import UsageError

    with pytest.raises(UsageError, match="unknown notebook parameter.*topk"):
        run_notebooks(load_settings(REPO / "config.yaml", environ={}), ["03"], {"topk": 3}, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_baseline_gate_through_the_notebooks(executed: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`make eval`'s path: the evaluation notebook gates on a baseline and the CLI exits 3 when it regressed;
    the run folder is still written, with the gate's verdict in metrics.json."""
    baseline = tmp_path / "strict.json"
    baseline.write_text(json.dumps({"format": 1, "metrics": {"recall@5": {"mean": 1.0, "threshold": 1.01}}}))
    argv = ["--config", str(executed["config"]), "notebooks", "run", "03", "-p", "corpus", str(TINY_CORPUS),
            "-p", "dataset", str(TINY_GOLDEN), "-p", "chroma_path", str(executed["store"]), "-p", "judge",
            "false",
            "--out", str(tmp_path / "runs"), "--name", "gated", "--no-html", "--baseline", str(baseline),
            "--fail-on-regression"]
    assert main(argv) == 3
    out, err = capsys.readouterr()
    assert "baseline gate FAILED" in out and "recall@5" in err
    (folder,) = (tmp_path / "runs").glob("*-gated")
    gate = json.loads((folder / "metrics.json").read_text())["gate"]
    assert gate["passed"] is False and any("recall@5" in f for f in gate["failures"])
    assert main(argv[:-3] + ["--fail-on-regression"]) == 2  # a gate needs a baseline


# -- nbval ---------------------------------------------------------------------------------------------
def _reparameterise(executed_nb: Path, target: Path, changes: dict[str, Any]) -> None:
    import papermill

    original = nbformat.read(executed_nb, as_version=4).metadata["papermill"]["parameters"]
    params = {k: v for k, v in original.items() if k != "result_json"} | changes
    papermill.execute_notebook(str(executed_nb), str(target), parameters=params, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    nb = nbformat.read(target, as_version=4)
    assert any(c.outputs for c in _code_cells(nb)), "prepare_only dropped the reference outputs"
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, target)


@pytest.mark.timeout(900)
def test_nbval_over_the_four_notebooks(executed: dict[str, Any], tmp_path: Path) -> None:
    folder: Path = executed["folder"]
    fresh = {"chroma_path": str(tmp_path / "store-b"), "out_dir": str(tmp_path / "runs-b")}
    copies = []
    for name in ALL_NOTEBOOKS:
        target = tmp_path / f"{name}.ipynb"
        changes = dict(fresh) if name != "04_compare_runs" else {"runs": [str(executed["seed"]), str(folder)]}
        if name == "04_compare_runs":
            changes.pop("out_dir", None)
        _reparameterise(folder / f"{name}.ipynb", target, changes)
        copies.append(target)
    # one checked cell's reference output is tampered with: nbval must catch exactly that cell
    nb = nbformat.read(copies[1], as_version=4)
    tampered = next(c for c in nb.cells if CHECK in c.metadata.get("tags", [])
                    and "ranking_overlap" in c.source)
    tampered.outputs[0]["data"]["text/plain"] += "\ntampered"
    nbformat.write(nb, copies[1])
    tampered_index = _code_cells(nb).index(tampered)  # nbval numbers code cells

    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    # kernels in another folder, no AXIOM_PROJECT_ROOT: the notebooks work from their project_root parameter
    env = {k: v for k, v in os.environ.items() if k != "AXIOM_PROJECT_ROOT"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                           "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
                           "-q", "-rf", *map(str, copies)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=880)
    out = done.stdout + done.stderr
    summary = out.strip().splitlines()[-1]
    failed = re.findall(r"FAILED (\S+::Cell \d+)", out)
    assert failed == [f"02_query.ipynb::Cell {tampered_index}"], out[-6000:]
    assert re.search(r"\b1 failed\b", summary), out[-6000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    cells = sum(len(_code_cells(nbformat.read(p, as_version=4))) for p in copies)
    assert passed == cells - 1, out[-3000:]
    checked = sum(1 for p in copies for c in nbformat.read(p, as_version=4).cells
                  if CHECK in c.metadata.get("tags", []))
    assert checked >= 12
