"""The three outcomes of a primary metric (family.py says which metrics are primary): what the gate decides
on.

Per primary metric, with its practical margin (`min_delta` of the baseline, default `DEFAULT_MIN_DELTA`) and
`drop` = the mean paired change in the bad direction (A - B: every metric is higher-is-better):

- `regression`: the one-sided test rejects "no drop" (the primary's `p_drop_adj`, Holm over the primaries,
  below alpha; family.py) **and** the estimated drop is at least the margin;
- `non-inferior`: the one-sided (1 - alpha) upper bound of the drop (`drop_bound`: the bound of the same
  interval method as `ci`, Tango's for 0/1 metrics, the bootstrap otherwise, by group when grouped, with the
  run-level term of repeated runs; unadjusted, since the claim "no primary dropped by its margin or more" is
  an intersection-union test that holds at alpha without adjustment) is below the margin;
- `inconclusive`: neither; the entry's `mde` says what the set could detect. Also when the set has too few
  units (questions, or groups) for even a unanimous drop to reach alpha / k one-sided with the sign-flip test:
  a bound of 0 from a handful of tied questions is no evidence.

The two definitions exclude each other: a regression has drop_bound >= drop >= margin. A drop that is
significant but smaller than the margin, with a bound below the margin, is non-inferior (worse, within
tolerance); significant with the margin inside the interval is inconclusive. The gate exits 3 only on a
regression (and on a metric it can no longer measure, or below an explicit floor: gate.py); `min_delta` is
never compared with the point estimate alone.
"""

from __future__ import annotations

import math

import numpy as np

from axiom.evaluation import stats
from axiom.evaluation.clusters import Clusters
from axiom.evaluation.verdict_entry import VerdictEntry

REGRESSION, NON_INFERIOR, INCONCLUSIVE = "regression", "non-inferior", "inconclusive"
OUTCOMES = (REGRESSION, NON_INFERIOR, INCONCLUSIVE)
DEFAULT_MIN_DELTA = 0.01


def drop(delta: float) -> float:
    """The change in the bad direction (positive: worse; every metric is higher-is-better)."""
    return -delta


def drop_bound(low: float, high: float) -> float | None:
    """The upper bound of the drop from the (1 - 2 alpha) two-sided interval [low, high] of B - A: -low (the
    upper end `high` is the bound of a gain, not used)."""
    return None if math.isnan(low) else -float(low)


def one_sided_drop_bound(xa: np.ndarray, xb: np.ndarray, *, alpha: float, samples: int, seed: int, label: str,
                         clusters: Clusters) -> float | None:
    """The one-sided (1 - alpha) upper bound of the drop, by the method of the reported interval (the same
    bootstrap draws: seed and label as the 95% interval's)."""
    if xa.size == 0:
        return None
    low, high, _ = stats.paired_difference_ci(xa, xb, samples=samples, seed=seed, label=label,
                                              clusters=clusters,
                                              level=1.0 - 2.0 * alpha)
    return drop_bound(low, high)


def enough_units(units: int, *, alpha: float, primaries: int) -> bool:
    """Whether a unanimous drop over `units` can reach alpha / primaries one-sided: its one-sided mid-p,
    1 / 2**(units + 1), is half the two-sided one, so it is `stats.min_untied` at twice the level."""
    return units >= stats.min_untied(2 * alpha / max(1, primaries))


def outcome_of(entry: VerdictEntry, *, alpha: float, margin: float, primaries: int) -> str:
    """The outcome of one primary entry of verdict.compare_metrics (see the module docstring)."""
    delta, bound = entry.delta, entry.drop_bound
    if not entry.n or delta is None:
        return INCONCLUSIVE
    if not enough_units(int(entry.groups or entry.n), alpha=alpha, primaries=primaries):
        return INCONCLUSIVE
    p_adj = entry.p_drop_adj
    if p_adj is not None and p_adj < alpha and drop(delta) >= margin - 1e-12:
        return REGRESSION
    if bound is not None and bound < margin:
        return NON_INFERIOR
    return INCONCLUSIVE


def outcome_text(name: str, entry: VerdictEntry, *, alpha: float, note: str = "") -> str:
    """One primary's outcome for the verdict line, e.g. 'ndcg@10 non-inferior (-0.002; drop at most 0.004 at
    one-sided 95% (unadjusted), within margin 0.01)'; `note`: the groups and design effect when grouped."""
    outcome, margin, bound = entry.outcome, entry.margin, entry.drop_bound
    if not entry.n:
        return f"{name} {outcome} (no question measured in both)"
    parts = [f"{entry.delta:+.3f}{note}"]
    if outcome == REGRESSION:
        parts.append(f"one-sided p_adj {entry.p_drop_adj:.2g}, a drop of at least the margin {margin:g}")
    elif bound is not None and margin is not None:
        where = "within" if bound < margin else "not within"
        parts.append(f"drop at most {max(bound, 0.0) + 0.0:.3f} at one-sided {1 - alpha:.0%} (unadjusted), "
                     f"{where} margin {margin:g}")
    if outcome == INCONCLUSIVE:
        if entry.mde is not None:
            parts.append(f"MDE {entry.mde:.3f}")
        if not enough_units(int(entry.groups or entry.n), alpha=alpha, primaries=1):
            parts.append("too few questions to tell")
    if entry.role == "constant":
        parts.append("constant in both runs")
    return f"{name} {outcome} ({'; '.join(parts)})"
