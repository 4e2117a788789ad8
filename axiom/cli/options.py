"""The argument parser of `axiom` and the options several commands share.

Choices that come from a registry (the retrievers of `axiom.retrieval.RETRIEVERS`) are looked up when a
(sub)command's parser is first used, not when it is built: building the whole parser for `axiom --help` must
not import numpy and the store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

from axiom.cli.output import error
from axiom.errors import UsageError


class LazyChoices:
    """`choices=LazyChoices(load)`: `load()` is called the first time the parser parses or prints help."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self.load = load

    def __iter__(self) -> Iterator[str]:  # what argparse's `choices` reads; the parser loads it first
        return iter(self.load())


class UsageExit(SystemExit):
    """argparse's bad usage (exit 2, a SystemExit as argparse raises), reported already on stderr; `error` is
    the UsageError the `--json` error object is made of."""

    def __init__(self, message: str) -> None:
        super().__init__(UsageError.exit_code)
        self.error = UsageError(message)


class Parser(argparse.ArgumentParser):
    """argparse with our error wording (`axiom: error: ...` after the usage line, exit 2 as argparse does) and
    LazyChoices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # boundary: argparse's parameters, passed on
        super().__init__(*args, **kwargs)
        self._lazy_choices: list[tuple[argparse.Action, LazyChoices]] = []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:  # boundary: argparse's, passed on
        lazy = kwargs.get("choices")
        if not isinstance(lazy, LazyChoices):
            return super().add_argument(*args, **kwargs)
        action = super().add_argument(*args, **{**kwargs, "choices": None})
        self._lazy_choices.append((action, lazy))
        return action

    def _resolve_choices(self) -> None:
        while self._lazy_choices:
            action, lazy = self._lazy_choices.pop()
            action.choices = list(lazy.load())

    # also a subcommand's parse; boundary: argparse's overloaded signature, passed on
    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # boundary: argparse
        self._resolve_choices()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._resolve_choices()
        return super().format_usage()

    def format_help(self) -> str:
        self._resolve_choices()
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        error(message)
        raise UsageExit(message)


# what a command module's `register(subparsers)` receives: `add_subparsers(parser_class=Parser)`'s value
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


def retriever_names() -> list[str]:
    from axiom.retrieval import RETRIEVERS  # lazy: imports numpy and the store

    return sorted(RETRIEVERS)


def add_retriever(parser: argparse.ArgumentParser, **kwargs: Any) -> None:  # boundary: argparse keywords
    """--retriever: one of the registered retrievers (axiom.retrieval.RETRIEVERS)."""
    kwargs.setdefault("help", "how to retrieve, e.g. dense (vectors), bm25 (words) or hybrid (both fused) "
                              "(default: retrieval.retriever)")
    parser.add_argument("--retriever", choices=LazyChoices(retriever_names), **kwargs)
