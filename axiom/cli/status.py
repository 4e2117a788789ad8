"""`axiom status [--collection NAME] [--json]`: what the store holds."""

from __future__ import annotations

import argparse
from typing import Any

from axiom.cli.output import emit
from axiom.config import Settings


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.pipeline import RAGPipeline  # lazy: `axiom --help` stays fast

    status = RAGPipeline.from_settings(settings).status()
    payload = {k: status[k] for k in ("collection", "chunks", "sources", "embedding_model", "store")}
    payload["location"] = status["location"]
    emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="what the store holds")
    p.add_argument("--collection")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
