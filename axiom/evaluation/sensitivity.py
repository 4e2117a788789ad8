"""What a paired comparison can detect: the minimum detectable effect (MDE) of the test actually used, whether
a metric has too few changed questions to be tested at all, and how many questions a planned comparison needs
(`axiom plan`).

The test is the two-sided paired sign-flip test of stats.paired_randomisation_test at the corrected level
`level` (alpha / family, Holm's first step). Its power depends on how many pairs differ (ties carry no
information) and on the sizes of the differences, so the MDE is computed for that test, with the observed
comparison as the pilot, under one model of a regression: a share f of the questions lose their value (a
wrong ranking, a corrupted answer: the value goes to 0), on top of the differences the two runs show anyway.
The drop of the mean is then delta = f * (the mean value). This is how a regression is injected to check the
claim (tests/evaluation/test_sensitivity.py; the calibration's "x% of answers or rankings corrupted"). Few
large losses are the hardest drop of a given size to see, so the claim is conservative for other shapes; the
MDE of a change spread over every question (each moves by delta) is reported next to it (`spread`).

- 0/1 metrics (`binary_mde`): the test is the binomial (sign) test on the discordant pairs, by its mid-p
  (stats.paired_randomisation_test). Wins at rate r / 2 and losses at r / 2 + delta (r: the observed
  discordance rate; the drop adds losses). The power is exact: a sum over the number of discordant pairs K of
  P(K) * P(losses >= the critical count of K). The MDE is the smallest delta with the power asked for
  (bisection; power grows with delta).
- other metrics (`drop_mde`): a simulation of the sign-flip test, `SIMULATIONS` comparisons: each unit differs
  as the pilot's non-tied differences (centred: no change) at their observed rate r, or is corrupted (its
  difference minus a value drawn from the pilot's A values) at rate f, or ties. The decision is the test's
  normal limit (sum over the root of the sum of squares of the differences >= z(1 - level / 2)) with at least
  as many non-tied units as the smallest p needs (1 / 2**k <= level). Common random numbers make the power
  monotone in f; the MDE is f at the power asked for (bisection) times the mean value. The spread MDE: the
  `power` quantile, over the same simulated comparisons, of the smallest shift c of every unit at which the
  normal limit rejects (a closed form). Cached in-process (functools.lru_cache) by (units, differences, rate,
  values, level, power, seed, simulations): a comparison's metrics cost one simulation each, once per process.
  For 0/1 metrics the test needs k >= log2(1 / level) discordant pairs, which the exact power counts: recall@1
  at 0.992 on 250 questions, alpha 0.05 / 20, gets about 0.06 (the normal planning floor printed 0.022-0.027).
- no variance in the differences (identical runs): the differences of the planning assumption in the same
  simulation (`planning_differences`: half of the questions tied, the other half differing like two questions
  of the metric, so the sd of a difference is the metric's own: two runs correlating at 0.5, the sd of
  stats.minimum_detectable_effect's planning floor). The normal floor claimed far too much near a ceiling
  (PubMedQA's ndcg@10 at 0.996: 0.012; 0.051 for questions losing their value, 0.013 for a spread change).

With groups (clusters.py) the test flips the groups' sums, so the units above are the groups: their count,
their non-tied sums, a group losing its whole sum (a document whose questions all fail); the MDE is still a
change of the per-question mean.

`smallest_p(k)`: the smallest two-sided p the sign-flip test reaches with k non-tied units, its mid-p 1 / 2**k
(the unanimous outcome, level with its mirror image); when it exceeds the corrected level no outcome could be
significant: "too few questions to tell".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats as scipy_stats

from axiom.evaluation import stats
from axiom.evaluation.clusters import Clusters
from axiom.evaluation.paired_proportions import is_binary

SHAPE = 2000  # pilot differences and values kept (by quantile): a bounded key for the cache
SIMULATIONS = 1000  # simulated comparisons per MDE (fewer for very many units: at most 1,000,000 cells);
# compare uses permutations / 10 of them (1,000 at the default 10,000): one knob for every Monte Carlo budget
NORMAL_UNITS = 5000  # above this many units `plan` uses the normal limit of the model (no simulation)
SIGN_TEST, SIMULATED = "sign test (mid-p)", "simulated sign-flip test"
PLANNING = "planning assumption (simulated)"
_normal = NormalDist()


@dataclass(frozen=True)
class Sensitivity:
    """The MDE of one comparison and how it was computed (`method`: SIGN_TEST, SIMULATED or PLANNING)."""

    mde: float  # nan: the metric has no variance at all, or the power asked for is out of reach
    spread: float  # the same for a change spread over every unit (nan for 0/1 metrics: no such change)
    method: str
    units: int  # questions, or groups when the questions are grouped
    untied: int  # units whose difference is not a tie


def smallest_p(untied: int) -> float:
    """The smallest two-sided (mid-)p of the sign-flip test with `untied` non-tied units (1 for none)."""
    return 1.0 if untied <= 0 else min(1.0, 1.0 / 2.0 ** untied)


def untied_units(diff: np.ndarray, clusters: Clusters | None = None) -> np.ndarray:
    """The differences the test flips (the groups' sums when grouped) that are not ties."""
    units = diff if clusters is None or clusters.trivial else clusters.sums(diff)
    untied: np.ndarray = np.asarray(units, dtype=float)[np.abs(units) > stats.ZERO]
    return untied


def too_few(untied: int, level: float) -> bool:
    """Whether no outcome of the test could reach `level`: some units differ, but too few (with none, nothing
    changed at all: that is no detectable change, not a lack of questions)."""
    return untied > 0 and smallest_p(untied) > level


# ---- 0/1 metrics: the sign test on discordant pairs, by its mid-p -----------------------------------------

def _critical_losses(k: np.ndarray, level: float) -> np.ndarray:
    """Per number of discordant pairs k, the fewest losses x > k / 2 whose two-sided mid-p
    2 * (P(Bin(k, 1/2) > x) + P(Bin(k, 1/2) = x) / 2) is at most `level` (k + 1 when none is)."""
    k = np.asarray(k, dtype=float)
    exact = scipy_stats.binom.isf(level / 2.0, k, 0.5) + 1.0  # the conventional p's critical count
    below = exact - 1.0  # the mid-p's is the same or one less
    mid_p = 2.0 * (scipy_stats.binom.sf(below, k, 0.5) + 0.5 * scipy_stats.binom.pmf(below, k, 0.5))
    critical: np.ndarray = np.where((2.0 * below > k) & (mid_p <= level + 1e-12), below, exact)
    return critical


def binary_power(delta: float, n: int, discordance: float, level: float) -> float:
    """Power of the two-sided sign test (mid-p) at `level` to detect a drop `delta` in a 0/1 metric (see the
    module docstring: wins at rate r / 2, losses at r / 2 + delta)."""
    wins, losses = discordance / 2.0, discordance / 2.0 + delta
    rate = min(1.0, wins + losses)
    if rate <= 0.0:
        return 0.0
    k = np.arange(n + 1, dtype=float)
    weights = scipy_stats.binom.pmf(k, n, rate)
    reject = scipy_stats.binom.sf(_critical_losses(k, level) - 1.0, k, losses / rate)
    return float(np.sum(weights * reject))


@functools.lru_cache(maxsize=4096)
def binary_mde(n: int, discordant: int, level: float, power: float, limit: float = 1.0) -> float:
    """Smallest drop of a 0/1 metric the sign test (mid-p) detects with `power` (n pairs, `discordant` of them
    differing in the pilot; `limit`: the largest possible drop, the share of ones); nan when even the largest
    drop is not enough."""
    rate = discordant / n if n else 0.0
    top = min(1.0 - rate, limit)
    if n < 1 or top <= 0 or binary_power(top, n, rate, level) < power:
        return float("nan")
    low, high = 0.0, top
    for _ in range(30):  # to 1e-9 of the top
        mid = (low + high) / 2.0
        low, high = (low, mid) if binary_power(mid, n, rate, level) >= power else (mid, high)
    return high


def binary_normal_mde(n: int, discordance: float, level: float, power: float) -> float:
    """The normal limit of `binary_mde` for large n: the smallest delta with
    n delta - z_level sqrt(n (r + delta)) >= z_power sqrt(n (r + delta - delta^2))."""
    za, zb = _normal.inv_cdf(1.0 - level / 2.0), _normal.inv_cdf(power)

    def enough(d: float) -> bool:
        return n * d - za * math.sqrt(n * (discordance + d)) >= zb * math.sqrt(n * (discordance + d - d * d))

    low, high = 0.0, 1.0 - discordance
    if high <= 0 or not enough(high):
        return float("nan")
    for _ in range(40):
        mid = (low + high) / 2.0
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


# ---- other metrics: the sign-flip test, simulated ---------------------------------------------------------

def quantiles(values: np.ndarray, count: int = SHAPE) -> tuple[float, ...]:
    """`values` sorted, thinned to at most `count` by quantile (a bounded, order-free key for the cache)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if ordered.size > count:
        ordered = ordered[np.linspace(0, ordered.size - 1, count).round().astype(int)]
    return tuple(ordered.tolist())


def _running_sum(x: np.ndarray) -> np.ndarray:
    """Per row the sums of the first 0, 1, ..., k columns."""
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


@functools.lru_cache(maxsize=256)
def drop_mde(units: int, differences: tuple[float, ...], rate: float, values: tuple[float, ...], level: float,
             power: float, seed: int, simulations: int = SIMULATIONS, run_term: float = 0.0
             ) -> tuple[float, float]:
    """(the smallest drop of the mean per unit that the sign-flip test detects with `power` when a share of
    the units lose their value, the same when every unit moves by it): see the module docstring.
    `differences`: the pilot's non-tied ones, at `rate`; `values`: what a unit can lose; `run_term`: the
    variance run-to-run noise adds to the sum of the units' differences (repeated runs: n^2 times the run
    variance of the mean, as the run-aware test adds it), 0 without. nan when out of reach."""
    lose = np.asarray(values, dtype=float)
    mean = float(lose.mean()) if lose.size else 0.0
    if units < 1 or mean <= stats.ZERO:
        return float("nan"), float("nan")
    noise = np.asarray(differences, dtype=float)
    noise = noise - noise.mean() if noise.size else noise
    rate = min(1.0, rate) if noise.size else 0.0
    sims = min(simulations, max(100, 1_000_000 // units))
    rng = stats.seeded_rng(seed, "sensitivity")
    shape = (sims, units)
    drop = np.where(rng.random(shape) < rate, -noise[rng.integers(0, noise.size, shape)], 0.0) if noise.size \
        else np.zeros(shape)  # a drop is positive
    s1, s2, k0 = drop.sum(axis=1), (drop ** 2).sum(axis=1), (np.abs(drop) > stats.ZERO).sum(axis=1)
    z, spread = _normal.inv_cdf(1.0 - level / 2.0), float("nan")
    # every unit moves by c: (s1 + n c) / sqrt(s2 + 2 c s1 + n c^2)
    if units > z * z and units >= stats.min_untied(level):
        s2_run = s2 + run_term
        critical = (-s1 + z * np.sqrt(np.maximum(units * s2_run - s1 * s1, 0.0) / (units - z * z))) / units
        spread = max(0.0, float(np.quantile(critical, power, method="higher")))
    lost = lose[rng.integers(0, lose.size, shape)]
    # at a share f, m = #(when < f) units are corrupted: m ~ Binomial(units, f), monotone in f for each
    # comparison; the units are exchangeable, so the corrupted ones may be the first m
    when = rng.random(shape)
    c1, c2 = _running_sum(lost), _running_sum(2.0 * drop * lost + lost ** 2)
    changed = (np.abs(drop + lost) > stats.ZERO).astype(float) - (np.abs(drop) > stats.ZERO)
    ck = _running_sum(changed)
    del drop, lost, changed
    k_min, rows = stats.min_untied(level), np.arange(sims)

    def power_at(share: float) -> float:
        m = np.sum(when < share, axis=1)
        t1, t2, k = s1 + c1[rows, m], s2 + c2[rows, m] + run_term, k0 + ck[rows, m]
        reject = (t2 > 0) & (t1 >= z * np.sqrt(np.maximum(t2, 0.0))) & (k >= k_min)
        return float(np.mean(reject))

    low, high = 0.0, 1.0
    if power_at(high) < power:
        return float("nan"), spread
    for _ in range(16):  # the share to 1.5e-5
        mid = (low + high) / 2.0
        low, high = (low, mid) if power_at(mid) >= power else (mid, high)
    return high * mean, spread


def normal_drop_mde(units: int, differences: tuple[float, ...], rate: float, values: tuple[float, ...],
                    level: float, power: float) -> float:
    """The normal limit of `drop_mde` for many units: the smallest share f with
    n f m1 - z_level sqrt(n (r s2 + f m2)) >= z_power sqrt(n (r s2 + f m2 - f^2 m1^2)), times m1."""
    noise = np.asarray(differences, dtype=float)
    var = rate * float(np.mean((noise - noise.mean()) ** 2)) if noise.size else 0.0
    lose = np.asarray(values, dtype=float)
    m1, m2 = float(lose.mean()), float(np.mean(lose ** 2))
    za, zb = _normal.inv_cdf(1.0 - level / 2.0), _normal.inv_cdf(power)
    if m1 <= stats.ZERO:
        return float("nan")

    def enough(f: float) -> bool:
        return units * f * m1 - za * math.sqrt(units * (var + f * m2)) >= zb * math.sqrt(
            max(0.0, units * (var + f * m2 - f * f * m1 * m1)))

    low, high = 0.0, 1.0
    if not enough(high):
        return float("nan")
    for _ in range(40):
        mid = (low + high) / 2.0
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high * m1


def planning_differences(values: np.ndarray, seed: int = 0) -> tuple[tuple[float, ...], float]:
    """The differences of two runs of no change by the planning assumption, when no pair of runs shows them:
    half of the questions keep their value (ties), the other half take another question's value (x_i - x_j of
    the metric's own values), so the sd of a difference is the metric's sd (two runs correlating at 0.5) and
    a metric near its ceiling gets the few, large differences it really has. Returns (the non-tied
    differences, sorted, at most SHAPE of them by quantile), their rate among questions)."""
    values = np.asarray(values, dtype=float)
    rng = stats.seeded_rng(seed, "planning")
    diffs = np.concatenate([values - values[rng.permutation(values.size)] for _ in range(4)])
    untied = diffs[np.abs(diffs) > stats.ZERO]
    return quantiles(untied), 0.5 * untied.size / max(1, diffs.size)


# ---- one comparison -------------------------------------------------------------------------------------

def detectable_change(a: np.ndarray, b: np.ndarray, *, level: float, power: float, seed: int,
                      clusters: Clusters | None = None, simulations: int = SIMULATIONS,
                      run_variance: float = 0.0) -> Sensitivity:
    """The MDE of the paired comparison of a (the reference) and b (no NaNs) at the two-sided `level`, for the
    test used (see the module docstring); `simulations`: comparisons simulated (other metrics).
    `run_variance`: the run-level variance of the mean difference of repeated runs (repeats.py's tau^2): the
    simulated test carries it as the run-aware test does (same model of a regression, a wider null)."""
    n = int(a.size)
    if n == 0:
        return Sensitivity(float("nan"), float("nan"), PLANNING, 0, 0)
    grouped = clusters is not None and not clusters.trivial
    unit_a = clusters.sums(a) if grouped and clusters is not None else np.asarray(a, dtype=float)
    unit_b = clusters.sums(b) if grouped and clusters is not None else np.asarray(b, dtype=float)
    units = int(unit_a.size)
    untied = untied_units(unit_b - unit_a)
    if not grouped and is_binary(a, b) and run_variance <= 0:
        mde = binary_mde(n, int(untied.size), float(level), float(power), float(np.mean(a)))
        return Sensitivity(mde, float("nan"), SIGN_TEST, n, int(untied.size))
    if untied.size >= 2 and float(np.ptp(untied)) > stats.ZERO:
        differences, rate, method = quantiles(untied), untied.size / units, SIMULATED
    else:  # no variance in the differences: the planning assumption
        (differences, rate), method = planning_differences(np.concatenate([unit_a, unit_b]), seed), PLANNING
    mde, spread = drop_mde(units, differences, rate, quantiles(np.abs(unit_a)), float(level), float(power),
                           int(seed), int(simulations), float(n * n * max(0.0, run_variance)))
    return Sensitivity(mde * units / n, spread * units / n, method, units, int(untied.size))  # per question


# ---- planning: how many questions (and repeats) a comparison needs (`axiom plan`) --------------------------

MAX_QUESTIONS = 1_000_000


@dataclass(frozen=True)
class Pilot:
    """What a run says about the differences a future comparison will see, for one metric.

    `values`: what a question can lose (the run's values, thinned by quantile); `binary`: 0/1 values;
    `discordance`: the rate of questions that differ between two runs of no change (0/1 metrics);
    `differences`: the non-tied differences between two runs of no change and `untied_rate` their share (other
    metrics); `source`: where they come from (the run's repetitions side by side, or the planning assumption
    when the run was made once or its repetitions do not differ); `run_variance`: s_g^2, the variance of a
    run's mean from run-level noise (repeats.run_variance times N; 0 when not measured), `repetitions` N."""

    n: int
    mean: float
    sd: float
    values: tuple[float, ...]
    binary: bool
    discordance: float
    differences: tuple[float, ...]
    untied_rate: float
    source: str
    run_variance: float
    repetitions: int


def pilot_of(values: np.ndarray, matrix: np.ndarray | None, per_run: float = 0.0) -> Pilot:
    """The pilot of a metric from its per-question values (no NaNs) and, for a repeated run, its questions x
    repetitions matrix (complete rows only are used) and `per_run`, the run-level variance of its mean
    (repeats.run_variance: s_g^2 / N)."""
    values = np.asarray(values, dtype=float)
    n, reps = int(values.size), 1 if matrix is None else int(matrix.shape[1])
    complete = None if matrix is None or reps < 2 else matrix[~np.isnan(matrix).any(axis=1)]
    sd = float(np.std(values, ddof=1)) if n > 1 else 0.0
    binary = bool(is_binary(values)) and (complete is None or bool(is_binary(complete)))
    mean = float(values.mean())
    pilot = functools.partial(Pilot, n=n, mean=mean, sd=sd, values=quantiles(np.abs(values)), binary=binary,
                              run_variance=per_run * reps, repetitions=reps)
    if complete is not None and complete.shape[0] >= 2:  # two runs of no change: repetitions side by side
        diffs = np.concatenate([complete[:, r + 1] - complete[:, r] for r in range(reps - 1)])
        untied = diffs[np.abs(diffs) > stats.ZERO]
        if binary or (untied.size >= 2 and float(np.ptp(untied)) > stats.ZERO):
            rate = float(untied.size / diffs.size)
            return pilot(discordance=rate, differences=quantiles(untied), untied_rate=rate,
                         source=f"differences between the run's {reps} repetitions")
    shape, rate = planning_differences(values)
    return pilot(discordance=mean * (1.0 - mean), differences=shape, untied_rate=rate,
                 source="planning assumption: two runs correlating at 0.5 (the run was made once or its "
                        "repetitions do not differ)")


def mde_for(pilot: Pilot, units: int, *, level: float, power: float, seed: int) -> float:
    """The MDE of a comparison of `units` questions drawn like the pilot (no run-level term)."""
    if pilot.binary:
        if units > NORMAL_UNITS:
            return binary_normal_mde(units, pilot.discordance, level, power)
        return binary_mde(units, round(pilot.discordance * units), level, power, pilot.mean)
    if units > NORMAL_UNITS:
        return normal_drop_mde(units, pilot.differences, pilot.untied_rate, pilot.values, level, power)
    return drop_mde(units, pilot.differences, pilot.untied_rate, pilot.values, level, power, seed)[0]


def questions_needed(pilot: Pilot, effect: float, *, level: float, power: float, seed: int,
                     repeats: int = 1) -> dict[str, float | int | None]:
    """How many questions detect a drop of `effect` with `power` at the two-sided `level`, each run made
    `repeats` times (see the module docstring; the run-level term by its normal approximation:
    effect^2 >= z^2 (MDE_questions^2 / z^2 + 2 s_g^2 / N)). `questions` None when out of reach (at
    MAX_QUESTIONS, or with too few repeats for the run-level noise: `min_repeats` says how many are
    needed)."""
    z = _normal.inv_cdf(1.0 - level / 2.0) + _normal.inv_cdf(power)
    run_term = 2.0 * pilot.run_variance / max(1, repeats)
    min_repeats = (math.floor(2.0 * pilot.run_variance * z * z / (effect * effect)) + 1
                   if pilot.run_variance > 0 else 1)
    budget2 = effect * effect - z * z * run_term
    result: dict[str, float | int | None] = {"questions": None, "min_repeats": min_repeats,
                                             "question_effect": None}
    if budget2 <= 0:
        return result
    budget = math.sqrt(budget2)
    result["question_effect"] = budget

    def enough(units: int) -> bool:
        if pilot.binary and units <= NORMAL_UNITS:  # one exact power, no search for the MDE
            rate = round(pilot.discordance * units) / units
            return budget <= min(1.0 - rate, pilot.mean) and binary_power(budget, units, rate, level) >= power
        mde = mde_for(pilot, units, level=level, power=power, seed=seed)
        return not math.isnan(mde) and mde <= budget

    high = 8
    while not enough(high):
        if high >= MAX_QUESTIONS:
            return result
        high = min(MAX_QUESTIONS, high * 2)
    low = high // 2
    while high - low > max(1, low // 200):  # to 0.5% of the answer
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    result["questions"] = high
    return result
