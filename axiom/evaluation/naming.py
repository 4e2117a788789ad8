"""Names derived from user input: run folder labels and ChromaDB collection names."""

from __future__ import annotations

import hashlib
import re

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """`name` as a file-name-safe label ([A-Za-z0-9._-], at most 80 characters, `run` when nothing is left)."""
    cleaned = _NAME_OK.sub("-", name).strip("-.") or "run"
    return cleaned[:80]


def collection_name(prefix: str, label: str, model_id: str, *, salt: str | None = None) -> str:
    """A ChromaDB-safe collection name like `beir-scifact-all-minilm-l6-v2` (3-512 chars, [a-z0-9._-])."""
    parts = [prefix, label] + ([salt] if salt else []) + [model_id.rsplit("/", 1)[-1]]
    name = re.sub(r"[^a-z0-9._-]+", "-", "-".join(parts).lower()).strip("-._")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) > 200:
        name = name[:190] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name if len(name) >= 3 else f"{name}-col"
