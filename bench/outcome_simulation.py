"""The three outcomes of the gate and the max-T correction of the secondaries, on simulated data, through \
the real
`compare_metrics` (axiom/evaluation/outcomes.py, family.py).

`python -m bench.outcome_simulation [--reps N] [--n N] [--permutations P] [--bootstrap B] [--seed S] [--json
FILE]`

Method (the printed table repeats it): n questions, six metrics named as a real run's (three default
primaries:
ndcg@10, evidence_recall@10, groundedness; three secondaries: chrf, rouge_l, semantic_similarity). Per
question and metric a level shared by both runs (uniform 0.3-0.9, it cancels in the pair) plus independent
noise per run (sd 0.05; the differences have sd 0.07); run B is lowered by `drop` on ndcg@10 only (the other
five metrics are null). Per drop (0, half the margin, the margin, twice the margin; margin = min_delta 0.01)
and replication:
the outcome of ndcg@10, whether the gate fails (any primary a regression), and whether any secondary is called
better or worse after max-T. Each rate carries its 95% Wilson interval.

What the rows should show: at drop 0 the gate fails in at most alpha of the replications (Holm over the
primaries, one-sided) and the secondaries claim something in at most alpha (max-T); at drop = margin,
non-inferior in at most alpha (a non-inferiority claim is a one-sided test at alpha against a drop of the
margin) and regression in about half (the estimate must reach the margin); well beyond the margin, regression
nearly always.

Writes bench/results/outcome_simulation.json (or --json) and the table beside it (.md), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from axiom.evaluation.outcomes import DEFAULT_MIN_DELTA, INCONCLUSIVE, NON_INFERIOR, OUTCOMES, REGRESSION
from axiom.evaluation.paired_proportions import wilson_interval
from axiom.evaluation.verdict import BETTER, WORSE, StatsConfig, compare_metrics

OUT = Path(__file__).resolve().parent / "results" / "outcome_simulation.json"
PRIMARIES = ("ndcg@10", "evidence_recall@10", "groundedness")
SECONDARIES = ("chrf", "rouge_l", "semantic_similarity")
DROPS = (0.0, DEFAULT_MIN_DELTA / 2, DEFAULT_MIN_DELTA, 2 * DEFAULT_MIN_DELTA)


def _pair(rng: np.random.Generator, n: int, drop: float) -> tuple[dict[str, dict[str, float]], ...]:
    ids = [f"q{i}" for i in range(n)]
    names = PRIMARIES + SECONDARIES
    level = rng.uniform(0.3, 0.9, (n, len(names)))
    a = level + rng.normal(0, 0.05, level.shape)
    b = level + rng.normal(0, 0.05, level.shape)
    b[:, 0] -= drop
    return tuple({m: dict(zip(ids, x[:, j].tolist(), strict=True)) for j, m in enumerate(names)}
                 for x in (a, b))


def _rate(hits: int, reps: int) -> dict[str, Any]:
    low, high = wilson_interval(hits, reps)
    return {"hits": hits, "rate": hits / reps, "ci": [round(low, 3), round(high, 3)]}


def simulate(drop: float, reps: int, n: int, config: StatsConfig, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, int(round(drop * 1e6))])
    counts = dict.fromkeys(OUTCOMES, 0)
    gate = secondary = 0
    start = time.perf_counter()
    for rep in range(reps):
        per_a, per_b = _pair(rng, n, drop)
        out = compare_metrics(per_a, per_b, config=StatsConfig(**(config.to_dict() | {"seed": seed + rep})))
        counts[out["ndcg@10"].outcome] += 1
        gate += any(out[m].outcome == REGRESSION for m in PRIMARIES)
        secondary += any(out[m].verdict in (BETTER, WORSE) for m in SECONDARIES)
    return {"drop": drop, "reps": reps, "n": n, **{k: _rate(v, reps) for k, v in counts.items()},
            "gate_failed": _rate(gate, reps), "secondary_claim": _rate(secondary, reps),
            "seconds": round(time.perf_counter() - start, 1)}


def _cell(r: dict[str, Any]) -> str:
    return f"{r['hits']}/{{reps}} = {r['rate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"


def table(results: list[dict[str, Any]], config: StatsConfig) -> str:
    lines = [f"Three outcomes, simulated: n {results[0]['n']} questions, {results[0]['reps']} replications "
             f"per row, alpha {config.alpha}, margin {DEFAULT_MIN_DELTA}, {config.permutations} sign flips, "
             f"{config.bootstrap_samples} bootstrap draws; B lowered by `drop` on ndcg@10 only; paired "
             "differences sd 0.07 (see bench/outcome_simulation.py).", "",
             f"| drop | ndcg@10 {REGRESSION} | ndcg@10 {NON_INFERIOR} | ndcg@10 {INCONCLUSIVE} | gate failed "
             "| a secondary called better/worse |", "|---|---|---|---|---|---|"]
    for r in results:
        cells = [_cell(r[k]).format(reps=r["reps"]) for k in (*OUTCOMES, "gate_failed", "secondary_claim")]
        lines.append(f"| {r['drop']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=400, help="replications per drop")
    parser.add_argument("--n", type=int, default=250, help="questions per replication")
    parser.add_argument("--permutations", type=int, default=2000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = StatsConfig(permutations=args.permutations, bootstrap_samples=args.bootstrap)
    results = [simulate(drop, args.reps, args.n, config, args.seed) for drop in DROPS]
    text = table(results, config)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"reps": args.reps, "n": args.n, "permutations": args.permutations,
                                     "bootstrap_samples": args.bootstrap, "seed": args.seed, "rows": results,
                                     "table": text}, indent=2) + "\n", encoding="utf-8")
    args.json.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
