"""Logging setup (JSON or text lines), the request id carried through a request's stages, and the Prometheus
metrics the service exposes (recorded by the pipeline's `stage()` blocks and the service)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from axiom.config import LoggingSettings
from axiom.redaction import redact_urls, redact_urls_in

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
stage_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("stage", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Adds `request_id` and `stage` from the context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.stage = getattr(record, "stage", None) or stage_var.get()
        return True


class ThirdPartyFilter(logging.Filter):
    """Below DEBUG level, other libraries' records pass only from WARNING up (some set their own levels)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "axiom" or record.name.startswith("axiom.") or self.level <= logging.DEBUG:
            return record.levelno >= self.level
        return record.levelno >= max(self.level, logging.WARNING)


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Every string in it has URL credentials removed
    (`axiom.redaction.redact_urls`):
    the OpenAI client and httpx log request URLs at DEBUG, which would carry a `user:pass@` or `?api-key=`
    given in OPENAI_BASE_URL / EVAL_LLM_BASE_URL."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "stage": getattr(record, "stage", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(redact_urls_in(payload), default=lambda o: redact_urls(str(o)))


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# starts every further line of a text record (traceback, stack): never a record's first line
CONTINUATION = "  | "


def _control_escape(code: int) -> str:
    short = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in short:
        return short[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidirectional overrides (which
# make a terminal show text in another order than it was written)
_CONTROL_ESCAPES = str.maketrans({code: _control_escape(code) for code in (
    *range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def escape_controls(text: str) -> str:
    """`text` with control characters written as escapes, as the JSON format writes them (`\\n`, `\\r`, `\\t`,
    `\\xNN`, `\\uNNNN`): whatever a question holds, it cannot start a new log line or drive the terminal."""
    return text.translate(_CONTROL_ESCAPES)


class TextFormatter(logging.Formatter):
    """`LOG_FORMAT=text` (and the default on a terminal): TEXT_FORMAT with the record's line escaped
    (`escape_controls`) and URL credentials removed. A traceback or stack keeps its lines, each escaped and
    starting with CONTINUATION, so a record's first line is the only one that starts with a timestamp and no
    input can forge another record."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        out = escape_controls(redact_urls(self.formatMessage(record)))
        blocks = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            for line in redact_urls(block).split("\n"):
                out += "\n" + CONTINUATION + escape_controls(line)
        return out


# Process-wide defaults every face sets before it imports the model or metric stacks (a value the user set
# wins): no usage analytics from ragas or chromadb, no progress bars on stderr, no tokenizer fork warnings.
PROCESS_ENV_DEFAULTS = {
    "RAGAS_DO_NOT_TRACK": "true",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_process_defaults() -> None:
    """Set PROCESS_ENV_DEFAULTS where the environment does not say otherwise. Called by the faces (the CLI,
    the service, a notebook session), never at import."""
    for name, value in PROCESS_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def log_format(configured: str, stream: object, *, auto: str | None = None) -> str:
    """The format of the log lines written to `stream`: `json` or `text` as configured; for `auto` (nothing
    set), the face's own default when it gives one (`axiom serve`: json), else text when `stream` is a
    terminal and JSON otherwise (a pipe, a file, a log shipper)."""
    if configured != "auto":
        return configured
    if auto:
        return auto
    try:
        return "text" if stream.isatty() else "json"  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return "json"


def configure_logging(settings: LoggingSettings, *, stream=None,
                      auto: str | None = None) -> None:  # noqa: ANN001
    """Configure the root logger once, at a face. Logs go to stderr (stdout stays for --json output), and to
    `settings.file` (JSON under `auto`). `auto` is the format a face wants when none is set (see
    `log_format`)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_axiom", False):
            root.removeHandler(handler)
    stream = stream or sys.stderr
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if settings.file:
        Path(settings.file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.file, encoding="utf-8"))
    for handler in handlers:
        fmt = log_format(settings.format, None if isinstance(handler, logging.FileHandler) else stream,
                         auto=auto)
        handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        handler.addFilter(ContextFilter())
        handler.addFilter(ThirdPartyFilter(logging.getLevelName(settings.level)))
        handler._axiom = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.level)


# -- request ids --------------------------------------------------------------------------------------
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """A caller's X-Request-ID when it is safe to log (1-128 of `A-Za-z0-9._:-`), else a new id."""
    if value and _REQUEST_ID_OK.fullmatch(value):
        return value
    return new_request_id()


# -- Prometheus metrics (default registry, which also holds the process_* and python_* collectors) ----------
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter("axiom_requests", "HTTP requests answered, by endpoint and status code",
                   ["endpoint", "status"])
ERRORS = Counter("axiom_errors", "Errors, by pipeline stage and error class", ["stage", "kind"])
STAGE_LATENCY = Histogram("axiom_stage_latency_seconds",
                          "Seconds spent per stage (embed, retrieve, generate, total)",
                          ["stage"], buckets=LATENCY_BUCKETS)
INGEST_CHUNKS = Counter("axiom_ingest_chunks", "Chunks written by ingests served by this process")
CACHE_HITS = Counter("axiom_cache_hits", "Query cache hits")
CACHE_MISSES = Counter("axiom_cache_misses", "Query cache misses")
REJECTED = Counter("axiom_rejected_requests",
                   "Requests refused with 503 because service.max_concurrent_requests were in flight",
                   ["endpoint"])
IN_FLIGHT = Gauge("axiom_requests_in_flight", "/query and /ingest requests in flight (capped)")
LLM_CIRCUIT_OPEN = Gauge("axiom_llm_circuit_open",
                         "1 while the LLM circuit breaker is open or half-open (answers are extractive, "
                         "degraded, without calling the LLM), 0 when it is closed or there is no LLM")


def metrics_exposition() -> tuple[bytes, str]:
    """Every metric of this process in Prometheus's text format, and its content type (for GET /metrics)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# seconds per stage name, summed over the current request (set by the service, read after the request)
stage_timings_var: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("stage_timings",
                                                                                           default=None)
_stage_log = logging.getLogger("axiom.stage")


@dataclass
class StageTimer:
    name: str
    seconds: float = 0.0


@contextmanager
def stage(name: str) -> Iterator[StageTimer]:
    """Time one pipeline stage: sets the `stage` log field, observes axiom_stage_latency_seconds{stage} and,
    when the block raises, counts axiom_errors_total{stage, kind} once (at the innermost stage it passed
    through)."""
    timer = StageTimer(name)
    token = stage_var.set(name)
    t0 = time.perf_counter()
    try:
        yield timer
    except BaseException as exc:
        count_error(name, exc)
        raise
    finally:
        timer.seconds = time.perf_counter() - t0
        STAGE_LATENCY.labels(stage=name).observe(timer.seconds)
        acc = stage_timings_var.get()
        if acc is not None:
            acc[name] = acc.get(name, 0.0) + timer.seconds
        _stage_log.debug("%s took %.4fs", name, timer.seconds, extra={"seconds": round(timer.seconds, 6)})
        stage_var.reset(token)


def count_error(stage_name: str, exc: BaseException) -> None:
    """Count an error in axiom_errors_total unless an inner stage has counted it already."""
    if isinstance(exc, Exception) and not getattr(exc, "_axiom_counted", False):
        ERRORS.labels(stage=stage_name, kind=type(exc).__name__).inc()
        try:
            exc._axiom_counted = True  # type: ignore[attr-defined]
        except AttributeError:  # exceptions with __slots__
            pass
