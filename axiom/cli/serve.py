"""`axiom serve`: the query API (port 8000) and the health + metrics sidecar (port 5000) in one process.
See `axiom.service`.

Before anything binds, `check_exposure` refuses (exit 2) to serve an open API beyond the loopback: a host
other than 127.0.0.0/8, ::1 or localhost needs API keys (AXIOM_API_KEYS) or an explicit `--insecure-no-auth`;
and every key, wherever the API listens, must be at least `service.min_api_key_chars` (16) characters long."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from axiom.cli.options import Subparsers
from axiom.config import Settings
from axiom.config_service import ServiceSettings
from axiom.errors import UsageError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or `localhost`. Anything else, including 0.0.0.0, :: and
    every other name (it could resolve anywhere), is not."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_exposure(service: ServiceSettings, *, insecure_no_auth: bool = False) -> None:
    """Raise UsageError (exit 2) when the settings would expose an open API or accept a short key."""
    short = sum(1 for k in service.api_keys if len(k.get_secret_value()) < service.min_api_key_chars)
    if short:
        raise UsageError(
            f"{short} of the {len(service.api_keys)} key(s) in AXIOM_API_KEYS (service.api_keys) is shorter "
            f"than {service.min_api_key_chars} characters (service.min_api_key_chars)",
            hint='use long random keys, e.g. python3 -c "import secrets; print(secrets.token_urlsafe(32))"')
    if service.api_keys or is_loopback(service.host):
        return
    if insecure_no_auth:
        log.warning("--insecure-no-auth: the API on %s:%d answers anyone who can reach it, without a key",
                    service.host, service.api_port)
        return
    raise UsageError(
        f"refusing to serve the API on {service.host} without API keys: anyone who can reach that "
        "address could query and ingest",
        hint="set AXIOM_API_KEYS to one or more comma-separated keys of at least "
             f"{service.min_api_key_chars} characters (clients send X-API-Key or Authorization: "
             "Bearer), or listen on 127.0.0.1 (--host), or pass --insecure-no-auth if the network "
             "in front of it is trusted")


def apply_serve_args(args: argparse.Namespace, settings: Settings) -> Settings:
    """A copy of `settings` with the command-line overrides of `service`, after `check_exposure`. An invalid
    value raises ConfigError (exit 2) naming the setting and these flags."""
    settings = settings.with_overrides({
        "service.host": args.host or None,
        "service.api_port": args.port,
        "service.sidecar_port": args.sidecar_port,
        "service.data_root": args.data_root or None,
    }, origin="axiom serve flags")
    check_exposure(settings.service, insecure_no_auth=args.insecure_no_auth)
    return settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    settings = apply_serve_args(args, settings)  # refuses before anything is imported, bound or loaded
    from axiom.service.server import run  # lazy: `axiom --help` must not import FastAPI and uvicorn

    code = run(settings, ingest_first=args.ingest)
    # Everything is drained and flushed: leave now. The interpreter's own teardown of the torch/transformers
    # object graphs takes seconds (3-11 s measured on a busy 2-core box), which would push `docker stop` past
    # its 10 s kill timeout; nothing in the service needs it (ChromaDB and the BM25 index are written
    # synchronously).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the API (POST /query, /ingest) and the health + metrics sidecar",
        description="Serve the query API (default port 8000: POST /query, POST /ingest, GET /health, /docs) "
                    "and the sidecar (default port 5000: GET /health, GET /metrics) from one process. API "
                    "keys come from AXIOM_API_KEYS (comma-separated, each at least "
                    "service.min_api_key_chars = 16 characters); without them the API is open, which is "
                    "refused on any address but the loopback unless --insecure-no-auth is given. SIGTERM "
                    "finishes in-flight requests and exits 0.")
    p.add_argument("--host",
                   help="address to listen on (default: service.host, 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--insecure-no-auth", action="store_true", dest="insecure_no_auth",
                   help="serve without API keys on a non-loopback address (only behind a trusted network)")
    p.add_argument("--port", type=int, help="API port (default: service.api_port, 8000)")
    p.add_argument("--sidecar-port", type=int, dest="sidecar_port",
                   help="health + metrics port (default: service.sidecar_port, 5000)")
    p.add_argument("--data-root", dest="data_root",
                   help="folder POST /ingest may read (default: service.data_root)")
    p.add_argument("--ingest", action="store_true", help="ingest the data root before serving")
    p.add_argument("--collection", help="collection name (default: AXIOM_COLLECTION / config)")
    p.set_defaults(handler=cmd_serve, auto_log_format="json")  # a service logs JSON unless LOG_FORMAT says
