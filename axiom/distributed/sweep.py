"""Distributed sweeps, `axiom sweep --grid ... --ray ADDRESS`: each combination of the grid is a Ray task.

    run_sweep_ray(settings, {"top_k": [3, 5, 10]}, params, address="10.0.0.5:6379")

The driver (this process) plans the sweep exactly as a local sweep does (`axiom.sweep.plan_sweep`: the grid
checked against the notebook, the sweep folder created, each combination's parameters and chunking collection
fixed here, deterministically), runs every combination as a Ray task, and ranks and writes the summary with
the local code (`axiom.sweep.finish_sweep`), so the summary is the one a local sweep of the grid gives. A task
starts a warm kernel on its worker and runs `axiom.sweep.run_combination` there: papermill, the local per-run
code. As locally, the first combination of each chunking runs alone first (it writes the collection); the
others then run at once, as many in parallel as the cluster has CPUs (`cpus` per task, spread over the nodes).

Where the run folders land: in the driver's sweep folder (`<out>/<stamp>-<name>/runs/`). A worker that sees
that folder (a shared volume mounted at the same path: the driver writes a token file there and the worker
reads it back) writes into it directly. A worker that does not runs into a temporary folder and returns the
run folder and its kernel log as a tar.gz archive, which the driver unpacks into the sweep folder
(`copy_back=True` forces that; `copy_back=False` fails a task whose worker does not see the folder).

What the workers need: the same project and Python environment (the Axiom image, or the same checkout and
venv: the driver's project path, else the worker's own), the corpus and dataset paths the parameters name, and
the store: a ChromaDB server (`chroma_host`, or `store.host` in the settings), or an embedded store path on
the shared volume. The driver's settings file travels with each task (its text, used when the worker does not
have that path), and the driver's non-secret settings variables (`axiom.config.ENV_VARS`) replace the
worker's, so the kernels build the driver's settings; secrets (OPENAI_API_KEY, AXIOM_API_KEYS) never travel
through the cluster: the workers take them from their own environment.

Lost workers: a task whose worker process or node dies is retried by Ray (`retries`, default 3) on another
one; the run folder of the lost attempt may be left half written beside the retry's. A notebook that fails is
not retried: it is that combination's error, as in a local sweep.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

from axiom.distributed.runtime import import_ray, ray_session
from axiom.errors import UsageError

if TYPE_CHECKING:
    from axiom.config import Settings
    from axiom.sweep import RunOutcome, SweepPlan, SweepResult, SweepRun

log = logging.getLogger(__name__)

SECRET_ENV = ("OPENAI_API_KEY", "AXIOM_API_KEYS")  # taken from each worker's own environment
TOKEN_FILE = ".axiom-sweep-token"  # a worker that reads the driver's token sees the sweep folder


class SweepJob(TypedDict):
    """What every task of a sweep is given (`_job`): paths as the driver sees them, the token a worker that
    sees the sweep folder finds there, the settings file (its path and text) and settings variables."""

    root: str
    notebook: str
    folder: str
    token: str
    html: bool
    copy_back: bool | None
    config: str | None
    config_text: str | None
    env: dict[str, str]


@dataclass
class TaskReply:
    """What a sweep task returns to the driver."""

    outcome: RunOutcome
    node: str
    kernel_seconds: float
    # the run folder and kernel log, when the worker does not see the sweep folder
    archive: bytes | None = None


def run_sweep_ray(settings: Settings, grid: Mapping[str, list[object]],
                  params: Mapping[str, object] | None = None, *,
                  address: str, out_dir: str | Path | None = None, name: str = "sweep",
                  metric: str | None = None,
                  html: bool = False, root: Path | None = None, config: str | Path | None = None,
                  copy_back: bool | None = None, retries: int = 3, cpus: float = 1.0) -> SweepResult:
    """Run the sweep's combinations as Ray tasks on the cluster at `address` (see the module docstring).

    `address`: as for `axiom.distributed.runtime.ray_session`. `copy_back`: None decides per task (does the
    worker see the sweep folder?), True always sends run folders back, False fails a worker that does not see
    it. `retries`: Ray's retries of a task whose worker died; `cpus`: Ray CPUs per task."""
    from axiom.sweep import finish_sweep, plan_sweep

    if retries < 0 or cpus <= 0:
        raise UsageError("retries must be >= 0 and cpus > 0")
    import_ray()  # the install message first
    with ray_session(address) as ray:  # connected before the sweep folder is created
        plan = plan_sweep(settings, grid, params, out_dir=out_dir, name=name, root=root)
        job = _job(plan, config, html, copy_back)
        (plan.folder / TOKEN_FILE).write_text(job["token"], encoding="utf-8")
        kernel_start = 0.0
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        log.info("sweep on Ray at %s: %d combinations, %d chunking group(s), %d parallel task(s)", address,
                 len(plan.runs), len(plan.leaders), workers)
        task = ray.remote(num_cpus=cpus, max_retries=retries, retry_exceptions=False,
                          scheduling_strategy="SPREAD")(sweep_task)
        try:
            for run in plan.leaders:  # one at a time: each writes its collection
                reply = _take(ray, plan, run, task.remote(job, run.index, run.params))
                if run is plan.runs[0] and reply is not None:
                    kernel_start = reply.kernel_seconds
            pending = {task.remote(job, run.index, run.params): run for run in plan.rest}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                _take(ray, plan, pending.pop(done[0]), done[0])
        finally:
            (plan.folder / TOKEN_FILE).unlink(missing_ok=True)
    return finish_sweep(plan, metric=metric, kernel_start=kernel_start, workers=workers,
                        executor=f"ray {address}")


def _job(plan: SweepPlan, config: str | Path | None, html: bool, copy_back: bool | None) -> SweepJob:
    """What every task of the sweep is given: paths as the driver sees them, the settings file's text and the
    driver's non-secret settings variables (unset ones as "", which the settings ignore)."""
    from axiom.config import ENV_VARS
    from axiom.notebook.session import settings_file

    path = settings_file(config, plan.root, relative_to=Path.cwd())  # as a local sweep's notebooks get it
    found = path is not None and path.is_file()
    return {"root": str(plan.root), "notebook": str(plan.notebook), "folder": str(plan.folder),
            "token": uuid.uuid4().hex, "html": html, "copy_back": copy_back,
            "config": str(path) if found else None,
            "config_text": path.read_text(encoding="utf-8") if path is not None and found else None,
            "env": {k: os.environ.get(k, "") for k in ENV_VARS if k not in SECRET_ENV}}


def _take(ray: ModuleType, plan: SweepPlan, run: SweepRun,
          ref: Any) -> TaskReply | None:  # boundary: a Ray object ref
    """Wait for one task and record its outcome in `run`, unpacking a returned run folder into the sweep
    folder."""
    from axiom.sweep import RunOutcome

    try:
        reply: TaskReply = ray.get(ref)
    except ray.exceptions.RayError as exc:
        # the task failed beyond its retries, or raised outside the notebook
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        run.record(RunOutcome(error=f"Ray task failed: {lines[-1]}"))
        return None
    outcome = reply.outcome
    if reply.archive is not None:
        with tarfile.open(fileobj=io.BytesIO(reply.archive), mode="r:gz") as tar:
            tar.extractall(plan.folder, filter="data")
        if outcome.run_path is not None:  # relative to the worker's scratch folder
            outcome.run_path = plan.folder / outcome.run_path
    run.node = reply.node
    run.record(outcome)
    return reply


def sweep_task(job: SweepJob, index: int, params: dict[str, Any]) -> TaskReply:
    """One combination, on a Ray worker: a warm kernel runs the evaluation notebook through the local sweep's
    `run_combination`, into the sweep folder if this worker sees it, else into a scratch folder sent back."""
    import ray

    from axiom.config import load_settings
    from axiom.notebook.kernel import WarmKernel
    from axiom.notebook.runner import resolve_notebook
    from axiom.notebook.session import find_project_root
    from axiom.sweep import RunOutcome, run_combination

    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()}"
    root = Path(job["root"])
    root = root if (root / "notebooks").is_dir() else find_project_root()
    notebook = Path(job["notebook"])
    notebook = notebook if notebook.is_file() else resolve_notebook(notebook.stem, root / "notebooks")
    folder = Path(job["folder"])
    try:
        shared = (folder / TOKEN_FILE).read_text(encoding="utf-8") == job["token"]
    except OSError:
        shared = False
    if job["copy_back"] is False and not shared:
        return TaskReply(RunOutcome(error=f"worker {node} does not see the sweep folder {folder}"), node, 0.0)
    tmp = Path(tempfile.mkdtemp(prefix="axiom-sweep-")).resolve()
    try:
        base = tmp / "out" if job["copy_back"] or not shared else folder
        config = job["config"]
        if job["config_text"] is not None and not (config and Path(config).is_file()):
            config = str(tmp / "config.yaml")  # the driver's settings file, which this worker does not have
            Path(config).write_text(job["config_text"], encoding="utf-8")
        settings = load_settings(config, environ={**os.environ, **job["env"]})
        # the driver's settings variables replace the worker's in the kernel; the project folder and the
        # settings file reach the notebook as its parameters (run_combination)
        kernel = WarmKernel(root, log_path=base / "kernels" / f"run-{index}.log", env=job["env"]).start()
        try:
            outcome = run_combination(settings, notebook, params, runs_dir=base / "runs", kernel=kernel,
                                      root=root, html=job["html"], config=config)
        finally:
            kernel.shutdown()
        archive = None
        if base != folder:
            if outcome.run_path is not None:
                outcome.run_path = outcome.run_path.relative_to(base)
            archive = _pack(base)
        return TaskReply(outcome, node, kernel.start_seconds, archive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pack(base: Path) -> bytes:
    """`base`'s runs/ and kernels/ as a tar.gz archive (paths relative to `base`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("runs", "kernels"):
            if (base / name).exists():
                tar.add(base / name, arcname=name)
    return buf.getvalue()
