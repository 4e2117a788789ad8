"""What a paired comparison can detect: the minimum detectable effect (MDE) of the test actually used, whether a
metric has too few changed questions to be tested at all, and how many questions a planned comparison needs
(`axiom plan`).

The test is the two-sided paired sign-flip test of stats.paired_randomisation_test at the corrected level
`level` (alpha / family, Holm's first step). Its power depends on how many pairs differ (ties carry no
information) and on the shape of the differences, so the MDE is computed for that test, from the observed
comparison as the pilot:

- 0/1 metrics (`binary_mde`): the test is the exact binomial (sign) test on the discordant pairs. Model of a
  drop `delta`: each question independently a win with probability r / 2 and a loss with r / 2 + delta (r:
  the observed discordance rate, the pairs that differ when nothing changed; a drop adds losses). The power is
  exact: a sum over the number of discordant pairs K of P(K) * P(losses >= the critical count of K). The MDE is
  the smallest delta with the power asked for (bisection; power grows with delta).
- other metrics (`signflip_mde`): a simulation of the sign-flip test. Model of a drop: a pair differs with the
  observed rate r = k / n (ties stay ties); a differing pair's difference is drawn from the observed non-tied
  differences, centred, minus c (the drop is carried by the questions that change); delta = r * c per question.
  With common random numbers each simulated data set has a critical c (the smallest at which the test rejects):
  exactly, by the sign assignments, for at most 13 differing pairs (as the test itself enumerates them); by the
  normal limit of the sign-flip distribution (the sum over the root of the sum of squares) above. The MDE is
  r times the `power` quantile of the critical c. Cached in-process (functools.lru_cache) by (units, the sorted
  differences, level, power, seed): 20 metrics of one comparison cost one simulation each, once.
- no variance in the differences (every pair tied, or one differing value): the planning floor of
  stats.minimum_detectable_effect (normal approximation, the metric's own sd: two runs correlating at 0.5).

With groups (clusters.py) the test flips the groups' sums, so the units above are the groups (their count,
their non-tied sums); the MDE is still a change of the per-question mean.

`smallest_p(k)`: the smallest two-sided p the sign-flip test reaches with k non-tied units, 2 / 2**k; when it
exceeds the corrected level no outcome could be significant: "too few questions to tell".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats as scipy_stats

from axiom.evaluation import stats
from axiom.evaluation.clusters import Clusters, design_effect
from axiom.evaluation.paired_proportions import is_binary

SIMULATIONS = 2000  # simulated comparisons per MDE: the power quantile's standard error is about 0.009
NORMAL_UNITS = 5000  # above this many units `plan` uses the normal limit of the test (no simulation)
EXACT, SIMULATED, PLANNING = "exact sign test", "simulated sign-flip test", "planning floor (normal)"
_normal = NormalDist()


@dataclass(frozen=True)
class Sensitivity:
    """The MDE of one comparison and how it was computed (`method`: EXACT, SIMULATED or PLANNING)."""

    mde: float  # nan: the metric has no variance at all, or the power asked for is out of reach
    method: str
    units: int  # questions, or groups when the questions are grouped
    untied: int  # units whose difference is not a tie


def smallest_p(untied: int) -> float:
    """The smallest two-sided p of the sign-flip test with `untied` non-tied units (1 for none)."""
    return 1.0 if untied <= 0 else min(1.0, 2.0 / 2.0 ** untied)


def untied_units(diff: np.ndarray, clusters: Clusters | None = None) -> np.ndarray:
    """The differences the test flips (the groups' sums when grouped) that are not ties."""
    units = diff if clusters is None or clusters.trivial else clusters.sums(diff)
    return np.asarray(units, dtype=float)[np.abs(units) > stats.ZERO]


def too_few(untied: int, level: float) -> bool:
    """Whether no outcome of the test could reach `level`: some units differ, but too few (with none, nothing
    changed at all: that is no detectable change, not a lack of questions)."""
    return untied > 0 and smallest_p(untied) > level


# ---- 0/1 metrics: the exact sign test on discordant pairs --------------------------------------------------

def _critical_losses(k: np.ndarray, level: float) -> np.ndarray:
    """Per number of discordant pairs k, the fewest losses with 2 * P(Bin(k, 1/2) >= losses) <= level."""
    return scipy_stats.binom.isf(level / 2.0, k, 0.5) + 1.0


def binary_power(delta: float, n: int, discordance: float, level: float) -> float:
    """Power of the exact two-sided sign test at `level` to detect a drop `delta` in a 0/1 metric (see the
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
def binary_mde(n: int, discordant: int, level: float, power: float) -> float:
    """Smallest drop of a 0/1 metric the exact sign test detects with `power` (n pairs, `discordant` of them
    differing in the pilot); nan when even a drop of every remaining question is not enough."""
    rate = discordant / n if n else 0.0
    top = 1.0 - rate
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

def _exact_critical_shift(e: np.ndarray, level: float) -> float:
    """The smallest shift c at which the exact sign-flip test rejects for differences c - e (e: one data set of
    at most 13 centred values): a sign assignment s counts (|sum s (c - e)| >= sum (c - e)) until c passes
    t_s; the all-plus and all-minus ones always count; the test rejects once at most level * 2**k count."""
    k = e.size
    allowed = math.floor(level * 2 ** k + 1e-9) - 2  # assignments other than all-plus and all-minus
    if allowed < 0:
        return math.inf
    signs = ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1) * 2.0 - 1.0
    b = signs.sum(axis=1)
    keep = np.abs(b) < k
    a, b = signs[keep] @ -e, b[keep]  # sum s (c - e) = c * b + a
    total = float(-e.sum())  # sum (c - e) = k c + total
    with np.errstate(divide="ignore"):
        t = np.maximum((a - total) / (k - b), (-a - total) / (k + b))
    if allowed >= t.size:
        return -math.inf
    return float(np.sort(t)[::-1][allowed])


def _normal_critical_shift(k: np.ndarray, s1: np.ndarray, s2: np.ndarray, z: float) -> np.ndarray:
    """Per data set (k values, their sum s1 and sum of squares s2 of -e) the smallest c with
    (s1 + k c) / sqrt(s2 + 2 c s1 + k c^2) >= z; inf when k <= z^2 (the statistic stays below sqrt(k))."""
    out = np.full(k.shape, math.inf)
    ok = k > z * z
    kk, a, b = k[ok], s1[ok], s2[ok]
    out[ok] = (-a + z * np.sqrt(np.maximum(kk * b - a * a, 0.0) / (kk - z * z))) / kk
    return out


@functools.lru_cache(maxsize=256)
def signflip_mde(units: int, differences: tuple[float, ...], level: float, power: float, seed: int,
                 rate: float | None = None, simulations: int = SIMULATIONS) -> float:
    """The smallest shift of the mean unit difference the sign-flip test detects with `power` (see the module
    docstring): `units` compared, `differences` the pilot's non-tied ones (sorted), `rate` the share of units
    that differ (default: as many as the pilot's). nan when out of reach."""
    pilot = np.asarray(differences, dtype=float)
    rate = pilot.size / units if rate is None else min(1.0, float(rate))
    centred = pilot - pilot.mean()
    rng = stats.seeded_rng(seed, "sensitivity")
    counts = rng.binomial(units, rate, size=simulations)
    z = _normal.inv_cdf(1.0 - level / 2.0)
    critical = np.empty(simulations)
    big = counts > stats.EXACT_MAX_NONZERO
    for i in np.flatnonzero(~big):
        critical[i] = (_exact_critical_shift(centred[rng.integers(0, pilot.size, counts[i])], level)
                       if counts[i] else math.inf)
    rows = np.flatnonzero(big)
    s1, s2 = np.zeros(rows.size), np.zeros(rows.size)
    for start in range(0, rows.size, 64):  # bounded memory: 64 data sets at a time
        part = rows[start:start + 64]
        width = int(counts[part].max())
        drawn = -centred[rng.integers(0, pilot.size, size=(part.size, width))]
        drawn[np.arange(width)[None, :] >= counts[part][:, None]] = 0.0
        s1[start:start + part.size], s2[start:start + part.size] = drawn.sum(axis=1), (drawn ** 2).sum(axis=1)
    critical[rows] = _normal_critical_shift(counts[rows].astype(float), s1, s2, z)
    shift = float(np.quantile(critical, power, method="higher"))
    return max(0.0, rate * shift) if math.isfinite(shift) else float("nan")


def normal_mde(sd_unit: float, units: int, level: float, power: float) -> float:
    """The normal limit of the test: (z(1 - level/2) + z(power)) * sd / sqrt(units)."""
    return (_normal.inv_cdf(1.0 - level / 2.0) + _normal.inv_cdf(power)) * sd_unit / math.sqrt(units)


# ---- one comparison -------------------------------------------------------------------------------------

def detectable_change(a: np.ndarray, b: np.ndarray, *, level: float, power: float, seed: int,
                      clusters: Clusters | None = None) -> Sensitivity:
    """The MDE of the paired comparison of a and b (no NaNs) at the two-sided `level`, for the test used."""
    diff = b - a
    n = int(diff.size)
    grouped = clusters is not None and not clusters.trivial
    units = clusters.count if grouped and clusters is not None else n
    untied = untied_units(diff, clusters if grouped else None)
    if n == 0:
        return Sensitivity(float("nan"), PLANNING, 0, 0)
    if not grouped and is_binary(a, b):
        return Sensitivity(binary_mde(n, int(untied.size), float(level), float(power)), EXACT, n, int(untied.size))
    if untied.size >= 2 and float(np.ptp(untied)) > stats.ZERO:
        mde = signflip_mde(units, tuple(np.sort(untied).tolist()), float(level), float(power), int(seed))
        return Sensitivity(mde * units / n, SIMULATED, units, int(untied.size))  # per group sum -> per question
    sd = stats.planning_sd(a, b)
    if grouped and clusters is not None:
        deff = design_effect(diff, clusters)
        sd *= math.sqrt(deff) if not math.isnan(deff) and deff > 1.0 else 1.0
    mde = stats.minimum_detectable_effect(sd, n, alpha=level, family=1, power=power)
    return Sensitivity(mde, PLANNING, units, int(untied.size))


# ---- planning: how many questions (and repeats) a comparison needs (`axiom plan`) --------------------------

MAX_QUESTIONS = 1_000_000


@dataclass(frozen=True)
class Pilot:
    """What a run says about the differences a future comparison will see, for one metric.

    `binary`: 0/1 values; `discordance`: the rate of questions that differ between two runs of no change (0/1);
    `differences`: the non-tied differences between two runs of no change and `untied_rate` their share
    (other metrics); `source`: where they come from (two repetitions of the run, or the planning assumption of
    two runs correlating at 0.5 when the run was made once); `run_variance`: s_g^2, the variance of a run's mean
    from run-level noise (repeats.run_variance times N; 0 when not measured), `repetitions` the run's N."""

    n: int
    mean: float
    sd: float
    binary: bool
    discordance: float
    differences: tuple[float, ...]
    untied_rate: float
    source: str
    run_variance: float
    repetitions: int


def pilot_of(values: np.ndarray, matrix: np.ndarray | None) -> Pilot:
    """The pilot of a metric from its per-question values (no NaNs) and, for a repeated run, its questions x
    repetitions matrix (complete rows only are used)."""
    from axiom.evaluation.repeats import run_variance  # repeats imports verdict, which imports this module

    values = np.asarray(values, dtype=float)
    n, reps = int(values.size), 1 if matrix is None else int(matrix.shape[1])
    complete = None if matrix is None or reps < 2 else matrix[~np.isnan(matrix).any(axis=1)]
    per_run, _ = run_variance(matrix) if matrix is not None and reps >= 2 else (0.0, 0)
    sd = float(np.std(values, ddof=1)) if n > 1 else 0.0
    binary = bool(is_binary(values)) and (complete is None or bool(is_binary(complete)))
    if complete is not None and complete.shape[0] >= 2:  # two runs of no change: repetitions side by side
        diffs = np.concatenate([complete[:, r + 1] - complete[:, r] for r in range(reps - 1)])
        untied = diffs[np.abs(diffs) > stats.ZERO]
        if binary or (untied.size >= 2 and float(np.ptp(untied)) > stats.ZERO):
            return Pilot(n, float(values.mean()), sd, binary, float(untied.size / diffs.size),
                         tuple(np.sort(untied).tolist()), float(untied.size / diffs.size),
                         f"differences between the run's {reps} repetitions", per_run * reps, reps)
    p = float(values.mean())
    centred = values - values.mean()  # a difference of two runs correlating at 0.5 has the metric's sd
    return Pilot(n, p, sd, binary, p * (1.0 - p), tuple(np.sort(centred).tolist()), 1.0,
                 "planning assumption: two runs correlating at 0.5 (the run was made once or its repetitions "
                 "do not differ)", per_run * reps, reps)


def mde_for(pilot: Pilot, units: int, *, level: float, power: float, seed: int) -> float:
    """The MDE of a comparison of `units` questions drawn like the pilot (no run-level term)."""
    if pilot.binary:
        if units > NORMAL_UNITS:
            return binary_normal_mde(units, pilot.discordance, level, power)
        return binary_mde(units, round(pilot.discordance * units), level, power)
    shape = np.asarray(pilot.differences)
    if shape.size < 2 or float(np.ptp(shape)) <= stats.ZERO:
        return float("nan")
    if units > NORMAL_UNITS:  # the sign-flip test's normal limit; the sd of a difference under the model
        centred = shape - shape.mean()
        return normal_mde(math.sqrt(pilot.untied_rate * float(np.mean(centred ** 2))), units, level, power)
    return signflip_mde(units, pilot.differences, level, power, seed, rate=pilot.untied_rate)


def questions_needed(pilot: Pilot, effect: float, *, level: float, power: float, seed: int,
                     repeats: int = 1) -> dict[str, float | int | None]:
    """How many questions detect a drop of `effect` with `power` at the two-sided `level`, each run made
    `repeats` times (see the module docstring; the run-level term by its normal approximation:
    effect^2 >= z^2 (MDE_questions^2 / z^2 + 2 s_g^2 / N)). `questions` None when out of reach (at
    MAX_QUESTIONS, or with too few repeats for the run-level noise: `min_repeats` says how many are needed)."""
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
            return budget <= 1.0 - rate and binary_power(budget, units, rate, level) >= power
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
