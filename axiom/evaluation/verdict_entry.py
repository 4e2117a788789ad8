"""`VerdictEntry`: the statistics of one metric in a comparison (what `verdict.compare_metrics` and
`repeats.compare_with_repeats` give per metric, what `axiom compare`'s JSON holds under `metrics` and the gate
under `checked.<metric>.stats`). A TypedDict, so that mypy checks every key read or written; at run time it is
the plain dict written to JSON. The meaning of each key: verdict.py's module docstring.

Every entry has the keys of `VerdictCore` (set by verdict._one_metric; the figures are None when no question
was measured in both runs); the others are added as the comparison proceeds: `spread` and `unpaired` by
compare_metrics, the sensitivity (`mde_*`) when some question was measured, the family's `role`,
`correction` and `alias_of` (family.correct_family), the primaries' `margin`, `drop_bound`, `p_drop`,
`p_drop_adj` and `outcome` (outcomes.py), `verdict` (verdict.settle), and `repeats` and `run_variance`
(repeats.compare_with_repeats).
"""

from __future__ import annotations

from typing import TypedDict


class VerdictCore(TypedDict):
    n: int
    a: float | None
    b: float | None
    delta: float | None
    ci: list[float | None]
    interval: str | None
    p: float | None
    p_adj: float | None
    mde: float | None
    mde_method: str | None
    sd: float | None
    wins: int
    losses: int
    ties: int
    groups: int
    design_effect: float | None
    untied: int
    smallest_p: float | None


class VerdictEntry(VerdictCore, total=False):
    mde_power: float
    mde_spread: float | None
    spread: float
    unpaired: int
    verdict: str
    role: str
    correction: str
    alias_of: str
    margin: float
    drop_bound: float | None
    p_drop: float | None
    p_drop_adj: float | None
    outcome: str
    repeats: list[int]
    run_variance: float
