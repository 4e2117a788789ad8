"""The one output helper of the `axiom` command: results on stdout, everything else on stderr.

`--json` prints exactly one JSON object on stdout (logs go to stderr): the result, or, when the command fails
before printing one, the error object `{"error", "type", "exit_code", "hint"?}`. Without it, the human text.
Every failure reads the same on stderr: `axiom: error: <message>`, then `axiom: hint: <hint>` on a line of its
own when there is a hint."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from axiom.errors import AxiomError

INTERRUPTED_EXIT_CODE = 130
UNEXPECTED_HINT = "an unexpected error, most likely a bug: its traceback follows"


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print one JSON object (--json) or the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        print(text)
    args._emitted = True  # a later failure (the regression gate) must not print a second object


def error(message: object, *, hint: str | None = None) -> None:
    """`axiom: error: <message>` on stderr, and `axiom: hint: <hint>` on its own line when there is one."""
    print(f"axiom: error: {message}", file=sys.stderr)
    if hint:
        print(f"axiom: hint: {hint}", file=sys.stderr)


def note(message: str) -> None:
    """One line on stderr that is not an error (a deprecation)."""
    print(f"axiom: note: {message}", file=sys.stderr)


def error_object(exc: BaseException) -> dict[str, Any]:
    """The JSON error object of a failure: message, error class, exit code and the hint (when there is
    one)."""
    hint = None
    if isinstance(exc, AxiomError):
        message, hint, code = exc.message, exc.hint, exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        message, code = "interrupted", INTERRUPTED_EXIT_CODE
    else:
        text = str(exc)
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        hint, code = UNEXPECTED_HINT, 1
    payload: dict[str, Any] = {"error": message, "type": type(exc).__name__, "exit_code": code}
    if hint:
        payload["hint"] = hint
    return payload


def print_error_object(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, default=str))


def fail(exc: BaseException, args: argparse.Namespace | None = None, *, json_output: bool = False) -> int:
    """Report a failed command (stderr; with --json also the error object on stdout, unless the command
    printed its result already) and return its exit code."""
    payload = error_object(exc)
    error(payload["error"], hint=payload.get("hint"))
    if (json_output or getattr(args, "json", False)) and not getattr(args, "_emitted", False):
        print_error_object(payload)
    return int(payload["exit_code"])
