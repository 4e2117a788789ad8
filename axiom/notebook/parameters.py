"""Notebook parameters as the commands take them: `-p KEY VALUE` values, `--params FILE.yaml`, and the
parameters that name files or folders (made absolute against the caller's working directory; which ones:
parameter_table.py).

What a notebook declares is read by papermill (`axiom.notebook.engine.notebook_parameters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axiom.errors import UsageError
from axiom.notebook.parameter_table import PATH_PARAMETERS
from axiom.yaml_mapping import load_yaml_mapping, parse_yaml_value


def parse_value(text: str) -> Any:  # boundary: a YAML value (int, float, str, None, list, dict)
    """A `-p KEY VALUE` value: YAML scalars (3 -> int, null -> None, [a, b] -> list), else the string."""
    return parse_yaml_value(text)


def absolute_paths(params: Mapping[str, object], base: Path | None = None) -> dict[str, Any]:
    """Relative paths among the path parameters made absolute against `base` (default: the working directory),
    as a command line user means them; the notebooks themselves resolve relative paths against the project."""
    base = base or Path.cwd()

    def fix(value: object) -> object:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str((base / value).resolve())
        return value

    out: dict[str, Any] = dict(params)
    for key in PATH_PARAMETERS:
        if key in out:
            out[key] = [fix(v) for v in out[key]] if isinstance(out[key], list) else fix(out[key])
    return out


def load_params_file(path: str | Path) -> dict[str, Any]:
    """The parameters of a `--params FILE.yaml` (UsageError naming the file when it is not such a mapping)."""
    data = load_yaml_mapping(path, what="parameters file", expected="a mapping of parameter names to values",
                             error=UsageError)
    return {str(k): v for k, v in data.items()}
