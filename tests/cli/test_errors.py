"""How `axiom` fails: one wording on stderr (`axiom: error: <message>`, then `axiom: hint: <hint>` on a line
of its own when there is one) for settings, usage (argparse's own too), runtime and unexpected errors; and
with `--json` one JSON error object on stdout (`error`, `type`, `exit_code`, `hint` when there is one) for
every command that takes `--json`. Nothing here loads a model."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from axiom.cli import build_parser, main
from tests.evaluation.helpers import clean_env, write_config
from tests.support.chroma_server import free_port

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command's parser, by its words (`("notebooks", "run")`); the top-level parser is `()`."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*path, name))


def takes_json(parser: argparse.ArgumentParser) -> bool:
    return any("--json" in a.option_strings for a in parser._actions)


# A failing call of every command that takes --json ({tmp} is a temporary folder), and the error class it
# fails with.
FAILURES: dict[tuple[str, ...], tuple[list[str], str]] = {
    ("ingest",): (["ingest", "{tmp}", "--collection", "ab"], "ConfigError"),
    ("query",): (["query"], "UsageError"),  # argparse: the question is missing
    ("status",): (["status", "--top-k", "3"], "UsageError"),  # argparse: status has no --top-k
    ("eval",): (["eval", "--dataset", "{tmp}/d.jsonl", "--fail-on-regression"], "UsageError"),
    ("compare",): (["compare", "{tmp}/run-a", "{tmp}/run-b"], "UsageError"),
    ("metrics", "agreement"): (["metrics", "agreement", "{tmp}/run-a", "--labels", "{tmp}/missing.jsonl"],
                               "DatasetError"),
    ("plan",): (["plan", "--metric", "ndcg@10", "--effect", "-0.05", "--from", "{tmp}/run-a"], "UsageError"),
    ("retrieval-eval",): (["retrieval-eval", "beir", "{tmp}/missing"], "DatasetError"),
    ("bench",): (["bench", "beir", "{tmp}/missing"], "DatasetError"),
    ("notebooks", "run"): (["notebooks", "run", "--fail-on-regression"], "UsageError"),
    ("sweep",): (["sweep", "--grid", "nonsense"], "UsageError"),
    ("dataset", "audit"): (["dataset", "audit", "{tmp}/missing.jsonl"], "DatasetError"),
    ("cache", "stats"): (["cache", "stats", "--top-k", "3"], "UsageError"),  # argparse: no --top-k
    ("cache", "clear"): (["cache", "clear", "--everything"], "UsageError"),  # argparse: no such option
}


def test_every_command_with_json_has_a_failure_case() -> None:
    with_json = {path for path, parser in subcommands(build_parser()) if takes_json(parser)}
    assert with_json == set(FAILURES)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", list(FAILURES), ids=" ".join)
def test_json_failure_prints_one_error_object_on_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        command: tuple[str, ...]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    words, kind = FAILURES[command]
    argv = [w.format(tmp=tmp_path) for w in words]
    code, out, err = _run(capsys, ["--config", str(config), *argv, "--json"])
    assert code != 0, err
    payload = json.loads(out)  # exactly one JSON object: json.loads refuses anything after it
    assert isinstance(payload, dict) and out.count("\n") == 1, out
    assert payload["type"] == kind and payload["exit_code"] == code, payload
    assert payload["error"] and f"axiom: error: {payload['error'].splitlines()[0]}" in err, (payload, err)
    assert set(payload) <= {"error", "type", "exit_code", "hint"}, payload
    if "hint" in payload:
        assert f"axiom: hint: {payload['hint']}" in err, err


def test_without_json_stdout_stays_empty_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    code, out, err = _run(capsys, ["--config", str(config), "compare", str(tmp_path / "a"),
                                   str(tmp_path / "b")])
    assert code == 2 and out == "" and err.startswith("axiom: error: run folder "), err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("axiom:")]


def test_settings_error_uses_the_one_format_with_the_hint_on_its_own_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    missing = tmp_path / "nope.yaml"
    code, out, err = _run(capsys, ["--config", str(missing), "status"])
    assert code == 2 and out == ""
    assert err == (f"axiom: error: config file {missing} does not exist\n"
                   "axiom: hint: fix AXIOM_CONFIG or --config\n"), err
    code, out, err = _run(capsys, ["--config", str(missing), "status", "--json"])
    assert json.loads(out) == {"error": f"config file {missing} does not exist", "type": "ConfigError",
                               "exit_code": 2, "hint": "fix AXIOM_CONFIG or --config"}


def test_usage_errors_use_the_one_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    # argparse's own error (after its usage line), and a UsageError raised by a command
    code, out, err = _run(capsys, ["--config", str(config), "query", "q", "--top-k", "many"])
    assert code == 2 and out == "" and err.startswith("usage: axiom query"), err
    assert _error_lines(err) == ["axiom: error: argument --top-k: invalid int value: 'many'"], err
    code, out, err = _run(capsys, ["--config", str(config), "notebooks", "run", "--fail-on-regression"])
    assert code == 2 and _error_lines(err) == ["axiom: error: --fail-on-regression needs --baseline FILE"], (
        err
    )


def _handler_raising(exc: BaseException, *, emit_first: bool = False):  # noqa: ANN202
    def handler(args: argparse.Namespace, settings: object) -> int:
        from axiom.cli.output import emit

        if emit_first:
            emit(args, {"verdict": "worse"}, "worse")
        raise exc

    return handler


def test_interruption_and_unexpected_errors_use_the_one_format(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import axiom.cli.evaluate

    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    argv = ["--config", str(config), "compare", "a", "b", "--json"]
    monkeypatch.setattr(axiom.cli.evaluate, "cmd_compare", _handler_raising(KeyboardInterrupt()))
    code, out, err = _run(capsys, argv)
    assert code == 130 and _error_lines(err) == ["axiom: error: interrupted"], err
    assert json.loads(out) == {"error": "interrupted", "type": "KeyboardInterrupt", "exit_code": 130}

    # a bug: reported like any failure, then raised on (its traceback for the report; the interpreter exits 1)
    monkeypatch.setattr(axiom.cli.evaluate, "cmd_compare",
                        _handler_raising(ValueError("nobody expected this")))
    with pytest.raises(ValueError, match="nobody expected this"):
        main(argv)
    captured = capsys.readouterr()
    assert _error_lines(captured.err) == ["axiom: error: ValueError: nobody expected this",
                                         "axiom: hint: an unexpected error, most likely a "
                                         "bug: its traceback follows"]
    payload = json.loads(captured.out)
    assert (payload["type"], payload["exit_code"]) == ("ValueError", 1), payload


def test_a_gate_failure_after_the_result_keeps_one_json_object(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A command that printed its result and then fails (the regression gate) does not print a second
    object."""
    import axiom.cli.evaluate
    from axiom.errors import RegressionError

    clean_env(monkeypatch)
    config = write_config(tmp_path / "work")
    monkeypatch.setattr(axiom.cli.evaluate, "cmd_compare",
                        _handler_raising(RegressionError("gate failed"), emit_first=True))
    code, out, err = _run(capsys, ["--config", str(config), "compare", "a", "b", "--json"])
    assert code == 3 and json.loads(out) == {"verdict": "worse"}, (out, err)
    assert _error_lines(err) == ["axiom: error: gate failed"], err


def test_unreachable_chroma_server_is_named_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The heartbeat's StoreUnavailableError is not wrapped again by the client's own connection handler."""
    clean_env(monkeypatch)
    port = free_port()  # nothing listens there
    config = write_config(tmp_path / "work", store={"host": "127.0.0.1", "port": port, "timeout_seconds": 2})
    code, out, err = _run(capsys, ["--config", str(config), "status", "--json"])
    assert code == 1, err
    assert err.count("cannot reach ChromaDB server") == 1, err
    assert err.startswith(f"axiom: error: cannot reach ChromaDB server 127.0.0.1:{port}: ConnectError"), err
    assert "axiom: hint: check CHROMA_HOST/CHROMA_PORT" in err, err
    payload = json.loads(out)
    assert payload["error"].count("cannot reach") == 1 and payload["type"] == "StoreUnavailableError", payload
