"""The `axiom` command. The parser is built from `COMMANDS`, an explicit tuple of command modules, each with
`register(subparsers)` setting a `handler(args, settings) -> int` default. Command modules import
`axiom.cli.output` (and `axiom.cli.options`), never this package; heavy modules are imported inside handlers,
so `axiom --help` stays fast.

Exit codes: 0 success (skipped files are reported, not fatal), 2 bad usage or settings, 3 regression gate
failed, 130 interrupted, 1 any other failure. `--json` prints exactly one JSON object on stdout (the result,
or the error object of a failure); logs go to stderr. Every failure reads `axiom: error: <message>` on stderr,
then `axiom: hint: <hint>` when there is one (`axiom.cli.output`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from axiom import __version__
from axiom.cli import (
    cache,
    dataset,
    evaluate,
    ingest,
    metrics,
    notebooks,
    plan,
    query,
    retrieval_eval,
    serve,
    status,
)
from axiom.cli.options import Parser, UsageExit
from axiom.cli.output import error_object, fail, print_error_object
from axiom.config import Settings, load_settings
from axiom.errors import AxiomError
from axiom.observability import apply_process_defaults, configure_logging

__all__ = ["COMMANDS", "build_parser", "main"]

log = logging.getLogger("axiom.cli")

# In the order of `axiom --help`.
COMMANDS = (ingest, query, status, evaluate, plan, metrics, retrieval_eval, serve, notebooks, dataset, cache)

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
    absent flag (None) leaves its setting alone. Raises ConfigError naming the setting and the flag. The one
    place the CLI applies them: handlers and everything below read them from these settings."""
    settings = load_settings(args.config)
    for dest, key, flag in SETTING_FLAGS:
        settings = settings.with_overrides({key: getattr(args, dest, None)}, origin=flag)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    apply_process_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageExit as exc:  # reported on stderr by the parser; argparse exits 2
        if "--json" in argv:
            print_error_object(error_object(exc.error))
        raise
    try:
        settings = settings_for(args)
    except AxiomError as exc:
        return fail(exc, args)
    # logging.format `auto`: text on a terminal, else JSON; a command may set another default (serve: JSON)
    configure_logging(settings.logging, auto=getattr(args, "auto_log_format", None))
    if settings.embeddings.torch_threads:  # batch work's share of the cores (serve sets its own)
        from axiom.local_embedder import set_torch_threads

        set_torch_threads(settings.embeddings.torch_threads)
    try:
        return int(args.handler(args, settings))
    except AxiomError as exc:
        log.debug("command failed", exc_info=True)
        return fail(exc, args)
    except KeyboardInterrupt as exc:
        return fail(exc, args)
    except Exception as exc:  # a bug: the one error line (and object) as ever, then its traceback (exit 1)
        fail(exc, args)
        raise
