"""YAML, read here only: the one loader of a YAML mapping from a file, and the parse of one YAML value.

`load_yaml_mapping(path, what=..., expected=..., error=...)` is how `config.yaml` (`axiom.config`), an
endpoint mapping (`axiom.evaluation.endpoint_config`) and a notebook parameters file
(`axiom.notebook.parameters`) are read. It opens the file without following a link (O_NOFOLLOW: a symlink is
refused, not followed), takes only a regular file (never blocking on a FIFO), reads at most `max_bytes` (a
larger file is refused, not cut), decodes UTF-8, parses with `yaml.safe_load` (plain data, never Python
objects), requires a mapping (an empty file is
{}), and raises the caller's typed error (`axiom.errors`) naming the file: for bad YAML, one line with the
line and column (PyYAML's own text spans several lines and names "<unicode string>" instead of the file).

`parse_yaml_value(text)` reads one `-p KEY VALUE` value as the notebooks' parameters take it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from axiom.errors import AxiomError, ConfigError

MAX_YAML_BYTES = 1 << 20  # a settings, endpoint or parameters file: far larger than any of them needs to be

_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # what O_NOFOLLOW gives for a symlink (Linux, the BSDs)


def _read_bytes(path: Path, what: str, error: type[AxiomError], hint: str | None, max_bytes: int) -> bytes:
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", hint=hint) from None
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise error(f"{what} {path} is a symlink, and files are opened without following links",
                        hint="give the file it points to") from None
        raise error(f"cannot read {what} {path}: {exc.strerror}", hint=hint) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise error(f"{what} {path} is {kind}, not a YAML file", hint=hint)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}", hint=hint) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes, the limit of a YAML file")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """' at line L, column C: problem (context that starts at line L2, column C2)' on one line."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark is not None:
        context = f"{context} that starts at line {cmark.line + 1}, column {cmark.column + 1}"
    detail = f"{problem} ({' '.join(str(context).split())})" if context else problem
    return f"{where}: {detail}"


def load_yaml_mapping(path: str | os.PathLike[str], *, what: str, expected: str = "a mapping",
                      error: type[AxiomError] = ConfigError, hint: str | None = None,
                      max_bytes: int = MAX_YAML_BYTES) -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty file). `what` names the kind of file in messages
    ("config file", "endpoint config"), `expected` says what the mapping holds; every problem raises `error`
    naming the file (`hint`, when given, goes with a file that is missing or cannot be read)."""
    path = Path(path)
    data = _read_bytes(path, what, error, hint, max_bytes)
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML{_yaml_problem(exc)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must hold {expected}, got {type(raw).__name__}")
    return raw


def parse_yaml_value(text: str) -> Any:  # boundary: a YAML value (int, float, str, None, list, dict)
    """A YAML scalar or flow value (3 -> int, null -> None, [a, b] -> list), else `text` itself."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
