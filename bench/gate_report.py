"""The gate calibration's markdown table (`bench.gate_calibration`), rendered from its result (the run's meta,
the per-configuration timing and the counts of `bench.gate_draws.calibrate`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from axiom.evaluation.stats import ZERO

HEADLINE = ("ndcg@10", "evidence_recall@10", "semantic_similarity", "chrf", "rouge_l")


# -- the table -------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _counts(pairs: Sequence[Sequence[Any]], limit: int = 30) -> str:
    if not pairs:
        return "-"
    shown = ", ".join(f"{m} ({c})" for m, c in pairs[:limit])
    return shown + (f", +{len(pairs) - limit} more" if len(pairs) > limit else "")


METHOD = """\
Method. Each configuration is evaluated once with the real `run_evaluation` on the whole set (real ingest
into an embedded ChromaDB, hybrid retrieval, the offline extractive generator, offline metrics, no judge).
Baseline: config.yaml (hybrid, top_k 5, chunk_size 800, overlap 160). Null variants (no quality change):
(a) the same configuration evaluated again, (b) the golden lines shuffled (fixed seed), (c) the corpus files
renamed `doc-<sha1(pmid)[:10]>.txt` (so they sort, ingest and break ties in another order) with the golden
sources mapped, (d) the baseline run against itself (only the statistics seed varies). Injected regressions:
(i) top_k 5 -> 1, (ii) chunk_size 100 / overlap 20 (own collection), (iii) fault injection: the configured
retriever wrapped in `axiom.retrieval.RETRIEVERS` for that run to fetch k + 1 hits and drop the first (best)
chunk. For each of N draws, a random subset of the questions (without replacement, seed = draw number, the
same subsets for every variant) and statistics seed = draw number: `make_baseline(baseline run)` and the
variant's results are restricted to the subset (summary means recomputed), and the real `gate_run` decides
(paired sign-flip test, Holm over all metrics, alpha 0.05, a failure also needs a drop of at least
min_delta 0.01). A null draw with any gate failure is a false alarm; an injected draw that fails is flagged
(= measured power). Rates carry 95% Clopper-Pearson intervals. The draws of a variant share the single
evaluation, so they measure the gate's sensitivity to which questions are asked, not run-to-run variation
of the pipeline (which is nil offline: see the last table)."""


def render_markdown(result: Mapping[str, Any]) -> str:
    meta, cal, timing = result["meta"], result["calibration"], result["timing"]
    metrics = cal["metrics"]
    headline = [m for m in HEADLINE if m in metrics]
    lines = [f"# Regression gate calibration: false alarms and power ({meta['dataset_label']})", "",
             f"- date: {meta['date']}; git commit: {meta['git_commit']}"
             f"{' (dirty working tree)' if meta.get('git_dirty') else ''}",
             f"- machine: {meta['cores']} cores ({meta.get('cpu') or '?'}), load average at start "
             f"{meta.get('load_average')}; command: `{meta['command']}`",
             f"- set: {meta['questions']} questions, corpus {meta['corpus_files']} files; {meta['draws']} "
             f"draws per variant of {meta['subset']} questions each; statistics: {meta['stats']}",
             f"- total wall time: {meta['total_seconds']:.0f} s (evaluations "
             f"{meta['evaluation_seconds']:.0f} s, gate draws {meta['calibration_seconds']:.0f} s)", ""]
    if meta.get("quick"):
        lines += ["**Quick smoke check (`--quick`): far too few draws and questions to read rates from.**",
                  ""]
    lines += [METHOD, "",
              f"**Null gate runs: {cal['null_failures']} false alarm(s) in {cal['null_gate_runs']}.** "
              + informative_nulls(cal), "",
              "## Gate outcomes per variant", "",
              "| variant | kind | draws | gate failed | rate [95% CI] | metrics named (draws) | "
              + " | ".join(f"{m} median delta / MDE" for m in headline) + " | evaluation wall time |",
              "|---" * (6 + len(headline) + 1) + "|"]
    for v in cal["variants"]:
        t = timing.get(v["variant"], {})
        wall = f"{t.get('seconds', 0):.0f} s" if t.get("seconds") else "(baseline run)"
        if t.get("chunks_embedded"):
            wall += f" (ingest {t['ingest_seconds']:.0f} s, {t['chunks_embedded']} chunks)"
        low, high = v["ci95"]
        cells = [f"{v['variant']}: {v['what']}", v["kind"], str(v["draws"]), str(v["failures"]),
                 f"{v['rate']:.2f} [{low:.2f}, {high:.2f}]", _counts(v["named"])]
        cells += [f"{_f(v['median_delta'][m], sign=True)} / {_f(v['median_mde'][m])}" for m in headline]
        cells.append(wall)
        lines.append("| " + " | ".join(cells) + " |")
    base_t = timing["baseline"]
    lines += ["", f"Baseline evaluation: {base_t['seconds']:.0f} s (ingest "
                  f"{base_t.get('ingest_seconds')} s, {base_t.get('chunks_embedded')} chunks embedded "
                  f"now, {base_t.get('chunks')} in its index). A configuration that shares the "
                  "baseline's collection embeds nothing at ingest.", "",
              "Test verdicts below the gate's min_delta or in the improving direction (not gate failures):",
              ""]
    for v in cal["variants"]:
        named = {m for m, _ in v["named"]}
        extra_worse = [(m, c) for m, c in v["worse_verdicts"] if m not in named]
        lines.append(f"- {v['variant']}: 'worse' without failing {_counts(extra_worse)}; "
                     f"'better' {_counts(v['better_verdicts'])}")
    lines += ["", "## What the gate can detect on this set", "",
              f"Median minimum detectable effect over the {cal['null_gate_runs']} null draws (80% "
              "power, Holm's first-step level, planning sd = max(sd of differences, the metric's "
              "own sd)); a drop smaller than this is usually missed, and a drop below min_delta "
              "0.01 never fails the gate.", "",
              "| metric | baseline mean | n | median MDE |", "|---|---|---|---|"]
    for m, d in cal["detectable"].items():
        n = d["median_n"]
        lines.append(f"| {m} | {_f(d['baseline_mean'])} | {int(n) if n is not None else '-'} | "
                     f"{_f(d['median_mde'])} |")
    lines += ["", "## Null variants against the baseline on the whole set", "",
              "Questions whose value differs from the baseline beyond the statistics core's tie tolerance "
              f"({ZERO:g}, stats.ZERO), bit-for-bit, and the largest |difference|; metrics where every value "
              "is identical are left out.", "",
              f"| variant | metric | pairs | differ (> {ZERO:g}) | differ (bitwise) | max abs diff |",
              "|---|---|---|---|---|---|"]
    for name, per in cal["null_differences"].items():
        changed = [(m, d) for m, d in per.items() if d["differ_bitwise"]]
        if not changed:
            lines.append(f"| {name} | (all metrics identical on every question) | | | | |")
        for m, d in changed:
            lines.append(f"| {name} | {m} | {d['pairs']} | {d['differ']} | {d['differ_bitwise']} | "
                         f"{d['max_abs']:.3g} |")
    flat = [m for m, d in cal["detectable"].items() if d["median_mde"] is None]
    if flat:
        lines += ["",
                  "No variance in the baseline (every question has the same value, so no MDE and no paired "
                  f"test can move): {', '.join(flat)}. The gate sees a regression in these only when "
                  "questions fall off that value."]
    loads = f"load average at start {meta.get('load_average')}"
    if meta.get("load_average_end"):
        loads += f", at the end {meta['load_average_end']}"
    lines += ["", "## Configurations", "",
              f"Each wall time is a single measurement on a shared machine ({meta['cores']} cores, "
              f"{loads}): identical work (re-run, shuffled golden, drop best hit: the same questions, 5 "
              "contexts each) can take several times as long when other jobs compete for the cores, so "
              "read them as rough. Stages: ingest, the retrieval batch, generation (sum over questions) "
              "and the rest (scoring, writing the run folder).", "",
              "| configuration | wall s | ingest / retrieval / generation / rest s | chunks embedded | "
              "chunks in index | collection |", "|---|---|---|---|---|---|"]
    for key, t in timing.items():
        if key == "stats-seed":
            continue
        st = t.get("stages") or {}
        stages = " / ".join(f"{st[k]:.0f}"
                            for k in ("ingest", "retrieval", "generation", "rest")) if st else "-"
        lines.append(f"| {t['label']} | {t['seconds']:.1f} | {stages} | "
                     f"{t.get('chunks_embedded')} | {t.get('chunks')} | `{t.get('collection')}` |")
    return "\n".join(lines) + "\n"


def informative_nulls(cal: Mapping[str, Any]) -> str:
    """Which null variants differ from the baseline on any question at all (only those can fail the gate:
    identical values are ties, p = 1)."""
    differ = [name for name, per in cal["null_differences"].items()
              if any(d["differ"] for d in per.values())]
    same = [name for name in cal["null_differences"] if name not in differ]
    draws = {v["variant"]: v["draws"] for v in cal["variants"]}
    text = (f"Null variants that differ from the baseline on some question: "
            f"{', '.join(differ) or 'none'} ({sum(draws[n] for n in differ)} draws)")
    if same:
        text += (f"; {', '.join(same)} reproduce the baseline's values on every question, so their draws are "
                 "all ties (p = 1) and cannot fail")
    return text + "."

