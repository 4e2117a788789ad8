"""Logging setup (JSON or text lines) and the request id carried through a request's stages."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from pathlib import Path

from axiom.config import LoggingSettings

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
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
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
        return json.dumps(payload, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(settings: LoggingSettings, *, stream=None) -> None:  # noqa: ANN001
    """Configure the root logger once, at a face. Logs go to stderr (stdout stays for --json output)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_axiom", False):
            root.removeHandler(handler)
    formatter: logging.Formatter = JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if settings.file:
        Path(settings.file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ContextFilter())
        handler.addFilter(ThirdPartyFilter(logging.getLevelName(settings.level)))
        handler._axiom = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.level)
