"""Settings for a test, with every path under a temporary folder: the one builder the test folders share.

`build_settings(root, **overrides)` gives the `Settings` (the repository's config.yaml, no environment but an
`environ` given), and
`write_config(root, **overrides)` writes them as `root/config.yaml` for a test that drives the CLI, `axiom
serve` or a notebook kernel through a file. Overrides are nested dicts per section
(`store={"collection": "x"}`); each section's keys are merged into the defaults below. Logs are quiet text
(WARNING), so that a CLI test sees only what it asserts on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from axiom.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "config.yaml"


def temp_paths(root: Path, **overrides: Any) -> dict[str, dict[str, Any]]:
    """The settings that point outside a test's folder (store, BM25, runs, caches), under `root`, plus
    `overrides` (merged per section)."""
    data: dict[str, dict[str, Any]] = {
        "store": {"path": str(root / "chroma"), "bm25_dir": str(root / "bm25")},
        "evaluation": {"runs_dir": str(root / "runs"), "judge_cache_dir": str(root / "judge-cache")},
        "embeddings": {"cache_dir": str(root / "embedding-cache")},
        "logging": {"format": "text", "level": "WARNING"}}
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return data


def build_settings(root: Path, *, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """The repository's settings with every path under `root`; environment variables only from `environ`."""
    return load_settings(REPO_CONFIG, environ=environ or {}, overrides=temp_paths(root, **overrides))


def write_config(root: Path, **overrides: Any) -> Path:
    """`root/config.yaml`: the repository's config.yaml with every path under `root` (made if missing)."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    for section, values in temp_paths(root, **overrides).items():
        data.setdefault(section, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
