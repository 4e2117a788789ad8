"""A sweep's summary: the ranked table of its runs (each against the best by a paired test) and the files in
the sweep folder (`summary.csv`, `summary.md`, `summary.png`, `sweep.json`). `axiom.sweep.finish_sweep` calls
both, for a local sweep and for one on Ray alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from axiom.sweep import SweepResult, SweepRun

# the metrics shown beside the ranking metric, when a run has them
SUMMARY_METRICS = ("ndcg@10", "recall@5", "mrr@10", "evidence_recall@5", "evidence_precision@5",
                   "nonllm_context_recall", "nonllm_context_precision", "semantic_similarity", "chrf",
                   "rouge_l", "faithfulness", "answer_relevancy")


def summary_table(runs: Sequence[SweepRun], metric: str, keys: Sequence[str]) -> pd.DataFrame:
    """One row per combination, best first on `metric` as shown (4 decimals), ties in grid order (two sweeps
    of a grid rank alike, local or on Ray), each tested against the best (evaluation/versus_best.py)."""
    import pandas as pd

    rows = []
    for r in sorted(runs, key=lambda run: run.index):
        m = r.metrics.get(metric, {})
        row: dict[str, Any] = {"combination": r.label, **{k: r.combination.get(k) for k in keys},
                               metric: m.get("mean"), f"{metric} ci_low": m.get("ci_low"),
                               f"{metric} ci_high": m.get("ci_high")}
        for other in SUMMARY_METRICS:
            if other != metric and other in r.metrics and r.metrics[other].get("mean") is not None:
                row[other] = r.metrics[other]["mean"]
        row.update({"seconds": round(r.seconds, 2), "chunks embedded": r.chunks_embedded,
                    "texts embedded": r.embedding.get("texts_embedded"),
                    "embedding cache hits": r.embedding.get("cache_hits"),
                    "run": r.run_path.name if r.run_path else f"FAILED: {r.error}"})
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in table.columns:
        if table[col].dtype.kind == "f" and col != "seconds":
            table[col] = table[col].round(4)
    table = table.sort_values(metric, ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    from axiom.evaluation.versus_best import with_tests_against_best  # paired tests, Holm
    return with_tests_against_best(table.reset_index(drop=True), {r.label: r.run_path for r in runs}, metric)


def write_summary(result: SweepResult) -> None:
    from axiom.reporting import markdown_table, sweep_chart

    folder = result.folder
    result.summary.to_csv(folder / "summary.csv", index=False)
    show = [c for c in result.summary.columns if not c.endswith(("ci_low", "ci_high"))]
    head = [f"# Sweep {folder.name}", "",
            f"Ranked by **{result.metric}** (mean over questions; 95% CI in summary.csv). "
            f"{len(result.runs)} combinations in {result.wall_seconds:.1f} s wall with {result.workers} "
            f"worker(s); the first run alone (kernel start + ingest + evaluation) took "
            f"{result.first_run_seconds:.1f} s, "
            f"so the sweep cost {result.ratio:.2f} x one run." if result.ratio else "No run finished.", "",
            "`chunks embedded` comes from each run's ingest report: 0 means the run's collection already "
            "held every chunk. `texts embedded` / `embedding cache hits` count all embedding requests of the "
            "run (questions, chunks, answer sentences, metric inputs) computed vs served from the shared "
            "cache.", ""]
    (folder / "summary.md").write_text("\n".join(head) + markdown_table(result.summary[show]) + "\n",
                                       encoding="utf-8")
    fig = sweep_chart(result.summary, result.metric)
    fig.savefig(folder / "summary.png", dpi=110)
    (folder / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n",
                                       encoding="utf-8")
