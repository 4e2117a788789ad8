"""`axiom serve`: the query API (port 8000) and the health + metrics sidecar (port 5000) in one process.
See `axiom.service`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from axiom.config import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from axiom.service.server import run  # lazy: `axiom --help` must not import FastAPI and uvicorn

    service = settings.service
    if args.host:
        service.host = args.host
    if args.port is not None:
        service.api_port = args.port
    if args.sidecar_port is not None:
        service.sidecar_port = args.sidecar_port
    if args.data_root:
        service.data_root = args.data_root
    code = run(settings, ingest_first=args.ingest)
    # Everything is drained and flushed: leave now. The interpreter's own teardown of the torch/transformers
    # object graphs takes seconds (3-11 s measured on a busy 2-core box), which would push `docker stop` past its
    # 10 s kill timeout; nothing in the service needs it (ChromaDB and the BM25 index are written synchronously).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="run the API (POST /query, /ingest) and the health + metrics sidecar",
        description="Serve the query API (default port 8000: POST /query, POST /ingest, GET /health, /docs) and "
                    "the sidecar (default port 5000: GET /health, GET /metrics) from one process. API keys come "
                    "from AXIOM_API_KEYS (comma-separated); without them the API is open. SIGTERM finishes "
                    "in-flight requests and exits 0.")
    p.add_argument("--host", help="address to listen on (default: service.host, 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, help="API port (default: service.api_port, 8000)")
    p.add_argument("--sidecar-port", type=int, dest="sidecar_port",
                   help="health + metrics port (default: service.sidecar_port, 5000)")
    p.add_argument("--data-root", dest="data_root", help="folder POST /ingest may read (default: service.data_root)")
    p.add_argument("--ingest", action="store_true", help="ingest the data root before serving")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.set_defaults(handler=cmd_serve)
