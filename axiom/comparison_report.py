"""Tables and charts of 04_compare_runs: runs side by side, the verdict, per-metric statistics with intervals
and minimum detectable effects, a delta chart, and the questions that changed most.

The numbers come from `axiom.evaluation.compare.compare_runs` (the statistics core shared with `axiom compare`
and the gate); this module only lays them out. Conventions as in `axiom.reporting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from axiom.evaluation.run_folder import list_runs
from axiom.reporting import BAR_COLOURS, answer_text, blank_missing, clip, new_figure, rounded

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from axiom.config import Settings
    from axiom.evaluation.run_documents import Comparison
    from axiom.evaluation.run_folder import RunRecord


def latest_runs(runs_dir: str | Path, n: int = 2) -> list[Path]:
    """The `n` most recent run folders under `runs_dir`, oldest first. Raises UsageError when there are
    fewer."""
    from axiom.errors import UsageError

    runs = list_runs(runs_dir)
    if len(runs) < n:
        raise UsageError(f"{runs_dir} holds {len(runs)} complete run folder(s); {n} are needed to compare",
                         hint="run the evaluation notebook (or `axiom eval`) again, or pass the run folders")
    return runs[-n:]


def runs_overview(records: Sequence[RunRecord]) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(records):
        m = r.manifest
        rows.append({"": "reference" if i == 0 else f"run {i}", "run": r.path.name,
                     "started": m.started,
                     "retriever": m.retriever, "top_k": m.top_k,
                     "chunking": "{chunk_size}/{chunk_overlap}".format(**m.settings.get(
                         "chunking", {"chunk_size": "?", "chunk_overlap": "?"})),
                     "generator": m.generator.name if m.generator is not None else None,
                     "questions": len(r.results),
                     "git": ((m.git.commit if m.git is not None else None) or "")[:10]})
    return pd.DataFrame(rows)


def compare_all(records: Sequence[RunRecord], *, settings: Settings | None = None, top: int = 5
                ) -> list[Comparison]:
    """`compare_runs(reference, other)` for every run after the first, tested as `settings.evaluation` says
    (the same configuration `axiom compare` and the gate use)."""
    from axiom.evaluation.compare import compare_runs
    from axiom.evaluation.verdict import StatsConfig

    if len(records) < 2:
        from axiom.errors import UsageError

        raise UsageError("comparing needs at least two runs")
    config = StatsConfig.from_settings(settings.evaluation) if settings is not None else StatsConfig()
    return [compare_runs(records[0], other, config=config, top=top) for other in records[1:]]


def verdicts(comparisons: Sequence[Comparison]) -> str:
    """The verdict line of each comparison, first thing a reader sees (printed text)."""
    return "\n".join(f"{Path(c.b).name} vs {Path(c.a).name}: {c.verdict}" for c in comparisons)


def comparison_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Per metric: the reference mean, then for each compared run its role in the family (primary, secondary,
    = the metric it is an alias of, constant), mean, delta with its 95% CI (unadjusted), p, corrected p, MDE,
    n (questions both measured, per metric), W/L/T, the verdict and, for a primary, its outcome."""
    rows: dict[str, dict[tuple[str, str], object]] = {}
    for i, comp in enumerate(comparisons, start=1):
        label = f"run {i}" if len(comparisons) > 1 else "B"
        for metric, r in comp.metrics.items():
            row = rows.setdefault(metric,
                                  {("reference" if len(comparisons) > 1 else "A", "mean"): rounded(r.a)})
            low, high = r.ci
            role = r.role or ""
            row[(label, "role")] = f"= {r.alias_of}" if role == "alias" else role
            row[(label, "mean")] = rounded(r.b)
            row[(label, "delta")] = rounded(r.delta)
            row[(label, "95% CI unadj.")] = "" if low is None else f"[{low:+.3f}, {high:+.3f}]"
            row[(label, "p")] = rounded(r.p, 4)
            row[(label, "p_adj")] = rounded(r.p_adj, 4)
            row[(label, "MDE")] = rounded(r.mde)
            row[(label, "n")] = r.n
            row[(label, "W/L/T")] = f"{r.wins}/{r.losses}/{r.ties}"
            row[(label, "verdict")] = r.verdict
            row[(label, "outcome")] = r.outcome or ""
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table.columns):
        table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "metric"
    return blank_missing(table, {c: 4 for c in table.columns if c[1] in ("p", "p_adj")})


def delta_chart(comparisons: Sequence[Comparison]) -> Figure:
    """Mean paired difference per metric against the reference run with its 95% CI; * marks a metric whose
    verdict is better or worse after correction."""
    metrics = list(dict.fromkeys(m for c in comparisons for m, r in c.metrics.items()
                                 if r.delta is not None))
    n = max(1, len(comparisons))
    fig, ax = new_figure(7.5, max(2.5, 0.34 * len(metrics) * (1 + 0.3 * (n - 1)) + 1.2))
    y = np.arange(len(metrics))
    height = 0.75 / n
    lim = 0.01
    for i, comp in enumerate(comparisons):
        entries = [comp.metrics.get(m) for m in metrics]  # None: a metric this comparison lacks
        deltas = [(e.delta if e is not None else None) or 0.0 for e in entries]
        # whiskers from the delta to its interval's ends, never negative (an interval that does not hold the
        # delta, as a bootstrap of a few questions can give, draws no whisker on that side)
        lows = [max(0.0, d - low) if e is not None and (low := e.ci[0]) is not None else 0.0
                for d, e in zip(deltas, entries, strict=True)]
        highs = [max(0.0, high - d) if e is not None and (high := e.ci[1]) is not None else 0.0
                 for d, e in zip(deltas, entries, strict=True)]
        offs = y - 0.375 + height * (i + 0.5)
        ax.barh(offs, deltas, height=height * 0.9, color=BAR_COLOURS[i % len(BAR_COLOURS)],
                label=Path(comp.b).name,
                xerr=[lows, highs], error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        lim = max([lim] + [abs(d) + max(lo, hi) for d, lo, hi in zip(deltas, lows, highs, strict=True)])
        for yy, e, d in zip(offs, entries, deltas, strict=True):
            if e is not None and e.verdict in ("better", "worse"):
                ax.text(d, yy, " *" if d >= 0 else "* ", va="center", ha="left" if d >= 0 else "right",
                        fontsize=10, fontweight="bold")
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_yticks(y, metrics)
    ax.invert_yaxis()
    ax.set_xlim(-lim * 1.15, lim * 1.15)
    alpha = comparisons[0].config.get("alpha", 0.05) if comparisons else 0.05
    ax.set_title(f"Metric deltas against {Path(comparisons[0].a).name if comparisons else 'reference'}"
                 f" (95% CI; * p_adj < {alpha})")
    ax.set_xlabel("mean paired difference (run − reference)")
    ax.set_ylabel("metric")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def changed_questions(comparison: Comparison, a: RunRecord, b: RunRecord, *,
                      text_limit: int = 260) -> pd.DataFrame:
    """The questions that changed most between two runs, with both answers side by side."""
    answers_a = dict(zip(a.results["id"].astype(str), a.results["answer"], strict=True))
    answers_b = dict(zip(b.results["id"].astype(str), b.results["answer"], strict=True))
    rows = []
    for c in comparison.changed_most:
        top = sorted(c.changes.items(), key=lambda kv: -abs(kv[1].delta))[:3]
        rows.append({"id": c.id, "question": clip(c.question, 160),
                     "largest changes": "; ".join(f"{m} {d.a:.2f}→{d.b:.2f}" for m, d in top),
                     "sum |change|": rounded(c.total_abs_change),
                     "answer (reference)": clip(answer_text(answers_a.get(c.id, "")), text_limit),
                     "answer (run)": clip(answer_text(answers_b.get(c.id, "")), text_limit)})
    return pd.DataFrame(rows, columns=["id", "question", "largest changes", "sum |change|",
                                       "answer (reference)",
                                       "answer (run)"])


def changed_questions_all(comparisons: Sequence[Comparison],
                          records: Sequence[RunRecord]) -> pd.DataFrame:
    """`changed_questions` for every run against the reference, in one table (a `run` column first)."""
    parts = []
    for comp, other in zip(comparisons, records[1:], strict=True):
        table = changed_questions(comp, records[0], other)
        table.insert(0, "run", other.path.name)
        parts.append(table)
    parts = [t for t in parts if len(t)]
    if not parts:
        return pd.DataFrame([{"run": "", "id": "", "question": "no question changed on any metric"}])
    return pd.concat(parts, ignore_index=True)


def differences_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """What differs between the reference and each run: settings, dataset/corpus hashes, commit."""
    rows = []
    for comp in comparisons:
        for line in comp.differences:
            key, _, change = line.partition(": ")
            rows.append({"run": Path(comp.b).name, "what": key, "reference → run": change})
    if not rows:
        return pd.DataFrame([{"run": "", "what": "nothing", "reference → run": "same settings and inputs"}])
    return pd.DataFrame(rows)
