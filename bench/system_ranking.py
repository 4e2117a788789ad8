"""The 4 RAGTruth models ranked by mean groundedness (and by supported_claims and answer length) against their
ranking by people, with how sure each ranking is.

`python -m bench.system_ranking [--dataset DIR] [--cache DIR] [--samples 2000] [--seed 0] [--out FILE]`

1. Scores: the out-of-fold scores of every answer of ../shared/datasets/ragtruth-qa-train
   (bench/groundedness_scores.py: grouped 5-fold cross-validation, from the cached measures); label
   `human_faithful` (no span marked hallucinated). Answer length scores shorter answers higher (minus the log
   of the character count, the score of the AUC table).
2. `axiom.evaluation.system_ranking.system_ranking` on the table (one row per model and question): each
   model's mean, Kendall's tau-b between the metric's and people's ranking with its 95% percentile bootstrap
   interval (questions resampled, each drawn question's 4 answers together, fixed seed), and for each pair
   adjacent in the people's ranking the bootstrap share of resamples in which people, and each metric, order
   it that way.
3. Writes the markdown tables to `--out` (default bench/results/system_ranking.md) and prints them.

This measures; it chooses nothing. The aggregate (the mean) and the scores are those BENCHMARKS.md reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from axiom.evaluation.system_ranking import bootstrap_means, kendall_tau_b, system_ranking, tau_text
from bench import calibrate_groundedness as cg
from bench.common import REPO
from bench.groundedness_scores import out_of_fold

METRICS = ("groundedness", "supported_claims", "answer_length")
LABEL = "human_faithful"
BAR = 0.67  # issue 26's bar: tau 2/3 (5 of 6 pairs concordant), compared at 2 decimals


def _share(higher: np.ndarray, lower: np.ndarray) -> float:
    return float(np.mean(np.where(higher > lower, 1.0, np.where(higher == lower, 0.5, 0.0))))


def table(dataset: Path, cache: Path) -> pd.DataFrame:
    rows, scores = out_of_fold(dataset, cache)
    frame = pd.DataFrame({"system": [r["model"] for r in rows], "id": [str(r["id"]) for r in rows],
                          LABEL: [float(r["faithful"]) for r in rows]})
    for name in METRICS:
        frame[name] = scores[name]
    return frame


def report(frame: pd.DataFrame, samples: int, seed: int, command: str) -> str:
    ranking = {r["metric"]: r for r in system_ranking(frame, METRICS, [LABEL], samples=samples, seed=seed)}
    first = ranking[METRICS[0]]
    lines = [f"`{command}` ({dt.date.today().isoformat()}), {frame['id'].nunique()} questions x "
             f"{frame['system'].nunique()} models, label `{LABEL}`; out-of-fold scores (grouped 5-fold CV); "
             f"{samples} bootstrap resamples of {first['resampling']} (seed {seed}; a question's 4 answers "
             "travel together).", "",
             "| model | human-faithful share | " + " | ".join(f"mean {m}" for m in METRICS) + " |",
             "|---" * (2 + len(METRICS)) + "|"]
    for name in first["by_label"]:
        lines.append(f"| {name} | {first['means'][name]['label']:.3f} | "
                     + " | ".join(f"{ranking[m]['means'][name]['metric']:.3f}" for m in METRICS) + " |")
    lines += ["",
              "| metric | Kendall tau [95% CI] | ranking by the metric | share of resamples with tau >= "
              f"{BAR} | tau over the resamples (value: share) |", "|---|---|---|---|---|"]
    boot = {m: bootstrap_means(frame[["system", "id", m, LABEL]], m, LABEL, samples=samples, seed=seed)
            for m in METRICS}  # the same resamples as system_ranking's (same seed and label)
    for m in METRICS:
        r = ranking[m]
        taus = np.round(kendall_tau_b(boot[m][2], boot[m][3]), 4)
        values, counts = np.unique(taus[np.isfinite(taus)], return_counts=True)
        spread = ", ".join(f"{v:+.2f}: {c / taus.size:.3f}" for v, c in zip(values, counts, strict=True))
        lines.append(f"| {m} | {tau_text(r)} | {' > '.join(r['by_metric'])} | "
                     f"{np.mean(np.round(taus, 2) >= BAR):.3f} | {spread} |")
    lines += ["",
              f"People's ranking: {' > '.join(first['by_label'])}. For each pair adjacent in it: the "
              "difference of the human-faithful shares, and the share of resamples in which people (and "
              "each metric) order the pair that way (a tie counts half).", "",
              "| pair (people's order) | human difference | P(people's order) | "
              + " | ".join(f"P({m} agrees)" for m in METRICS) + " |", "|---" * (3 + len(METRICS)) + "|"]
    for k, pair in enumerate(first["adjacent_pairs"]):
        lines.append(f"| {pair['higher']} > {pair['lower']} | {pair['people_difference']:+.3f} | "
                     f"{pair['p_people']:.3f} | "
                     + " | ".join(f"{ranking[m]['adjacent_pairs'][k]['p_metric']:.3f}" for m in METRICS)
                     + " |")
    names, order = boot[METRICS[0]][0], first["by_label"]
    lines += ["", "The pairs that are not adjacent in the people's ranking, the same way:", "",
              "| pair (people's order) | human difference | P(people's order) | "
              + " | ".join(f"P({m} agrees)" for m in METRICS) + " |", "|---" * (3 + len(METRICS)) + "|"]
    for i, a in enumerate(order):
        for b in order[i + 2:]:
            ia, ib = names.index(a), names.index(b)
            human = boot[METRICS[0]][3]
            lines.append(f"| {a} > {b} | {first['means'][a]['label'] - first['means'][b]['label']:+.3f} | "
                         f"{_share(human[:, ia], human[:, ib]):.3f} | "
                         + " | ".join(f"{_share(boot[m][2][:, ia], boot[m][2][:, ib]):.3f}" for m in METRICS)
                         + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=cg.DATASET)
    parser.add_argument("--cache", type=Path, default=cg.CACHE)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "system_ranking.md")
    args = parser.parse_args(argv)
    command = f"PYTHONPATH=$PWD python -m bench.system_ranking --samples {args.samples} --seed {args.seed}"
    text = report(table(args.dataset, args.cache), args.samples, args.seed, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
