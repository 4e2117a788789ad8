"""Settings and config files for the evaluation tests (everything under a temporary folder): `build_settings`
and `write_config` are the shared builder of tests/support/settings.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from axiom.config import ENV_VARS
from axiom.evaluation.verdict_entry import VerdictEntry
from tests.support.settings import build_settings, write_config

__all__ = ["REPO", "TINY_CORPUS", "TINY_GOLDEN", "build_settings", "clean_env", "write_config"]

REPO = Path(__file__).resolve().parents[2]
TINY_CORPUS = REPO / "tests" / "fixtures" / "tiny_corpus"
TINY_GOLDEN = REPO / "tests" / "fixtures" / "tiny_golden.jsonl"


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(ENV_VARS) + ["AXIOM_CONFIG"]:
        monkeypatch.delenv(name, raising=False)


def keys_in_order(value: object) -> object:
    """Every mapping's keys in order, nested: two JSON values with the same result serialise alike."""
    if isinstance(value, dict):
        return [(k, keys_in_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [keys_in_order(v) for v in value]
    return value


def verdict_entry(**values: object) -> VerdictEntry:
    """A VerdictEntry of a comparison no question of which was measured in both runs, with `values` set (the
    fields a test needs)."""
    core: dict[str, object] = {
        "n": 0, "a": None, "b": None, "delta": None, "ci": [None, None], "interval": None, "p": None,
        "p_adj": None, "mde": None, "mde_method": None, "sd": None, "wins": 0, "losses": 0, "ties": 0,
        "groups": 0, "design_effect": None, "untied": 0, "smallest_p": None}
    return VerdictEntry.from_dict(core | values)
