"""Paired comparison of two sets of per-question metric values, and the verdict it supports.

`compare_metrics(per_a, per_b, config=...)` is the single function behind `axiom compare`, the regression
gate, sweeps and 04_compare_runs: the same pair of inputs gives the same numbers, bit for bit, in every face.

Per metric, over the questions both sides measured (n is counted per metric):

    a, b        means of A and of B over those questions
    delta       mean of the paired differences B - A
    ci          95% interval of delta (stats.paired_difference_ci): Tango's paired score interval when every
                value is 0 or 1, else the paired percentile bootstrap (`bootstrap_samples` draws; when the
                questions are grouped, the studentized bootstrap resampling groups); `interval` names the
                method
    p           two-sided paired sign-flip randomisation test (stats.paired_randomisation_test), by group
    groups      the number of groups the n questions fall in (`groups` of compare_metrics: a golden item's
                `group`; n when no groups are known), and `design_effect`, the estimated variance of delta
                under clustering over that under independence (clusters.py; 1 without groups)
    role        "primary" | "secondary" | "alias" (with `alias_of`) | "constant": family.py (the primaries
                declared per dataset; aliases and constants are reported and not counted)
    p_adj       primaries: p adjusted by Holm over the primaries; secondaries: p corrected over the counted
                secondaries (max-T with the same sign flips by default); aliases: their representative's;
                constants: none (not tested). `correction` names the method. Primaries also carry `p_drop`,
                the one-sided p against a drop, and `p_drop_adj` (Holm over the primaries): the gate's test
    mde         minimum detectable effect: the smallest drop of the mean this set detects with 80% power at
                the corrected level, for the test actually used, when questions lose their value (a
                regression: sensitivity.detectable_change: the sign test (mid-p) on the discordant pairs for
                0/1 metrics, a cached simulation of the sign-flip test otherwise, by group when grouped; the
                planning assumption in the same simulation only when the differences have no variance);
                `mde_spread` the same for a change spread over every question (smaller; None for 0/1 metrics),
                `mde_method` which computation, `mde_power` the power; NaN when out of reach or nothing can be
                lost. The line reads "detects a change of X with 80% power (Y when every question moves; n
                ...)"
    unpaired    questions measured in one run and not the other: left out of n, counted, and named in the
                verdict line ("left out, measured in one run only: ...")
    untied      the units the test flips (questions, or groups) whose difference is not a tie, and
                `smallest_p` the smallest p the test can reach with them (its mid-p: 1 / 2**untied)
    spread      run-to-run spread of repeated runs (`axiom eval --repeat`), the larger of the two: reported
                only, never a dead band (run-to-run variance enters the test and the interval instead:
                axiom.evaluation.repeats)
    verdict     "better" | "worse" | "no detectable change" | "too few questions to tell"
    outcome     primaries only: "regression" | "non-inferior" | "inconclusive" against `margin` (min_delta),
                from the one-sided (1 - alpha) bound of the drop `drop_bound` (unadjusted): outcomes.py

The verdict: "too few questions to tell" when n (the number of groups, when grouped) is below
`stats.min_questions` (even a unanimous change could not be significant after correction), or when some units
differ but the smallest p the test can reach with them exceeds the corrected level (sensitivity.too_few: with
k non-tied units it is 1 / 2**k); "better" / "worse" when p_adj < alpha (the sign of delta: every metric is
higher-is-better); otherwise "no detectable change". `settle` is the one place the correction, the MDE, the
verdicts and the outcomes are decided (compare_metrics and repeats.compare_with_repeats both call it).
Intervals are unadjusted, and labelled so next to p_adj. Each metric's entry is a `VerdictEntry` (a frozen
dataclass: verdict_entry.py), so every field read or set is checked.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from axiom.evaluation import family, outcomes, sensitivity, stats
from axiom.evaluation.clusters import FEW_GROUPS, Clusters, design_effect
from axiom.evaluation.verdict_entry import VerdictEntry

if TYPE_CHECKING:
    from axiom.config import EvaluationSettings

BETTER, WORSE, NO_CHANGE, TOO_FEW = "better", "worse", "no detectable change", "too few questions to tell"
VERDICTS = (BETTER, WORSE, NO_CHANGE, TOO_FEW)
# the metrics named in the "cannot detect changes below" part of the verdict line, first present wins
HEADLINE_METRICS = ("ndcg@10", "evidence_recall@10", "mrr@10", "semantic_similarity", "rouge_l", "chrf")


@dataclass(frozen=True)
class StatsConfig:
    """How comparisons are tested. Built from `settings.evaluation` by every face (`from_settings`)."""

    alpha: float = 0.05
    power: float = 0.8
    correction: str = family.MAX_T
    bootstrap_samples: int = 1000
    permutations: int = stats.PERMUTATIONS
    seed: int = 42

    @classmethod
    def from_settings(cls, evaluation: EvaluationSettings) -> StatsConfig:
        return cls(alpha=float(evaluation.alpha), power=float(evaluation.power),
                   correction=str(evaluation.correction), bootstrap_samples=int(evaluation.bootstrap_samples),
                   permutations=int(evaluation.permutations), seed=int(evaluation.seed))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"paired sign-flip test; primaries: drops one-sided (Holm over them) against their margin, "
                f"secondaries: {self.correction} correction, alpha {self.alpha}; 95% intervals (unadjusted): "
                f"Tango's paired score interval for 0/1 metrics, paired bootstrap otherwise (bootstrap-t by "
                f"group when questions are grouped); MDE at {self.power:.0%} power")


def is_finite(x: object) -> TypeGuard[float]:
    """A number that is not None or NaN (a measured value)."""
    return x is not None and isinstance(x, (int, float)) and not math.isnan(float(x))


def _num(x: float) -> float | None:
    """JSON-ready number: NaN becomes None."""
    return None if x is None or math.isnan(x) else float(x)


def paired_values(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The question ids both sides measured (in A's order) and their values."""
    ids = [i for i in a if i in b and is_finite(a[i]) and is_finite(b[i])]
    return ids, np.asarray([a[i] for i in ids], dtype=float), np.asarray([b[i] for i in ids], dtype=float)


def _one_metric(name: str, xa: np.ndarray, xb: np.ndarray, config: StatsConfig, clusters: Clusters,
                family_bound: int = 1) -> VerdictEntry:
    """The statistics of one metric that do not depend on the family; `family_bound` (how many metrics are
    compared together) sets the Holm thresholds the Monte Carlo p must settle
    (stats.paired_randomisation_test). `untied`: the units (groups when grouped) whose difference is not a
    tie; `smallest_p`: the smallest p the test can reach with them (sensitivity.smallest_p), what "too few
    questions to tell" is decided from."""
    n = int(xa.size)
    if n == 0:
        return VerdictEntry(n=0, a=None, b=None, delta=None, ci=(None, None), interval=None, p=None,
                            p_adj=None, mde=None, mde_method=None, sd=None, wins=0, losses=0, ties=0,
                            groups=0, design_effect=None, untied=0, smallest_p=None)
    diff = xb - xa
    low, high, method = stats.paired_difference_ci(xa, xb, samples=config.bootstrap_samples, seed=config.seed,
                                                   label=name, clusters=clusters)
    thresholds = [config.alpha / j for j in range(1, max(1, family_bound) + 1)]
    p = stats.paired_randomisation_test(xa, xb, seed=config.seed, label=name,
                                        permutations=config.permutations, clusters=clusters,
                                        thresholds=thresholds)
    untied = int(sensitivity.untied_units(diff, clusters).size)
    return VerdictEntry(n=n, a=float(xa.mean()), b=float(xb.mean()), delta=float(diff.mean()),
                        ci=(_num(low), _num(high)), interval=method, p=_num(p), p_adj=None, mde=None,
                        mde_method=None, sd=_num(stats.planning_sd(xa, xb)),
                        wins=int(np.sum(diff > stats.ZERO)), losses=int(np.sum(diff < -stats.ZERO)),
                        ties=int(np.sum(np.abs(diff) <= stats.ZERO)), groups=clusters.count,
                        design_effect=_num(design_effect(diff, clusters)), untied=untied,
                        smallest_p=sensitivity.smallest_p(untied))


def set_sensitivity(entry: VerdictEntry, xa: np.ndarray, xb: np.ndarray, clusters: Clusters, *,
                    config: StatsConfig, level: float, run_variance: float = 0.0) -> VerdictEntry:
    """The entry with its `mde` (the smallest drop the test used detects with `config.power` at the
    two-sided `level` when questions lose their value: sensitivity.detectable_change, with the run-level
    variance of repeated runs when given), `mde_spread` (the same when every question moves by it; None for
    0/1 metrics), `mde_method` and `mde_power`."""
    simulations = min(sensitivity.SIMULATIONS, max(100, config.permutations // 10))  # one Monte Carlo budget
    found = sensitivity.detectable_change(xa, xb, level=level, power=config.power, seed=config.seed,
                                          clusters=clusters, simulations=simulations,
                                          run_variance=run_variance)
    method = found.method + (" with the run term" if run_variance > 0 else "")
    return replace(entry, mde=_num(found.mde), mde_method=method, mde_power=config.power,
                   mde_spread=_num(found.spread))


def verdict_of(entry: VerdictEntry, name: str, *, alpha: float, family: int) -> str:
    units = entry.groups or entry.n  # the sign flips act on groups: a unanimous change needs enough
    if units < stats.min_questions(alpha=alpha, family=family):
        return TOO_FEW
    # no outcome could reach it
    if sensitivity.too_few(int(entry.untied or 0), alpha / max(1, family)):
        return TOO_FEW
    p_adj, delta = entry.p_adj, entry.delta
    if p_adj is None or delta is None or p_adj >= alpha:
        return NO_CHANGE
    return BETTER if delta > 0 else WORSE  # every metric is higher-is-better


def compare_metrics(per_a: Mapping[str, Mapping[str, float]], per_b: Mapping[str, Mapping[str, float]], *,
                    config: StatsConfig, metrics: Iterable[str] | None = None,
                    spread: Mapping[str, float] | None = None, groups: Mapping[str, str] | None = None,
                    primaries: Sequence[str] | None = None, margins: Mapping[str, float] | None = None
                    ) -> dict[str, VerdictEntry]:
    """Per metric the paired statistics and the verdict of B against A (see the module docstring).

    `per_a` / `per_b`: {metric: {question id: value}}; `metrics`: which to compare (default: those in both, in
    A's order); `spread`: run-to-run spread per metric from repeated runs; `groups`: {question id: group} (a
    question without one is its own group; None: every question is, the independent case); `primaries`: the
    declared primary metrics (None: family.DEFAULT_PRIMARIES); `margins`: {metric: min_delta} of the primaries
    (default outcomes.DEFAULT_MIN_DELTA).
    """
    names = list(metrics) if metrics is not None else [m for m in per_a if m in per_b]
    paired = paired_all(per_a, per_b, names)
    chosen = family.default_primaries(names) if primaries is None else [m for m in primaries if m in names]
    out: dict[str, VerdictEntry] = {}
    for name in names:
        ids, xa, xb = paired[name]
        clusters = Clusters.of(ids, groups)
        entry = replace(_one_metric(name, xa, xb, config, clusters, family_bound=len(names)),
                        spread=float((spread or {}).get(name) or 0.0),
                        unpaired=unpaired_count(per_a.get(name, {}), per_b.get(name, {})))
        if name in chosen:
            entry = replace(entry, margin=float((margins or {}).get(name, outcomes.DEFAULT_MIN_DELTA)),
                            drop_bound=outcomes.one_sided_drop_bound(
                                xa, xb, alpha=config.alpha, samples=config.bootstrap_samples,
                                seed=config.seed, label=name, clusters=clusters))
        out[name] = entry
    settle(out, paired, config=config, groups=groups, primaries=chosen)
    return out


def unpaired_count(a: Mapping[str, float], b: Mapping[str, float]) -> int:
    """Questions measured (a finite value) in one run and not the other: left out of the paired comparison,
    and said so in the verdict (a comparison must not silently shrink to the questions both runs could
    answer)."""
    measured_a = {i for i, v in a.items() if is_finite(v)}
    measured_b = {i for i, v in b.items() if is_finite(v)}
    return len(measured_a ^ measured_b)


def paired_all(per_a: Mapping[str, Mapping[str, float]], per_b: Mapping[str, Mapping[str, float]],
               names: Iterable[str]) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    return {name: paired_values(per_a.get(name, {}), per_b.get(name, {})) for name in names}


def settle(out: dict[str, VerdictEntry], paired: family.Paired, *, config: StatsConfig,
           groups: Mapping[str, str] | None = None, primaries: Sequence[str] | None = None,
           run_terms: Collection[str] | None = None) -> family.Family:
    """The one correction of compare_metrics and repeats.compare_with_repeats: the roles and p_adj over the
    family (family.correct_family), then per metric the MDE at the level of its test (a drop one-sided at
    alpha/k for the k primaries; alpha/m two-sided for the m counted secondaries: a conservative figure under
    max-T), the verdict, and the outcome of each primary (outcomes.py). `run_terms`: the metrics of repeated
    runs whose test carries a run term (their entry's `run_variance`); only those get a new MDE."""
    fam = family.correct_family(out, paired, correction=config.correction, permutations=config.permutations,
                                seed=config.seed, groups=groups, primaries=primaries)
    k, m = max(1, len(fam.counted_primaries)), max(1, len(fam.secondaries))
    for name, entry in list(out.items()):
        primary = name in fam.primaries
        size = k if primary else m
        # a primary's drop is tested one-sided at alpha/k: the two-sided level 2 alpha/k
        level = config.alpha * (2 if primary else 1) / size
        if entry.n and (run_terms is None or name in run_terms):
            ids, xa, xb = paired[name]
            run_variance = float(entry.run_variance or 0.0) if run_terms is not None else 0.0
            entry = set_sensitivity(entry, xa, xb, Clusters.of(ids, groups), config=config, level=level,
                                    run_variance=run_variance)
        entry = replace(entry, verdict=verdict_of(entry, name, alpha=config.alpha, family=size))
        if primary:
            assert entry.margin is not None, name  # compare_metrics gives every primary its margin
            entry = replace(entry, outcome=outcomes.outcome_of(entry, alpha=config.alpha, margin=entry.margin,
                                                               primaries=k))
        out[name] = entry
    return fam


def _fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def effect_text(name: str, entry: VerdictEntry) -> str:
    low, high = entry.ci
    return f"{name}: {_fmt(entry.delta, sign=True)} [{_fmt(low, sign=True)}, {_fmt(high, sign=True)}], " \
           f"p_adj {_p(entry.p_adj)}"


def verdict_line(metrics: Mapping[str, VerdictEntry], *, subject: str = "B",
                 headline: Sequence[str] = HEADLINE_METRICS, alpha: float = 0.05) -> str:
    """One sentence: the outcome of each primary metric (regression, non-inferior, inconclusive), what else
    got worse or better, that nothing else changed detectably, the family (what was not counted), and how
    small a change the set can see in its headline metric."""
    primaries = [m for m, e in metrics.items() if e.outcome is not None]
    others = {m: e for m, e in metrics.items() if m not in primaries}
    worse = [m for m, e in others.items() if e.verdict == WORSE]
    better = [m for m, e in others.items() if e.verdict == BETTER]
    too_few = [m for m, e in others.items() if e.verdict == TOO_FEW]
    parts: list[str] = []
    if primaries:
        parts.append(f"{subject}: " + "; ".join(
            "primary " + outcomes.outcome_text(m, metrics[m], alpha=alpha,
                                               note=_cluster_note(metrics[m]).replace(" in ", "; in ", 1))
            for m in primaries))
    lead = "" if primaries else f"{subject} is "
    if worse:
        parts.append(f"{lead}worse on " + "; ".join(effect_text(m, metrics[m]) for m in worse))
    if better:
        parts.append(("better on " if worse or primaries else f"{subject} is better on ")
                     + "; ".join(effect_text(m, metrics[m]) for m in better))
    tested = len(others) - len(too_few)
    if worse or better:
        parts.append("no other detectable change")
    elif tested and primaries:
        parts.append(f"no detectable change on the other {tested} metric(s)")
    elif tested:
        parts.append(f"{subject}: no detectable change on {tested} metric(s)")
    elif not primaries:
        parts.append(f"{subject}: no metric could be tested")
    if too_few:
        parts.append("too few questions to tell on "
                     + ", ".join(f"{m} (n {metrics[m].n})" for m in too_few))
    parts += _family_note(metrics)
    unpaired = {m: int(e.unpaired or 0) for m, e in metrics.items() if e.unpaired}
    if unpaired:
        parts.append("left out, measured in one run only: " + ", ".join(f"{k} question(s) of {m}"
                                                                         for m, k in unpaired.items()))
    head = next((m for m in headline if m in metrics and metrics[m].mde is not None), None)
    if head is None:
        head = next((m for m, e in metrics.items() if e.mde is not None), None)
    if head is not None:
        spread = metrics[head].mde_spread
        parts.append(f"this set detects a change of {metrics[head].mde:.3f} in {head} with "
                     f"{float(metrics[head].mde_power or 0.8):.0%} power ("
                     + ("" if spread is None else f"{spread:.3f} when every question moves; ")
                     + f"n {metrics[head].n}{_cluster_note(metrics[head])})")
    few: dict[int, list[str]] = {}  # number of groups -> the metrics whose questions fall in that few
    for m, e in metrics.items():
        if _clustered(e) and e.groups < FEW_GROUPS:
            few.setdefault(int(e.groups), []).append(m)
    for count, names in sorted(few.items()):
        parts.append(f"warning: the questions of {', '.join(names)} fall in only {count} group(s), "
                     f"fewer than {FEW_GROUPS}: the test and intervals by group rest on few units")
    return "; ".join(parts)


def _family_note(metrics: Mapping[str, VerdictEntry]) -> list[str]:
    """What the correction counted: the secondaries' correction, and the aliases and constants left out."""
    fam = family.summary(metrics)
    if not any(e.role for e in metrics.values()):
        return []
    correction = fam["correction"]
    correction = ", ".join(correction) if isinstance(correction, list) else correction
    counted = (f"{len(fam['secondaries'])} secondary metric(s) corrected by {correction}"
               if fam["secondaries"] else "no secondary metric counted")
    left = [f"{len(fam['aliases'])} alias(es) ({', '.join(f'{m} = {r}' for m, r in fam['aliases'].items())})"
            if fam["aliases"] else "", f"{len(fam['constants'])} constant(s)" if fam["constants"] else ""]
    left = [x for x in left if x]
    return [counted + ("; not counted: " + ", ".join(left) if left else "")]


def _clustered(entry: VerdictEntry) -> bool:
    """Whether the questions of this entry were grouped (some group holds more than one question)."""
    return bool(entry.groups) and int(entry.groups) < int(entry.n or 0)


def _cluster_note(entry: VerdictEntry) -> str:
    if not _clustered(entry):
        return ""
    deff = entry.design_effect  # None: the differences have no variance to inflate
    return f" in {entry.groups} groups" + ("" if deff is None else f", design effect {deff:.2f}")


def _role(entry: VerdictEntry) -> str:
    role = str(entry.role or "")
    return f"= {entry.alias_of}" if role == family.ALIAS else role


def metrics_table(metrics: Mapping[str, VerdictEntry]) -> list[str]:
    """The per-metric lines of the text report (n per metric; the role in the family; the groups and design
    effect of grouped questions; a primary's outcome before its verdict)."""
    lines = [f"{'metric':<26} {'role':<14} {'n':>4} {'A':>7} {'B':>7} {'delta':>8} {'95% CI unadj.':<18} "
             f"{'p':>7} {'p_adj':>7} {'MDE':>6}  {'W/L/T':<10} verdict"]
    for m, r in metrics.items():
        verdict = f"{r.outcome} ({r.verdict})" if r.outcome else r.verdict
        if r.n == 0:
            lines.append(f"{m:<26} {_role(r):<14} {0:>4} {'(no question measured in both)':<60} {verdict}")
            continue
        ci = f"[{_fmt(r.ci[0], sign=True)}, {_fmt(r.ci[1], sign=True)}]"
        lines.append(f"{m:<26} {_role(r):<14} {r.n:>4} {r.a:>7.3f} {r.b:>7.3f} {r.delta:>+8.3f} "
                     f"{ci:<18} {_p(r.p):>7} {_p(r.p_adj):>7} {_fmt(r.mde):>6}  "
                     f"{r.wins}/{r.losses}/{r.ties:<6} {verdict}"
                     + (f" ({_cluster_note(r).strip()})" if _clustered(r) else ""))
    lines.append("(95% CI: two-sided, unadjusted; p_adj: primaries Holm over the primaries (their outcome: "
                 "the one-sided test of a drop, Holm over the primaries, and the margin), secondaries "
                 "corrected over the counted secondaries; aliases and constants not counted)")
    if any(r.interval == stats.TANGO for r in metrics.values()):
        lines.append("(intervals of 0/1 metrics: Tango's paired score interval)")
    return lines
