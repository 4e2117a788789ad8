"""What the notebooks import: `open_session(...)`, or `notebook_settings()` for a notebook without a pipeline.

A session builds the settings from the settings file + environment + the notebook's parameters (through
`Settings.with_overrides`, the one override path of every face) and anchors their relative paths (data/,
.axiom/, evaluation/runs) to the project folder (`Settings.anchored`), as do the session's own path parameters
(`in_project`): relative paths mean what they mean for the CLI run from the project folder, whatever the
kernel's working folder, which the session never changes. The runner gives every notebook the project folder
and the command's settings file as the `project_root` and `config` parameters; run by hand (both ""), the
session finds them itself (`find_project_root`, `settings_file`).
A session shares one embedding model per kernel (`shared_embedder`): an `axiom.embeddings.CachingEmbedder`,
memoised by the sha256 of each text, so that runs in the same kernel never embed the same text twice (and,
through the persistent embedding cache, later kernels neither).
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
from typing import TYPE_CHECKING, Any, overload

from axiom.errors import UsageError
from axiom.notebook.parameter_table import SETTING_OF

if TYPE_CHECKING:
    from axiom.config import Settings
    from axiom.embeddings import CachingEmbedder
    from axiom.evaluation.run_folder import RunRecord
    from axiom.pipeline import RAGPipeline
    from axiom.types import IngestReport

# set by the user or `make lab` for notebooks run by hand; the runner passes the `project_root` parameter
PROJECT_ROOT_ENV = "AXIOM_PROJECT_ROOT"
NOTEBOOKS_DIR = "notebooks"


def find_project_root(given: str | os.PathLike[str] | None = None) -> Path:
    """The project folder (holding config.yaml): `given` (the runner's `project_root` parameter) when not
    empty; else $AXIOM_PROJECT_ROOT; else the first parent of the working folder with config.yaml and
    notebooks/ (JupyterLab serving the project: a notebook's kernel starts in notebooks/); else the checkout
    this package was installed from; else the working folder."""
    if given:
        return Path(given).resolve()
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


def settings_file(given: str | os.PathLike[str] | None, root: Path, *,
                  relative_to: Path | None = None) -> Path | None:
    """The settings file of a notebook or of the command that runs it: `given` (--config, or the `config`
    parameter), else $AXIOM_CONFIG, a relative one against `relative_to` (default: the project folder `root`);
    else the project's config.yaml when there is one; else None (the defaults)."""
    named = given or os.environ.get("AXIOM_CONFIG")
    if named:
        return ((relative_to or root) / named).resolve()  # an absolute path stays where it is
    default = root / "config.yaml"
    return default if default.is_file() else None


@overload
def in_project(value: list[str] | list[Path], root: str | os.PathLike[str] | None) -> list[str]: ...
@overload
def in_project(value: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None) -> str | None: ...
def in_project(value: str | os.PathLike[str] | list[str] | list[Path] | None,
               root: str | os.PathLike[str] | None) -> str | list[str] | None:
    """A path parameter's value (or a list of them) against the project folder `root` ("": found, see
    `find_project_root`): relative paths made absolute against it (as text, what the package's functions
    take), None for a value not given (None, "")."""
    base = find_project_root(root)
    if isinstance(value, list):
        return [str((base / str(v)).resolve()) for v in value]
    given = _given(value)
    return None if given is None else str((base / given).resolve())


@overload
def _given(value: str | os.PathLike[str] | None) -> str | None: ...
@overload
def _given(value: object) -> object: ...
def _given(value: object) -> object:
    """A notebook parameter's value, or None when it was not given (None or ""); a path as its text."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return None if value is None or value == "" else value


def _as_path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def notebook_settings(*, project_root: str | None = None, config: str | None = None,
                      **parameters: object) -> Settings:
    """Settings from the settings file + environment + the notebook's setting parameters (keywords: the
    parameters that have a settings field in parameter_table.py, `SETTING_OF`; None or "" leaves a setting
    alone), their relative paths anchored to the project folder.

    `project_root` and `config`: the notebook's parameters of those names ("": found, see
    `find_project_root` and `settings_file`). The working directory is left alone. Sets the process
    environment defaults (`axiom.observability.apply_process_defaults`), as the other faces do.
    """
    from axiom.config import load_settings
    from axiom.observability import apply_process_defaults

    unknown = sorted(set(parameters) - set(SETTING_OF))
    if unknown:
        raise UsageError(f"not a setting parameter: {', '.join(unknown)}",
                         hint="setting parameters: " + ", ".join(SETTING_OF))
    apply_process_defaults()
    root = find_project_root(project_root)
    overrides = {SETTING_OF[name]: _given(value) for name, value in parameters.items()}
    settings = load_settings(settings_file(config, root))
    return settings.with_overrides(overrides, origin="notebook parameters").anchored(root)


_SHARED: dict[tuple[object, ...], CachingEmbedder] = {}
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
    """What a notebook works with: settings, the shared embedder, the pipeline, the project folder (`root`:
    `path` resolves a path parameter against it), and the runner hand-off."""

    settings: Settings
    embedder: CachingEmbedder
    root: Path
    corpus: Path | None = None
    dataset: Path | None = None
    result_json: str | None = None
    _start_stats: dict[str, int] = field(default_factory=dict)

    def path(self, value: str | os.PathLike[str] | None) -> str | None:
        """A path parameter against the project folder (None when not given: None or "")."""
        return in_project(value, self.root)

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

    def report(self, record: RunRecord | None = None, **extra: object) -> Path | None:
        """Tell the runner what this notebook produced (a no-op when run by hand: result_json is empty)."""
        if not self.result_json:
            return None
        data: dict[str, Any] = {"embedding": self.embedding_stats(), **extra}
        if record is not None:  # the run as run_evaluation returned it: the sweep reads its metrics from here
            data["run_path"] = str(Path(record.path).resolve())
            data["metrics"] = record.metrics.metrics
        target = self.root / self.result_json  # the runner's is absolute
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return target


def open_session(*, corpus: str | None = None, dataset: str | None = None, result_json: str | None = None,
                 project_root: str | None = None, config: str | None = None, load_model: bool = True,
                 **settings_parameters: object) -> NotebookSession:
    """Settings, shared embedder and pipeline for a notebook, from its parameters: `corpus`, `dataset` and
    `result_json` are the session's, `project_root` and `config` say where the project and its settings file
    are ("": found), the others are setting parameters (`notebook_settings`).

    The embedding model is loaded here (so no later cell's timing includes it) unless `load_model` is False
    (BM25-only work on an existing collection needs no model).

    With no `collection`, a notebook that names a corpus uses that corpus's evaluation collection (the one
    `axiom eval --corpus` and 03_evaluate use), so 01 -> 02 -> 03 share one collection and ingest once.
    """
    root = find_project_root(project_root)
    settings = notebook_settings(project_root=str(root), config=config, **settings_parameters)
    embedder = shared_embedder(settings)
    if load_model:
        embedder.warm_up()
    corpus_path = _as_path(in_project(corpus, root))
    if corpus_path is not None and _given(settings_parameters.get("collection")) is None:
        from axiom.evaluation.runs import prepare_settings

        settings = prepare_settings(settings, corpus_path=corpus_path, model_id=embedder.model_id)
    return NotebookSession(settings=settings, embedder=embedder, root=root, corpus=corpus_path,
                           dataset=_as_path(in_project(dataset, root)), result_json=result_json or None,
                           _start_stats=embedder.stats())
