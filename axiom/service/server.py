"""One process, two uvicorn servers (API and sidecar) on one event loop, over one shared ServiceState.

Signals: the runner owns SIGTERM and SIGINT (uvicorn's own handlers are off, since uvicorn re-raises the
signal after its shutdown and the process would then die of it instead of exiting 0). The first signal stops
both servers from accepting, lets in-flight requests finish (up to service.shutdown_grace_seconds), then `run`
returns 0; a second signal forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import Iterator

import anyio.to_thread
import uvicorn
from fastapi import FastAPI

from axiom.config import Settings, log_generator_choice
from axiom.errors import AxiomError
from axiom.observability import apply_process_defaults
from axiom.redaction import redact
from axiom.service.app import create_api_app, create_sidecar_app
from axiom.service.limits import THREAD_HEADROOM
from axiom.service.state import ServiceState, build_state

log = logging.getLogger("axiom.service")


class LibraryPiiFilter(logging.Filter):
    """PII redaction for other libraries' log lines (at DEBUG the openai client logs whole prompts). Axiom's
    own lines never carry a raw question: the service logs it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "axiom" and not record.name.startswith("axiom."):
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_axiom", False) and not any(isinstance(f, LibraryPiiFilter)
                                                         for f in handler.filters):
            handler.addFilter(LibraryPiiFilter())  # after the level filters: runs only for records that pass


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the runner handles signals for both servers
        yield


def bind(host: str, port: int) -> socket.socket:
    """A bound socket (listening starts when the server starts); a busy port fails here, before the model
    loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AxiomError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="another process holds the port; pick one with --port / --sidecar-port",
        ) from exc
    return sock


def _server(app: FastAPI, grace: float) -> _Server:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=int(grace) if grace >= 1 else 1)
    return _Server(config)


async def serve(state: ServiceState, api_sock: socket.socket, sidecar_sock: socket.socket) -> None:
    grace = state.settings.service.shutdown_grace_seconds
    # the worker threads (40 by default) stay above the cap, so a capped request never waits for a thread
    threads = anyio.to_thread.current_default_thread_limiter()
    threads.total_tokens = max(threads.total_tokens,
                               state.settings.service.max_concurrent_requests + THREAD_HEADROOM)
    servers = [_server(create_api_app(state), grace), _server(create_sidecar_app(state), grace)]
    loop = asyncio.get_running_loop()
    stopping = {"at": 0.0}

    def on_signal(sig: signal.Signals) -> None:
        if stopping["at"]:
            log.warning("%s again: exiting without waiting for in-flight requests", sig.name)
            for s in servers:
                s.force_exit = True
            return
        stopping["at"] = time.monotonic()
        log.info("%s: finishing in-flight requests (up to %gs), then exiting", sig.name, grace)
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await asyncio.gather(servers[0].serve(sockets=[api_sock]), servers[1].serve(sockets=[sidecar_sock]))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if stopping["at"]:
        log.info("stopped after %.2fs of draining", time.monotonic() - stopping["at"])


def _exit_while_starting(signum: int, frame: object) -> None:
    log.info("SIGTERM while starting: exiting")
    raise SystemExit(0)


def run(settings: Settings, *, ingest_first: bool = False) -> int:
    """`axiom serve`: bind both ports, load the pipeline once, serve until SIGTERM/SIGINT; returns 0."""
    logging.captureWarnings(True)  # library warnings become log lines (JSON when LOG_FORMAT=json)
    install_log_redaction()
    apply_process_defaults()  # among them: no progress bars on stderr, which carries the log lines only
    service = settings.service
    if service.api_port == service.sidecar_port:
        raise AxiomError(f"the API and the sidecar cannot share port {service.api_port}",
                         hint="set --port and --sidecar-port to different values")
    api_sock = bind(service.host, service.api_port)
    try:
        sidecar_sock = bind(service.host, service.sidecar_port)
    except AxiomError:
        api_sock.close()
        raise
    if not service.api_keys:
        log.warning("AXIOM_API_KEYS is not set: the API on port %d is open to anyone who can reach it",
                    service.api_port)
    log_generator_choice(settings)
    state: ServiceState | None = None
    # nothing in flight yet: just leave, with 0
    previous = signal.signal(signal.SIGTERM, _exit_while_starting)
    try:
        state = build_state(settings)
        data_root = state.open_data_root()
        if data_root is not None and ingest_first:
            report = state.pipeline.ingest(["."], progress=False, within=data_root)
            log.info("ingested the data root: %d chunk(s) in the collection", report.chunks_total)
        # the model and libraries are millions of long-lived objects: keep them out of every GC pass (shorter
        # pauses under load, and no seconds-long collection of them when the process exits)
        gc.freeze()
        signal.signal(signal.SIGTERM, previous)  # from here on `serve` handles it (drain, then exit 0)
        log.info("serving: API on http://%s:%d (docs at /docs), sidecar on http://%s:%d (/health, /metrics); "
                 "store: %s, collection %r; API keys: %d", service.host, service.api_port, service.host,
                 service.sidecar_port, state.pipeline.store.where, settings.store.collection,
                 len(service.api_keys))
        asyncio.run(serve(state, api_sock, sidecar_sock))
    finally:
        api_sock.close()
        sidecar_sock.close()
        if state is not None:
            state.close()
    return 0
