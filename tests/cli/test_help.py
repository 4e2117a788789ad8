"""`--help` explains every option and argument of every command: each has a non-empty help text."""

from __future__ import annotations

import argparse

import pytest

from axiom.cli import build_parser
from tests.cli.test_errors import subcommands

COMMANDS = {" ".join(path) or "axiom": parser for path, parser in subcommands(build_parser())}


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    return [a.dest if not a.option_strings else "/".join(a.option_strings) for a in parser._actions
            if not isinstance(a, argparse._SubParsersAction) and a.help is not argparse.SUPPRESS
            and not (a.help or "").strip()]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_a_help_text(command: str) -> None:
    assert undocumented(COMMANDS[command]) == [], command


def test_every_command_is_covered() -> None:
    assert {"ingest", "query", "status", "eval", "compare", "retrieval-eval", "bench", "serve", "notebooks",
            "notebooks run", "sweep", "dataset", "dataset audit"} <= set(COMMANDS)
