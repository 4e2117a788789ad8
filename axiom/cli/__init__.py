"""The `axiom` command. The parser is built from `COMMANDS`, an explicit tuple of command modules, each with
`register(subparsers)` setting a `handler(args, settings) -> int` default. Command modules import
`axiom.cli.output` (and `axiom.cli.options`), never this package; heavy modules are imported inside handlers, so
`axiom --help` stays fast.

Exit codes: 0 success (skipped files are reported, not fatal), 2 bad usage or settings, 3 regression gate
failed, 1 any other failure. `--json` prints exactly one JSON object on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from axiom import __version__
from axiom.cli import dataset, evaluate, ingest, notebooks, query, retrieval_eval, serve, status
from axiom.cli.options import Parser
from axiom.cli.output import command_error, error
from axiom.config import Settings, load_settings
from axiom.errors import AxiomError
from axiom.observability import apply_process_defaults, configure_logging

__all__ = ["COMMANDS", "build_parser", "main"]

log = logging.getLogger("axiom.cli")

# In the order of `axiom --help`.
COMMANDS = (ingest, query, status, evaluate, retrieval_eval, serve, notebooks, dataset)

# Flags several commands share -> (the setting each overrides, the flag named when its value is invalid).
SETTING_FLAGS = (
    ("collection", "store.collection", "--collection"),
    ("retriever", "retrieval.retriever", "--retriever"),
    ("top_k", "retrieval.top_k", "--top-k"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="axiom", description="Axiom Workbench: build and evaluate RAG, offline first.")
    parser.add_argument("--version", action="version", version=f"axiom {__version__}")
    parser.add_argument("--config", help="settings file (default: AXIOM_CONFIG or ./config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings (file, environment) with the shared flags applied through `Settings.with_overrides`; an
    absent flag (None) leaves its setting alone. Raises ConfigError naming the setting and the flag."""
    settings = load_settings(args.config)
    for dest, key, flag in SETTING_FLAGS:
        settings = settings.with_overrides({key: getattr(args, dest, None)}, origin=flag)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    apply_process_defaults()
    args = build_parser().parse_args(argv)
    try:
        settings = settings_for(args)
    except AxiomError as exc:
        error(exc)
        return exc.exit_code
    configure_logging(settings.logging)
    try:
        return int(args.handler(args, settings))
    except AxiomError as exc:
        log.debug("command failed", exc_info=True)
        command_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130
