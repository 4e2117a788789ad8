"""Size, coverage and power of the comparison of repeated runs (axiom.evaluation.repeats) under run-to-run \
noise.

`python -m bench.run_noise_simulation [--sims N] [--n 250] [--seed S] [--out FILE]`

Method (the table's header repeats it). Per-question values y[q, r] = a[q] + shift + g[r] + e[q, r]: question
effects a ~ U(0.2, 0.8) (fixed per design), a run effect g ~ N(0, run_sd) shared by the questions of a
repetition, a residual e ~ N(0, residual_sd) per question and repetition. Two runs A and B of N repetitions
each.

- Null (shift 0): the share of `--sims` pairs rejected at 0.05 by (1) the sign-flip test on the first
  repetition's values (what `--repeat` tested before: only repetition 1), (2) the sign-flip test on the
  per-question means, blind to the run effect, (3) `repeats.paired_test_with_runs` (means + run term); and the
  coverage of 0 by `repeats.two_level_bootstrap_ci`. Each share with its 95% Clopper-Pearson interval.
- Power (shift -0.025 on B): the share detected at 0.05 by (1) and (3).

The real functions are called; nothing of them is re-implemented here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from axiom.evaluation import stats
from axiom.evaluation.repeats import paired_test_with_runs, run_variance, two_level_bootstrap_ci

DESIGNS = [  # (N repetitions, run sd, residual sd)
    (1, 0.01, 0.05), (3, 0.0, 0.05), (3, 0.005, 0.05), (3, 0.01, 0.05), (3, 0.02, 0.05), (5, 0.02, 0.05),
    (10, 0.02, 0.05)]
PERMUTATIONS = 1000
BOOTSTRAP = 400


def _share(hits: int, total: int) -> str:
    ci = binomtest(hits, total).proportion_ci(0.95)
    return f"{hits / total:.3f} [{ci.low:.2f}, {ci.high:.2f}]"


def _runs(rng: np.random.Generator, question: np.ndarray, repeats: int, run_sd: float, residual_sd: float,
          shift: float) -> np.ndarray:
    return (question[:, None] + shift + rng.normal(0, run_sd, size=(1, repeats))
            + rng.normal(0, residual_sd, size=(question.size, repeats)))


def simulate(design: tuple[int, float, float], *, sims: int, n: int, seed: int,
             shift: float) -> dict[str, int]:
    repeats, run_sd, residual_sd = design
    rng = np.random.default_rng(seed)
    question = rng.uniform(0.2, 0.8, size=n)
    hits = {"first": 0, "means": 0, "aware": 0, "covered": 0}
    for s in range(sims):
        a = _runs(rng, question, repeats, run_sd, residual_sd, 0.0)
        b = _runs(rng, question, repeats, run_sd, residual_sd, shift)
        diff = b.mean(axis=1) - a.mean(axis=1)
        terms = [run_variance(a), run_variance(b)]
        hits["first"] += stats.paired_randomisation_test(a[:, 0], b[:, 0], seed=s, label="m",
                                                         permutations=PERMUTATIONS) < 0.05
        hits["means"] += stats.paired_randomisation_test(np.zeros(n), diff, seed=s, label="m",
                                                         permutations=PERMUTATIONS) < 0.05
        hits["aware"] += paired_test_with_runs(diff, terms, seed=s, label="m",
                                               permutations=PERMUTATIONS) < 0.05
        low, high = two_level_bootstrap_ci(diff, terms, samples=BOOTSTRAP, seed=s, label="m")
        hits["covered"] += low <= shift <= high
    return hits


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=400)
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    lines = [f"# Repeated runs under run-to-run noise (n {args.n} questions, {args.sims} simulated pairs "
             f"per row, seed {args.seed})", "",
             "Null: share rejected at 0.05 (nominal 0.05) and coverage of the 95% interval; power: a drop "
             "of 0.025. `first`: sign-flip test of repetition 1's values (the old `--repeat`); `means`: "
             "sign-flip test of the per-question means, blind to the run effect; `aware`: means + run term "
             "(repeats.py). [95% Clopper-Pearson].", "",
             "| N | run sd | residual sd | null: first | null: means | null: aware | coverage | power: first "
             "| power: aware |", "|---|---|---|---|---|---|---|---|---|"]
    for k, design in enumerate(DESIGNS):
        null = simulate(design, sims=args.sims, n=args.n, seed=args.seed + k, shift=0.0)
        alt = simulate(design, sims=args.sims, n=args.n, seed=args.seed + 100 + k, shift=-0.025)
        lines.append(f"| {design[0]} | {design[1]} | {design[2]} | {_share(null['first'], args.sims)} | "
                     f"{_share(null['means'], args.sims)} | {_share(null['aware'], args.sims)} | "
                     f"{_share(null['covered'], args.sims)} | {_share(alt['first'], args.sims)} | "
                     f"{_share(alt['aware'], args.sims)} |")
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
