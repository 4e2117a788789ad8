"""The notebook face: the batch runner (papermill) and the kernel side of its contract.

papermill is imported here and nowhere else (lazily, so notebooks importing this module do not pay for it).

Runner (`axiom notebooks run`, `axiom sweep`):
    run_notebooks(settings, ["01_ingest", "03_evaluate"], params, out_dir=..., name=...)
executes the notebooks in order with papermill, in-process, in one warm `python3` kernel (started once; the
user namespace is reset before each notebook, so a notebook never sees another's variables, while imported
modules and the loaded embedding model stay, which is what makes a sweep cheap). `fresh_kernels=True` gives
each notebook a kernel of its own instead. Executed copies are written as the cells run into a working
folder under the output folder; when a notebook produced an evaluation run folder, the executed notebooks and
`report.html` (the evaluation notebook rendered by nbconvert without code cells) are moved into it, next to
manifest.json / metrics.json / results.parquet. Otherwise they go to `<out>/<UTC timestamp>-<name>-notebooks`.
A failing cell stops the run with a NotebookError naming the notebook, the cell and the error; the partially
executed notebook is kept (in the run folder if there is one, else in `<out>/<timestamp>-<name>-failed`).
Kernels get the command's environment plus AXIOM_PROJECT_ROOT and, when the command was given `--config`,
AXIOM_CONFIG, so a notebook builds the same settings as the command that runs it.

How the runner learns the run folder: a notebook that declares a `result_json` parameter gets a path in the
working folder and writes `{"run_path": ..., ...}` there (`NotebookSession.report`); nothing is parsed out of
cell outputs.

Kernel side (what the notebooks call): `open_session(...)` builds the settings from config.yaml + environment
+ the notebook's parameters (`load_settings(overrides=...)`, the notebook being a face), works from the
project root like the CLI, and shares one embedding model per kernel (`shared_embedder`), memoised by the
sha256 of each text so that runs in the same kernel never embed the same text twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from axiom.errors import AxiomError, NotebookError, UsageError

if TYPE_CHECKING:
    from axiom.config import Settings
    from axiom.embeddings import Embedder
    from axiom.evaluation.runs import RunRecord
    from axiom.pipeline import RAGPipeline
    from axiom.types import IngestReport

log = logging.getLogger(__name__)

PROJECT_ROOT_ENV = "AXIOM_PROJECT_ROOT"
NOTEBOOKS_DIR = "notebooks"
DEFAULT_NOTEBOOKS = ("01_ingest", "03_evaluate")
EVALUATION_NOTEBOOK = "03_evaluate"
KERNEL_NAME = "python3"
REPORT_HTML = "report.html"
RESULT_PARAMETER = "result_json"
# parameters that name files or folders: the CLI resolves them against its working directory
PATH_PARAMETERS = ("corpus", "dataset", "chroma_path", "out_dir", "runs", "baseline")
ENGINE_NAME = "axiom-warm-kernel"
# imported by a new warm kernel before its first notebook (each name guarded: a missing one is the notebook's error)
PRELOAD = "\n".join(f"try:\n    import {m}\nexcept Exception:\n    pass" for m in (
    "sentence_transformers", "matplotlib.pyplot", "pandas", "axiom.notebook_runner", "axiom.reporting",
    "axiom.evaluation"))


# =====================================================================================================
# Kernel side: what the notebooks call
# =====================================================================================================
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
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "config.yaml").is_file():
        return checkout
    return here


def _given(value: Any) -> bool:
    return value is not None and value != ""


def notebook_settings(*, collection: str | None = None, retriever: str | None = None, top_k: int | None = None,
                      chunk_size: int | None = None, chunk_overlap: int | None = None,
                      chroma_path: str | None = None, chroma_host: str | None = None,
                      chroma_port: int | None = None, config: str | None = None) -> Settings:
    """Settings from config.yaml + environment + notebook parameters (None or "" leaves a setting alone).

    Changes the working directory to the project root, so relative paths (data/, .axiom/, evaluation/runs)
    mean what they mean for the CLI wherever Jupyter was started.
    """
    from axiom.config import load_settings

    os.chdir(project_root())
    overrides: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if _given(value):
            overrides.setdefault(section, {})[key] = value

    put("store", "collection", collection)
    put("store", "path", str(chroma_path) if _given(chroma_path) else None)
    put("store", "host", chroma_host)
    put("store", "port", chroma_port)
    put("retrieval", "retriever", retriever)
    put("retrieval", "top_k", top_k)
    put("chunking", "chunk_size", chunk_size)
    put("chunking", "chunk_overlap", chunk_overlap)
    return load_settings(config or None, overrides=overrides)


class MemoEmbedder:
    """An Embedder that remembers the vectors it computed, keyed by the sha256 of the text (bounded LRU).

    Shared by every run in one kernel: a question, a chunk or a sentence embedded once is never embedded
    again, whatever run asks. Counters tell how much work was saved (`stats()`).
    """

    def __init__(self, inner: Embedder, max_entries: int = 200_000) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.max_entries = max_entries
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.requested = 0
        self.embedded = 0

    def __getattr__(self, name: str) -> Any:  # anything else (warm_up, model, max_seq_length...) is the model's
        return getattr(self.inner, name)

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.embed([])
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        with self._lock:
            missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        if missing:
            fresh = self.inner.embed(list(missing.values()))
        with self._lock:
            self.requested += len(texts)
            if missing:
                self.embedded += len(missing)
                for k, v in zip(missing, fresh, strict=True):
                    self._vectors[k] = v
            rows = []
            for k in keys:
                self._vectors.move_to_end(k)
                rows.append(self._vectors[k])
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)
        return np.vstack(rows).astype(np.float32, copy=False)

    def stats(self) -> dict[str, int]:
        return {"texts_requested": self.requested, "texts_embedded": self.embedded,
                "cache_hits": self.requested - self.embedded, "cached_vectors": len(self._vectors)}


_SHARED: dict[tuple[Any, ...], MemoEmbedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(settings: Settings) -> MemoEmbedder:
    """One embedding model per kernel (per distinct embedding settings), memoised by content hash."""
    from axiom.embeddings import make_embedder

    e = settings.embeddings
    key = (e.provider, e.model, e.batch_size, e.device, settings.generation.base_url)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = MemoEmbedder(make_embedder(e, settings.generation))
        return _SHARED[key]


@dataclass
class NotebookSession:
    """What a notebook works with: settings, the shared embedder, the pipeline, and the runner hand-off."""

    settings: Settings
    embedder: MemoEmbedder
    corpus: Path | None = None
    dataset: Path | None = None
    result_json: str | None = None
    _start_stats: dict[str, int] = field(default_factory=dict)

    @cached_property
    def pipeline(self) -> RAGPipeline:
        from axiom.pipeline import RAGPipeline
        from axiom.store import ChromaStore

        return RAGPipeline(self.settings, self.embedder, ChromaStore(self.settings.store))

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
        """Embedding work since this session opened: texts asked for, embedded, and served from the memo."""
        now = self.embedder.stats()
        out = {k: now[k] - self._start_stats.get(k, 0) for k in ("texts_requested", "texts_embedded", "cache_hits")}
        out["cached_vectors"] = now["cached_vectors"]
        return out

    def report(self, record: RunRecord | None = None, **extra: Any) -> Path | None:
        """Tell the runner what this notebook produced (a no-op when run by hand: result_json is empty)."""
        if not self.result_json:
            return None
        data: dict[str, Any] = {"embedding": self.embedding_stats(), **extra}
        if record is not None:
            data["run_path"] = str(Path(record.path).resolve())
        target = Path(self.result_json)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return target


def open_session(*, corpus: str | None = None, dataset: str | None = None, collection: str | None = None,
                 retriever: str | None = None, top_k: int | None = None, chunk_size: int | None = None,
                 chunk_overlap: int | None = None, chroma_path: str | None = None, chroma_host: str | None = None,
                 chroma_port: int | None = None, result_json: str | None = None,
                 load_model: bool = True) -> NotebookSession:
    """Settings, shared embedder and pipeline for a notebook, from its parameters.

    The embedding model is loaded here (so no later cell's timing includes it) unless `load_model` is False
    (BM25-only work on an existing collection needs no model).

    With no `collection`, a notebook that names a corpus uses that corpus's evaluation collection (the one
    `axiom eval --corpus` and 03_evaluate use), so 01 -> 02 -> 03 share one collection and ingest once.
    """
    settings = notebook_settings(collection=collection, retriever=retriever, top_k=top_k, chunk_size=chunk_size,
                                 chunk_overlap=chunk_overlap, chroma_path=chroma_path, chroma_host=chroma_host,
                                 chroma_port=chroma_port)
    embedder = shared_embedder(settings)
    if load_model:
        _ = embedder.dimension
    corpus_path = Path(corpus).resolve() if _given(corpus) else None
    if corpus_path is not None and not _given(collection):
        from axiom.evaluation.runs import prepare_settings

        settings = prepare_settings(settings, corpus_path=corpus_path, retriever=None, top_k=None, collection=None,
                                    model_id=embedder.model_id)
    return NotebookSession(settings=settings, embedder=embedder, corpus=corpus_path,
                           dataset=Path(dataset).resolve() if _given(dataset) else None,
                           result_json=result_json or None, _start_stats=embedder.stats())


# =====================================================================================================
# Runner side: papermill
# =====================================================================================================
def notebooks_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / NOTEBOOKS_DIR


def resolve_notebook(name: str, folder: Path | None = None) -> Path:
    """`03`, `03_evaluate`, `03_evaluate.ipynb` or a path -> the notebook file."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    folder = folder or notebooks_dir()
    candidates = sorted(p for p in folder.glob("*.ipynb") if p.stem == name or p.stem.startswith(f"{name}_")
                        or p.name == name)
    if len(candidates) == 1:
        return candidates[0].resolve()
    known = ", ".join(p.stem for p in sorted(folder.glob("*.ipynb"))) or "none"
    what = "is ambiguous" if candidates else "not found"
    raise UsageError(f"notebook {name!r} {what} in {folder}", hint=f"notebooks: {known}")


def _import_papermill() -> Any:
    """`import papermill`, without building the grammar of `rfc3987_syntax` on the way.

    papermill -> nbformat -> jsonschema imports rfc3987_syntax when it is installed (jupyter_server brings it),
    and that module compiles a lark grammar at import: 1.5-5 s here, more than the rest of papermill. It only
    serves jsonschema's "iri" format checks, which nbformat never asks for; hiding it while jsonschema is first
    imported makes jsonschema skip that checker in this process.
    """
    import sys

    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import papermill

        return papermill
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  (import fails: the checker is skipped)
    try:
        import papermill
    finally:
        if sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]
    return papermill


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its `parameters` cell), with their defaults as written."""
    papermill = _import_papermill()

    return {k: v.get("default") for k, v in papermill.inspect_notebook(str(path)).items()}


def parse_value(text: str) -> Any:
    """A `-p KEY VALUE` value: YAML scalars (3 -> int, null -> None, [a, b] -> list), else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def absolute_paths(params: Mapping[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Relative paths among the path parameters made absolute against `base` (default: the working directory),
    as a command line user means them; the notebooks themselves resolve relative paths against the project."""
    base = base or Path.cwd()

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str((base / value).resolve())
        return value

    out = dict(params)
    for key in PATH_PARAMETERS:
        if key in out:
            out[key] = [fix(v) for v in out[key]] if isinstance(out[key], list) else fix(out[key])
    return out


def load_params_file(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read parameters file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"parameters file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"parameters file {path} must hold a mapping of parameter names to values")
    return {str(k): v for k, v in data.items()}


class WarmKernel:
    """One `python3` kernel kept alive across notebook executions (the namespace is reset before each)."""

    def __init__(self, cwd: Path, *, kernel_name: str = KERNEL_NAME, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.kernel_name = kernel_name
        self.log_path = log_path
        self.env = dict(env or {})
        self.km: Any = None
        self._log_file: Any = None
        self._preloading: threading.Thread | None = None
        self.start_seconds = 0.0

    def start(self) -> WarmKernel:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        t0 = time.perf_counter()
        self.km = AsyncKernelManager(kernel_name=self.kernel_name)
        kwargs: dict[str, Any] = {"cwd": str(self.cwd), "env": {**os.environ, **self.env}}
        if self.log_path is not None:  # the kernel's own stderr (its TCP warning, crashes) goes to a file
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (open for the kernel's lifetime)
            kwargs.update(stdout=self._log_file, stderr=self._log_file)
        run_sync(self.km.start_kernel)(**kwargs)
        self.start_seconds = time.perf_counter() - t0
        self._preload()
        return self

    def _preload(self) -> None:
        """Import what every notebook imports (torch, sentence-transformers, matplotlib: ~8 s) in the new kernel
        while the runner goes on importing papermill and reading the notebooks. A background thread sends the
        request and waits for its reply; the first notebook's cells queue behind it in the kernel."""
        from jupyter_client.blocking import BlockingKernelClient

        kc = BlockingKernelClient()
        kc.load_connection_info(self.km.get_connection_info())

        def send() -> None:
            kc.start_channels()
            try:
                kc.execute(PRELOAD, silent=True, store_history=False, reply=True, timeout=600)
            except Exception as exc:  # a slow or dead kernel: the notebooks will say what is wrong
                log.debug("kernel preload: %s", exc)
            finally:
                kc.stop_channels()

        self._preloading = threading.Thread(target=send, name="kernel-preload", daemon=True)
        self._preloading.start()

    @property
    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return self.km is not None and bool(run_sync(self.km.is_alive)())

    def ensure_alive(self) -> WarmKernel:
        """Start a new kernel when the last notebook killed this one (so one crash does not fail the rest)."""
        if not self.alive:
            log.warning("the kernel died; starting a new one")
            self.shutdown()
            self.start()
        return self

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=False)
            except Exception as exc:  # the kernel may already be gone; nothing else to do
                log.debug("kernel shutdown: %s", exc)
            self.km = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> WarmKernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def kernel_env(root: Path, config: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """What a kernel needs besides the inherited environment to build the same settings as the command that
    runs it: the project root, and the settings file the command was given (--config)."""
    env = {PROJECT_ROOT_ENV: str(root)}
    if config:
        env["AXIOM_CONFIG"] = str(Path(config).resolve())
    return env


@contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for kernels papermill starts itself (--fresh-kernels), then restore them."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ENGINE_REGISTERED = False


def _register_engine() -> None:
    """A papermill engine that runs a notebook in an already started kernel (papermill's engine registry)."""
    global _ENGINE_REGISTERED
    if _ENGINE_REGISTERED:
        return
    _import_papermill()
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    reset = ("get_ipython().reset(new_session=True, aggressive=False)\n"
             "import matplotlib.pyplot as _plt; _plt.close('all'); del _plt")

    class WarmClient(PapermillNotebookClient):
        def papermill_execute_cells(self) -> None:
            # a clean namespace and execution counts from 1, as in a new kernel; imported modules stay
            self.wait_for_reply(self.kc.execute(reset, silent=True, store_history=False))
            super().papermill_execute_cells()

    class WarmKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                     execution_timeout: int | None = None, **kwargs: Any) -> Any:
            kwargs = remove_args(["input_path"], **kwargs)
            safe = remove_args(["timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(safe, timeout=execution_timeout or kwargs.get("timeout"),
                                 startup_timeout=start_timeout, kernel_name=kernel_name, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            client = WarmClient(nb_man, **final)
            try:
                return client.execute()
            finally:
                if client.kc is not None:  # the kernel stays (we own it); its client for this run goes
                    client.kc.stop_channels()

    papermill_engines.register(ENGINE_NAME, WarmKernelEngine)
    _ENGINE_REGISTERED = True


@dataclass
class NotebookResult:
    notebook: str
    executed: Path
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class NotebookRun:
    """What `run_notebooks` produced."""

    folder: Path
    run_path: Path | None
    notebooks: list[NotebookResult]
    html: Path | None
    seconds: float
    html_seconds: float = 0.0

    @property
    def executed(self) -> list[Path]:
        return [n.executed for n in self.notebooks]

    def result(self, notebook: str) -> dict[str, Any]:
        for n in self.notebooks:
            if n.notebook == notebook:
                return n.result
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "run": str(self.run_path) if self.run_path else None,
                "executed": [str(p) for p in self.executed], "html": str(self.html) if self.html else None,
                "seconds": round(self.seconds, 3), "html_seconds": round(self.html_seconds, 3),
                "notebooks": {n.notebook: {"seconds": round(n.seconds, 3), **n.result} for n in self.notebooks}}


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(2, 1000):
        candidate = path.with_name(f"{path.name}-{n}")
        if not candidate.exists():
            return candidate
    raise AxiomError(f"no free folder name for {path}")


def _source_cell_number(executed: Path, cell_index: int) -> int:
    """1-based number of the failing cell in the committed notebook (papermill inserts an injected-parameters
    cell, and on error a message cell at the top, into the executed copy)."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # unreadable partial notebook: the executed-copy index is the best we have
        return cell_index + 1
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
    if tags and "papermill-error-cell-tag" in tags[0] and nb.cells[0].cell_type == "markdown":
        tags = tags[1:]
    injected = sum(1 for t in tags[:cell_index] if "injected-parameters" in t)
    return cell_index + 1 - injected


def render_html(executed: Path, target: Path) -> Path:
    """The executed notebook as HTML without code cells, prompts, stderr (logs and warnings stay in the executed
    notebook) or progress-bar widgets (no state to show offline); markdown, tables and charts remain. Each
    chart gets the nearest markdown heading above it as its alternative text."""
    import logging as _logging

    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    nb.metadata.pop("widgets", None)
    alts: list[str] = []
    heading = executed.stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            heading = found[-1] if found else heading
            continue
        if cell.cell_type != "code":
            continue
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                continue
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                continue
            if "image/png" in o.get("data", {}):
                alts.append(f"chart: {heading}")
            kept.append(o)
        cell.outputs = kept
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    level = exporter.log.level
    exporter.log.setLevel(_logging.ERROR)  # its "alternative text is missing" warning: we set it below
    try:
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    finally:
        exporter.log.setLevel(level)
    default_alt = 'alt="No description has been provided for this image"'
    for alt in alts:
        body = body.replace(default_alt, f'alt="{html_escape(alt)}"', 1)
    target.write_text(body, encoding="utf-8")
    return target


def run_notebooks(settings: Settings, notebooks: Sequence[str] | None = None,
                  params: Mapping[str, Any] | None = None, *, out_dir: str | Path | None = None,
                  name: str | None = None, html: bool = True, kernel: WarmKernel | None = None,
                  fresh_kernels: bool = False, root: Path | None = None, folder: Path | None = None,
                  progress: bool = False, log_output: bool = False, cell_timeout: int | None = None,
                  config: str | os.PathLike[str] | None = None) -> NotebookRun:
    """Execute notebooks in order with papermill and collect them (see the module docstring).

    `params` go to every notebook that declares them (a key no notebook declares is a UsageError). `out_dir`
    (default: `params["out_dir"]`, else evaluation.runs_dir) is where run folders are written; `name` names
    the run (default: `params["name"]`, else "eval", as for `axiom eval`). `kernel` reuses a caller's warm
    kernel (sweeps).
    `config` is the settings file the caller was given (the kernels read it, as AXIOM_CONFIG).
    """
    from axiom.evaluation.runs import safe_name

    t_start = time.perf_counter()
    root = (root or project_root()).resolve()
    paths = [resolve_notebook(n, folder or notebooks_dir(root)) for n in (notebooks or DEFAULT_NOTEBOOKS)]
    given = dict(params or {})
    out = Path(out_dir or given.get("out_dir") or settings.evaluation.runs_dir)
    out = (out if out.is_absolute() else root / out).resolve()  # relative: as the notebooks see it
    run_name = str(name or given.get("name") or "eval")
    given["out_dir"] = str(out)
    given.setdefault("name", run_name)
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".nb-{safe_name(run_name)}-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir()
    own_kernel = None
    try:
        if not fresh_kernels and kernel is None:  # started first: its imports overlap the reading of the notebooks
            own_kernel = WarmKernel(root, log_path=work / "kernel.log", env=kernel_env(root, config)).start()
            kernel = own_kernel
        declared = {p: notebook_parameters(p) for p in paths}
        everything = set().union(*declared.values()) if declared else set()
        unknown = sorted(k for k in (params or {}) if k not in everything)
        if unknown:
            raise UsageError(f"unknown notebook parameter(s): {', '.join(unknown)}",
                             hint="parameters of these notebooks: "
                             + ", ".join(sorted(everything - {RESULT_PARAMETER})))
    except BaseException:
        if own_kernel is not None:
            own_kernel.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        raise
    results: list[NotebookResult] = []
    run_path: Path | None = None
    html_notebook: NotebookResult | None = None
    try:
        for path in paths:
            executed = work / path.name
            nb_params = {k: v for k, v in given.items() if k in declared[path]}
            handoff = work / f"{path.stem}.result.json"
            if RESULT_PARAMETER in declared[path]:
                nb_params[RESULT_PARAMETER] = str(handoff)
            t0 = time.perf_counter()
            if kernel is not None and not fresh_kernels:
                kernel.ensure_alive()
            with _environ(kernel_env(root, config) if fresh_kernels else {}):
                _execute(path, executed, nb_params, kernel=None if fresh_kernels else kernel, cwd=root,
                         progress=progress, log_output=log_output, cell_timeout=cell_timeout,
                         on_fail=lambda rp=run_path: _keep_failed(work, out, run_name, rp))
            result = json.loads(handoff.read_text(encoding="utf-8")) if handoff.is_file() else {}
            handoff.unlink(missing_ok=True)
            nr = NotebookResult(path.stem, executed, time.perf_counter() - t0, result)
            results.append(nr)
            if result.get("run_path"):
                run_path = Path(result["run_path"])
                html_notebook = nr
    except BaseException:
        if own_kernel is not None:
            own_kernel.shutdown()
        if work.exists():  # interrupted or not a cell failure: keep what ran
            _keep_failed(work, out, run_name, run_path)
        raise
    if own_kernel is not None:
        own_kernel.shutdown()

    dest = run_path if run_path is not None else _unique(out / f"{_utc_stamp()}-{safe_name(run_name)}-notebooks")
    dest.mkdir(parents=True, exist_ok=True)
    for nr in results:
        target = dest / nr.executed.name
        shutil.move(str(nr.executed), target)
        nr.executed = target
    html_path = None
    t_html = time.perf_counter()
    if html and html_notebook is not None:
        html_path = render_html(html_notebook.executed, dest / REPORT_HTML)
    html_seconds = time.perf_counter() - t_html
    shutil.rmtree(work, ignore_errors=True)
    return NotebookRun(folder=dest, run_path=run_path, notebooks=results, html=html_path,
                       seconds=time.perf_counter() - t_start, html_seconds=html_seconds)


def _keep_failed(work: Path, out: Path, run_name: str, run_path: Path | None) -> Path:
    """Move what a failed run executed where it can be inspected; returns that folder."""
    from axiom.evaluation.runs import safe_name

    if run_path is not None and run_path.is_dir():
        dest = run_path
    else:
        dest = _unique(out / f"{_utc_stamp()}-{safe_name(run_name)}-failed")
        dest.mkdir(parents=True)
    for item in list(work.iterdir()) if work.exists() else []:
        if item.suffix == ".ipynb" or item.name == "kernel.log":
            shutil.move(str(item), dest / item.name)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def _execute(source: Path, executed: Path, parameters: dict[str, Any], *, kernel: WarmKernel | None, cwd: Path,
             progress: bool, log_output: bool, cell_timeout: int | None, on_fail: Any) -> None:
    papermill = _import_papermill()
    from papermill.exceptions import PapermillExecutionError

    extra: dict[str, Any] = {}
    if kernel is not None:
        _register_engine()
        extra = {"engine_name": ENGINE_NAME, "km": kernel.km}
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name=KERNEL_NAME,
                                   progress_bar=progress, log_output=log_output, cwd=str(cwd),
                                   request_save_on_cell_execute=True, execution_timeout=cell_timeout, **extra)
    except PapermillExecutionError as exc:
        cell = _source_cell_number(executed, exc.cell_index)
        kept = on_fail()
        first = next((line for line in str(exc.source).splitlines() if line.strip()), "")
        raise NotebookError(
            f"{source.name}: cell {cell} (In [{exc.exec_count}]) raised {exc.ename}: {exc.evalue}\n"
            f"  cell starts: {first.strip()[:120]}\n"
            f"  the partially executed notebook is kept at {kept / executed.name}",
            notebook=source.name, kept=kept / executed.name, cell=cell, ename=exc.ename, evalue=exc.evalue,
        ) from None
    except Exception as exc:  # kernel died, timed out, could not start: not a cell's own error
        kept = on_fail()
        raise NotebookError(
            f"{source.name}: execution failed: {type(exc).__name__}: {exc}\n"
            f"  what ran is kept in {kept}", notebook=source.name, kept=kept,
        ) from exc
