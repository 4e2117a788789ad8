"""Fast tests of the notebook face's logic: session settings and shared embedder, where a notebook works (the
project folder and settings file, relative paths anchored to it), parameters, grids, tables and charts.
(CachingEmbedder itself is tested in tests/core/test_overrides_and_caching_embedder.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from axiom import comparison_report, reporting
from axiom.config import ENV_VARS, PATH_FIELDS, Settings, load_settings
from axiom.embeddings import CachingEmbedder
from axiom.errors import ConfigError, UsageError
from axiom.evaluation.run_documents import MetricsDocument
from axiom.evaluation.run_folder import list_runs
from axiom.notebook.engine import notebook_parameters
from axiom.notebook.parameters import absolute_paths, load_params_file, parse_value
from axiom.notebook.runner import resolve_notebook
from axiom.notebook.session import (
    PROJECT_ROOT_ENV,
    find_project_root,
    in_project,
    notebook_settings,
    open_session,
    settings_file,
    shared_embedder,
)
from axiom.observability import PROCESS_ENV_DEFAULTS
from axiom.sweep import SweepRun, parse_grid
from axiom.sweep_summary import summary_table
from tests.notebooks.conftest import NOTEBOOKS


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (default settings) found through AXIOM_PROJECT_ROOT, no settings from the
    environment, the working directory another folder (the session must not need it to be the project);
    the working directory and the environment are restored afterwards."""
    for name in [*ENV_VARS, "AXIOM_CONFIG", *PROCESS_ENV_DEFAULTS]:
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project"
    (tmp_path / "elsewhere").mkdir()
    project.mkdir()
    monkeypatch.setenv(PROJECT_ROOT_ENV, str(project))
    monkeypatch.chdir(tmp_path / "elsewhere")
    return project


def test_notebook_settings_apply_the_given_parameters(project: Path) -> None:
    defaults = notebook_settings()
    settings = notebook_settings(collection="nb-test", top_k=3, retriever="", chunk_size=None,
                                 chroma_path="store")
    assert Path.cwd() == project.parent / "elsewhere"  # left alone
    assert (
        settings.store.collection == "nb-test"
        and settings.retrieval.top_k == 3
        and settings.store.path == str(project / "store")  # relative: to the project folder
    )
    assert settings.retrieval.retriever == defaults.retrieval.retriever  # "" is not given
    assert settings.chunking.chunk_size == defaults.chunking.chunk_size
    assert all(os.environ.get(k) == v for k, v in PROCESS_ENV_DEFAULTS.items())
    with pytest.raises(ConfigError, match="notebook parameters"):
        notebook_settings(top_k=0)
    with pytest.raises(UsageError, match="not a setting parameter: corpus"):
        notebook_settings(corpus="data")


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
        self.metrics = MetricsDocument.from_dict(
            {"metrics": {"ndcg@10": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 2},
                         "exact_match": {"mean": None, "ci_low": None, "ci_high": None, "n": 0,
                                         "not_applicable": 2}},
             "latency": {"generation": {"mean_ms": 2.0, "p50_ms": 1.0, "p95_ms": 3.0, "max_ms": 3.0}}})
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
        named = {name for name, p in inspect.signature(function).parameters.items()
                 if p.kind is not inspect.Parameter.VAR_KEYWORD} - {"load_model"}
        assert named <= table, (function.__name__, sorted(named - table))
    # notebook_settings names no setting itself: the setting parameters are the table's (applied to their
    # fields: the test below)
    assert set(inspect.signature(session.notebook_settings).parameters) == {"project_root", "config",
                                                                             "parameters"}
    assert set(parameter_table.PATH_PARAMETERS) >= {"corpus", "dataset", "chroma_path", "out_dir",
                                                    "project_root", "config"}
    assert set(parameter_table.CONTROLLED_PARAMETERS) == {
        "name", "out_dir", parameter_table.RESULT_PARAMETER, parameter_table.ROOT_PARAMETER,
        parameter_table.CONFIG_PARAMETER}
    # the parameters whose values change the chunks: a sweep over them gives each its own collection
    assert parameter_table.RECHUNKING_PARAMETERS == ("corpus", "chunk_size", "chunk_overlap")
    assert set(parameter_table.RECHUNKING_PARAMETERS) <= set(parameter_table.CHUNKING_PARAMETERS)


def test_notebook_settings_apply_each_setting_parameter_to_its_field(tmp_path: Path) -> None:
    from axiom.notebook import parameter_table

    values = {"collection": "table-check", "chroma_path": str(tmp_path / "store"), "chroma_host": "",
              "chroma_port": None, "retriever": "bm25", "top_k": 7, "chunk_size": 300, "chunk_overlap": 30}
    assert set(values) == set(parameter_table.SETTING_OF)
    settings = notebook_settings(**values)
    for name, field in parameter_table.SETTING_OF.items():
        section, key = field.split(".")
        got = getattr(getattr(settings, section), key)
        if values[name] in (None, ""):
            continue  # not given: the setting stays as configured
        assert str(got) == str(values[name]), (name, field, got)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A project (config.yaml, notebooks/) and another folder, the working directory; no settings or project
    from the environment."""
    for name in [*ENV_VARS, "AXIOM_CONFIG", PROJECT_ROOT_ENV, *PROCESS_ENV_DEFAULTS]:
        monkeypatch.delenv(name, raising=False)
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "notebooks").mkdir(parents=True)
    (project / "config.yaml").write_text("retrieval:\n  top_k: 4\n")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return {"project": project.resolve(), "elsewhere": elsewhere.resolve()}


def _path_like_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out |= _path_like_fields(info.annotation, f"{name}.")
        elif name.endswith(("path", "dir", "file", "root")):
            out.add(prefix + name)
    return out


def test_anchored_makes_every_relative_path_setting_absolute(tmp_path: Path) -> None:
    # PATH_FIELDS are all the settings that name a file or folder (by their names: *path, *dir, *file, *root)
    assert set(PATH_FIELDS) == _path_like_fields(Settings)
    given = {"logging.file": "logs/axiom.log", "evaluation.judge_cache_dir": str(tmp_path / "judge")}
    settings = Settings().with_overrides(given, origin="test")
    anchored = settings.anchored(tmp_path / "root")
    assert settings.store.path == ".axiom/chroma"  # the original is left as it is
    for name in PATH_FIELDS:
        section, key = name.split(".")
        before, after = getattr(getattr(settings, section), key), getattr(getattr(anchored, section), key)
        if not before:
            assert after == before, name  # unset: stays unset
        elif Path(before).is_absolute():
            assert after == before, name
        else:
            assert after == str(tmp_path / "root" / before), name
    assert anchored.evaluation.runs_dir == str(tmp_path / "root" / "evaluation" / "runs")
    assert anchored.embeddings.cache_dir == ""  # beside the anchored store
    assert anchored.embedding_cache_dir == tmp_path / "root" / ".axiom" / "embedding-cache"
    assert anchored.anchored(tmp_path / "other") == anchored  # nothing relative is left
    # with a ChromaDB server the cache's folder does not follow the store path: it is named, anchored
    server = Settings().with_overrides({"store.host": "chroma"}, origin="test").anchored(tmp_path)
    assert server.embedding_cache_dir == tmp_path / ".axiom" / "embedding-cache"


def test_the_project_folder_is_given_else_found(folders: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere = folders["project"], folders["elsewhere"]
    assert find_project_root(str(project)) == project  # the runner's parameter
    monkeypatch.setenv(PROJECT_ROOT_ENV, str(elsewhere))
    assert find_project_root(str(project)) == project  # wins over the variable
    assert find_project_root("") == elsewhere  # run by hand: AXIOM_PROJECT_ROOT (make lab sets it)
    monkeypatch.delenv(PROJECT_ROOT_ENV)
    # JupyterLab in the container: no variable, the kernel starts in the notebook's folder /app/notebooks
    monkeypatch.chdir(project / "notebooks")
    assert find_project_root("") == project and find_project_root(None) == project


def test_settings_file_is_given_else_axiom_config_else_the_projects(folders: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere = folders["project"], folders["elsewhere"]
    assert settings_file("", project) == project / "config.yaml"
    assert settings_file("other.yaml", project) == project / "other.yaml"  # a parameter: in the project
    assert settings_file("other.yaml", project, relative_to=elsewhere) == elsewhere / "other.yaml"  # --config
    assert settings_file(str(elsewhere / "x.yaml"), project) == elsewhere / "x.yaml"
    monkeypatch.setenv("AXIOM_CONFIG", "env.yaml")
    assert settings_file("", project) == project / "env.yaml"
    assert settings_file("given.yaml", project) == project / "given.yaml"
    monkeypatch.delenv("AXIOM_CONFIG")
    assert settings_file("", elsewhere) is None  # no file at all: the defaults


def test_notebook_settings_read_the_projects_file_wherever_the_kernel_runs(folders: dict[str, Path]) -> None:
    project, elsewhere = folders["project"], folders["elsewhere"]
    settings = notebook_settings(project_root=str(project), top_k="")
    assert settings.retrieval.top_k == 4  # the project's config.yaml, not one of the working folder
    assert settings.store.path == str(project / ".axiom" / "chroma")
    assert Path.cwd() == elsewhere
    (elsewhere / "mine.yaml").write_text("retrieval:\n  top_k: 9\n")
    given = notebook_settings(project_root=str(project), config=str(elsewhere / "mine.yaml"))
    assert given.retrieval.top_k == 9 and given.evaluation.runs_dir == str(project / "evaluation" / "runs")
    as_path = notebook_settings(project_root=str(project), chroma_path=Path("s"))  # a Path: its text
    assert as_path.store.path == str(project / "s")


def test_in_project_resolves_path_parameters(folders: dict[str, Path]) -> None:
    project = folders["project"]
    assert in_project("data", project) == str(project / "data")
    assert in_project("", project) is None and in_project(None, project) is None
    assert in_project("/abs/x.jsonl", project) == "/abs/x.jsonl"
    assert in_project(["a", "/b"], str(project)) == [str(project / "a"), "/b"]
    assert in_project([], project) == []


def test_open_session_anchors_its_paths_and_hand_off(folders: dict[str, Path]) -> None:
    project, elsewhere = folders["project"], folders["elsewhere"]
    session = open_session(corpus="data", dataset="golden.jsonl", collection="nb-paths", result_json="r.json",
                           project_root=str(project), load_model=False)
    assert session.root == project and Path.cwd() == elsewhere
    assert session.corpus == project / "data" and session.dataset == project / "golden.jsonl"
    assert session.settings.store.collection == "nb-paths"
    assert session.path("baseline.json") == str(project / "baseline.json") and session.path("") is None
    written = session.report(extra="yes")
    assert written == project / "r.json"
    data: dict[str, Any] = json.loads(written.read_text())
    assert data["extra"] == "yes" and "embedding" in data


def test_the_runner_sets_project_root_and_config_itself(tmp_path: Path) -> None:
    from axiom.notebook.runner import run_notebooks
    from axiom.sweep import plan_sweep

    settings = load_settings(environ={})
    for key in ("project_root", "config"):
        with pytest.raises(UsageError, match=f"{key} is set by the runner"):
            run_notebooks(settings, ["01"], {key: "x"}, out_dir=tmp_path)
        with pytest.raises(UsageError, match=f"{key} cannot be swept or given"):
            plan_sweep(settings, {"top_k": [1, 2]}, {key: "x"}, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
