"""`axiom cache stats [--json]` and `axiom cache clear [--json]`: the persistent embedding cache
(`axiom/embedding_cache.py`) of the settings: by default `embedding-cache/` beside the store,
`embeddings.cache_dir` when set. `clear` deletes every vector (of every model) and compacts the file; the next
runs embed again."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from axiom.cli.options import Subparsers
from axiom.cli.output import emit
from axiom.config import Settings
from axiom.errors import AxiomError

if TYPE_CHECKING:
    from axiom.embedding_cache import PersistentEmbeddingCache


def _open(settings: Settings) -> PersistentEmbeddingCache:
    from axiom.embedding_cache import FILE_NAME, MB, PersistentEmbeddingCache  # lazy: `axiom --help` is fast

    path = settings.embedding_cache_dir / FILE_NAME
    return PersistentEmbeddingCache(path, int(settings.embeddings.cache_max_mb * MB))


def _unusable(cache: PersistentEmbeddingCache) -> AxiomError:
    return AxiomError(f"the embedding cache {cache.path} cannot be used: {cache.problem}",
                      hint="fix or delete the file (evaluations run without it meanwhile)")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    cache = _open(settings)
    try:
        stats = cache.stats()
    finally:
        cache.close()
    if stats["exists"] and not stats["available"]:
        raise _unusable(cache)
    payload = {"enabled": settings.embeddings.cache_enabled, **{k: v for k, v in stats.items()
                                                                 if k not in ("hits", "misses", "writes")}}
    lines = [f"embedding cache: {stats['path']}"
             + ("" if payload["enabled"] else " (off: embeddings.cache_enabled)"),
             f"vectors: {stats['vectors']} in {_mb(stats['file_bytes'])} (bound {_mb(stats['max_bytes'])})"
             if stats["exists"] else "vectors: 0 (no cache file yet)"]
    lines += [f"  {m['model']}: {m['vectors']} vectors" for m in stats["models"]]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_clear(args: argparse.Namespace, settings: Settings) -> int:
    cache = _open(settings)
    try:
        removed = cache.clear()
        stats = cache.stats()
    finally:
        cache.close()
    if stats["exists"] and not stats["available"]:
        raise _unusable(cache)
    payload = {"path": stats["path"], "removed": removed, "file_bytes": stats["file_bytes"]}
    emit(args, payload, f"embedding cache {stats['path']}: {removed} vectors removed")
    return 0


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("cache", help="the persistent embedding cache: what it holds, or empty it")
    sub = p.add_subparsers(dest="cache_command", required=True, parser_class=type(p))
    s = sub.add_parser("stats",
                       help="where the cache is, how many vectors of which models it holds, its size")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(handler=cmd_stats)
    c = sub.add_parser("clear",
                       help="delete every cached vector (texts are embedded again on their next use)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=cmd_clear)
