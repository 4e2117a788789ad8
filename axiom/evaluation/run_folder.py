"""The run record and its folder on disk.

    <runs_dir>/<UTC timestamp>-<name>/
        manifest.json     what produced the run: settings (secrets masked), dataset and corpus content hashes,
                          embedding model, generator, judge, package versions, git commit and dirty flag,
                          start and end time, seed
        results.parquet   one row per question: question, reference, answer, contexts, sources, latencies,
        results.csv       every metric (lists as JSON text in the CSV)
        metrics.json      per metric: mean, 95% bootstrap CI, n, unmeasured and n/a counts with reasons;
                          latency percentiles, token usage (and cost), the baseline gate when one was given
        repeats.parquet   only for `--repeat N` > 1: one row per question and repetition (id, repeat, answer,
                          every answer metric): results.parquet's answer metrics are their means over these

The folder is built under `<runs_dir>/.tmp-...` and renamed into place, so a run folder is complete or absent.
`RunRecord` is a run in memory, its manifest a `run_documents.Manifest` and its metrics.json a
`run_documents.MetricsDocument` (`load_run` reads one back,
`read_manifest` only its manifest), `GateResult` the baseline gate's verdict it holds
(computed by `gate.gate_record`), `list_runs` the complete run folders under a runs folder; `per_question`
reads one metric's per-question values from a results table.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from axiom.errors import EvaluationError, RegressionError, UsageError
from axiom.evaluation.naming import run_folder_name, work_folder_name
from axiom.evaluation.run_documents import Manifest, MetricsDocument
from axiom.evaluation.verdict_entry import VerdictEntry
from axiom.redaction import redact_urls_in

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
METRICS = "metrics.json"
RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
REPEATS_PARQUET = "repeats.parquet"
RUN_FILES = (MANIFEST, METRICS, RESULTS_PARQUET)  # what a complete run folder holds (the CSV is a copy)
LIST_COLUMNS = ("contexts", "sources", "retrieved_sources", "retrieved_chunk_ids", "relevant_sources")


class GateCheck(TypedDict, total=False):
    """One metric's check in `GateResult.checked` (gate.gate_run): this run's mean, the baseline's, the
    margin, the paired statistics; the floor used, or why the metric applies to no question of this run."""

    value: float | None
    baseline: float | None
    min_delta: float
    stats: VerdictEntry
    threshold: float
    not_applicable: str


@dataclass
class GateResult:
    """The baseline gate's verdict on a run (see `gate.py`), as recorded in its metrics.json."""

    baseline: str
    failures: list[str] = field(default_factory=list)
    checked: dict[str, GateCheck] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    family: dict[str, Any] = field(default_factory=dict)  # primaries and their outcomes, aliases, constants

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def statistics(self) -> dict[str, VerdictEntry]:
        """Per metric the paired statistics (the same object `axiom compare` reports)."""
        return {m: c["stats"] for m, c in self.checked.items() if "stats" in c}

    @staticmethod
    def _check_from_dict(data: Mapping[str, Any]) -> GateCheck:  # boundary: a JSON object
        check = cast("GateCheck", dict(data))
        if "stats" in data:
            check["stats"] = VerdictEntry.from_dict(data["stats"])
        return check

    def _checked_dict(self) -> dict[str, dict[str, Any]]:  # boundary: a JSON object
        """`checked` as written: each check's statistics as their JSON object (VerdictEntry.to_dict)."""
        out: dict[str, dict[str, Any]] = {}
        for name, check in self.checked.items():
            row: dict[str, Any] = dict(check)
            if "stats" in check:
                row["stats"] = check["stats"].to_dict()
            out[name] = row
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:  # boundary: a JSON object
        return cls(baseline=str(data.get("baseline", "")), failures=list(data.get("failures", [])),
                   checked={m: cls._check_from_dict(c) for m, c in (data.get("checked") or {}).items()},
                   skipped=list(data.get("skipped", [])),
                   notes=list(data.get("notes", [])), verdict=str(data.get("verdict", "")),
                   config=dict(data.get("config", {})), family=dict(data.get("family", {})))

    def raise_if_failed(self, run_folder: str | Path | None) -> None:
        """The gate's verdict as an exit: RegressionError (exit code 3) naming every regressed metric."""
        if not self.passed:
            raise RegressionError("; ".join(self.failures), hint=f"run folder {run_folder}")

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "passed": self.passed, "verdict": self.verdict,
                "failures": list(self.failures), "checked": self._checked_dict(),
                "skipped": list(self.skipped),
                "notes": list(self.notes), "config": dict(self.config), "family": dict(self.family)}

    def text(self) -> str:
        if self.passed:
            head = f"baseline gate PASSED against {self.baseline} ({len(self.checked)} metrics checked)"
        else:
            head = f"baseline gate FAILED against {self.baseline}: {len(self.failures)} metric(s) regressed"
        lines = [f"verdict: {self.verdict}", head] if self.verdict else [head]
        outcomes = self.family.get("outcomes") or {}
        if outcomes:  # the primaries decide (regression fails; non-inferior and inconclusive pass)
            lines.append("  primaries: " + ", ".join(f"{m} {o}" for m, o in outcomes.items()))
        lines += [f"  - {f}" for f in self.failures]
        lines += [f"  note: {n}" for n in self.notes]
        if self.skipped:
            lines.append(f"  not compared (not computed in this run): {', '.join(self.skipped)}")
        return "\n".join(lines)


def per_question(results: pd.DataFrame, metric: str) -> dict[str, float]:
    """{question id: value} of one metric column of a run's results table (NaN: not measured); empty when
    the run has no such column. The one reader of per-question values (`RunRecord.per_question`, the gate,
    compare, the sweep's tests against the best)."""
    if metric not in results.columns:
        return {}
    return {str(i): float(v) for i, v in zip(results["id"], results[metric], strict=True)}


@dataclass
class RunRecord:
    """A finished run: where it is and what it holds."""

    path: Path
    manifest: Manifest
    metrics: MetricsDocument
    results: pd.DataFrame
    gate: GateResult | None = field(default=None)
    repeats: pd.DataFrame | None = field(default=None)  # a repeated run's repeats.parquet

    @property
    def name(self) -> str:
        return str(self.manifest.name) if self.manifest.name is not None else self.path.name

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics.metrics)

    def per_question(self, metric: str) -> dict[str, float]:
        """{question id: value} of one metric of this run (`per_question` of its results)."""
        return per_question(self.results, metric)

    def per_repetition(self, metric: str) -> dict[str, list[float]]:
        """{question id: its value in each repetition} of a repeated run (empty when not repeated)."""
        table = self.repeats
        if table is None or metric not in table.columns:
            return {}
        out: dict[str, list[float]] = {}
        for qid, value in zip(table["id"], table[metric], strict=True):  # rows in repetition order
            out.setdefault(str(qid), []).append(float(value))
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what `axiom eval --json` prints)."""
        out = {"run": str(self.path), "name": self.name, "questions": int(len(self.results)),
               "metrics": self.metrics.metrics, "latency": self.metrics.latency, "usage": self.metrics.usage}
        if self.gate is not None:
            out["gate"] = self.gate.to_dict()
        return out

    def summary_table(self) -> str:
        # the gate first: its verdict line, PASSED / FAILED and the failing metrics
        lines = [self.gate.text()] if self.gate is not None else []
        lines += [f"{'metric':<26} {'mean':>7}  {'95% CI':<17} {'n':>4} {'unmeasured':>10} {'n/a':>4}"]
        for name, m in self.metrics.metrics.items():
            mean = m.get("mean")
            if mean is None:
                cells = f"{'-':>7}  {'':<17}"
            else:
                ci = f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
                cells = f"{mean:>7.3f}  {ci:<17}"
            lines.append(f"{name:<26} {cells} {m.get('n', 0):>4} {m.get('unmeasured', 0):>10} "
                         f"{m.get('not_applicable', 0):>4}")
        for name, m in self.metrics.metrics.items():
            for reason, count in (m.get("unmeasured_reasons") or {}).items():
                lines.append(f"  unmeasured {name}: {count} x {reason}")
        not_measurable: dict[str, list[str]] = {}  # why (the reasons) -> the metrics n/a for every question
        for name, m in self.metrics.metrics.items():
            if m.get("mean") is None and m.get("not_applicable") and not m.get("unmeasured"):
                why = "; ".join(f"{count} x {reason}"
                                for reason, count in (m.get("not_applicable_reasons") or {}
                                                                             ).items()) or "not applicable"
                not_measurable.setdefault(why, []).append(name)
        lines += [f"  n/a {', '.join(names)}: {why}" for why, names in not_measurable.items()]
        lat = self.metrics.latency
        if "retrieval" in lat:  # Axiom's own pipeline: one retrieval batch, then generation per question
            ret, gen = lat["retrieval"], lat.get("generation", {})
            lines.append(f"latency: retrieval batch {lat.get('retrieval_batch_seconds', 0):.3f}s "
                         f"({ret.get('mean_ms')} ms/question); generation p50 {gen.get('p50_ms')} ms, "
                         f"p95 {gen.get('p95_ms')} ms")
        elif lat.get("question", {}).get("n"):  # another system: its per-question latency only
            question = lat["question"]
            lines.append(f"latency per question: p50 {question['p50_ms']} ms, p95 {question['p95_ms']} ms "
                         f"(n {question['n']}; {lat.get('note', '')})")
        usage = self.metrics.usage
        judge = usage.get("judge")
        if judge:
            cost = f", ${judge['cost_usd']:.4f}" if judge.get("cost_usd") is not None else ""
            lines.append(f"judge {judge['model']}: {judge['calls']} call(s), {judge['cache_hits']} cached, "
                         f"{judge['total_tokens']} tokens{cost}")
        gen_usage = usage.get("generation") or {}
        if gen_usage.get("total_tokens"):
            lines.append(f"generator tokens: {gen_usage['total_tokens']}")
        lines.append(f"run folder: {self.path}")
        return "\n".join(lines)


# -- time stamps ----------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- writing --------------------------------------------------------------------------------------
def _write_json(path: Path, data: Any) -> None:  # boundary: JSON
    """`data` as JSON, in a file only its owner can read (0600): run files hold questions and answers."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file was already there
        f.write(text)


def _json_clean(value: Any) -> Any:  # boundary: JSON
    """NaN -> None recursively (metrics.json stays strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    return value


def write_run_folder(runs_dir: Path, name: str, started: datetime, manifest: Manifest,
                     metrics_doc: MetricsDocument, results: pd.DataFrame, *,
                     repeats: pd.DataFrame | None = None
                     ) -> Path:
    """Write the run under `.tmp-*` and rename it into `<UTC timestamp>-<name>`, or `<UTC
    timestamp>-<n>-<name>` when another run of that name started in the same second (the folder name always
    ends with the run's name).

    Private to its owner: the run folder is 0700 and its files 0600 (they hold the questions and answers), as
    is a runs folder this creates (an existing one keeps its mode). Strings in the manifest and metrics lose
    any URL credentials (`user:pass@`, `?api-key=...` of a judge or generator endpoint)."""
    tmp = runs_dir / work_folder_name("tmp", name)
    try:
        runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.mkdir(mode=0o700)
        tmp.chmod(0o700)  # mkdir's mode is reduced by the umask; this is exact
    except OSError as exc:
        raise _write_error(runs_dir, exc) from exc
    try:
        _write_json(tmp / MANIFEST, redact_urls_in(_json_clean(manifest.to_dict())))
        _write_json(tmp / METRICS, redact_urls_in(_json_clean(metrics_doc.to_dict())))
        results.to_parquet(tmp / RESULTS_PARQUET, index=False)
        flat = results.copy()
        for column in LIST_COLUMNS:
            if column in flat.columns:
                flat[column] = [json.dumps(list(v), ensure_ascii=False) for v in flat[column]]
        flat.to_csv(tmp / RESULTS_CSV, index=False)
        if repeats is not None:
            repeats.sort_values(["repeat"], kind="stable").to_parquet(tmp / REPEATS_PARQUET, index=False)
        for written in tmp.iterdir():  # inside the 0700 folder since their creation
            written.chmod(0o600)
        for n in range(1, 1000):
            final = runs_dir / run_folder_name(started, name, n)
            try:
                tmp.rename(final)  # fails if the target exists (it is a non-empty folder)
            except OSError:
                if final.exists():
                    continue
                raise
            return final
        raise EvaluationError(f"cannot find a free run folder name for {run_folder_name(started, name)} "
                              f"under {runs_dir}")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, file too large, permissions: one clear error, nothing left
            raise _write_error(runs_dir, exc) from exc
        raise


def _write_error(runs_dir: Path, exc: OSError) -> EvaluationError:
    what = Path(exc.filename).name if exc.filename else "the run folder"
    return EvaluationError(f"cannot write the run folder under {runs_dir} ({what}): {exc.strerror or exc}; "
                           "no partial run was left behind",
                           hint="free some disk space, or set evaluation.runs_dir / --out to another folder")


# -- reading --------------------------------------------------------------------------------------
def load_run(path: str | Path) -> RunRecord:
    """Read a run folder back."""
    import pandas as pd

    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"run folder {path} does not exist")
    try:
        manifest = read_manifest(path)
        metrics_doc = read_metrics(path)
        results = pd.read_parquet(path / RESULTS_PARQUET)
        repeats = pd.read_parquet(path / REPEATS_PARQUET) if (path / REPEATS_PARQUET).is_file() else None
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path} is not a complete run folder: {Path(exc.filename or '').name} is missing"
        ) from exc
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read run folder {path}: {exc}") from exc
    gate = GateResult.from_dict(metrics_doc.gate) if metrics_doc.gate is not None else None
    return RunRecord(path=path, manifest=manifest, metrics=metrics_doc, results=results, gate=gate,
                     repeats=repeats)


def read_manifest(folder: str | Path) -> Manifest:
    """A run folder's manifest.json as a `Manifest` (tolerant of older folders: run_documents.py). Raises
    FileNotFoundError when it is missing, ValueError when it is not a JSON object."""
    data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST} is not a JSON object")
    return Manifest.from_dict(data)


def read_metrics(folder: str | Path) -> MetricsDocument:
    """A run folder's metrics.json as a `MetricsDocument` (tolerant of older folders: run_documents.py).
    Raises FileNotFoundError when it is missing, ValueError when it is not a JSON object."""
    data = json.loads((Path(folder) / METRICS).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{METRICS} is not a JSON object")
    return MetricsDocument.from_dict(data)


def run_manifests(runs_dir: str | Path, *,
                  required: tuple[str, ...] = (MANIFEST,)) -> Iterator[tuple[Path, Any]]:  # boundary: JSON
    """(folder, parsed manifest.json) of the folders directly under `runs_dir` that hold every `required`
    file; hidden folders (`.tmp-*` being written) and unreadable manifests are skipped. The JSON as read (any
    value, not a `Manifest`): a listing looks at one or two keys and tolerates anything else."""
    root = Path(runs_dir)
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        if not all((folder / f).is_file() for f in required):
            continue
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        yield folder, manifest


def list_runs(runs_dir: str | Path) -> list[Path]:
    """Complete run folders directly under `runs_dir`, oldest first (by their start time)."""
    found = [(str(manifest.get("started", "")), folder.name, folder)
             for folder, manifest in run_manifests(runs_dir, required=RUN_FILES)]
    return [p for _, _, p in sorted(found)]
