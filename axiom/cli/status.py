"""`axiom status [--collection NAME] [--json]`: what the store holds. A collection that does not exist is an
error (exit 1) naming the collections that do (after `make eval` the default one is absent: evaluations ingest
into collections of their own)."""

from __future__ import annotations

import argparse

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.pipeline import RAGPipeline  # lazy: `axiom --help` stays fast

    pipeline = RAGPipeline.from_settings(settings)
    if pipeline.store.get_collection() is None:
        raise pipeline.store.missing_collection_error()
    status = pipeline.status()
    payload = {k: status[k] for k in ("collection", "chunks", "sources", "embedding_model", "store")}
    payload["location"] = status["location"]
    emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("status", help="what the store holds")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_status)
