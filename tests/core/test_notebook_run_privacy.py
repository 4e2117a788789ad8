"""Run folders written by `axiom notebooks run` (`<stamp>-<name>-notebooks`, `<stamp>-<name>-failed`) are
private like `axiom eval`'s: folders 0700 and files 0600, whatever the umask (issue 24). The executed
notebooks hold the questions and answers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from axiom.notebook.runner import _keep_failed, _private_files, _private_folder


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_failed_run_keeps_its_notebooks_in_a_private_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    old = os.umask(0o000)  # the most permissive umask: every mode below is set, not inherited
    try:
        _private_folder(out)
        work = out / ".nb-eval-1"
        _private_folder(work)
        (work / "03_evaluate.ipynb").write_text('{"cells": ["what is the secret question?"]}')
        (work / "kernel.log").write_text("kernel log")
        (work / "03_evaluate.ipynb").chmod(0o666)
        (work / "kernel.log").chmod(0o644)
        assert mode(out) == mode(work) == 0o700
        dest = _keep_failed(work, out, "eval", None)
    finally:
        os.umask(old)
    assert dest.name.endswith("-eval-failed") and not work.exists()
    assert mode(dest) == 0o700
    assert {p.name: mode(p) for p in dest.iterdir()} == {"03_evaluate.ipynb": 0o600, "kernel.log": 0o600}


def test_private_files_tightens_an_existing_folder_and_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "2026-eval-notebooks"
    folder.mkdir()
    folder.chmod(0o755)
    for name in ("01_ingest.ipynb", "report.html"):
        (folder / name).write_text(name)
        (folder / name).chmod(0o644)
    _private_files(folder)
    assert mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {"01_ingest.ipynb": 0o600, "report.html": 0o600}
