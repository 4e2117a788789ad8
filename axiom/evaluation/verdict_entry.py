"""`VerdictEntry`: the statistics of one metric in a comparison (what `verdict.compare_metrics` and
`repeats.compare_with_repeats` give per metric, what `axiom compare`'s JSON holds under `metrics` and the gate
under `checked.<metric>.stats`). A frozen dataclass read by attribute; `to_dict` / `from_dict` are its one
serialisation (the JSON object, its keys in the order they were always written). The meaning of each field:
verdict.py's module docstring.

Every entry has the fields up to `smallest_p` (set by verdict._one_metric; the figures are None when no
question was measured in both runs); the others are None until the comparison sets them, and are written only
when set: `spread` and `unpaired` by compare_metrics, the primaries' `margin` and `drop_bound` (written with
the margin: it may be None), the family's `role`, `correction` and `alias_of` and the primaries' `p_drop` and
`p_drop_adj` (family.correct_family), the sensitivity's `mde_power` and `mde_spread` (written with the power:
it may be None) when some question was measured, `verdict` (verdict.settle), the primaries' `outcome`
(outcomes.py), and `repeats` and `run_variance` (repeats.compare_with_repeats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_CORE = ("n", "a", "b", "delta", "ci", "interval", "p", "p_adj", "mde", "mde_method", "sd", "wins", "losses",
         "ties", "groups", "design_effect", "untied", "smallest_p")
# the optional fields written, when set, in the order the comparison sets them (an alias's family fields
# come in the order correct_family copies them from its twin)
_FAMILY = ("p_drop", "p_drop_adj", "role", "correction")
_ALIAS_FAMILY = ("role", "alias_of", "p_drop", "p_drop_adj", "correction")
_TAIL = ("mde_power", "mde_spread", "verdict", "outcome", "repeats", "run_variance")
_WRITTEN_WITH = {"drop_bound": "margin", "mde_spread": "mde_power", "p_drop_adj": "p_drop"}


@dataclass(frozen=True)
class VerdictEntry:
    """One metric of a comparison (see the module docstring)."""

    n: int
    a: float | None
    b: float | None
    delta: float | None
    ci: tuple[float | None, float | None]
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
    spread: float | None = None
    unpaired: int | None = None
    margin: float | None = None
    drop_bound: float | None = None
    p_drop: float | None = None
    p_drop_adj: float | None = None
    role: str | None = None
    correction: str | None = None
    alias_of: str | None = None
    mde_power: float | None = None
    mde_spread: float | None = None
    verdict: str | None = None
    outcome: str | None = None
    repeats: tuple[int, int] | None = None
    run_variance: float | None = None

    def _is_set(self, key: str) -> bool:
        return getattr(self, _WRITTEN_WITH.get(key, key)) is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the entry: the core keys, then each optional one when set."""
        family = _ALIAS_FAMILY if self.alias_of is not None else _FAMILY
        keys = [*_CORE, "spread", "unpaired", "margin", "drop_bound", *family, *_TAIL]
        out: dict[str, Any] = {}
        for key in keys:
            if key in _CORE or self._is_set(key):
                value = getattr(self, key)
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerdictEntry:  # boundary: a JSON object
        values = dict(data)
        low, high = data["ci"]
        values["ci"] = (low, high)
        if data.get("repeats") is not None:
            first, second = data["repeats"]
            values["repeats"] = (int(first), int(second))
        return cls(**values)
