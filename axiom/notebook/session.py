"""What the notebooks import: `open_session(...)`, or `notebook_settings()` for a notebook without a pipeline.

A session builds the settings from config.yaml + environment + the notebook's parameters (through
`Settings.with_overrides`, the one override path of every face), works from the project root like the CLI,
and shares one embedding model per kernel (`shared_embedder`): an `axiom.embeddings.CachingEmbedder`, memoised
by the sha256 of each text, so that runs in the same kernel never embed the same text twice (and, through the
persistent embedding cache, later kernels neither).
`NotebookSession.report` is the notebook's side of the runner hand-off (the `result_json` parameter).

Cheap to import: nothing heavy (no papermill, no model) is loaded before a session is opened.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import UsageError
from axiom.notebook.parameter_table import SETTING_OF

if TYPE_CHECKING:
    from axiom.config import Settings
    from axiom.embeddings import CachingEmbedder
    from axiom.evaluation.run_folder import RunRecord
    from axiom.pipeline import RAGPipeline
    from axiom.types import IngestReport

PROJECT_ROOT_ENV = "AXIOM_PROJECT_ROOT"
NOTEBOOKS_DIR = "notebooks"


def project_root() -> Path:
    """The project folder (holding config.yaml): $AXIOM_PROJECT_ROOT, else the first parent of the working
    folder with config.yaml and notebooks/, else the checkout this package was installed from, else cwd."""
    env = os.environ.get(PROJECT_ROOT_ENV)
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "config.yaml").is_file() and (folder / NOTEBOOKS_DIR).is_dir():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "config.yaml").is_file():
        return checkout
    return here


def _given(value: Any) -> Any:
    """A notebook parameter's value, or None when it was not given (None or "")."""
    return None if value is None or value == "" else value


def notebook_settings(*, collection: str | None = None, retriever: str | None = None,
                      top_k: int | None = None,
                      chunk_size: int | None = None, chunk_overlap: int | None = None,
                      chroma_path: str | None = None, chroma_host: str | None = None,
                      chroma_port: int | None = None, config: str | None = None) -> Settings:
    """Settings from config.yaml + environment + notebook parameters (None or "" leaves a setting alone).

    Changes the working directory to the project root, so relative paths (data/, .axiom/, evaluation/runs)
    mean what they mean for the CLI wherever Jupyter was started. Sets the process environment defaults
    (`axiom.observability.apply_process_defaults`), as the other faces do.
    """
    from axiom.config import load_settings
    from axiom.observability import apply_process_defaults

    apply_process_defaults()
    os.chdir(project_root())
    given = {"collection": collection, "chroma_path": chroma_path, "chroma_host": chroma_host,
             "chroma_port": chroma_port, "retriever": retriever, "top_k": top_k, "chunk_size": chunk_size,
             "chunk_overlap": chunk_overlap}
    overrides = {SETTING_OF[name]: _given(value) for name, value in given.items()}  # the table's fields
    if overrides["store.path"] is not None:
        overrides["store.path"] = str(overrides["store.path"])
    return load_settings(config or None).with_overrides(overrides, origin="notebook parameters")


_SHARED: dict[tuple[Any, ...], CachingEmbedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(settings: Settings) -> CachingEmbedder:
    """One embedding model per kernel (per distinct embedding settings), memoised by content hash in memory
    and in the persistent embedding cache of the settings."""
    from axiom.embeddings import caching_embedder, make_embedder

    e = settings.embeddings
    key = (e.provider, e.model, e.batch_size, e.device, settings.generation.base_url)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = caching_embedder(settings, make_embedder(e, settings.generation))
        else:
            # the same model and memory memo; the disk level of these settings (a kernel runs one at a time)
            caching_embedder(settings, _SHARED[key], rebind=True)
        return _SHARED[key]


@dataclass
class NotebookSession:
    """What a notebook works with: settings, the shared embedder, the pipeline, and the runner hand-off."""

    settings: Settings
    embedder: CachingEmbedder
    corpus: Path | None = None
    dataset: Path | None = None
    result_json: str | None = None
    _start_stats: dict[str, int] = field(default_factory=dict)

    @cached_property
    def pipeline(self) -> RAGPipeline:
        from axiom.pipeline import RAGPipeline
        from axiom.store import ChromaStore

        # the kernel's one memo also holds the chunk vectors: a corpus re-ingested into another collection (a
        # chunking sweep, another store) finds them there or in the persistent cache
        return RAGPipeline(self.settings, self.embedder, ChromaStore(self.settings.store),
                           cache_chunk_vectors=True)

    def ingest(self, *, prune: bool = True, progress: bool = True) -> IngestReport:
        """Ingest the session's corpus (incremental; a tqdm.auto progress bar in Jupyter)."""
        if self.corpus is None:
            raise UsageError("this notebook has no corpus parameter set")
        return self.pipeline.ingest([self.corpus], prune=prune, progress=progress)

    def ensure_ingested(self) -> IngestReport | None:
        """Ingest the corpus when the collection is missing or empty (a query notebook run on its own)."""
        if self.pipeline.store.get_collection() is not None and self.pipeline.store.count() > 0:
            return None
        if self.corpus is None:
            raise UsageError(f"collection {self.settings.store.collection!r} is empty",
                             hint="run 01_ingest.ipynb first or set the corpus parameter")
        return self.ingest()

    def embedding_stats(self) -> dict[str, int]:
        """Embedding work since this session opened: texts asked for, embedded, and served from the memo (with
        the persistent cache on: from memory and from disk)."""
        now = self.embedder.stats()
        out: dict[str, int] = {k: now[k] - self._start_stats.get(k, 0)
               for k in ("texts_requested", "texts_embedded", "cache_hits", "memory_hits", "disk_hits")
               if k in now}
        out["cached_vectors"] = now["cached_vectors"]
        return out

    def report(self, record: RunRecord | None = None, **extra: Any) -> Path | None:
        """Tell the runner what this notebook produced (a no-op when run by hand: result_json is empty)."""
        if not self.result_json:
            return None
        data: dict[str, Any] = {"embedding": self.embedding_stats(), **extra}
        if record is not None:  # the run as run_evaluation returned it: the sweep reads its metrics from here
            data["run_path"] = str(Path(record.path).resolve())
            data["metrics"] = record.metrics.get("metrics", {})
        target = Path(self.result_json)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return target


def open_session(*, corpus: str | None = None, dataset: str | None = None, collection: str | None = None,
                 retriever: str | None = None, top_k: int | None = None, chunk_size: int | None = None,
                 chunk_overlap: int | None = None, chroma_path: str | None = None,
                 chroma_host: str | None = None,
                 chroma_port: int | None = None, result_json: str | None = None,
                 load_model: bool = True) -> NotebookSession:
    """Settings, shared embedder and pipeline for a notebook, from its parameters.

    The embedding model is loaded here (so no later cell's timing includes it) unless `load_model` is False
    (BM25-only work on an existing collection needs no model).

    With no `collection`, a notebook that names a corpus uses that corpus's evaluation collection (the one
    `axiom eval --corpus` and 03_evaluate use), so 01 -> 02 -> 03 share one collection and ingest once.
    """
    settings = notebook_settings(collection=collection, retriever=retriever, top_k=top_k,
                                 chunk_size=chunk_size,
                                 chunk_overlap=chunk_overlap, chroma_path=chroma_path,
                                 chroma_host=chroma_host,
                                 chroma_port=chroma_port)
    embedder = shared_embedder(settings)
    if load_model:
        embedder.warm_up()
    corpus_path = Path(corpus).resolve() if corpus else None  # given: neither None nor ""
    if corpus_path is not None and _given(collection) is None:
        from axiom.evaluation.runs import prepare_settings

        settings = prepare_settings(settings, corpus_path=corpus_path, model_id=embedder.model_id)
    return NotebookSession(settings=settings, embedder=embedder, corpus=corpus_path,
                           dataset=Path(dataset).resolve() if dataset else None,
                           result_json=result_json or None, _start_stats=embedder.stats())
