"""`axiom ingest PATH... [--prune] [--collection NAME] [--json]`: files or folders (txt, md, pdf) into the store.

Skipped files are reported, not fatal (exit 0); a path that does not exist is bad usage (exit 2, nothing written).
Progress (chunks embedded) goes to stderr, with or without --json: a bar on a terminal, plain lines otherwise.
The embedding model's load is reported apart (`model_load_seconds`), not in `seconds`."""

from __future__ import annotations

import argparse
from typing import Any

from axiom.cli.output import emit
from axiom.config import Settings


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.pipeline import RAGPipeline  # lazy: `axiom --help` stays fast

    pipeline = RAGPipeline.from_settings(settings)
    report = pipeline.ingest(args.paths, prune=args.prune)  # progress: on stderr unless in a notebook kernel
    load = pipeline.model_load_seconds
    loaded = f", plus {load:.2f}s loading the embedding model" if load else ""
    lines = [f"ingested {len(report.files_ingested)} file(s), unchanged {len(report.files_unchanged)}, "
             f"skipped {len(report.files_skipped)}; chunks +{report.chunks_added} -{report.chunks_removed}, "
             f"{report.chunks_total} in collection {settings.store.collection!r} ({report.seconds:.2f}s{loaded})"]
    lines += [f"  skipped {s.path}: {s.reason}" for s in report.files_skipped]
    emit(args, {**report.to_dict(), "model_load_seconds": round(load, 3)}, "\n".join(lines))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ingest", help="ingest files or folders (txt, md, pdf) into the store")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or folders to ingest (folders recursively); each must exist")
    p.add_argument("--prune", action="store_true", help="remove chunks of files no longer under the folders")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the ingest report) on stdout; progress stays on stderr")
    p.set_defaults(handler=cmd_ingest)
