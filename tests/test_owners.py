"""One owner per decision (issue 28, item 4), enforced on the source of `axiom/`:
- only `axiom/embeddings.py` puts a model behind the embedding memo or sets a memo's disk level (every other
  module calls `caching_embedder`, the one function that decides it);
- only `axiom/evaluation/naming.py` formats the UTC stamp that starts the name of every folder a run writes;
- only `axiom/yaml_mapping.py` may import PyYAML (an import-linter contract, checked here to be declared).
The names themselves are pinned by tests/evaluation/test_naming.py, the YAML loader's messages by
tests/core/test_yaml_mapping.py, ingest's explicit choice by tests/core/test_embedding_cache.py."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "axiom"

WRAPPER = "axiom/embeddings.py"
# opening the cache file itself (not wrapping a model): the cache's own module and `axiom cache` stats/clear
CACHE_FILE_OPENERS = {WRAPPER, "axiom/embedding_cache.py", "axiom/cli/cache.py"}
NAMING = "axiom/evaluation/naming.py"
# the stamp of a quarantined corrupt cache file: not a run's or collection's name, and embedding_cache_file.py
# (below the stages) cannot import naming.py (floor 4)
STAMP_ELSEWHERE = {"axiom/embedding_cache_file.py"}


def _callee(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def wrapping_sites(source: str) -> list[tuple[int, str]]:
    """(line, what) of every place in `source` that wraps a model in a memo, sets a memo's disk level or opens
    a disk level by itself, and of every call of `caching_embedder`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _callee(node) in {"CachingEmbedder", "caching_embedder",
                                                            "persistent_cache", "shared_cache",
                                                            "PersistentEmbeddingCache"}:
            found.append((node.lineno, f"{_callee(node)}()"))
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and _callee(node) == "setattr" and len(node.args) > 1:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value == "persistent":
                found.append((node.lineno, ".persistent ="))
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and part.attr == "persistent":
                    found.append((node.lineno, ".persistent ="))
    return found


def _modules() -> dict[str, str]:
    sources = {p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}
    assert len(sources) > 40
    return sources


def test_the_scan_sees_every_way_of_wrapping() -> None:
    sample = ("memo = CachingEmbedder(model)\nmemo.persistent = None\nself.memo.persistent: object = x\n"
              "setattr(memo, 'persistent', x)\ndisk = persistent_cache(settings)\n"
              "other = embeddings.CachingEmbedder(model, persistent=shared_cache(path))\n"
              "fine = caching_embedder(settings, model)\nmemo.embed(['a'])\n")
    assert sorted(wrapping_sites(sample)) == [
        (1, "CachingEmbedder()"), (2, ".persistent ="), (3, ".persistent ="), (4, ".persistent ="),
        (5, "persistent_cache()"), (6, "CachingEmbedder()"), (6, "shared_cache()"), (7, "caching_embedder()")]


def test_only_caching_embedder_wraps_an_embedder_or_sets_its_disk_level() -> None:
    sites = {name: wrapping_sites(source) for name, source in _modules().items()}
    foreign = {name: [(line, what) for line, what in found if what != "caching_embedder()"
                      and not (what == "PersistentEmbeddingCache()" and name in CACHE_FILE_OPENERS)]
               for name, found in sites.items() if name != WRAPPER}
    foreign = {name: found for name, found in foreign.items() if found}
    assert not foreign, f"wrap through axiom.embeddings.caching_embedder instead: {foreign}"
    # the faces and floors that need a memo do call the one function (so the scan is not vacuous)
    callers = {name for name, found in sites.items()
               if name != WRAPPER and any(what == "caching_embedder()" for _, what in found)}
    assert callers == {"axiom/pipeline.py", "axiom/evaluation/runs.py", "axiom/notebook/session.py",
                       "axiom/evaluation/answer_metrics/__init__.py",
                       "axiom/evaluation/answer_metrics/ragas_adapter.py"}, callers
    assert any(what == "CachingEmbedder()" for _, what in sites[WRAPPER])


def _string_constants(source: str) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_only_the_naming_module_stamps_folder_names() -> None:
    from axiom.evaluation.naming import STAMP_FORMAT

    compact = STAMP_FORMAT.removesuffix("Z")  # %Y%m%dT%H%M%S, with or without the Z
    users = {name for name, source in _modules().items()
             if any(compact in text for _, text in _string_constants(source))}
    assert users == {NAMING} | STAMP_ELSEWHERE, users


def test_only_the_yaml_helper_may_import_yaml() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"] if "id" in c}
    owner = contracts["owner-yaml"]
    assert owner["protected_modules"] == ["yaml"] and owner["allowed_importers"] == ["axiom.yaml_mapping"]
    importers = {name for name, source in _modules().items() for node in ast.walk(ast.parse(source))
                 if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "yaml" for a in node.names))
                 or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "yaml")}
    assert importers == {"axiom/yaml_mapping.py"}, importers
