"""Fast tests of the notebook face's logic: session settings and shared embedder, parameters, grids, tables
and charts. (CachingEmbedder itself is tested in tests/core/test_overrides_and_caching_embedder.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axiom import comparison_report, reporting
from axiom.config import ENV_VARS
from axiom.embeddings import CachingEmbedder
from axiom.errors import ConfigError, UsageError
from axiom.evaluation.run_folder import list_runs
from axiom.notebook.engine import notebook_parameters
from axiom.notebook.parameters import absolute_paths, load_params_file, parse_value
from axiom.notebook.runner import resolve_notebook
from axiom.notebook.session import PROJECT_ROOT_ENV, notebook_settings, shared_embedder
from axiom.observability import PROCESS_ENV_DEFAULTS
from axiom.sweep import SweepRun, parse_grid
from axiom.sweep_summary import summary_table
from tests.notebooks.conftest import NOTEBOOKS


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (default settings), no settings from the environment; the working directory
    and the environment are restored afterwards."""
    for name in [*ENV_VARS, "AXIOM_CONFIG", *PROCESS_ENV_DEFAULTS]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(PROJECT_ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_notebook_settings_apply_the_given_parameters(project: Path) -> None:
    defaults = notebook_settings()
    settings = notebook_settings(collection="nb-test", top_k=3, retriever="", chunk_size=None,
                                 chroma_path="store")
    assert Path.cwd() == project.resolve()
    assert (
        settings.store.collection == "nb-test"
        and settings.retrieval.top_k == 3
        and settings.store.path == "store"
    )
    assert settings.retrieval.retriever == defaults.retrieval.retriever  # "" is not given
    assert settings.chunking.chunk_size == defaults.chunking.chunk_size
    assert all(os.environ.get(k) == v for k, v in PROCESS_ENV_DEFAULTS.items())
    with pytest.raises(ConfigError, match="notebook parameters"):
        notebook_settings(top_k=0)


def test_shared_embedder_is_one_caching_embedder_per_model(project: Path) -> None:
    settings = notebook_settings()
    first = shared_embedder(settings)  # the model loads on first use, not here
    assert isinstance(first, CachingEmbedder) and shared_embedder(settings) is first
    disk = first.persistent
    assert disk is not None and disk.path == project / ".axiom" / "embedding-cache" / "embeddings.sqlite3"
    # the same memo, with the disk level of the settings it is asked for now (one run at a time in a kernel)
    moved = settings.with_overrides({"embeddings.cache_dir": str(project / "elsewhere")}, origin="test")
    assert shared_embedder(moved) is first and first.persistent is not None
    assert first.persistent.path == project / "elsewhere" / "embeddings.sqlite3"
    off = settings.with_overrides({"embeddings.cache_enabled": False}, origin="test")
    assert shared_embedder(off) is first and first.persistent is None
    assert shared_embedder(settings) is first and first.persistent is disk
    other = settings.with_overrides({"embeddings.model": "another-model"}, origin="test")
    assert shared_embedder(other) is not first and shared_embedder(other).model_id == "another-model"


def test_parse_value_and_params_file(tmp_path: Path) -> None:
    assert parse_value("3") == 3 and parse_value("null") is None and parse_value("dense") == "dense"
    assert parse_value("[a, b]") == ["a", "b"] and parse_value("false") is False
    (tmp_path / "p.yaml").write_text("top_k: 3\ncorpus: data\n")
    assert load_params_file(tmp_path / "p.yaml") == {"top_k": 3, "corpus": "data"}
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="mapping"):
        load_params_file(tmp_path / "bad.yaml")
    with pytest.raises(UsageError, match="parameters file .*missing.yaml does not exist"):
        load_params_file(tmp_path / "missing.yaml")


def test_absolute_paths(tmp_path: Path) -> None:
    out = absolute_paths({"corpus": "data", "top_k": 3, "runs": ["a", "/b"], "dataset": ""}, tmp_path)
    assert out == {"corpus": str(tmp_path / "data"), "top_k": 3, "runs": [str(tmp_path / "a"), "/b"],
                   "dataset": ""}


def test_resolve_notebook_and_parameters() -> None:
    assert resolve_notebook("03").name == "03_evaluate.ipynb"
    assert resolve_notebook("01_ingest").name == "01_ingest.ipynb"
    assert resolve_notebook(str(NOTEBOOKS / "02_query.ipynb")).name == "02_query.ipynb"
    with pytest.raises(UsageError, match="not found"):
        resolve_notebook("99")
    params = notebook_parameters(NOTEBOOKS / "03_evaluate.ipynb")
    assert {"corpus", "dataset", "collection", "retriever", "top_k", "chunk_size", "chunk_overlap", "out_dir",
            "chroma_path", "chroma_host", "chroma_port", "name", "result_json"} <= set(params)
    assert params["corpus"] == '"data"' and params["top_k"] == "None"


def test_parse_grid() -> None:
    assert parse_grid(["retriever=dense,hybrid", "top_k=3,5,10"]) == {"retriever": ["dense", "hybrid"],
                                                                      "top_k": [3, 5, 10]}
    for bad in (["top_k"], ["=3"], ["top_k="], ["top_k=3,3"], ["top_k=3", "top_k=5"], []):
        with pytest.raises(UsageError):
            parse_grid(bad)


def test_summary_table_ranks_best_first() -> None:
    def run(i: int, k: int, mean: float, seconds: float, embedded: int) -> SweepRun:
        r = SweepRun(index=i, combination={"top_k": k}, params={}, seconds=seconds, chunks_embedded=embedded,
                     embedding={"texts_embedded": embedded, "cache_hits": 10})
        r.metrics = {"semantic_similarity": {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1},
                     "ndcg@10": {"mean": 0.9}}
        r.run_path = Path(f"/runs/{k}")
        return r

    # Given out of grid order; top_k 5 and 10 tie at 4 decimals (1e-7 apart, as float noise between two
    # machines is): grid order decides, not the faster run, and not the last float bits.
    table = summary_table([run(2, 10, 0.7 + 1e-7, 1.0, 0), run(0, 3, 0.5, 10.0, 80), run(1, 5, 0.7, 2.0, 0)],
                          "semantic_similarity", ["top_k"])
    assert list(table["top_k"]) == [5, 10, 3] and list(table["rank"]) == [1, 2, 3]
    assert list(table["chunks embedded"]) == [0, 0, 80] and table["ndcg@10"].tolist() == [0.9] * 3
    assert "semantic_similarity ci_low" in table.columns
    fig = reporting.sweep_chart(table, "semantic_similarity")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "combination" and len(ax.patches) == 3


class _Record:
    def __init__(self) -> None:
        self.name = "r"
        self.path = Path("/runs/r")
        self.metrics = {"metrics": {"ndcg@10": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 2},
                                    "exact_match": {"mean": None, "ci_low": None, "ci_high": None, "n": 0,
                                                    "not_applicable": 2}},
                        "latency": {"generation": {"mean_ms": 2.0, "p50_ms": 1.0, "p95_ms": 3.0,
                                                   "max_ms": 3.0}}}
        self.results = pd.DataFrame({
            "id": ["q1", "q2"], "question": ["first?", "second?"], "ndcg@10": [1.0, 0.6],
            "semantic_similarity": [0.9, 0.2], "exact_match": [np.nan, np.nan],
            "answer": ["Extractive answer (no LLM; sentences quoted from the sources): yes [1]", "no"],
            "relevant_sources": [["a.md"], ["b.md"]],
            "retrieved_sources": [["a.md", "b.md"], ["a.md", "b.md"]],
            "retrieval_seconds": [0.01, 0.01], "generation_seconds": [0.002, 0.004]})


def test_run_tables_and_charts() -> None:
    record = _Record()
    metrics = reporting.metrics_table(record)
    assert metrics.loc["ndcg@10", "mean"] == "0.800" and metrics.loc["exact_match", "mean"] == ""
    assert metrics.loc["exact_match", "n/a"] == 2
    worst = reporting.per_question_table(record)
    assert list(worst["id"]) == ["q2", "q1"]  # worst nDCG first
    assert worst.iloc[1]["answer"] == "yes [1]"  # the extractive prefix is not repeated on every row
    assert worst.iloc[0]["relevant → retrieved (top 3)"] == "b.md → a.md, b.md"
    for fig in (reporting.metrics_chart(record), reporting.latency_histogram(record)):
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in reporting.metrics_chart(record).axes[0].get_yticklabels()] == ["ndcg@10"]
    assert list(reporting.latency_table(record).index)[1] == "generation"


def test_list_runs_and_latest(tmp_path: Path) -> None:
    for name, started in (("b", "2026-01-02"), ("a", "2026-01-03"), ("c", "2026-01-01")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_text(f'{{"started": "{started}"}}')
        (folder / "metrics.json").write_text("{}")
        (folder / "results.parquet").write_text("")
    (tmp_path / ".tmp-x").mkdir()
    (tmp_path / "incomplete").mkdir()
    assert [p.name for p in list_runs(tmp_path)] == ["c", "b", "a"]
    assert [p.name for p in comparison_report.latest_runs(tmp_path, 2)] == ["b", "a"]
    with pytest.raises(UsageError, match="3 complete run folder"):
        comparison_report.latest_runs(tmp_path, 4)


def test_every_notebook_parameter_is_in_the_one_table() -> None:
    """The parameters cells, the session's keywords and the table agree: nothing a notebook declares or the
    session takes is missing from axiom/notebook/parameter_table.py, and nothing there is declared nowhere."""
    import inspect

    from axiom.notebook import parameter_table, session

    table = set(parameter_table.BY_NAME)
    declared: set[str] = set()
    for notebook in sorted(NOTEBOOKS.glob("0*.ipynb")):
        names = set(notebook_parameters(notebook))
        assert names <= table, (notebook.name, sorted(names - table))
        declared |= names
    assert declared == table, f"in the table but in no notebook: {sorted(table - declared)}"
    for function in (session.open_session, session.notebook_settings):
        keywords = set(inspect.signature(function).parameters) - {"load_model", "config"}
        assert keywords <= table, (function.__name__, sorted(keywords - table))
    # notebook_settings takes exactly the parameters that are settings, and applies each to its field
    settings_keywords = set(inspect.signature(session.notebook_settings).parameters) - {"config"}
    assert settings_keywords == set(parameter_table.SETTING_OF)
    assert set(parameter_table.PATH_PARAMETERS) >= {"corpus", "dataset", "chroma_path", "out_dir"}
    assert set(parameter_table.CONTROLLED_PARAMETERS) == {"name", "out_dir", parameter_table.RESULT_PARAMETER}


def test_notebook_settings_apply_each_setting_parameter_to_its_field(tmp_path: Path) -> None:
    from axiom.notebook import parameter_table

    values = {"collection": "table-check", "chroma_path": str(tmp_path / "store"), "chroma_host": "",
              "chroma_port": None, "retriever": "bm25", "top_k": 7, "chunk_size": 300, "chunk_overlap": 30}
    assert set(values) == set(parameter_table.SETTING_OF)
    cwd = os.getcwd()
    try:
        settings = notebook_settings(**values)  # type: ignore[arg-type]
    finally:
        os.chdir(cwd)
    for name, field in parameter_table.SETTING_OF.items():
        section, key = field.split(".")
        got = getattr(getattr(settings, section), key)
        if values[name] in (None, ""):
            continue  # not given: the setting stays as configured
        assert str(got) == str(values[name]), (name, field, got)
