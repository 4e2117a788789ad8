"""A collection that does not exist: `axiom status` says so (exit 1) instead of `chunks: 0`, and it and
`axiom query` name the collections that do exist and how to use one (`--collection NAME`). After `make eval`
the default collection is absent: the evaluations ingest into collections of their own. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axiom.cli import main
from axiom.config import load_settings
from axiom.store import ChromaStore
from tests.evaluation.helpers import clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger

OTHERS = ("eval-data-1a2b3c4d-all-minilm-l6-v2", "notes")


def _store_with_other_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    settings = load_settings(config, environ={})
    for name in OTHERS:
        ChromaStore(settings.store.model_copy(update={"collection": name})).open("all-MiniLM-L6-v2", 384)
    return config


def test_list_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _store_with_other_collections(tmp_path, monkeypatch)
    store = ChromaStore(load_settings(config, environ={}).store)
    assert store.list_collections() == sorted(OTHERS)
    assert store.get_collection() is None  # listing neither opens nor creates the configured one


def test_status_of_a_missing_collection_exits_1_naming_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _store_with_other_collections(tmp_path, monkeypatch)
    assert main(["--config", str(config), "status"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "chunks: 0" not in captured.err
    first, hint = captured.err.splitlines()
    assert first.startswith("axiom: error: collection 'axiom' does not exist on embedded ChromaDB at "), first
    assert f"collections there: {', '.join(OTHERS)}" in first, first
    assert hint.startswith("axiom: hint: ") and "--collection NAME" in hint and "axiom ingest" in hint, hint

    assert main(["--config", str(config), "status", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["type"] == "StoreError" and payload["exit_code"] == 1
    assert all(name in payload["error"] for name in OTHERS) and "--collection NAME" in payload["hint"]


def test_status_of_an_existing_collection_still_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = _store_with_other_collections(tmp_path, monkeypatch)
    assert main(["--config", str(config), "status", "--collection", "notes", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["collection"], payload["chunks"]) == ("notes", 0)


def test_query_of_a_missing_collection_names_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = _store_with_other_collections(tmp_path, monkeypatch)
    assert main(["--config", str(config), "query", "What is a lighthouse?"]) == 1
    err = capsys.readouterr().err
    assert "collection 'axiom' does not exist" in err and f"collections there: {', '.join(OTHERS)}" in err, (
        err
    )
    assert "--collection NAME" in err, err


def test_no_collection_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    assert main(["--config", str(config), "status"]) == 1
    err = capsys.readouterr().err
    assert "collection 'axiom' does not exist" in err and "no collections there" in err, err
    assert "axiom ingest PATH" in err, err
