"""The type check: mypy, as pyproject.toml's [tool.mypy] configures it (default checking on axiom/, the flags
of `--strict` on axiom/evaluation and axiom/config.py, untyped third-party packages named one by one),
reports no error, and no module is left unchecked; ruff (E501 at 110 on, no file exempt) finds nothing. `make
lint` runs the same commands."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error() -> None:
    # the incremental cache (.mypy_cache) makes a re-run a few seconds; a first run takes about a minute
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout, done.stdout


def test_the_strict_override_covers_evaluation_and_config_and_nothing_hides_errors() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["files"] == ["axiom"]
    assert not config.get("ignore_missing_imports") and not config.get("ignore_errors")
    strict = [o for o in config["overrides"] if o.get("disallow_untyped_defs")]
    assert len(strict) == 1 and {"axiom.evaluation.*", "axiom.config"} <= set(strict[0]["module"])
    assert not any(o.get("ignore_errors") for o in config["overrides"])  # no module skipped
    assert all(strict[0].get(flag) for flag in ("disallow_any_generics", "disallow_untyped_calls",
                                                 "warn_return_any", "strict_equality", "extra_checks"))
    assert strict[0]["implicit_reexport"] is False
    # `strict = true` in an override turns strict on for every module (mypy 2.4): the flags are spelled out
    assert not any("strict" in o for o in config["overrides"])


def test_ruff_finds_nothing_with_lines_at_110_and_no_file_exempt() -> None:
    """`make lint`'s first command, in `make test` too: ruff over axiom/, tests/ and bench/, E501 (line length
    110) among its rules and no file exempt from it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    assert config["line-length"] == 110 and "E" in config["lint"]["select"]
    assert not config["lint"].get("per-file-ignores") and "E501" not in config["lint"].get("ignore", [])
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), "check", "--no-cache", "axiom", "tests", "bench"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
