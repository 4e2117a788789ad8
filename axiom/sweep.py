"""Parameter sweeps: the evaluation notebook once per combination of a grid, then a ranked summary.

    run_sweep(settings, {"retriever": ["dense", "hybrid"], "top_k": [3, 5, 10]}, params, workers=1)

Every combination is a full papermill execution of 03_evaluate (so each has its run folder with the executed
notebook), in warm kernels: one per worker, its namespace reset between runs, its embedding model loaded once
and memoised by content hash (`axiom.embeddings.CachingEmbedder`), so a text embedded by one run is never
embedded again by the next. Combinations with the same chunking (corpus, chunk_size, chunk_overlap, store)
share one collection, so only the first of them ingests: the others find every file unchanged and embed no
chunk (`chunks_embedded` = 0 in their manifests, shown in the summary as the cache evidence). When the grid
varies the chunking, each chunking gets its own collection
(`sweep-<corpus>-<hash>-c<size>o<overlap>-<model>`), so runs never re-chunk each other's collection.

The first run of each chunking runs alone (it writes the collection); with `workers > 1` the remaining
combinations then run in parallel, each worker with its own kernel. `axiom.distributed.sweep` runs the same
plan (`plan_sweep`), per-combination code (`run_combination`) and summary (`finish_sweep`) as Ray tasks.

The sweep folder `<out>/<UTC timestamp>-<name>/` holds `summary.csv`, `summary.md`, `summary.png` (ranked by
one metric, 95% CI whiskers, each against the best by a paired test), `sweep.json` (all, wall times), `runs/`
(axiom.sweep_summary writes the summary)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import AxiomError, UsageError
from axiom.notebook.parameter_table import (
    CHUNKING_PARAMETERS,
    CONFIG_PARAMETER,
    CONTROLLED_PARAMETERS,
    RECHUNKING_PARAMETERS,
    RESULT_PARAMETER,
    ROOT_PARAMETER,
)

if TYPE_CHECKING:
    import pandas as pd

    from axiom.config import Settings
    from axiom.notebook.kernel import WarmKernel

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("semantic_similarity", "ndcg@10")


def parse_grid(items: Sequence[str]) -> dict[str, list[object]]:
    """["retriever=dense,hybrid", "top_k=3,5,10"] -> {"retriever": ["dense", "hybrid"],
    "top_k": [3, 5, 10]}."""
    from axiom.notebook.parameters import parse_value

    grid: dict[str, list[object]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UsageError(f"bad --grid item {item!r}: expected KEY=V1,V2,... e.g. top_k=3,5,10")
        if key in grid:
            raise UsageError(f"--grid names {key!r} twice")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if len(set(map(repr, parsed))) != len(parsed):
            raise UsageError(f"--grid {key}: a value is repeated")
        grid[key] = parsed
    if not grid:
        raise UsageError("--grid needs at least one KEY=V1,V2")
    return grid


@dataclass
class SweepRun:
    index: int
    combination: dict[str, Any]
    params: dict[str, Any]
    worker: int = 0
    run_path: Path | None = None
    seconds: float = 0.0
    chunks_embedded: int | None = None
    files_unchanged: int | None = None
    embedding: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    node: str | None = None  # the Ray node that ran it (distributed sweeps)

    @property
    def label(self) -> str:
        from axiom.evaluation.naming import combination_label

        return combination_label(self.combination)

    def record(self, outcome: RunOutcome) -> None:
        """Take what executing this combination produced (here or on a Ray worker)."""
        for name in ("seconds", "run_path", "chunks_embedded", "files_unchanged", "embedding", "metrics",
                     "error"):
            setattr(self, name, getattr(outcome, name))
        if self.error:
            log.error("sweep: %s failed: %s", self.label, self.error)
        else:
            log.info("sweep: %s in %.1fs (chunks embedded %s)", self.label, self.seconds,
                     self.chunks_embedded)

    def to_dict(self) -> dict[str, Any]:
        return {"combination": self.combination, "label": self.label,
                "run": str(self.run_path) if self.run_path else None,
                "seconds": round(self.seconds, 3), "worker": self.worker,
                "chunks_embedded": self.chunks_embedded,
                "files_unchanged": self.files_unchanged, "embedding": self.embedding, "error": self.error,
                "collection": self.params.get("collection") or None, "node": self.node}


@dataclass
class RunOutcome:
    """What executing one combination produced: plain and picklable, so a Ray task can return it."""

    seconds: float = 0.0
    run_path: Path | None = None
    chunks_embedded: int | None = None
    files_unchanged: int | None = None
    embedding: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SweepResult:
    folder: Path
    runs: list[SweepRun]
    metric: str
    summary: pd.DataFrame
    wall_seconds: float
    kernel_start_seconds: float
    workers: int
    executor: str = "local"  # or "ray <address>"

    @property
    def first_run_seconds(self) -> float:
        """The first combination as a single run costs it: kernel start + its execution (ingest included)."""
        return self.kernel_start_seconds + (self.runs[0].seconds if self.runs else 0.0)

    @property
    def ratio(self) -> float | None:
        return self.wall_seconds / self.first_run_seconds if self.first_run_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "metric": self.metric, "combinations": len(self.runs),
                "workers": self.workers, "executor": self.executor,
                "wall_seconds": round(self.wall_seconds, 3),
                "kernel_start_seconds": round(self.kernel_start_seconds, 3),
                "first_run_seconds": round(self.first_run_seconds, 3),
                "ratio_to_first_run": round(self.ratio, 3) if self.ratio else None,
                "runs": [r.to_dict() for r in self.runs],
                "ranking": self.summary.astype(object).where(self.summary.notna(), None)
                .to_dict(orient="records")}

    def text(self) -> str:
        from axiom.reporting import markdown_table

        show = [c for c in self.summary.columns
                if c not in ("run",) and not c.endswith(("ci_low", "ci_high"))]
        lines = [markdown_table(self.summary[show]), ""]
        lines.append(f"{len(self.runs)} combinations in {self.wall_seconds:.1f}s wall "
                     f"({self.workers} worker{'s' if self.workers != 1 else ''}"
                     f"{'' if self.executor == 'local' else ', ' + self.executor}); the first run alone "
                     f"{self.first_run_seconds:.1f}s (kernel start {self.kernel_start_seconds:.1f}s): "
                     f"sweep / one run = {self.ratio:.2f}" if self.ratio else "no run finished")
        failed = [r for r in self.runs if r.error]
        for r in failed:
            lines.append(f"FAILED {r.label}: {r.error}")
        lines.append(f"sweep folder: {self.folder}")
        return "\n".join(lines)


def _chunking_collections(settings: Settings, grid: Mapping[str, list[object]],
                          combos: list[dict[str, Any]],
                          base: dict[str, Any], root: Path) -> list[str | None]:
    """The collection of each combination: explicit when the grid varies a parameter that changes the chunks
    (the table's `rechunks`), else None (the corpus's evaluation collection, as `axiom eval --corpus` uses).
    A relative corpus is relative to the project folder `root`, as the notebook reads it."""
    from axiom.evaluation.naming import sweep_collection

    varies = any(k in grid for k in RECHUNKING_PARAMETERS)
    out: list[str | None] = []
    for combo in combos:
        p = {**base, **combo}
        if p.get("collection") or not varies:
            out.append(p.get("collection") or None)
            continue
        corpus = Path(str(p.get("corpus") or "data"))
        corpus = (corpus if corpus.is_absolute() else root / corpus).resolve()
        size = p.get("chunk_size") or settings.chunking.chunk_size
        overlap = p.get("chunk_overlap")
        overlap = settings.chunking.chunk_overlap if overlap is None or overlap == "" else overlap
        out.append(sweep_collection(corpus, size, overlap, settings.embeddings.model))
    return out


@dataclass
class SweepPlan:
    """A sweep before it runs: the first combination of each chunking (`leaders`) writes its collection."""

    folder: Path
    notebook: Path
    root: Path
    keys: list[str]
    runs: list[SweepRun]
    leaders: list[SweepRun]
    rest: list[SweepRun]
    t_start: float

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"


def plan_sweep(settings: Settings, grid: Mapping[str, list[object]],
               params: Mapping[str, object] | None = None, *,
               out_dir: str | Path | None = None, name: str = "sweep", root: Path | None = None) -> SweepPlan:
    """Check the grid against the evaluation notebook's parameters, create the sweep folder and fix every
    combination's parameters (collections included), on the driver, for every executor."""
    from axiom.evaluation.naming import stamped_name, sweep_run_name, unique_path
    from axiom.notebook.engine import notebook_parameters
    from axiom.notebook.runner import EVALUATION_NOTEBOOK, resolve_notebook
    from axiom.notebook.session import find_project_root

    t_start = time.perf_counter()
    root = (root or find_project_root()).resolve()
    notebook = resolve_notebook(EVALUATION_NOTEBOOK, root / "notebooks")
    declared = set(notebook_parameters(notebook)) - {RESULT_PARAMETER}
    base: dict[str, Any] = dict(params or {})
    for key in list(grid) + list(base):
        if key in CONTROLLED_PARAMETERS and (key in grid or key in (ROOT_PARAMETER, CONFIG_PARAMETER)):
            raise UsageError(f"{key} cannot be swept or given: the sweep sets it for every run")
        if key not in declared:
            raise UsageError(f"unknown parameter {key!r} of {notebook.name}",
                             hint="its parameters: " + ", ".join(sorted(declared)))
    out = Path(out_dir or base.pop("out_dir", None) or settings.evaluation.runs_dir)
    out = (out if out.is_absolute() else root / out).resolve()
    folder = unique_path(out / stamped_name(name))
    (folder / "runs").mkdir(parents=True)
    base.pop("name", None)

    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    collections = _chunking_collections(settings, grid, combos, base, root)
    runs: list[SweepRun] = []
    for i, (combo, collection) in enumerate(zip(combos, collections, strict=True)):
        p = {**base, **combo, "name": sweep_run_name(name, combo)}
        if collection:
            p["collection"] = collection
        runs.append(SweepRun(index=i, combination=combo, params=p))
    # the first combination of each chunking runs alone and first: it writes the collection
    groups: dict[tuple[str, ...], list[SweepRun]] = {}
    for r in runs:
        groups.setdefault(tuple(repr(r.params.get(k)) for k in CHUNKING_PARAMETERS), []).append(r)
    return SweepPlan(folder=folder, notebook=notebook, root=root, keys=list(grid), runs=runs,
                     leaders=[g[0] for g in groups.values()],
                     rest=[r for g in groups.values() for r in g[1:]], t_start=t_start)


def run_combination(settings: Settings, notebook: Path, params: dict[str, Any], *, runs_dir: Path,
                    kernel: WarmKernel, root: Path, html: bool = False,
                    config: str | Path | None = None) -> RunOutcome:
    """One combination: the evaluation notebook in `kernel`, its run folder under `runs_dir`; `root` and
    `config` (the settings file) reach the notebook as its `project_root` and `config` parameters. The same
    code runs in the local sweep's threads and in a Ray task on a worker (`axiom.distributed.sweep`)."""
    from axiom.notebook.runner import run_notebooks

    t0 = time.perf_counter()
    try:
        kernel.ensure_alive()
        result = run_notebooks(settings, [str(notebook)], params, out_dir=runs_dir, name=params["name"],
                               html=html, kernel=kernel, root=root, config=config)
    except AxiomError as exc:
        return RunOutcome(seconds=time.perf_counter() - t0, error=str(exc))
    seconds = time.perf_counter() - t0
    handoff = result.result(notebook.stem)
    ingest = handoff.get("ingest") or {}
    return RunOutcome(seconds=seconds, run_path=result.run_path, embedding=handoff.get("embedding", {}),
                      chunks_embedded=ingest.get("chunks_embedded"),
                      files_unchanged=len(ingest.get("files_unchanged", [])) if ingest else None,
                      metrics=handoff.get("metrics", {}))


def finish_sweep(plan: SweepPlan, *, metric: str | None, kernel_start: float, workers: int,
                 executor: str = "local") -> SweepResult:
    """Rank the runs, write the summary files; raise when a combination failed (after writing them)."""
    from axiom.sweep_summary import summary_table, write_summary

    runs = plan.runs
    metric = metric or next((m for m in DEFAULT_METRICS if any(r.metrics.get(m, {}).get("mean") is not None
                                                               for r in runs)), "ndcg@10")
    result = SweepResult(folder=plan.folder, runs=runs, metric=metric,
                         summary=summary_table(runs, metric, plan.keys),
                         wall_seconds=time.perf_counter() - plan.t_start, kernel_start_seconds=kernel_start,
                         workers=workers, executor=executor)
    write_summary(result)
    failed = [r for r in runs if r.error]
    if failed:
        raise AxiomError(f"{len(failed)} of {len(runs)} sweep combination(s) failed; first: "
                         f"{failed[0].label}: {failed[0].error}",
                         hint=f"summary of the others in {plan.folder}")
    return result


def run_sweep(settings: Settings, grid: Mapping[str, list[object]],
              params: Mapping[str, object] | None = None, *,
              out_dir: str | Path | None = None, name: str = "sweep", workers: int = 1,
              metric: str | None = None, html: bool = False, root: Path | None = None,
              config: str | Path | None = None) -> SweepResult:
    """Run the evaluation notebook for every combination of `grid` (see the module docstring)."""
    from axiom.notebook.kernel import WarmKernel

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    plan = plan_sweep(settings, grid, params, out_dir=out_dir, name=name, root=root)
    log.info("sweep: %d combinations, %d chunking group(s), %d worker(s)", len(plan.runs), len(plan.leaders),
             workers)

    def execute(run: SweepRun, kernel: WarmKernel, worker: int) -> None:
        run.worker = worker
        run.record(run_combination(settings, plan.notebook, run.params, runs_dir=plan.runs_dir, kernel=kernel,
                                   root=plan.root, html=html, config=config))

    kernel_logs = plan.folder / "kernels"
    first = WarmKernel(plan.root, log_path=kernel_logs / "worker-0.log").start()
    kernel_start = first.start_seconds
    todo = deque(plan.rest)  # popleft is atomic: the workers' threads share it

    def worker_loop(worker: int) -> None:
        kernel = first if worker == 0 else WarmKernel(
            plan.root, log_path=kernel_logs / f"worker-{worker}.log").start()
        try:
            while True:
                try:
                    run = todo.popleft()
                except IndexError:
                    return
                execute(run, kernel, worker)
        finally:
            if kernel is not first:
                kernel.shutdown()

    try:
        for run in plan.leaders:
            execute(run, first, 0)
        threads = [threading.Thread(target=worker_loop, args=(w,), name=f"sweep-worker-{w}")
                   for w in range(1, min(workers, len(plan.rest)))]
        for t in threads:
            t.start()
        try:
            worker_loop(0)  # worker 0, with the first kernel, in this thread
        finally:
            for t in threads:
                t.join()
    finally:
        first.shutdown()
    return finish_sweep(plan, metric=metric, kernel_start=kernel_start, workers=workers)
