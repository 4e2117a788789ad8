"""`axiom ingest` and `axiom query` as a new user meets them: a root that does not exist is a usage error, the
model load is reported apart from the stage timings, progress goes to stderr only, every option has help.

`axiom.pipeline.make_embedder` is replaced by a stand-in model (tests/support/slow_embedder.py) whose first
use sleeps like a model load; the store is a real embedded ChromaDB under tmp_path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import axiom.pipeline
from axiom.cli import build_parser, main
from tests.evaluation.helpers import TINY_CORPUS, clean_env, write_config
from tests.support.slow_embedder import SlowLoadingEmbedder

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger

LOAD = 2.0


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_env(monkeypatch)
    return write_config(tmp_path / "work")


def use_model(monkeypatch: pytest.MonkeyPatch, load_seconds: float) -> None:
    monkeypatch.setattr(axiom.pipeline, "make_embedder", lambda *a, **k: SlowLoadingEmbedder(load_seconds))


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_ingest_of_a_missing_path_exits_2_naming_it_and_writes_nothing(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        extra: list[str]) -> None:
    use_model(monkeypatch, 0.0)
    missing = tmp_path / "no" / "such" / "path"
    before = tree(config.parent)
    code = main(["--config", str(config), "ingest", str(missing), *extra])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert f"{missing} does not exist" in captured.err, captured.err
    if captured.out:  # --json: nothing but an error object naming the path (when the CLI prints one)
        assert "--json" in extra and str(missing) in json.loads(captured.out)["error"], captured.out
    assert tree(config.parent) == before  # no store folder, no collection


def test_ingest_json_reports_the_model_load_apart_and_progress_on_stderr(
        config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_model(monkeypatch, LOAD)
    assert main(["--config", str(config), "ingest", str(TINY_CORPUS), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout: exactly the JSON report
    assert report["model_load_seconds"] >= 0.9 * LOAD, report
    assert report["seconds"] < report["model_load_seconds"], report
    total = report["chunks_embedded"]
    assert f"ingest: {total}/{total} chunks embedded" in captured.err.splitlines(), captured.err


def test_query_json_reports_the_model_load_apart_from_retrieval(
        config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_model(monkeypatch, 0.0)
    assert main(["--config", str(config), "ingest", str(TINY_CORPUS), "--json"]) == 0
    capsys.readouterr()
    use_model(monkeypatch, LOAD)  # `axiom query` is a new process: its model is not loaded yet
    assert main(["--config", str(config), "query", "How many eggs can a queen bee lay?", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    timings = payload["timings"]
    assert timings["model_load"] >= 0.9 * LOAD, timings
    assert timings["retrieve"] < timings["model_load"] and timings["total"] < timings["model_load"], timings
    assert timings["store_connect"] >= 0  # the store's first connection is timed apart too


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["ingest", "query"])
def test_every_option_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = subcommand(command)
    missing = [a.option_strings or a.dest for a in parser._actions
               if not isinstance(a, argparse._HelpAction) and (not a.help or a.help == argparse.SUPPRESS)]
    assert missing == [], missing
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--json" in text and "JSON" in text
