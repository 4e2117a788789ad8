"""The batch runner behind `axiom notebooks run` and `axiom sweep`:

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
Run folders are 0700 and their files 0600, as `axiom eval`'s (they hold the questions and answers).
Every notebook is given the project folder and the command's settings file as its `project_root` and `config`
parameters (`--config`, else $AXIOM_CONFIG, as the command read it; else the project's config.yaml), so a
notebook builds the same settings as the command that runs it and anchors relative paths to the project;
kernels inherit the command's environment and nothing is added to it.

How the runner learns the run folder: a notebook that declares a `result_json` parameter gets a path in the
working folder and writes `{"run_path": ..., ...}` there (`NotebookSession.report`); nothing is parsed out of
cell outputs.

papermill (`axiom.notebook.engine`) is imported once the warm kernel is starting, so the kernel's own imports
overlap it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import UsageError
from axiom.notebook.kernel import WarmKernel
from axiom.notebook.parameter_table import CONFIG_PARAMETER, RESULT_PARAMETER, ROOT_PARAMETER
from axiom.notebook.report_html import REPORT_HTML, render_html
from axiom.notebook.session import NOTEBOOKS_DIR, find_project_root, settings_file

if TYPE_CHECKING:
    from axiom.config import Settings

DEFAULT_NOTEBOOKS = ("01_ingest", "03_evaluate")
EVALUATION_NOTEBOOK = "03_evaluate"


def notebooks_dir(root: Path | None = None) -> Path:
    return (root or find_project_root()) / NOTEBOOKS_DIR


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
                "notebooks": {n.notebook: {"seconds": round(n.seconds, 3), **n.result}
                              for n in self.notebooks}}


def run_notebooks(settings: Settings, notebooks: Sequence[str] | None = None,
                  params: Mapping[str, object] | None = None, *, out_dir: str | Path | None = None,
                  name: str | None = None, html: bool = True, kernel: WarmKernel | None = None,
                  fresh_kernels: bool = False, root: Path | None = None, folder: Path | None = None,
                  progress: bool = False, log_output: bool = False, cell_timeout: int | None = None,
                  config: str | os.PathLike[str] | None = None) -> NotebookRun:
    """Execute notebooks in order with papermill and collect them (see the module docstring).

    `params` go to every notebook that declares them (a key no notebook declares is a UsageError). `out_dir`
    (default: `params["out_dir"]`, else evaluation.runs_dir) is where run folders are written; `name` names
    the run (default: `params["name"]`, else "eval", as for `axiom eval`). `kernel` reuses a caller's warm
    kernel (sweeps); `root`: the project folder (default: `find_project_root()`).
    `config` is the settings file the caller was given (relative: to the working folder); the notebooks get
    it, or $AXIOM_CONFIG, or the project's config.yaml, as their `config` parameter, and `root` as
    `project_root`.
    """
    from axiom.evaluation.naming import stamped_name, unique_path, work_folder_name

    t_start = time.perf_counter()
    root = (root or find_project_root()).resolve()
    paths = [resolve_notebook(n, folder or notebooks_dir(root)) for n in (notebooks or DEFAULT_NOTEBOOKS)]
    given: dict[str, Any] = dict(params or {})
    for key in (ROOT_PARAMETER, CONFIG_PARAMETER):
        if key in given:
            raise UsageError(f"the notebook parameter {key} is set by the runner",
                             hint="--config names the settings file; the project is the one of the notebooks")
    config_file = settings_file(config, root, relative_to=Path.cwd())
    given[ROOT_PARAMETER] = str(root)
    given[CONFIG_PARAMETER] = str(config_file) if config_file is not None else ""
    out = Path(out_dir or given.get("out_dir") or settings.evaluation.runs_dir)
    out = (out if out.is_absolute() else root / out).resolve()  # relative: as the notebooks see it
    run_name = str(name or given.get("name") or "eval")
    given["out_dir"] = str(out)
    given.setdefault("name", run_name)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # as `axiom eval`: a runs folder made here is private
    work = out / work_folder_name("nb", run_name)
    # what the notebooks write here (executed copies, kernel.log) is private from the start
    _private_folder(work)
    own_kernel = None
    try:
        # started first: its imports overlap the reading of the notebooks
        if not fresh_kernels and kernel is None:
            own_kernel = WarmKernel(root, log_path=work / "kernel.log").start()
            kernel = own_kernel
        from axiom.notebook.engine import execute_notebook, notebook_parameters  # papermill: after the kernel

        declared = {p: notebook_parameters(p) for p in paths}
        everything = set().union(*declared.values()) if declared else set()
        unknown = sorted(k for k in (params or {}) if k not in everything)
        if unknown:
            raise UsageError(f"unknown notebook parameter(s): {', '.join(unknown)}",
                             hint="parameters of these notebooks: "
                             + ", ".join(sorted(everything - {RESULT_PARAMETER, ROOT_PARAMETER,
                                                             CONFIG_PARAMETER})))
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
            execute_notebook(path, executed, nb_params, kernel=None if fresh_kernels else kernel, cwd=root,
                             progress=progress, log_output=log_output, cell_timeout=cell_timeout,
                             on_fail=functools.partial(_keep_failed, work, out, run_name, run_path))
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

    dest = run_path
    if dest is None:
        dest = unique_path(out / stamped_name(run_name, "notebooks"))
    _private_folder(dest)
    for nr in results:
        target = dest / nr.executed.name
        shutil.move(str(nr.executed), target)
        nr.executed = target
    html_path = None
    t_html = time.perf_counter()
    if html and html_notebook is not None:
        html_path = render_html(html_notebook.executed, dest / REPORT_HTML)
    html_seconds = time.perf_counter() - t_html
    _private_files(dest)
    shutil.rmtree(work, ignore_errors=True)
    return NotebookRun(folder=dest, run_path=run_path, notebooks=results, html=html_path,
                       seconds=time.perf_counter() - t_start, html_seconds=html_seconds)


def _keep_failed(work: Path, out: Path, run_name: str, run_path: Path | None) -> Path:
    """Move what a failed run executed where it can be inspected; returns that folder."""
    from axiom.evaluation.naming import stamped_name, unique_path

    if run_path is not None and run_path.is_dir():
        dest = run_path
    else:
        dest = unique_path(out / stamped_name(run_name, "failed"))
        _private_folder(dest)
    for item in list(work.iterdir()) if work.exists() else []:
        if item.suffix == ".ipynb" or item.name == "kernel.log":
            shutil.move(str(item), dest / item.name)
    _private_files(dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def _private_folder(path: Path) -> None:
    """Make `path` (and missing parents) 0700, exactly (mkdir's mode is reduced by the umask), as `axiom eval`
    makes its run folders: the notebooks' outputs hold the questions and answers."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _private_files(folder: Path) -> None:
    """The folder 0700 and the files in it 0600 (the executed notebooks, report.html, kernel.log)."""
    folder.chmod(0o700)
    for item in folder.iterdir():
        if item.is_file() and not item.is_symlink():
            item.chmod(0o600)

