"""The one statistics core of Axiom: every interval, test, correction and minimum detectable effect that
`axiom eval`, `axiom compare`, the regression gate, sweeps and the notebooks report comes from here.

Numerics only (numpy and scipy): no run folders, no printing. `axiom.evaluation.verdict` turns these numbers
into per-metric verdicts.

- `bootstrap_ci`: percentile bootstrap interval of a mean over questions.
- `paired_bootstrap_ci`: the same for the mean of paired differences (B - A per question).
- `paired_difference_ci`: the interval of a mean paired difference as reported: Tango's paired score
  interval when every value is 0 or 1 (paired_proportions.py), else the percentile bootstrap (the studentized
  bootstrap by group when the questions are clustered, clusters.py).
- `paired_randomisation_test`: two-sided sign-flip test of "the mean paired difference is 0". Only non-zero
  differences carry information (a zero keeps its value under a sign flip). When every non-zero difference
  has the same size (0/1 metrics: McNemar's discordant pairs) the sign-flip distribution is binomial, for any
  number of them; otherwise the test enumerates every sign assignment exactly when there are at most 13 of
  them, and draws random assignments beyond (p = (hits + 1) / (draws + 1), never 0). With clusters the units
  are the groups' sums of differences.
  p is the mid-p: P(|S| > |s|) + P(|S| = |s|) / 2 under the sign flips (an assignment level with the observed
  one counts half; 1 when the observed sum is 0). Why: the distribution is discrete, most of all for 0/1
  metrics near the ceiling, where the conventional p (P(|S| >= |s|)) jumps in steps of whole binomial terms
  and its test rejects far less often than its level (McNemar's exact test: size 0.022 at 0.95 on 250
  questions, by exact enumeration; the mid-p 0.041). The mid-p is the recommendation of Fagerland, Lydersen
  and Laake (2013, BMC Medical Research Methodology 13:91) for matched pairs: its size stays near the level
  and rarely exceeds it (bench/verdict_simulation.py measures it for every design here). For continuous
  metrics the two differ by the mass of the observed |sum| alone (1 / 2**m when enumerated, none drawn).
  Monte Carlo precision: given the decision `thresholds` (the levels the corrected p is compared with: alpha /
  j for the Holm steps j = 1..m), the draws continue in doubling batches (`permutations`, then twice as many,
  ...) until the count of hits is more than 3.29 standard errors (binomial, at the threshold) from every
  threshold, or 64 times `permutations` would be exceeded. A p-value far from every threshold stops after the
  first batch (the old cost); one near a threshold is drawn until its side is settled, so two seeds give the
  same decision unless the true p is within about 5% of a threshold (at 630,000 draws the standard error at
  0.0025 is 6e-5). Why not a normal or saddlepoint approximation: the test stays the exact sign-flip test for
  every metric's shape (bounded, skewed, tied), only its Monte Carlo error is bounded, and where p is far from
  a threshold nothing is spent.
- `holm`: Holm's step-down adjustment of a family of p-values (family-wise error rate, valid under any
  dependence between the metrics, which are strongly correlated here).
- `minimum_detectable_effect`: the smallest true mean difference the paired test detects with the given power
  at the Holm threshold of the first step (alpha / m): (z(1 - alpha/(2m)) + z(power)) * sd / sqrt(n)
  (normal approximation of the paired test; see `planning_sd` for the sd). A planning formula only: the MDE a
  comparison reports is the one of the test actually used (axiom.evaluation.sensitivity).
- `cluster_resamples`: row indices of bootstrap resamples drawn by cluster (question), for statistics other
  than a mean (agreement of a metric with people: AUC, kappa, rank correlations).
- `min_questions`: the smallest n at which even a unanimous change (every question moves the same way) can be
  significant at alpha / m with the sign-flip test: its mid-p 1 / 2**n <= alpha / m.

Every random draw comes from a generator seeded by (seed, label), so results do not depend on the order
metrics are processed in, and the same inputs give bit-identical outputs in every face.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist

import numpy as np
from scipy.stats import binom

from axiom.evaluation.clusters import Clusters, cluster_bootstrap_ci, design_effect
from axiom.evaluation.paired_proportions import PairedTable, is_binary, tango_paired_interval

PERMUTATIONS = 10_000
MAX_BATCHES = 64  # draws stop before 64 times `permutations` (630,000 of 10,000: 6 looks at the thresholds)
SETTLED_Z = 3.29  # two-sided 0.001 per look: a side settled in a few looks errs well below 1%
# Numbers as the functions below take them: a sequence (NaN or None for a missing value) or an array.
Floats = Sequence[float] | np.ndarray

EXACT_MAX_NONZERO = 13  # 2**13 = 8,192 sign assignments, fewer than the Monte Carlo draws
# |difference| at or below this is a tie: float noise. Embeddings are float32, and the same text embedded in
# another batch (other padding) moves by up to 1.4e-7 per component (measured), so embedding-based metrics of
# the same answers re-computed in another process differ by about 1e-8; one question of 250 moves a mean by
# 4e-3.
ZERO = 1e-6


def seeded_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(label.encode("utf-8"))])


def finite(values: Floats) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    kept: np.ndarray = arr[~np.isnan(arr)]
    return kept


def _percentile_interval(means: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def bootstrap_ci(values: Floats, *, samples: int, seed: int, label: str, level: float = 0.95
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaNs left out). (nan, nan) for no values."""
    arr = finite(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    idx = seeded_rng(seed, label).integers(0, arr.size, size=(samples, arr.size))
    return _percentile_interval(arr[idx].mean(axis=1), level)


def percentile_interval(values: Floats, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates left out); (nan, nan) for none."""
    arr = finite(values)
    return (float("nan"), float("nan")) if arr.size == 0 else _percentile_interval(arr, level)


def cluster_resamples(clusters: Sequence[str], *, samples: int, seed: int, label: str) -> list[np.ndarray]:
    """`samples` bootstrap resamples of rows, each drawing as many clusters as there are, with replacement,
    and keeping every row of a drawn cluster (as often as it was drawn)."""
    keys, inverse = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    rows_of = [np.flatnonzero(inverse == k) for k in range(keys.size)]
    draws = seeded_rng(seed, "cluster:" + label).integers(0, keys.size, size=(samples, keys.size))
    return [np.concatenate([rows_of[k] for k in draw]) for draw in draws]


def paired_bootstrap_ci(diff: np.ndarray, *, samples: int, seed: int, label: str, level: float = 0.95
                        ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences, resampling questions (pairs)."""
    return bootstrap_ci(diff, samples=samples, seed=seed, label="paired:" + label, level=level)


TANGO, BOOTSTRAP, CLUSTER_BOOTSTRAP = "tango score", "bootstrap", "cluster bootstrap-t"


def paired_difference_ci(a: np.ndarray, b: np.ndarray, *, samples: int, seed: int, label: str,
                         clusters: Clusters | None = None, level: float = 0.95) -> tuple[float, float, str]:
    """The interval of the mean paired difference b - a (no NaNs; `clusters` one group per pair) and its
    method:

    - every value of both sides 0 or 1: Tango's paired score interval (paired_proportions.py), with the counts
      divided by the design effect (when above 1) under clustering;
    - otherwise the percentile bootstrap resampling pairs (`paired_bootstrap_ci`, the independent case), or
      the studentized bootstrap resampling whole groups (clusters.cluster_bootstrap_ci).
    """
    diff = b - a
    clustered = clusters is not None and not clusters.trivial
    if is_binary(a, b):
        table = PairedTable.of(a, b)
        deff = design_effect(diff, clusters) if clustered and clusters is not None else 1.0
        if not math.isnan(deff) and deff > 1.0:
            table = table.scaled(1.0 / deff)
        low, high = tango_paired_interval(table, level)
        return low, high, TANGO
    if clustered and clusters is not None:
        low, high = cluster_bootstrap_ci(diff, clusters, seeded_rng(seed, "paired:" + label), samples=samples,
                                         level=level)
        return low, high, CLUSTER_BOOTSTRAP
    low, high = paired_bootstrap_ci(diff, samples=samples, seed=seed, label=label, level=level)
    return low, high, BOOTSTRAP


def paired_randomisation_test(a: Floats, b: Floats, *, seed: int, label: str,
                              permutations: int = PERMUTATIONS, clusters: Clusters | None = None,
                              thresholds: Sequence[float] = ()) -> float:
    """Two-sided p-value that the mean of b - a differs from 0 (see the module docstring). Pairs with a NaN on
    either side are left out; nan when no pair is left, 1.0 when every difference is a tie. With `clusters`
    (one group per pair, clusters.py) the signs are flipped per group, on the groups' sums of differences.
    `thresholds`: the levels p will be compared with; Monte Carlo draws continue until p's side of each is
    settled (none: one batch of `permutations` draws)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    diff = (y - x)[keep]
    if diff.size == 0:
        return float("nan")
    if clusters is not None and not clusters.trivial:
        # a group whose pairs were all left out sums to 0: a tie, which carries no information
        diff = np.bincount(clusters.index[keep], weights=diff, minlength=clusters.count)
    nonzero = diff[np.abs(diff) > ZERO]
    m = nonzero.size
    if m == 0:
        return 1.0
    observed = abs(nonzero.sum())
    tolerance = 1e-12 * max(1.0, observed)
    if observed <= tolerance:  # the centre of the null distribution: no evidence either way
        return 1.0
    size = np.abs(nonzero)
    if float(size.max() - size.min()) <= 1e-12 * float(size.max()):  # one size: the sign test's mid-p
        larger = max(int(np.sum(nonzero > 0)), m - int(np.sum(nonzero > 0)))
        return float(min(1.0, 2.0 * (binom.sf(larger, m, 0.5) + 0.5 * binom.pmf(larger, m, 0.5))))
    if m <= EXACT_MAX_NONZERO:  # enumerate every sign assignment
        signs = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        return float(np.mean(_mid_tail(np.abs(signs @ nonzero), observed, tolerance)))
    return _monte_carlo_p(nonzero, observed, tolerance, seeded_rng(seed, label), permutations, thresholds)


def _mid_tail(sums: np.ndarray, observed: float, tolerance: float) -> np.ndarray:
    """Each |signed sum|'s share of the mid-p: 1 beyond the observed |sum|, 1/2 level with it, else 0."""
    return (sums > observed + tolerance) + 0.5 * (np.abs(sums - observed) <= tolerance)


def _monte_carlo_p(nonzero: np.ndarray, observed: float, tolerance: float, rng: np.random.Generator,
                   permutations: int, thresholds: Sequence[float]) -> float:
    """(hits + 1) / (draws + 1) over random sign assignments, a draw level with the observed |sum| counting
    half, drawn in doubling batches until every threshold's side is settled (see the module docstring)."""
    return settled_sign_flip_p(lambda sums: _mid_tail(np.abs(sums), observed, tolerance), nonzero, rng,
                               permutations, thresholds)


def settled_sign_flip_p(tail: Callable[[np.ndarray], np.ndarray], units: np.ndarray, rng: np.random.Generator,
                        permutations: int, thresholds: Sequence[float]) -> float:
    """(sum of tail(signs @ units) + 1) / (draws + 1) over random sign vectors, drawn in doubling batches of
    `permutations` until every threshold's side is settled (see the module docstring). `tail` maps each draw's
    signed sum to its share of the p-value in [0, 1]: 1 or 0 for a plain sign-flip test; a probability when
    the statistic carries more noise (repeats.paired_test_with_runs). The settling rule is the binomial one,
    conservative for a share in [0, 1] (its variance is at most p(1 - p))."""
    m = units.size
    hits = 0.0
    draws = 0
    batch = max(1, int(permutations))
    levels = [float(t) for t in thresholds if 0.0 < float(t) < 1.0]
    while True:
        for start in range(0, batch, PERMUTATIONS):  # bounded memory: at most 10,000 draws at a time
            chunk = min(PERMUTATIONS, batch - start)
            signs = rng.integers(0, 2, size=(chunk, m), dtype=np.int8) * 2 - 1
            hits += float(np.sum(tail(signs @ units)))
        draws += batch
        settled = all(abs(hits - t * draws) > SETTLED_Z * math.sqrt(draws * t * (1.0 - t)) for t in levels)
        if settled or draws + 2 * batch > MAX_BATCHES * int(permutations):
            return float((hits + 1) / (draws + 1))
        batch *= 2


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (monotone, capped at 1); names with a NaN p-value keep NaN and are not
    counted."""
    valid = sorted(((p, name) for name, p in p_values.items() if p is not None and not math.isnan(p)))
    m = len(valid)
    out = {name: float("nan") for name in p_values}
    running = 0.0
    for rank, (p, name) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * p))
        out[name] = running
    return out


def bonferroni(p_values: Mapping[str, float]) -> dict[str, float]:
    valid = [p for p in p_values.values() if p is not None and not math.isnan(p)]
    m = len(valid)
    return {name: (float("nan") if p is None or math.isnan(p) else min(1.0, m * p))
            for name, p in p_values.items()}


CORRECTIONS = {"holm": holm, "bonferroni": bonferroni}


def planning_sd(a: np.ndarray, b: np.ndarray) -> float:
    """The standard deviation of per-question differences used for the minimum detectable effect: the observed
    sd of B - A, but never below the metric's own per-question sd (pooled over A and B). The floor is the sd
    of a paired difference when the two runs' values correlate at 0.5, the usual planning value; without it
    two identical runs (sd of differences 0) would claim to detect any change at all."""
    if a.size < 2:
        return float("nan")
    diff_sd = float(np.std(b - a, ddof=1))
    pooled = math.sqrt((float(np.var(a, ddof=1)) + float(np.var(b, ddof=1))) / 2.0)
    sd = max(diff_sd, pooled)
    return sd if sd > ZERO else 0.0  # a constant metric's float noise (1e-17) is no variance


def minimum_detectable_effect(sd: float, n: int, *, alpha: float, family: int, power: float) -> float:
    """Smallest |mean difference| detected with `power` by a two-sided paired test at alpha / family."""
    if n < 2 or math.isnan(sd) or sd <= 0.0:
        return float("nan")
    normal = NormalDist()
    z = normal.inv_cdf(1.0 - alpha / (2.0 * max(1, family))) + normal.inv_cdf(power)
    return z * sd / math.sqrt(n)


def min_untied(level: float) -> int:
    """The fewest non-tied units with which a unanimous change reaches `level` with the sign-flip test: its
    two-sided mid-p is then 1 / 2**k, so the smallest k with 1 / 2**k <= level. The one owner of this rule
    (`min_questions`, `outcomes.enough_units` and the MDE of `sensitivity` ask it)."""
    return max(1, math.ceil(math.log2(1.0 / level) - 1e-12))


def min_questions(*, alpha: float, family: int) -> int:
    """Fewest pairs for which a unanimous change reaches p <= alpha / family with the sign-flip test."""
    return min_untied(alpha / max(1, family))
