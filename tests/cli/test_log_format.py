"""The log format when none is set (`logging.format: auto`): human-readable text when stderr is a terminal,
JSON otherwise (a pipe, a file, a log shipper); `LOG_FORMAT=json` (or `text`) always wins; `axiom serve` logs
JSON unless a format is set."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from axiom.cli import main
from axiom.config import load_settings
from axiom.observability import JsonFormatter, TextFormatter
from tests.evaluation.helpers import REPO, clean_env, write_config

pytestmark = pytest.mark.usefixtures("restore_logging")  # main configures the root logger

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+: ")


class TerminalStderr(io.StringIO):
    def isatty(self) -> bool:
        return True


def _config_without_log_format(root: Path) -> Path:
    config = write_config(root, logging={"level": "DEBUG"})
    data = yaml.safe_load(config.read_text())
    data["logging"].pop("format", None)
    config.write_text(yaml.safe_dump(data))
    return config


def _formatters() -> list[type[logging.Formatter]]:
    return [type(h.formatter) for h in logging.getLogger().handlers if getattr(h, "_axiom", False)]


def test_the_default_format_is_auto_and_the_repo_config_does_not_pin_json() -> None:
    assert load_settings(REPO / "config.yaml", environ={}).logging.format == "auto"
    assert load_settings(REPO / "config.yaml", environ={"LOG_FORMAT": "json"}).logging.format == "json"


@pytest.mark.parametrize(("terminal", "env", "command", "expected"), [
    (True, None, ["status"], TextFormatter),
    (False, None, ["status"], JsonFormatter),
    (True, "json", ["status"], JsonFormatter),
    (False, "text", ["status"], TextFormatter),
    (True, None, ["serve", "--host", "0.0.0.0"], JsonFormatter),  # the service: JSON unless set
    (True, "text", ["serve", "--host", "0.0.0.0"], TextFormatter),
], ids=["tty", "pipe", "tty-json", "pipe-text", "serve-tty", "serve-text"])
def test_auto_format_follows_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool,
                                          env: str | None, command: list[str], expected: type) -> None:
    clean_env(monkeypatch)
    if env:
        monkeypatch.setenv("LOG_FORMAT", env)
    config = _config_without_log_format(tmp_path / "work")
    stderr = TerminalStderr() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    main(["--config", str(config), *command])  # fails (no collection; an open API on 0.0.0.0): logging is set
    assert _formatters() == [expected], stderr.getvalue()


def _stderr_through(tmp_path: Path, extra_env: dict[str, str], *, terminal: bool) -> list[str]:
    """`python -m axiom.cli status` on a missing collection at DEBUG level, its stderr a pty or a pipe."""
    config = _config_without_log_format(tmp_path / "work")
    env = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "LOG_LEVEL", "AXIOM_CONFIG"}}
    env.update(extra_env)
    argv = [sys.executable, "-m", "axiom.cli", "--config", str(config), "status"]
    if not terminal:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        return done.stderr.splitlines()
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=REPO)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    finally:
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n").splitlines()


def test_a_terminal_gets_text_logs(tmp_path: Path) -> None:
    lines = _stderr_through(tmp_path, {}, terminal=True)
    records = [ln for ln in lines if TEXT_LINE.match(ln)]
    assert records, lines
    assert not [ln for ln in lines if ln.startswith("{")], lines
    assert lines[-2].startswith("axiom: error: collection 'axiom' does not exist"), lines


def test_a_terminal_gets_json_logs_when_asked(tmp_path: Path) -> None:
    lines = _stderr_through(tmp_path, {"LOG_FORMAT": "json"}, terminal=True)
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert records and not [ln for ln in lines if TEXT_LINE.match(ln)], lines


def test_a_pipe_gets_json_logs(tmp_path: Path) -> None:
    lines = _stderr_through(tmp_path, {}, terminal=False)
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert records and not [ln for ln in lines if TEXT_LINE.match(ln)], lines
