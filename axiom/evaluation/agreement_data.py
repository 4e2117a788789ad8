"""The inputs of agreement with people: per-question metric scores of one or more systems, human labels, and
the table that joins them (`axiom.evaluation.agreement` computes the numbers).

Scores come from run folders (`results.parquet`: one row per question, a column per metric) or from plain
score tables (JSONL or CSV: `id`, optional `model` or `run`, one numeric column per metric; one system per
distinct `model`/`run` value, else one named by the file's stem). A run's system name is its run name unless
`--system NAME=RUN` maps it.

Labels: a JSONL file, one object a line: `id`, optional `model` or `run` (the system the label is about;
absent:
it is about every system's answer to that question), and label fields. Boolean fields are binary labels;
numeric fields graded ones (true/false are 1/0). `labels=` chooses the fields; by default every boolean field.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from axiom.errors import DatasetError, UsageError
from axiom.evaluation.datasets import json_objects, raise_if_problems, read_jsonl_text
from axiom.evaluation.run_folder import MANIFEST, load_run

SYSTEM_KEYS = ("model", "run")
NOT_A_SCORE = ("id", "model", "run", "question", "reference", "answer", "contexts", "sources")


@dataclass(frozen=True)
class Labels:
    """Human labels: one row per (system or "", id), a column per label field; `binary` names the yes/no
    ones."""

    frame: pd.DataFrame
    fields: tuple[str, ...]
    binary: frozenset[str]
    per_system: bool
    path: str


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def load_labels(path: str | Path, fields: Sequence[str] = ()) -> Labels:
    """Read a labels JSONL file; DatasetError naming each bad line (no id, a chosen field that is not a number
    or boolean, a duplicate (system, id))."""
    path = Path(path)
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    kinds: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for number, obj in json_objects(read_jsonl_text(path).splitlines(), "", problems):
        qid = obj.get("id")
        if not isinstance(qid, str | int) or isinstance(qid, bool) or str(qid).strip() == "":
            problems.append(f"line {number}: `id` is missing or not a string")
            continue
        system = next((str(obj[k]) for k in SYSTEM_KEYS if isinstance(obj.get(k), str)), "")
        if (system, str(qid)) in seen:
            problems.append(f"line {number}: a second label row for id {str(qid)!r}"
                            + (f" of {system!r}" if system else ""))
            continue
        seen.add((system, str(qid)))
        row: dict[str, Any] = {"system": system, "id": str(qid)}
        for key, value in obj.items():
            if key in NOT_A_SCORE or (fields and key not in fields):
                continue
            if isinstance(value, bool):
                kinds.setdefault(key, set()).add("bool")
            elif _number(value) is not None:
                kinds.setdefault(key, set()).add("number")
            elif fields and value is not None:
                problems.append(f"line {number}: label {key!r} is {type(value).__name__}, "
                                "expected a boolean or a number")
                continue
            row[key] = _number(value)
        rows.append(row)
    missing = [f for f in fields if f not in kinds]
    if missing:
        problems.append(f"no row has the label field(s) {', '.join(missing)}")
    raise_if_problems(path, problems)
    chosen = tuple(fields) if fields else tuple(k for k, v in kinds.items() if v == {"bool"})
    if not chosen:
        raise DatasetError(str(path), ["no boolean label field (name graded ones with --label FIELD)"])
    binary = frozenset(f for f in chosen if _is_binary(r.get(f) for r in rows))
    frame = pd.DataFrame(rows, columns=["system", "id", *chosen])
    return Labels(frame, chosen, binary, bool((frame["system"] != "").any()), str(path))


def _is_binary(values: Iterable[object]) -> bool:
    present = {v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return bool(present) and present <= {0.0, 1.0}


def _score_table(path: Path) -> pd.DataFrame:
    text = read_jsonl_text(path)
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.DataFrame(list(csv.DictReader(io.StringIO(text))))
        except csv.Error as exc:
            raise DatasetError(str(path), [f"not a CSV table: {exc}"]) from None
        for column in frame.columns:
            if column not in ("id", *SYSTEM_KEYS):
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
    else:
        problems: list[str] = []
        frame = pd.DataFrame([obj for _, obj in json_objects(text.splitlines(), "", problems)])
        raise_if_problems(path, problems)
    if "id" not in frame.columns:
        raise DatasetError(str(path), ["a score table needs an `id` column"])
    frame["id"] = frame["id"].astype(str)
    return frame


def load_systems(sources: Sequence[str], names: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """System name -> its per-question scores (`id` plus numeric metric columns). `names` maps a source path
    (as given) to a system name; a run folder is otherwise named by its run name."""
    names = dict(names or {})
    systems: dict[str, pd.DataFrame] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir() and (path / MANIFEST).is_file():
            record = load_run(path)
            columns = [m for m in record.metric_names if m in record.results.columns]
            frame = record.results[["id", *columns]].copy()
            frame["id"] = frame["id"].astype(str)
            parts = {names.get(source, record.name): frame}
        elif path.is_file():
            table = _score_table(path)
            key = next((k for k in SYSTEM_KEYS if k in table.columns), None)
            if key is None:
                parts = {names.get(source, path.stem): table}
            else:
                parts = {str(v): g.drop(columns=[key]) for v, g in table.groupby(key, sort=True)}
        else:
            raise UsageError(f"{source} is neither a run folder nor a score table (JSONL or CSV)")
        for name, frame in parts.items():
            if name in systems:
                raise UsageError(f"two inputs are both system {name!r}: name them with --system NAME=RUN")
            metrics = [c for c in frame.columns if c not in NOT_A_SCORE
                       and pd.api.types.is_numeric_dtype(frame[c])]
            systems[name] = frame[["id", *metrics]].astype({m: float for m in metrics})
    return systems


def join(systems: Mapping[str, pd.DataFrame], labels: Labels) -> pd.DataFrame:
    """One row per (system, question) that has both scores and labels: `system`, `id`, metric columns (NaN
    where a system lacks one), label columns. UsageError when a system has no labelled question."""
    parts = []
    for name, scores in systems.items():
        own = labels.frame[labels.frame["system"] == (name if labels.per_system
                                                      else "")].drop(columns=["system"])
        merged = scores.merge(own, on="id", how="inner")
        if merged.empty:
            groups = sorted(set(labels.frame["system"]) - {""})
            hint = f" (label groups: {', '.join(groups)}; map one with --system NAME=RUN)" if groups else ""
            raise UsageError(f"system {name!r} has no labelled question in {labels.path}{hint}")
        merged.insert(0, "system", name)
        parts.append(merged)
    return pd.concat(parts, ignore_index=True)


def system_names(values: Sequence[str] | None) -> dict[str, str]:
    """`--system NAME=RUN` values -> {RUN (as given): NAME}; UsageError for one without `=`."""
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, source = value.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise UsageError(f"--system {value!r}: expected NAME=RUN (a label group "
                             "and a run folder or table)")
        out[source.strip()] = name.strip()
    return out
