"""Every data file inside the package is declared as package data, so the wheel the images install carries it
(the groundedness model: without it every evaluation in a container would fail to load the model)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_data_file_of_the_package_is_package_data() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"].get(
        "package-data", {})
    data_files = [p for p in (REPO / "axiom").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                  and "__pycache__" not in p.parts]
    assert data_files, "expected the groundedness model among the package's data files"
    missing = []
    for path in data_files:
        package = ".".join(path.parent.relative_to(REPO).parts)
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in declared.get(package, [])):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"not in [tool.setuptools.package-data] of pyproject.toml: {missing}"
