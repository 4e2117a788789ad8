"""The one output helper of the `axiom` command: results on stdout, everything else on stderr.

`--json` prints exactly one JSON object on stdout (logs go to stderr); without it, the human text."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print one JSON object (--json) or the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        print(text)


def error(message: object) -> None:
    """One line on stderr: `axiom: <message>` (a settings error, an interruption)."""
    print(f"axiom: {message}", file=sys.stderr)


def command_error(message: object) -> None:
    """One line on stderr for a failed command or bad usage: `axiom: error: <message>`."""
    error(f"error: {message}")


def note(message: str) -> None:
    """One line on stderr that is not an error (a deprecation)."""
    error(f"note: {message}")
