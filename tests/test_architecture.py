"""The architecture of docs/ARCHITECTURE.md, enforced: the import-linter contracts of pyproject.toml (five
floors, no import cycle, one owner per external library) hold on the package, and they do catch a violation;
no module of `axiom/` has more than 400 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_MODULE_LINES = 400


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300,
                          check=False)


def test_the_import_contracts_hold() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    kept = done.stdout.count(" KEPT")
    declared = (REPO / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert kept == declared >= 10, done.stdout


def test_the_contracts_catch_a_layer_violation_a_cycle_and_a_foreign_import(tmp_path: Path) -> None:
    shutil.copytree(REPO / "axiom", tmp_path / "axiom", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "axiom" / "config.py").open("a") as f:  # the foundation importing a face
        f.write("\n\ndef _face():\n    from axiom.cli import main\n    return main\n")
    # a lazy import closing a cycle
    with (tmp_path / "axiom" / "evaluation" / "run_folder.py").open("a") as f:
        f.write("\n\ndef _cycle():\n    from axiom.evaluation.runs import run_evaluation\n  "
                "  return run_evaluation\n")
    with (tmp_path / "axiom" / "pipeline.py").open("a") as f:  # chromadb outside its owner
        f.write("\n\ndef _foreign():\n    import chromadb\n    return chromadb\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    report = done.stdout
    assert "3 broken" in report, report
    for needle in ("axiom.config -> axiom.cli", "No cycles are allowed in axiom.evaluation",
                   ".run_folder -> .runs",
                   "axiom.pipeline -> chromadb"):
        assert needle in report, (needle, report)


def test_no_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in (REPO / "axiom").rglob("*.py")}
    assert len(sizes) > 40
    too_big = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big, f"split these modules (more than {MAX_MODULE_LINES} lines): {too_big}"
