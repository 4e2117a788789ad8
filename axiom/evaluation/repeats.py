"""Run-to-run variance of repeated runs (`axiom eval --repeat N`) in the comparison of two runs.

A repeated run keeps every repetition's per-question values (`repeats.parquet`, one row per question and
repetition; a baseline's `per_repetition`); what is compared is each question's mean over the repetitions
(results.parquet's metric columns). The model is the two-way one of a crossed design:

    y[q, r] = mu + a[q] + g[r] + e[q, r]

with a question effect a, a run effect g shared by every question of repetition r (variance s_g^2: a judge
having a bad day, a sampling temperature that drew long answers for everyone) and a residual e (s_e^2: another
sentence sampled for this question). In the paired differences d[q] = ybar_B[q] - ybar_A[q] of the
per-question means, the residual part is already there (each ybar carries s_e^2 / N), so the question-level
test and bootstrap see it; the run part is not: g-bar is shared by all questions, it shifts mean(d) by
g-bar_B - g-bar_A, with variance s_gA^2 / N_A + s_gB^2 / N_B, and no resampling of questions can see it.

- `run_variance`: s_g^2 / N from the two-way ANOVA of the questions measured in every repetition,
  (MS_runs - MS_residual) / n, clipped at 0, then / N; N - 1 degrees of freedom. Deterministic repetitions (or
  N = 1) give 0, and then every statistic below is the plain one of `verdict.compare_metrics`, bit for bit.
- `paired_test_with_runs`: the sign-flip randomisation distribution of mean(d) over questions (exact up to 13
  non-zero differences, else `permutations` draws, as `stats.paired_randomisation_test`) convolved with the
  run term tau * T, where tau^2 = s_gA^2 / N_A + s_gB^2 / N_B and T is Student's t with the
  Welch-Satterthwaite degrees of freedom of the two estimates: p = mean over sign assignments x of
  P(|x + tau T| >= |mean(d)|), by the t distribution's cdf (no second Monte Carlo). Why this one: the question
  part keeps the distribution-free sign-flip test of the rest of Axiom (bounded, skewed, 0/1 metrics); the run
  part is a sum of two independent shifts whose variances are estimated from N - 1 degrees of freedom each, so
  a t, not a normal, is the honest reference (N = 3: 2 to 4 degrees of freedom; a normal there rejects far too
  often).
- `two_level_bootstrap_ci`: the percentile interval of mean(d) from replicates at two levels: the questions
  resampled (paired, with replacement), plus a run-level draw tau * T from the test's own run term. Why not
  resample the repetitions themselves (the "pigeonhole" bootstrap of a crossed design, Owen 2007): with N = 3
  a resample of the repetitions has 10 possible outcomes and undercounts s_g^2 by (N - 1) / N; in the
  simulation of tests/evaluation/test_repeats.py (n 100, N 3, run sd 0.02, residual sd 0.05) its coverage was
  0.86 at nominal 0.95, where this interval's is 0.95 or a little above. The interval and the test share one
  model.
- `compare_with_repeats`: `verdict.compare_metrics` on the per-question means, then, for each metric whose
  runs vary from run to run, p, the interval and the MDE (sensitivity.py's simulation, n^2 tau^2 added to
  the variance of the sum its test compares) with the run term, and the correction and the verdicts again
  over the whole family. The spread (range of the repetition means) is reported, never used as a dead band.
- `noise_sources` / `noise_note`: which parts of a run are stochastic (an LLM generator, an endpoint,
  extractive sampling at temperature > 0, an LLM judge); a run of such a source made once has no measured
  run-to-run noise, and the verdict says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as scipy_stats

from axiom.evaluation import outcomes, stats
from axiom.evaluation.clusters import Clusters
from axiom.evaluation.verdict import (
    StatsConfig,
    compare_metrics,
    paired_all,
    paired_values,
    settle,
)
from axiom.evaluation.verdict_entry import VerdictEntry

if TYPE_CHECKING:
    from axiom.evaluation.answer_metrics import MetricScore
    from axiom.evaluation.run_documents import Manifest

RUN_TERM = 1e-12  # a run variance at or below this is float noise (identical repetitions)
RepeatValues = Mapping[str, Sequence[float]]  # question id -> one value per repetition


def _rng(seed: int, label: str) -> np.random.Generator:
    return stats.seeded_rng(seed, "runs:" + label)


def repetitions(per_repetition: RepeatValues) -> int:
    """How many repetitions a run's per-question values hold (1 when it was not repeated)."""
    return max((len(v) for v in per_repetition.values()), default=1)


def repeat_matrix(per_repetition: RepeatValues, ids: Sequence[str], means: np.ndarray) -> np.ndarray:
    """questions x repetitions (NaN where a repetition did not measure a question); a question without
    per-repetition values is its mean repeated."""
    width = repetitions(per_repetition)
    rows = np.full((len(ids), width), np.nan)
    for row, (qid, mean) in enumerate(zip(ids, means, strict=True)):
        values = per_repetition.get(qid)
        if values is None or len(values) != width:
            rows[row] = mean
        else:
            rows[row] = [np.nan if v is None else float(v) for v in values]
    return rows


def mean_over_repetitions(first: Sequence[MetricScore], per_repetition: list[list[float]]
                          ) -> list[MetricScore]:
    """An answer metric's per-question score over the repetitions: the mean of those that measured it (ok when
    one did; else the first repetition's score, its status and reason)."""
    out: list[MetricScore] = []
    for q, score in enumerate(first):
        measured = [rep[q] for rep in per_repetition if not math.isnan(rep[q])]
        if measured:
            same = all(v == measured[0] for v in measured)  # identical repetitions: the value itself, exactly
            mean = float(measured[0] if same else sum(measured) / len(measured))
            out.append(replace(score, value=mean, status="ok", reason=None))
        else:
            out.append(score)
    return out


def run_variance(matrix: np.ndarray) -> tuple[float, int]:
    """(s_g^2 / N, N - 1): the variance that run-level noise adds to a run's mean, from the two-way ANOVA of
    the questions measured in every repetition (see the module docstring); (0, 0) for N = 1."""
    width = matrix.shape[1]
    complete = matrix[~np.isnan(matrix).any(axis=1)]
    n = complete.shape[0]
    if width < 2 or n == 0:
        return 0.0, 0
    columns = complete.mean(axis=0)
    between = float(np.var(columns, ddof=1))  # variance of the repetition means
    if n >= 2:
        residual = complete - complete.mean(axis=1, keepdims=True) - columns[None, :] + complete.mean()
        ms_residual = float((residual ** 2).sum()) / ((n - 1) * (width - 1))
        between = between - ms_residual / n
    s_g2 = max(0.0, between)
    return (s_g2 / width if s_g2 > RUN_TERM else 0.0), width - 1


def satterthwaite(terms: Iterable[tuple[float, int]]) -> tuple[float, float]:
    """(sum of the variances, Welch-Satterthwaite degrees of freedom) of independent variance estimates."""
    used = [(v, df) for v, df in terms if v > 0 and df >= 1]
    total = sum(v for v, _ in used)
    if not used:
        return 0.0, math.inf
    return total, total ** 2 / sum(v ** 2 / df for v, df in used)


def group_index(ids: Sequence[str], groups: Mapping[str, str] | None) -> np.ndarray | None:
    """Row -> group number of the questions `ids` (a question without a group is its own); None without
    groups."""
    return Clusters.of(ids, groups).index if groups else None


def paired_test_with_runs(diff: np.ndarray, terms: Sequence[tuple[float, int]], *, seed: int, label: str,
                          permutations: int = stats.PERMUTATIONS, groups: np.ndarray | None = None,
                          thresholds: Sequence[float] = ()) -> float:
    """Two-sided p of "mean(diff) is 0" when the mean also carries run-level noise (see the module docstring);
    `terms`: (variance of each run's mean from run noise, its degrees of freedom). `groups` (row -> group
    number, `group_index`): the signs flip per group (its questions' summed differences), not per question.
    `thresholds`: the levels p will be compared with; random sign draws continue until p's side of each is
    settled, as in stats.paired_randomisation_test (none: one batch of `permutations`)."""
    diff = np.asarray(diff, dtype=float)
    keep = ~np.isnan(diff)
    diff = diff[keep]
    if diff.size == 0:
        return float("nan")
    tau2, df = satterthwaite(terms)
    if tau2 <= 0 and groups is None:
        return stats.paired_randomisation_test(np.zeros_like(diff), diff, seed=seed, label=label,
                                               permutations=permutations)
    n = diff.size
    units = diff if groups is None else np.bincount(np.asarray(groups)[keep], weights=diff)
    observed = abs(float(diff.mean()))
    nonzero = units[np.abs(units) > stats.ZERO]
    m = nonzero.size
    tolerance = 1e-12 * max(1.0, observed)

    def tail(x: np.ndarray) -> np.ndarray:  # P(|x + tau T| >= observed); without a run term, |x| >= observed
        p: np.ndarray
        if tau2 <= 0:
            p = (np.abs(x) >= observed - tolerance).astype(float)
        else:
            t = scipy_stats.t(df)
            tau = math.sqrt(tau2)
            p = t.sf((observed - x) / tau) + t.cdf((-observed - x) / tau)
        return p

    if m == 0:
        return float(tail(np.zeros(1))[0])
    if m <= stats.EXACT_MAX_NONZERO:
        signs = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        return float(np.mean(tail(signs @ nonzero / n)))
    # the observed assignment counts as one draw, as a hit (as in stats.paired_randomisation_test: never 0)
    return min(1.0, stats.settled_sign_flip_p(lambda sums: tail(sums / n), nonzero, _rng(seed, label),
                                              permutations, thresholds))


def two_level_bootstrap_ci(diff: np.ndarray, terms: Sequence[tuple[float, int]], *, samples: int, seed: int,
                           label: str, level: float = 0.95, groups: np.ndarray | None = None
                           ) -> tuple[float, float]:
    """Percentile interval of mean(diff) (per-question differences of means over repetitions, or one run's
    per-question means) with two levels: the questions (or, with `groups`, whole groups: drawn sums over drawn
    question counts) resampled with replacement, and the run level drawn as tau * T (the test's run term,
    `terms` as in `paired_test_with_runs`) in each replicate."""
    diff = np.asarray(diff, dtype=float)
    keep = ~np.isnan(diff)
    diff = diff[keep]
    if diff.size == 0:
        return float("nan"), float("nan")
    rng = _rng(seed, "bootstrap:" + label)
    if groups is None:
        means = diff[rng.integers(0, diff.size, size=(samples, diff.size))].mean(axis=1)
    else:
        index = np.asarray(groups)[keep]
        sums, counts = np.bincount(index, weights=diff), np.bincount(index).astype(float)
        sums, counts = sums[counts > 0], counts[counts > 0]
        drawn = rng.integers(0, sums.size, size=(samples, sums.size))
        means = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    tau2, df = satterthwaite(terms)
    if tau2 > 0:
        means = means + math.sqrt(tau2) * rng.standard_t(df, size=samples)
    return stats.percentile_interval(means, level)


def decision_levels(alpha: float, metrics: int) -> list[float]:
    """The levels a two-sided p of a family of `metrics` is compared with: Holm's alpha / j, and 2 alpha / j
    for a primary's one-sided drop (its p_drop is half the two-sided p)."""
    steps = range(1, max(1, metrics) + 1)
    return sorted({alpha / j for j in steps} | {min(1.0, 2 * alpha / j) for j in steps})


def compare_with_repeats(per_a: Mapping[str, Mapping[str, float]], per_b: Mapping[str, Mapping[str, float]],
                         *, config: StatsConfig, reps_a: Mapping[str, RepeatValues],
                         reps_b: Mapping[str, RepeatValues],
                         metrics: Iterable[str] | None = None, spread: Mapping[str, float] | None = None,
                         groups: Mapping[str, str] | None = None, primaries: Sequence[str] | None = None,
                         margins: Mapping[str, float] | None = None) -> dict[str, VerdictEntry]:
    """`verdict.compare_metrics` of the per-question means, with the run-to-run variance of repeated runs in
    the test, the interval and the MDE (see the module docstring). Each entry also says how many repetitions
    each side had (`repeats`: [N_A, N_B]) and the run term's variance (`run_variance`, 0 when not measured).
    `groups` ({question id: group}) goes to `compare_metrics` when given, and the run-aware test and interval
    then flip and resample whole groups. `primaries` / `margins`: as in `compare_metrics`; a primary's
    one-sided bound (`drop_bound`) gets the run term too. The correction is `verdict.settle`, run again over
    the family when some metric has a run term."""
    grouped: dict[str, Any] = {"groups": groups} if groups else {}
    out = compare_metrics(per_a, per_b, config=config, metrics=metrics, spread=spread, primaries=primaries,
                          margins=margins, **grouped)
    with_run_term: list[str] = []
    for name, entry in list(out.items()):
        ra, rb = reps_a.get(name) or {}, reps_b.get(name) or {}
        out[name] = entry = replace(entry, repeats=(repetitions(ra), repetitions(rb)), run_variance=0.0)
        if not entry.n or (not ra and not rb):
            continue
        ids, xa, xb = paired_values(per_a.get(name, {}), per_b.get(name, {}))
        matrix_a, matrix_b = repeat_matrix(ra, ids, xa), repeat_matrix(rb, ids, xb)
        terms = [run_variance(matrix_a), run_variance(matrix_b)]
        tau2, _ = satterthwaite(terms)
        if tau2 <= 0:
            continue
        index = group_index(ids, groups)
        p = paired_test_with_runs(xb - xa, terms, seed=config.seed, label=name,
                                  permutations=config.permutations, groups=index,
                                  thresholds=decision_levels(config.alpha, len(out)))
        low, high = two_level_bootstrap_ci(xb - xa, terms, samples=config.bootstrap_samples, seed=config.seed,
                                           label=name, groups=index)
        entry = replace(entry, run_variance=tau2, p=p, ci=(low, high))
        if entry.margin is not None:  # a primary: its one-sided bound with the run term (the same draws)
            low, high = two_level_bootstrap_ci(xb - xa, terms, samples=config.bootstrap_samples,
                                               seed=config.seed, label=name, groups=index,
                                               level=1.0 - 2.0 * config.alpha)
            entry = replace(entry, drop_bound=outcomes.drop_bound(low, high))
        out[name] = entry
        with_run_term.append(name)
    if with_run_term:  # the correction, the MDEs (with the run term) and the outcomes again
        names = list(out)
        settle(out, paired_all(per_a, per_b, names), config=config, groups=groups,
               primaries=[m for m, e in out.items() if e.outcome is not None], run_terms=with_run_term)
    return out


def noise_sources(manifest: Manifest) -> list[str]:
    """What makes a run's answers or scores vary from run to run, from its manifest (empty: deterministic)."""
    found = []
    kind = manifest.source_kind
    generator = manifest.generator.name if manifest.generator is not None else None
    temperature = (manifest.settings.get("generation") or {}).get("temperature") or 0.0
    if kind == "endpoint":
        found.append("answers from an endpoint")
    elif kind == "pipeline" and generator == "openai":
        found.append("an LLM generator")
    elif kind == "pipeline" and generator == "extractive" and float(temperature) > 0:
        found.append(f"extractive sampling at temperature {float(temperature):g}")
    if manifest.judge:
        found.append("an LLM judge")
    return found


def noise_note(sides: Sequence[tuple[str, Sequence[str], int]]) -> str | None:
    """The verdict's note when a stochastic run was made once: `sides` are (name, noise sources,
    repetitions)."""
    once = [f"{name} ({', '.join(sources)}) was run once" for name, sources, n in sides if sources and n < 2]
    if not once:
        return None
    return ("run-to-run noise is not measured: " + "; ".join(once)
            + " (repeat it with axiom eval --repeat 3 or more to test against it)")
