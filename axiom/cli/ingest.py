"""`axiom ingest PATH... [--prune] [--collection NAME] [--ray ADDRESS] [--json]`: files or folders (txt, md,
pdf) into the store.

Skipped files are reported, not fatal (exit 0); a path that does not exist is bad usage (exit 2, nothing
written). Progress (chunks embedded) goes to stderr, with or without --json: a bar on a terminal, plain lines
otherwise. The embedding model's load is reported apart (`model_load_seconds`), not in `seconds`.

`--ray ADDRESS` (or `ingest.executor: ray` with `ingest.ray_address`) embeds on a Ray cluster
(`axiom.distributed.ingest`; the optional `ray` extra, a ChromaDB server); the report then has a `ray` object
(actors, batches, bytes moved, busy and parallel seconds). Without it, Ray is never imported."""

from __future__ import annotations

import argparse
from typing import Any

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_overrides({"ingest.executor": "ray" if args.ray else None,
                                        "ingest.ray_address": args.ray}, origin="--ray")
    ray_stats: dict[str, Any] | None = None
    if settings.ingest.executor == "ray":
        from axiom.distributed.ingest import ray_pipeline  # lazy: imports Ray (the optional extra)

        with ray_pipeline(settings) as (pipeline, embedder):
            report = pipeline.ingest(args.paths, prune=args.prune)
            ray_stats = embedder.stats.to_dict()
    else:
        from axiom.pipeline import RAGPipeline  # lazy: `axiom --help` stays fast

        pipeline = RAGPipeline.from_settings(settings)
        # progress: on stderr unless in a notebook kernel
        report = pipeline.ingest(args.paths, prune=args.prune)
    load = pipeline.model_load_seconds
    loaded = f", plus {load:.2f}s loading the embedding model" if load else ""
    lines = [f"ingested {len(report.files_ingested)} file(s), unchanged {len(report.files_unchanged)}, "
             f"skipped {len(report.files_skipped)}; chunks +{report.chunks_added} -{report.chunks_removed}, "
             f"{report.chunks_total} in collection {settings.store.collection!r} "
             f"({report.seconds:.2f}s{loaded})"]
    if ray_stats is not None:
        lines.append(f"  embedded on the Ray cluster {settings.ingest.ray_address}: {ray_stats['actors']} "
                     f"actor(s), {ray_stats['batches']} batch(es)")
    lines += [f"  skipped {s.path}: {s.reason}" for s in report.files_skipped]
    payload = {**report.to_dict(), "model_load_seconds": round(load, 3)}
    if ray_stats is not None:
        payload["ray"] = ray_stats
    emit(args, payload, "\n".join(lines))
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("ingest", help="ingest files or folders (txt, md, pdf) into the store")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or folders to ingest (folders recursively); each must exist")
    p.add_argument("--prune", action="store_true", help="remove chunks of files no longer under the folders")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="embed on the Ray cluster at ADDRESS (HEAD_HOST:PORT, auto, "
                        "ray://HOST:10001; sets ingest.executor=ray and ingest.ray_address); needs "
                        "the ray extra and a ChromaDB server")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the ingest report) on stdout; progress stays on stderr")
    p.set_defaults(handler=cmd_ingest)
