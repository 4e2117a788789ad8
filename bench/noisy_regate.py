"""Re-gating the saved runs of bench/noisy_gate_calibration.py with the current statistics code.

A run's answers and per-question values do not depend on the test that gates it, so when the test changes
(here: the sign-flip test's mid-p, issue 27) the calibration's null pairs and faulty runs are checked again
from their run folders, without re-running the pipeline: `gate.gate_record` on each saved run against its
pair's baseline, the function `run_evaluation` gates it with. What the change does move is the MDE a gate
prints; a fault set aimed at a metric whose MDE moved must be run again at the new MDE (the calibration does
that: `stale_fault_sets`), the others keep their runs, re-gated. Each re-gated faulty run keeps the drop it
was aimed at, now expressed as a multiple of the new MDE (`level_of`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MDE_TOLERANCE = 1e-9  # an MDE that moved less than this did not move


def run_folder(runs_dir: Path, name: str) -> Path:
    """The newest run folder of the calibration run `name` (folders end with the run's name, its '+' written
    '-')."""
    for stem in (f"noisy-{name}".replace("+", "-"), f"noisy-{name}"):
        found = sorted(runs_dir.glob(f"*-{stem}"))
        if found:
            return found[-1]
    raise FileNotFoundError(f"no saved run folder for {name!r} under {runs_dir}")


class Regated:
    """A saved run with the gate the current code gives it (what gate_facts reads: `.gate`)."""

    def __init__(self, folder: Path, baseline: Path, config: Any) -> None:
        from axiom.evaluation.gate import gate_record, load_baseline
        from axiom.evaluation.run_folder import load_run

        self.folder = folder
        self.gate = gate_record(load_run(folder), load_baseline(baseline), config)


def same_run(saved: dict[str, Any], regated: dict[str, Any], what: str) -> None:
    """The folder found must be the run the saved result gated: every primary's delta the same."""
    for metric, facts in saved["primaries"].items():
        old, new = facts.get("delta"), regated["primaries"][metric].get("delta")
        if (old is None) != (new is None) or (old is not None and abs(old - new) > 1e-12):
            raise ValueError(f"{what}: the saved run folder is not the run the result gated ({metric} delta "
                             f"{new} against {old})")


def faulty_name(level: float, faults: Sequence[str], run: int) -> str:
    """The calibration's name of a faulty run (noisy_gate_calibration._power)."""
    return f"faulty-{level:g}-{'+'.join(f.split()[-1] for f in faults)}-{run}"


def mde_medians(null: Sequence[dict[str, Any]], targets: Iterable[str]) -> dict[str, float]:
    """The printed MDE of each target metric: its median over the null pairs' gates (pairs whose gate printed
    none are left out). The calibration and its re-gating both report this one number."""
    return {m: float(np.median([p["primaries"][m]["mde"] for p in null
                                if p["primaries"][m]["mde"] is not None])) for m in targets}


def regate(saved: dict[str, Any], work: Path, targets: dict[str, str], *, config: Any,
           facts: Callable[[Any], dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """`saved` (a complete result of the calibration) with every null pair and faulty run gated again by the
    current code (`config`: the runs' verdict.StatsConfig, as run_evaluation builds it), the MDE medians of
    the new null gates, and per faulty run `level_of` and `target` (per targeted metric: the drop it was aimed
    at, and that drop over the new MDE)."""
    runs, baselines = work / "runs", work / "baselines"
    null = []
    for pair in saved["null"]:
        i = pair["pair"]
        regated = facts(Regated(run_folder(runs, f"b{i}"), baselines / f"pair-{i}.json", config))
        same_run(pair, regated, f"null pair {i}")
        null.append({"pair": i, **regated})
    mde = mde_medians(null, targets)
    log("printed MDE, re-gated (median over the null pairs): "
        + ", ".join(f"{m} {v:.4f} (was {saved['mde'][m]:.4f})" for m, v in mde.items()))
    metric_of = {fault: m for m, fault in targets.items()}
    power = []
    for entry in saved["power"]:
        name = faulty_name(entry["level"], entry["faults"], entry["run"])
        regated = facts(Regated(run_folder(runs, name), baselines / f"pair-{entry['baseline_pair']}.json",
                                config))
        same_run(entry, regated, name)
        target = {metric_of[f]: entry["level"] * saved["mde"][metric_of[f]] for f in entry["faults"]}
        level_of = {m: entry["level"] if not moved(saved["mde"][m], mde[m]) else drop / mde[m]
                    for m, drop in target.items()}
        power.append({**entry, **regated, "regated": True, "target": target, "level_of": level_of})
    log(f"re-gated {len(null)} null pairs and {len(power)} faulty runs")
    return {**saved, "null": null, "mde": mde, "power": power, "mde_before": saved["mde"]}


def moved(before: float, after: float) -> bool:
    """Whether a printed MDE moved (nan, out of reach, on both sides: it did not)."""
    if math.isnan(before) or math.isnan(after):
        return math.isnan(before) != math.isnan(after)
    return abs(after - before) > MDE_TOLERANCE


def stale_fault_sets(result: dict[str, Any], targets: dict[str, str],
                     fault_sets: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """The fault sets aimed at a metric whose printed MDE moved in the re-gating: they are run again."""
    changed = {m for m in targets if moved(result["mde_before"][m], result["mde"][m])}
    return [tuple(s) for s in fault_sets if targets_of(s, targets) & changed]


def targets_of(fault_set: Sequence[str], targets: dict[str, str]) -> set[str]:
    return {m for m, fault in targets.items() if fault in fault_set}
