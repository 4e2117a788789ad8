"""Settings and config files for the evaluation tests (everything under a temporary folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from axiom.config import ENV_VARS, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
TINY_CORPUS = REPO / "tests" / "fixtures" / "tiny_corpus"
TINY_GOLDEN = REPO / "tests" / "fixtures" / "tiny_golden.jsonl"


def _base(root: Path) -> dict[str, Any]:
    return {"store": {"path": str(root / "chroma"), "bm25_dir": str(root / "bm25")},
            "evaluation": {"runs_dir": str(root / "runs"), "judge_cache_dir": str(root / "judge-cache")},
            "embeddings": {"cache_dir": str(root / "embedding-cache")},
            "logging": {"format": "text", "level": "WARNING"}}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return base


def build_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(REPO / "config.yaml", environ={}, overrides=_merge(_base(root), overrides))


def write_config(root: Path, **overrides: Any) -> Path:
    """A config.yaml for CLI tests: the repository's, with every path under `root`."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    for section, values in _merge(_base(root), overrides).items():
        data.setdefault(section, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(ENV_VARS) + ["AXIOM_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
