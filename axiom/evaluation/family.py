"""The family of metrics a comparison tests, and its multiplicity correction.

Which metrics count (`find_family`), over the questions both runs measured for each metric:

- **constant**: the metric takes one value (within `stats.ZERO`) on every question in both runs (recall@10 at
  1.0 everywhere). Its test cannot reject (p = 1); it is reported and not counted. A metric whose per-question
  differences are all 0 but whose values vary over the questions is *not* constant: it is tested (it is the
  evidence that nothing moved).
- **alias**: the metric has the same questions and the same value on each question as an earlier one, in both
  runs (recall@1 = precision@1 = hit_rate@1 with one relevant source; mrr@10 = map@10 with one relevant
  source), so its test is the same test. One representative per identical set is counted (a primary when the
  set holds one, else the first in order); the others are reported with `alias_of` and the representative's
  figures.
- **primary**: declared per dataset (a baseline's `primary` list; `--primary`), by default one metric per role
  in `DEFAULT_PRIMARIES`: retrieval `ndcg@10`, evidence `evidence_recall@10`, answer `groundedness` (else
  `semantic_similarity`), each when compared. When none of them is compared, every metric is primary.
- **secondary**: every other counted metric.

The correction (`correct_family`, the one used by `verdict.compare_metrics` and
`repeats.compare_with_repeats`):

- primaries: `p_adj` is Holm's adjustment over the counted primaries of the two-sided p (the verdict better /
  worse: "did it change?"), and `p_drop_adj` Holm's adjustment of `p_drop`, the one-sided p of "no drop"
  against a drop (half the two-sided p when the change is a drop, the null distribution being symmetric): the
  gate's question, decided in outcomes.py. Why Holm: the gate fails when *any* primary regresses, so its
  false-alarm rate is the family-wise error over the primaries, which Holm holds at alpha (one-sided) under
  any dependence; with the three default primaries its first step is alpha/3 one-sided (z 2.13), against
  alpha/40 two-sided (z 3.02) for Holm over 20 metrics before. (The non-inferiority claims need no adjustment:
  "every primary is non-inferior" is an intersection-union test, each at alpha; outcomes.py.)
- secondaries: the **max-T** step-down adjustment of Westfall and Young (1993, algorithm 2.8) with the same
  sign flips for every metric (`max_t_adjust`): per question, or per group when the questions are grouped, one
  sign flips the differences of all metrics together, so the correlation between metrics is kept and the
  correction pays for about the number of distinct endpoints, not the count of metrics. The statistic of a
  metric is |sum of its (group) differences| over the root of their sum of squares (invariant under the
  flips), so its marginal test is the sign-flip test of stats.paired_randomisation_test. Exact over every sign
  assignment when at most 13 units carry a non-zero difference, else `permutations` draws; p_adj is never
  below the metric's own p. When a secondary carries run-to-run variance (repeated runs), the flips cannot
  reproduce the run term, so Holm (valid under any dependence) is used instead and `correction` says so.
  `correction: holm` or `bonferroni` in the settings chooses those instead of max-T.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from axiom.evaluation import stats
from axiom.evaluation.verdict_entry import VerdictEntry

PRIMARY, SECONDARY, ALIAS, CONSTANT = "primary", "secondary", "alias", "constant"
ROLES = (PRIMARY, SECONDARY, ALIAS, CONSTANT)
MAX_T = "max-t"
# one primary per role, the first of each tuple that is compared
DEFAULT_PRIMARIES: tuple[tuple[str, ...], ...] = (("ndcg@10",), ("evidence_recall@10",),
                                                  ("groundedness", "semantic_similarity"))
Paired = Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray]]  # metric -> (ids, values A, values B)


def default_primaries(names: Sequence[str]) -> list[str]:
    """One metric per role of DEFAULT_PRIMARIES among `names`; every name when none of them is there."""
    found = [next(m for m in role if m in names) for role in DEFAULT_PRIMARIES
             if any(m in names for m in role)]
    return found or list(names)


@dataclass
class Family:
    """The role of each compared metric (see the module docstring)."""

    primaries: list[str] = field(default_factory=list)     # declared and compared, in order
    counted_primaries: list[str] = field(default_factory=list)
    secondaries: list[str] = field(default_factory=list)   # counted secondaries
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> its representative
    constants: list[str] = field(default_factory=list)

    def role(self, name: str) -> str:
        if name in self.constants:
            return CONSTANT
        if name in self.aliases:
            return ALIAS
        return PRIMARY if name in self.primaries else SECONDARY


def _same(x: tuple[Sequence[str], np.ndarray, np.ndarray],
          y: tuple[Sequence[str], np.ndarray, np.ndarray]) -> bool:
    (ids_x, ax, bx), (ids_y, ay, by) = x, y
    return (list(ids_x) == list(ids_y) and bool(np.all(np.abs(ax - ay) <= stats.ZERO))
            and bool(np.all(np.abs(bx - by) <= stats.ZERO)))


def is_constant(xa: np.ndarray, xb: np.ndarray) -> bool:
    """One value on every question in both runs (no question measured: not constant, just untested)."""
    both = np.concatenate([xa, xb])
    return both.size > 0 and float(both.max() - both.min()) <= stats.ZERO


def find_family(paired: Paired, primaries: Sequence[str] | None = None) -> Family:
    """Roles of the metrics of `paired` (in its order); `primaries`: the declared ones (None: the
    defaults)."""
    names = list(paired)
    wanted = set(default_primaries(names) if primaries is None else primaries)
    declared = [m for m in names if m in wanted]  # in the order compared
    family = Family(primaries=declared)
    family.constants = [m for m in names if is_constant(paired[m][1], paired[m][2])]
    # representatives first: the primaries, then the rest in order
    order = [m for m in declared if m not in family.constants] + [
        m for m in names if m not in declared and m not in family.constants]
    representatives: list[str] = []
    for name in order:
        # measured on no question of both: untested, neither counted nor an alias
        if paired[name][1].size == 0:
            continue
        twin = next((r for r in representatives if _same(paired[r], paired[name])), None)
        if twin is None:
            representatives.append(name)
        else:
            family.aliases[name] = twin
    family.counted_primaries = [m for m in declared if m in representatives]
    family.secondaries = [m for m in names if m in representatives and m not in declared]
    return family


def unit_matrix(paired: Paired, names: Sequence[str], groups: Mapping[str, str] | None) -> np.ndarray:
    """Per unit (a question, or a group of questions) and metric the sum of the unit's differences B - A: one
    row per unit over every metric's questions, so that one sign per row flips all metrics together."""
    rows: dict[str, int] = {}
    cells: list[tuple[int, int, float]] = []
    for col, name in enumerate(names):
        ids, xa, xb = paired[name]
        for qid, d in zip(ids, xb - xa, strict=True):
            label = str((groups or {}).get(qid) or f"\0{qid}")  # as clusters.Clusters.of
            cells.append((rows.setdefault(label, len(rows)), col, float(d)))
    matrix = np.zeros((len(rows), len(names)))
    for row, col, d in cells:
        matrix[row, col] += d
    return matrix


def max_t_adjust(units: np.ndarray, *, permutations: int, seed: int, label: str = MAX_T
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Westfall-Young step-down max-T adjusted p-values of the columns of `units` (rows: units whose signs
    flip together), and the unadjusted p-values from the same flips. A column without a non-zero value has p
    1."""
    units = np.where(np.abs(units) > stats.ZERO, units, 0.0)
    norms = np.sqrt(np.sum(units ** 2, axis=0))
    scale = np.where(norms > 0, norms, 1.0)
    observed = np.abs(units.sum(axis=0)) / scale
    active = units[np.any(units != 0.0, axis=1)]
    m = active.shape[0]
    if m <= stats.EXACT_MAX_NONZERO:
        signs = (((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1) * 2 - 1).astype(float)
        extra = 0
    else:
        signs = stats.seeded_rng(seed, label).integers(0, 2, size=(permutations, m),
                                                       dtype=np.int8) * 2.0 - 1.0
        extra = 1  # the observed assignment counts as one draw (a Monte Carlo p is never 0)
    flipped = np.abs(signs @ active) / scale  # draws x metrics
    tolerance = 1e-12 * np.maximum(1.0, observed)
    draws = flipped.shape[0]
    raw = (np.sum(flipped >= observed - tolerance, axis=0) + extra) / (draws + extra)
    adjusted = np.ones(units.shape[1])
    order = [j for j in np.argsort(-observed, kind="stable") if norms[j] > 0]
    running = 0.0
    for rank, j in enumerate(order):
        rest = order[rank:]
        hits = np.sum(flipped[:, rest].max(axis=1) >= observed[j] - tolerance[j])
        running = max(running, min(1.0, (hits + extra) / (draws + extra)))
        adjusted[j] = running
    raw[norms == 0] = 1.0
    return adjusted, raw


def drop_p(p: float | None, delta: float | None) -> float | None:
    """The one-sided p of "no drop" against a drop, from a two-sided p of a symmetric null distribution: half
    of it when the change is a drop (delta < 0: every metric is higher-is-better), 1 minus half of it when it
    is a gain, 1 for no change."""
    if p is None or delta is None or math.isnan(p):
        return None
    if abs(delta) <= stats.ZERO:
        return 1.0
    half = min(1.0, p / 2.0)
    return half if delta < 0 else 1.0 - half


def correct_family(out: dict[str, VerdictEntry], paired: Paired, *, correction: str, permutations: int,
                   seed: int, groups: Mapping[str, str] | None = None, primaries: Sequence[str] | None = None
                   ) -> Family:
    """Roles, `p_adj` of every entry of `out`, and `p_drop` / `p_drop_adj` of the primaries (see the module
    docstring)."""
    family = find_family(paired, primaries)
    tested = {m: float(p) for m in family.counted_primaries if (p := out[m].p) is not None}
    two_sided = stats.holm(tested)
    p_drops = {m: drop_p(p, out[m].delta) for m, p in tested.items()}  # a p always comes with a delta
    drops = stats.holm({m: float(p) for m, p in p_drops.items() if p is not None})
    for name in tested:
        out[name] = replace(out[name], p_adj=two_sided[name], p_drop=p_drops[name],
                            p_drop_adj=drops.get(name))
    counted = {m: float(p) for m in family.secondaries if (p := out[m].p) is not None}
    method = correction
    if correction == MAX_T and any(float(out[m].run_variance or 0.0) > 0 for m in counted):
        method = "holm"  # the flips cannot reproduce the run-level term: Holm, valid under any dependence
    if counted and method == MAX_T:
        adjusted, _ = max_t_adjust(unit_matrix(paired, list(counted), groups), permutations=permutations,
                                   seed=seed)
        for name, p_adj in zip(counted, adjusted, strict=True):
            out[name] = replace(out[name], p_adj=max(float(p_adj), counted[name]))
    elif counted:
        adjusted_map = stats.CORRECTIONS[method](counted)
        for name in counted:
            out[name] = replace(out[name], p_adj=float(adjusted_map[name]))
    for name, entry in list(out.items()):
        entry = replace(entry, role=family.role(name))
        if name in family.secondaries:
            entry = replace(entry, correction=method)
        elif name in family.primaries and name not in family.aliases and name not in family.constants:
            entry = replace(entry, correction="holm over the primaries")
        out[name] = entry
    for name, twin in family.aliases.items():
        source, own = out[twin], out[name]  # what the twin has set, the alias takes
        out[name] = replace(own, alias_of=twin, p_adj=source.p_adj,
                            p_drop=own.p_drop if source.p_drop is None else source.p_drop,
                            p_drop_adj=own.p_drop_adj if source.p_drop is None else source.p_drop_adj,
                            correction=own.correction if source.correction is None else source.correction)
    for name in family.constants:
        out[name] = replace(out[name], p_adj=None)  # not tested: it cannot change
    for name, entry in list(out.items()):
        if name not in family.constants and name not in family.aliases and entry.p is None:
            out[name] = replace(entry, p_adj=None)
    return family


def summary(out: Mapping[str, VerdictEntry]) -> dict[str, Any]:
    """The family of a comparison from its entries: primaries (with their outcomes and design effects: 1
    without groups, None when the differences have no variance), counted secondaries (tested: measured in both
    runs), aliases and constants, and the correction of the secondaries."""
    by_role: dict[str, list[str]] = {role: [m for m, e in out.items() if e.role == role]
                                     for role in ROLES}
    primaries = [m for m, e in out.items() if e.role == PRIMARY or (
        e.role in (ALIAS, CONSTANT) and e.outcome is not None)]
    corrections = sorted({str(out[m].correction) for m in by_role[SECONDARY]
                          if out[m].correction})
    return {"primaries": primaries, "outcomes": {m: out[m].outcome for m in primaries},
            "design_effects": {m: out[m].design_effect for m in primaries},
            "secondaries": [m for m in by_role[SECONDARY] if out[m].p is not None],
            "aliases": {m: out[m].alias_of for m in by_role[ALIAS]},
            "constants": by_role[CONSTANT],
            "correction": corrections[0] if len(corrections) == 1 else corrections}
