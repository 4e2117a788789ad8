"""The `axiom` package itself: explicit registration without an import cycle, a fast `--help`, the one
override path for flags, retriever choices from the registry, `Answer.to_dict()` as `query --json`, and the
`bench` alias of `retrieval-eval`. Nothing here loads a model or opens a store."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import axiom.cli
from axiom.cli import COMMANDS, build_parser, main
from axiom.cli.serve import apply_serve_args
from axiom.config import Settings
from axiom.retrieval import RETRIEVERS
from axiom.types import Answer, Citation, Hit
from tests.evaluation.helpers import clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger

CLI = Path(axiom.cli.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_command_modules_never_import_the_package() -> None:
    modules = [p for p in CLI.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) >= 8
    for path in modules:
        bad = {n for n in _imports(path) if n == "axiom.cli" or n == "axiom.cli.main"}
        assert not bad, (path.name, bad)
    assert all(callable(m.register) for m in COMMANDS)


def test_every_module_is_small() -> None:
    for path in CLI.glob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path.name


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys\nfrom axiom.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('numpy', 'axiom.retrieval', 'axiom.pipeline', 'fastapi', 'torch', "
            "'chromadb') if m in sys.modules], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "retrieval-eval" in done.stdout, done.stderr
    assert done.stderr.strip() == "[]", done.stderr


def test_python_m_axiom_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "axiom.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("axiom "), done.stderr


@pytest.mark.parametrize("command", [["query", "q"], ["eval", "--dataset", "d.jsonl"],
                                     ["retrieval-eval", "beir", "folder"], ["bench", "beir", "folder"]])
def test_retriever_choices_come_from_the_registry(monkeypatch: pytest.MonkeyPatch,
                                                  command: list[str]) -> None:
    monkeypatch.setitem(RETRIEVERS, "zz-extra", RETRIEVERS["bm25"])
    for name in RETRIEVERS:
        assert build_parser().parse_args([*command, "--retriever", name]).retriever == name
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*command, "--retriever", "nope"])
    assert info.value.code == 2


def test_subcommand_help_lists_the_registered_retrievers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["query", "--help"])
    assert "--retriever {" + ",".join(sorted(RETRIEVERS)) + "}" in capsys.readouterr().out


def _serve_must_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import axiom.service.server as server_module

    monkeypatch.setattr(server_module, "run", lambda *a, **k: pytest.fail("the server was started"))
    monkeypatch.setattr(os, "_exit", lambda code: pytest.fail(f"os._exit({code}) reached"))


@pytest.mark.parametrize(("command", "words"), [
    (["query", "q", "--top-k", "0"], "invalid setting retrieval.top_k (from --top-k)=0"),
    (["query", "q", "--top-k", "101"],  # the settings' limit, as `query --help` says (no other one below)
     "invalid setting retrieval.top_k (from --top-k)=101: Input should be less than or equal to 100"),
    (["eval", "--dataset", "d.jsonl", "--top-k", "500"],
     "invalid setting retrieval.top_k (from --top-k)=500"),
    (["status", "--collection", "ab"], "invalid setting store.collection (from --collection)='ab'"),
    (["serve", "--port", "0"], "invalid setting service.api_port (from axiom serve flags)=0"),
    (["serve", "--sidecar-port", "70000"],
     "invalid setting service.sidecar_port (from axiom serve flags)=70000"),
])
def test_invalid_flag_value_exits_2_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], command: list[str],
                                                      words: str) -> None:
    clean_env(monkeypatch)
    _serve_must_not_start(monkeypatch)
    config = write_config(tmp_path / "work")
    before = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert main(["--config", str(config), *command]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == before


def test_serve_flags_make_a_copy() -> None:
    settings = Settings()
    args = argparse.Namespace(host="127.0.0.2", port=8123, sidecar_port=None, data_root="",
                              insecure_no_auth=False)
    served = apply_serve_args(args, settings)
    assert (served.service.host, served.service.api_port) == ("127.0.0.2", 8123)
    assert served.service.sidecar_port == settings.service.sidecar_port
    assert served.service.data_root == settings.service.data_root  # empty: left alone
    assert (settings.service.host, settings.service.api_port) == ("127.0.0.1", 8000)  # untouched


class _FakePipeline:
    seen: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> _FakePipeline:
        cls.seen["settings"] = settings
        return cls()

    def ask(self, question: str, *, top_k: int | None = None, retriever: str | None = None) -> Answer:
        self.seen.update(top_k=top_k, retriever=retriever)
        hit = Hit(chunk_id="c1", source="a.md", page=None, score=0.5, text="Lava is hot.")
        return Answer(question=question, answer="Lava is hot [1].", generator="extractive", contexts=[hit],
                      citations=[Citation(n=1, source="a.md", page=None, chunk_id="c1", score=0.5)])


def test_query_json_is_answer_to_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import axiom.pipeline

    clean_env(monkeypatch)
    monkeypatch.setattr(axiom.pipeline, "RAGPipeline", _FakePipeline)
    config = write_config(tmp_path / "work")
    assert main(["--config", str(config), "query", "Is lava hot?", "--top-k", "3", "--retriever", "bm25",
                 "--collection", "other", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["question"] == "Is lava hot?" and payload["citations"][0]["source"] == "a.md"
    assert set(payload) == set(Answer(question="", answer="", citations=[], contexts=[],
                                      generator="").to_dict())
    settings = _FakePipeline.seen["settings"]
    assert (settings.retrieval.top_k, settings.retrieval.retriever,
            settings.store.collection) == (3, "bm25", "other")
    # the flags reach the pipeline once, in its settings: the handler does not pass them again
    assert (_FakePipeline.seen["top_k"], _FakePipeline.seen["retriever"]) == (None, None)


def test_bench_is_a_deprecated_alias_of_retrieval_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    missing = str(tmp_path / "missing")
    assert main(["--config", str(config), "retrieval-eval", "beir", missing]) == 2
    new = capsys.readouterr().err
    assert "note:" not in new and "is not a folder" in new, new
    assert main(["--config", str(config), "bench", "beir", missing]) == 2
    old = capsys.readouterr().err
    note, rest = old.split("\n", 1)
    assert (
        note.startswith("axiom: note: ") and "deprecated" in note and "axiom retrieval-eval beir" in note
    ), old
    assert rest == new
