"""Size of the paired test and coverage of the 95% interval of the statistics core, on simulated data with \
known
variance components (question, document, run), through the real `compare_metrics`.

`python -m bench.verdict_simulation [--reps N] [--cells NAME,...] [--permutations P] [--bootstrap B] [--seed
S]
[--json FILE]`

Method (the printed table repeats it):

- Continuous metric: question i of document g, runs A and B. The question's level (shared by both runs:
  sd 0.2) cancels in the pair; the difference B - A is delta + v_g + (e_iB - e_iA) + (R_B - R_A), with the
  question-level noise e ~ N(0, 0.1) per run, a document-level effect of the change v_g ~ N(0, doc_sd) (a
  change that helps some documents and hurts others) and a run-level effect R ~ N(0, run_sd) shared by every
  question of a run (an LLM generator or judge that answers differently on every run).
- 0/1 metric: each pair is a cell of the paired 2x2 table, drawn with the probabilities that give A's rate p
  and B's rate p - drop (discordant pairs in both directions); clustered: each document is "hurt" (only
  losses, at twice the rate) or "helped" (only wins) with probability 1/2, so its questions move together.
- Size: the share of replications under the null (delta 0, no drop) whose two-sided p is below 0.05 (one
  metric: no correction); target 0.03-0.07. Coverage: the share whose 95% interval holds the true difference
  (the expectation over questions, documents and runs), under an effect (continuous: delta -0.02; 0/1: the
  drop given); target 0.92-0.97. Each rate carries its 95% Wilson interval over the replications.
- Every cell passes the questions' groups to compare_metrics (the design's documents) unless it says "groups
  ignored" (kept to show what treating clustered questions as independent does).
- Run-level noise is in the model but no single pair of runs can separate it from a real change: the cells
  with run_sd > 0 show that (repeats, issue 27 item 1, are what measure it).

Writes bench/results/verdict_simulation.json (or --json) and the table beside it (.md), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axiom.evaluation.paired_proportions import wilson_interval
from axiom.evaluation.verdict import StatsConfig, compare_metrics
from bench.common import REPO

OUT = REPO / "bench" / "results" / "verdict_simulation.json"
SAMPLE_SET_GROUPS = (6, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4)  # the sample set: 52 questions by first relevant source
ALPHA = 0.05
TARGET_SIZE = (0.03, 0.07)
TARGET_COVERAGE = (0.92, 0.97)
# 5: the fewest non-tied units k whose single sign assignment (probability 1 / 2**k) fits in ALPHA
MIN_UNITS = math.ceil(math.log2(1.0 / ALPHA))


@dataclass(frozen=True)
class Cell:
    """One design: the metric kind, the group sizes, the variance components and the effect for coverage."""

    name: str
    kind: str  # "continuous" | "binary"
    group_sizes: tuple[int, ...]
    doc_sd: float = 0.0  # continuous: sd of the change's effect per document
    run_sd: float = 0.0  # continuous: sd of the run-level effect
    rate: float = 0.0  # binary: A's rate
    drop: float = 0.0  # binary: B's rate is rate - drop under the effect
    discordant: float = 0.0  # binary: rate of discordant pairs in each direction under the null
    clustered_binary: bool = False
    use_groups: bool = True
    delta: float = -0.02  # continuous: the effect for coverage

    @property
    def n(self) -> int:
        return sum(self.group_sizes)


def _even(n: int, groups: int) -> tuple[int, ...]:
    return tuple([n // groups] * groups)


CELLS = (
    Cell("continuous, independent, n 50", "continuous", (1,) * 50),
    Cell("continuous, independent, n 250", "continuous", (1,) * 250),
    Cell("continuous, 250 in 25 groups", "continuous", _even(250, 25), doc_sd=0.06),
    Cell("continuous, 250 in 25 groups, groups ignored", "continuous", _even(250, 25), doc_sd=0.06,
         use_groups=False),
    Cell("continuous, 52 in 11 groups (sample set)", "continuous", SAMPLE_SET_GROUPS, doc_sd=0.06),
    Cell("continuous, 52 in 11 groups, groups ignored", "continuous", SAMPLE_SET_GROUPS, doc_sd=0.06,
         use_groups=False),
    Cell("continuous, n 250, run sd 0.01", "continuous", (1,) * 250, run_sd=0.01),
    Cell("0/1 at 0.95, n 50", "binary", (1,) * 50, rate=0.95, drop=0.02, discordant=0.02),
    Cell("0/1 at 0.95, n 250", "binary", (1,) * 250, rate=0.95, drop=0.02, discordant=0.02),
    Cell("0/1 at 0.99, n 50", "binary", (1,) * 50, rate=0.99, drop=0.02, discordant=0.005),
    Cell("0/1 at 0.99, n 250", "binary", (1,) * 250, rate=0.99, drop=0.02, discordant=0.005),
    Cell("0/1 at 0.95, 250 in 25 groups", "binary", _even(250, 25), rate=0.95, drop=0.02, discordant=0.02,
         clustered_binary=True),
    Cell("0/1 at 0.95, 52 in 11 groups", "binary", SAMPLE_SET_GROUPS, rate=0.95, drop=0.02, discordant=0.02,
         clustered_binary=True),
)


def _continuous(cell: Cell, rng: np.random.Generator, effect: bool) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.asarray(cell.group_sizes)
    level = rng.normal(0.6, 0.2, cell.n)
    doc = np.repeat(rng.normal(0.0, cell.doc_sd, sizes.size), sizes) if cell.doc_sd else 0.0
    run_a, run_b = (rng.normal(0.0, cell.run_sd, 2) if cell.run_sd else (0.0, 0.0))
    a = level + rng.normal(0.0, 0.1, cell.n) + run_a
    b = level + (cell.delta if effect else 0.0) + doc + rng.normal(0.0, 0.1, cell.n) + run_b
    return a, b


def _binary(cell: Cell, rng: np.random.Generator, effect: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cells (both, wins, losses, neither) per question; under the effect losses exceed wins by `drop` (wins
    never below 0: at 0.99 every discordant pair is a loss)."""
    wins = max(0.0, cell.discordant - cell.drop / 2) if effect else cell.discordant
    losses = wins + cell.drop if effect else cell.discordant
    sizes = np.asarray(cell.group_sizes)
    if cell.clustered_binary:  # each document hurt (losses only, twice the rate) or helped (wins only)
        hurt = np.repeat(rng.random(sizes.size) < 0.5, sizes)
        wins_q, losses_q = np.where(hurt, 0.0, 2 * wins), np.where(hurt, 2 * losses, 0.0)
    else:
        wins_q, losses_q = np.full(cell.n, wins), np.full(cell.n, losses)
    both_q = cell.rate - losses_q  # P(A = 1) = both + losses = rate
    u = rng.random(cell.n)
    a = (u < both_q + losses_q).astype(float)  # both or loss: A = 1
    b = ((u < both_q) | ((u >= both_q + losses_q) & (u < both_q + losses_q + wins_q))).astype(float)
    return a, b


def _truth(cell: Cell, effect: bool) -> float:
    if not effect:
        return 0.0
    return cell.delta if cell.kind == "continuous" else -cell.drop


def attainable_size(cell: Cell) -> float | None:
    """0/1 cells: an upper bound on the size at ALPHA of every non-randomised sign-flip (conditional) test of
    the design, by exact computation. With k units (questions, or groups) whose difference is not a tie, each
    of the 2**k sign assignments has probability 1 / 2**k under the null; below MIN_UNITS of them that is more
    than ALPHA, so no outcome can be rejected; from MIN_UNITS on, a test holding its level rejects with
    probability at most ALPHA. The bound is ALPHA * P(k >= MIN_UNITS): when it is below the target's floor, no
    valid test (the exact one, the mid-p of one that keeps its level) can reach the target in that design.
    None for continuous cells."""
    if cell.kind != "binary":
        return None
    sizes = cell.group_sizes if cell.use_groups else (1,) * cell.n
    per_question = 2.0 * cell.discordant  # a question differs: a win or a loss (clustered: twice one of them)
    untied = [1.0 - (1.0 - per_question) ** size for size in sizes]
    counts = np.zeros(len(untied) + 1)  # Poisson-binomial distribution of k
    counts[0] = 1.0
    for q in untied:
        counts[1:] = counts[1:] * (1.0 - q) + counts[:-1] * q
        counts[0] *= 1.0 - q
    return ALPHA * float(counts[MIN_UNITS:].sum())


def _rate(hits: int, reps: int) -> dict[str, Any]:
    low, high = wilson_interval(hits, reps)
    return {"rate": hits / reps, "low": low, "high": high, "hits": hits, "reps": reps}


def simulate(cell: Cell, reps: int, config: StatsConfig, seed: int) -> dict[str, Any]:
    """Size and coverage of one cell over `reps` replications each (null, effect)."""
    draw = _continuous if cell.kind == "continuous" else _binary
    ids = [f"q{i}" for i in range(cell.n)]
    groups = {qid: f"g{g}" for qid, g in zip(ids,
                                             np.repeat(np.arange(len(cell.group_sizes)), cell.group_sizes),
                                             strict=True)} if cell.use_groups else None
    rng = np.random.default_rng([seed, sum(map(ord, cell.name))])
    rejected = covered = covered_null = 0
    intervals, started = [], time.perf_counter()
    for rep in range(reps):
        config_rep = StatsConfig(alpha=ALPHA, bootstrap_samples=config.bootstrap_samples,
                                 permutations=config.permutations, seed=config.seed + rep)
        for effect in (False, True):
            a, b = draw(cell, rng, effect)
            entry = compare_metrics({"m": dict(zip(ids, a, strict=True))},
                                    {"m": dict(zip(ids, b, strict=True))},
                                    config=config_rep, groups=groups)["m"]
            low, high = entry.ci
            holds = low is not None and low - 1e-12 <= _truth(cell, effect) <= high + 1e-12
            if effect:
                covered += holds
                intervals.append(entry.interval)
            else:
                rejected += entry.p is not None and entry.p < ALPHA
                covered_null += holds
    size, coverage = _rate(rejected, reps), _rate(covered, reps)
    return {"cell": asdict(cell) | {"n": cell.n, "groups": len(cell.group_sizes)}, "size": size,
            "coverage": coverage, "coverage_null": _rate(covered_null, reps),
            "interval": max(set(intervals), key=intervals.count) if intervals else None,
            "size_in_target": TARGET_SIZE[0] <= size["rate"] <= TARGET_SIZE[1],
            "attainable_size": attainable_size(cell),
            "coverage_in_target": TARGET_COVERAGE[0] <= coverage["rate"] <= TARGET_COVERAGE[1],
            "seconds": round(time.perf_counter() - started, 1)}


def _cell_row(r: dict[str, Any]) -> str:
    def fmt(x: dict[str, Any]) -> str:
        return f"{x['rate']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"
    mark = lambda ok: "" if ok else " (miss)"  # noqa: E731
    bound = r.get("attainable_size")
    reach = "-" if bound is None else f"{bound:.4f}"
    if bound is not None and bound < TARGET_SIZE[0]:
        reach += " (target out of reach)"
    return (f"| {r['cell']['name']} | {r['interval']} | {fmt(r['size'])}{mark(r['size_in_target'])} | "
            f"{reach} | {fmt(r['coverage'])}{mark(r['coverage_in_target'])} | {fmt(r['coverage_null'])} |")


def table(results: list[dict[str, Any]], reps: int, config: StatsConfig) -> str:
    lines = [f"Size (p < {ALPHA} under the null; target {TARGET_SIZE[0]}-{TARGET_SIZE[1]}) and coverage of "
             f"the 95% interval (under an effect; target {TARGET_COVERAGE[0]}-{TARGET_COVERAGE[1]}), {reps} "
             "replications per cell, each rate with its 95% Wilson interval; compare_metrics with "
             f"{config.permutations} sign flips and {config.bootstrap_samples} bootstrap draws. Continuous "
             "effect -0.02 (question noise sd 0.1 per run); 0/1 effect: the rate drops by 0.02.", "",
             "`size`: of the sign-flip test's mid-p (stats.paired_randomisation_test). `attainable`: for "
             "0/1 metrics, the largest size any valid non-randomised sign-flip test can have in the design, "
             f"{ALPHA} x P(at least {MIN_UNITS} non-tied units) by exact computation (attainable_size): "
             f"where it is below {TARGET_SIZE[0]} the size target cannot be met by any test that holds its "
             "level.", "",
             "| design | interval | size | attainable | coverage (effect) | coverage (null) |",
             "|---|---|---|---|---|---|"]
    return "\n".join(lines + [_cell_row(r) for r in results])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000,
                        help="replications per cell (each: a null and an effect)")
    parser.add_argument("--cells", default="",
                        help="comma-separated substrings of the cell names to run (all)")
    parser.add_argument("--permutations", type=int, default=2000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.cells.split(",") if w.strip()]
    cells = [c for c in CELLS if not wanted or any(w in c.name for w in wanted)]
    if not cells:
        print(f"no cell matches {args.cells!r}; cells: " + "; ".join(c.name for c in CELLS), file=sys.stderr)
        return 2
    config = StatsConfig(permutations=args.permutations, bootstrap_samples=args.bootstrap)
    results = []
    for cell in cells:
        results.append(simulate(cell, args.reps, config, args.seed))
        print(_cell_row(results[-1]) + f"  ({results[-1]['seconds']} s)", file=sys.stderr, flush=True)
    text = table(results, args.reps, config)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"reps": args.reps, "permutations": args.permutations,
                                     "bootstrap_samples": args.bootstrap, "seed": args.seed, "alpha": ALPHA,
                                     "target_size": TARGET_SIZE, "target_coverage": TARGET_COVERAGE,
                                     "cells": results, "table": text}, indent=2) + "\n", encoding="utf-8")
    args.json.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
