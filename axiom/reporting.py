"""Tables and charts for the notebooks and the sweep summary: pandas DataFrames and matplotlib Figures.

Everything a notebook shows is built here, so the notebooks stay a parameters cell plus calls, and this
logic is tested like any other module. Conventions:

- Tables are plain DataFrames with rounded numbers and readable column names (they render as HTML tables in
  JupyterLab and in nbconvert exports; no Styler, whose random ids would break nbval's output check).
- Charts are `matplotlib.figure.Figure` objects built without pyplot (no global state, nothing shown twice):
  a notebook shows one by leaving it as the cell's last expression (after `%matplotlib inline`). Every
  chart has a title and labelled axes.
- Text that can be long (questions, answers, contexts) is shortened with `clip`.
- Outside text (questions, answers, documents, dataset fields) only ever reaches HTML through a DataFrame,
  whose HTML escapes it; Markdown built from it lives in `axiom.notebook.markup`, which escapes it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from axiom.config import Settings
    from axiom.evaluation.run_folder import RunRecord
    from axiom.pipeline import RAGPipeline
    from axiom.types import Answer, Hit, IngestReport

# The metrics a per-question table shows, when the run has them.
KEY_METRICS = ("ndcg@10", "recall@5", "semantic_similarity", "chrf", "faithfulness", "answer_relevancy")
# What "worst first" sorts by when nothing else is asked for (the first one the run measured).
WORST_BY = ("ndcg@10", "semantic_similarity", "chrf")
_BAR = "#4C72B0"
BAR_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def notebook_display(max_colwidth: int = 240, max_rows: int = 200) -> None:
    """pandas display options for the notebooks: long text columns wrap instead of being cut at 50 chars."""
    pd.set_option("display.max_colwidth", max_colwidth)
    pd.set_option("display.max_rows", max_rows)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
    # a `$...$` in a document or an answer is text, not math for MathJax (JupyterLab, nbconvert's report)
    pd.set_option("display.html.use_mathjax", False)


def clip(text: object, limit: int = 200) -> str:
    """One line of at most `limit` characters (whitespace collapsed, an ellipsis when cut)."""
    s = " ".join(str(text if text is not None else "").split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def rounded(value: Any, digits: int = 3) -> Any:  # boundary: a JSON or pandas value; float() decides
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(f) else round(f, digits)


def _page(page: int | None) -> str:
    return "" if page is None else str(page)


def new_figure(width: float = 7.5, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.subplots()


# -- settings --------------------------------------------------------------------------------------
def settings_table(settings: Settings, **extra: object) -> pd.DataFrame:
    """The knobs that decide what a notebook does, as the notebook actually uses them."""
    s = settings
    rows = {
        "store": s.store.mode,
        "store location": (f"{s.store.host}:{s.store.port}" if s.store.mode == "server" else s.store.path),
        "collection": s.store.collection,
        "embedding model": f"{s.embeddings.provider}: {s.embeddings.model}",
        "chunk size / overlap (characters)": f"{s.chunking.chunk_size} / {s.chunking.chunk_overlap}",
        "retriever": s.retrieval.retriever,
        "top_k": s.retrieval.top_k,
        "generator": s.generation.resolved_provider,
    }
    rows.update({k: ("" if v is None else str(v)) for k, v in extra.items()})
    return pd.DataFrame({"value": [str(v) for v in rows.values()]},
                        index=pd.Index(list(rows), name="setting"))


# -- 01 ingest -------------------------------------------------------------------------------------
def ingest_summary(report: IngestReport | Mapping[str, Any] | None,  # boundary: a JSON object
                   ) -> pd.DataFrame:
    """One row: how many files were ingested, unchanged and skipped, and what happened to the chunks.
    Takes an IngestReport or its dict (as a run manifest's `ingest` holds it)."""
    if report is None:
        return pd.DataFrame([{"ingest": "none (the run evaluated an existing collection)"}], index=[""])
    d = report if isinstance(report, Mapping) else report.to_dict()
    return pd.DataFrame([{
        "files ingested": len(d.get("files_ingested", [])),
        "files unchanged": len(d.get("files_unchanged", [])),
        "files skipped": len(d.get("files_skipped", [])), "chunks added": d.get("chunks_added", 0),
        "chunks embedded": d.get("chunks_embedded", 0), "chunks removed": d.get("chunks_removed", 0),
        "chunks in collection": d.get("chunks_total", 0),
    }], index=[""])


def ingest_files(report: IngestReport) -> pd.DataFrame:
    """Every file the ingest looked at: ingested, unchanged, or skipped with its reason."""
    rows = [{"file": f, "status": "ingested", "reason": ""} for f in report.files_ingested]
    rows += [{"file": f, "status": "unchanged", "reason": "same content and chunking as stored"}
             for f in report.files_unchanged]
    rows += [{"file": s.path, "status": "skipped", "reason": s.reason} for s in report.files_skipped]
    order = {"skipped": 0, "ingested": 1, "unchanged": 2}
    rows.sort(key=lambda r: (order[r["status"]], r["file"]))
    return pd.DataFrame(rows, columns=["file", "status", "reason"], index=pd.RangeIndex(1, len(rows) + 1))


def chunk_lengths(pipeline: RAGPipeline) -> pd.Series:
    """Length in characters of every chunk stored in the pipeline's collection (from chunk offsets)."""
    lengths = []
    for chunk in pipeline.store.iter_chunks():
        meta = chunk.metadata
        if "start" in meta and "end" in meta:
            lengths.append(int(meta["end"]) - int(meta["start"]))
    return pd.Series(sorted(lengths), name="characters", dtype="int64")


def chunk_length_stats(lengths: pd.Series) -> pd.DataFrame:
    if lengths.empty:
        return pd.DataFrame([{"chunks": 0}], index=["characters"])
    return pd.DataFrame([{"chunks": int(lengths.size), "shortest": int(lengths.min()),
                          "median": int(lengths.median()), "mean": int(round(lengths.mean())),
                          "longest": int(lengths.max())}], index=["characters"])


def chunk_length_histogram(lengths: pd.Series, chunk_size: int | None = None) -> Figure:
    fig, ax = new_figure(7.5, 3.6)
    if lengths.empty:
        ax.text(0.5, 0.5, "no chunks stored", ha="center", va="center", transform=ax.transAxes)
    else:
        bins = min(40, max(5, int(lengths.size ** 0.5) * 2))
        ax.hist(lengths, bins=bins, color=_BAR, edgecolor="white")
        if chunk_size:
            ax.axvline(chunk_size, color="#C44E52", linestyle="--", label=f"chunk_size = {chunk_size}")
            ax.legend(loc="upper left")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Chunk length distribution")
    ax.set_xlabel("chunk length (characters)")
    ax.set_ylabel("number of chunks")
    return fig


def store_status(status: Mapping[str, object]) -> pd.DataFrame:
    """What the collection holds (without its location, which a notebook prints on its own)."""
    keys = [("collection", "collection"), ("exists", "exists"), ("chunks", "chunks"),
            ("sources", "source files"),
            ("embedding_model", "embedding model"), ("store", "store")]
    return pd.DataFrame({"value": [str(status.get(k)) for k, _ in keys]}, index=[label for _, label in keys])


# -- 02 query --------------------------------------------------------------------------------------
def example_questions(dataset: str | Path, n: int = 8) -> pd.DataFrame:
    """The first `n` questions of a golden set (validated as `axiom eval` validates it)."""
    from axiom.evaluation.datasets import load_golden

    items = load_golden(Path(dataset))[:n]
    return pd.DataFrame({"id": [it.id for it in items], "question": [it.question for it in items]},
                        index=pd.RangeIndex(1, len(items) + 1))


def citations_table(answer: Answer) -> pd.DataFrame:
    table = pd.DataFrame([{"n": c.n, "source": c.source, "page": _page(c.page), "score": rounded(c.score)}
                          for c in answer.citations], columns=["n", "source", "page", "score"])
    return table.set_index("n")


def contexts_table(hits: Sequence[Hit], text_limit: int = 220) -> pd.DataFrame:
    """The retrieved contexts in rank order with their scores and the start of their text."""
    table = pd.DataFrame([{"rank": i, "source": h.source, "page": _page(h.page), "score": rounded(h.score),
                           "text": clip(h.text, text_limit)} for i, h in enumerate(hits, start=1)],
                         columns=["rank", "source", "page", "score", "text"])
    return table.set_index("rank")


def rankings_side_by_side(pipeline: RAGPipeline, question: str, *, k: int = 5,
                          retrievers: Sequence[str] = ("dense", "bm25", "hybrid")) -> pd.DataFrame:
    """The top k of each retriever for the same question, rank by rank (source, chunk and score).

    Scores are on each retriever's own scale: cosine similarity (dense), BM25 score (bm25), reciprocal-rank
    fusion score (hybrid); compare ranks across columns, scores only within one.
    """
    columns: dict[tuple[str, str], list[object]] = {}
    for name in retrievers:
        hits = pipeline.retrieve(question, top_k=k, retriever=name)
        padded = list(hits) + [None] * (k - len(hits))
        columns[(name, "source")] = [h.source if h else "" for h in padded]
        columns[(name, "chunk")] = [h.chunk_id[:8] if h else "" for h in padded]
        columns[(name, "score")] = [rounded(h.score, 4) if h else None for h in padded]
    table = pd.DataFrame(columns, index=pd.RangeIndex(1, k + 1, name="rank"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["retriever", ""])
    return table


def ranking_overlap(table: pd.DataFrame) -> pd.DataFrame:
    """How many of each retriever's top chunks the others also return (from `rankings_side_by_side`)."""
    names = list(dict.fromkeys(table.columns.get_level_values(0)))
    sets = {n: {c for c in table[(n, "chunk")] if c} for n in names}
    return pd.DataFrame([[len(sets[a] & sets[b]) for b in names] for a in names], index=names, columns=names)


# -- 03 evaluate -----------------------------------------------------------------------------------
def metrics_table(record: RunRecord) -> pd.DataFrame:
    """Per metric: mean with its 95% bootstrap confidence interval, and how many questions it covers."""
    rows = []
    for name, m in record.metrics.metrics.items():
        rows.append({"metric": name, "mean": rounded(m.get("mean")), "95% CI low": rounded(m.get("ci_low")),
                     "95% CI high": rounded(m.get("ci_high")), "n": m.get("n", 0),
                     "unmeasured": m.get("unmeasured", 0), "n/a": m.get("not_applicable", 0)})
    table = pd.DataFrame(rows, columns=["metric", "mean", "95% CI low", "95% CI high", "n", "unmeasured",
                                        "n/a"])
    return blank_missing(table.set_index("metric"))


def blank_missing(table: pd.DataFrame, digits: Mapping[Hashable, int] | None = None) -> pd.DataFrame:
    """Missing numbers shown as an empty cell instead of NaN (such columns become text with fixed decimals:
    `digits` per column, default 3)."""
    out = table.copy()
    for col in out.columns:
        if out[col].dtype.kind == "f" and out[col].isna().any():
            d = (digits or {}).get(col, 3)
            out[col] = [("" if pd.isna(v) else f"{v:.{d}f}") for v in out[col]]
    return out


def _ci_bars(ax: Axes, labels: Sequence[str], means: Sequence[float], lows: Sequence[float],
             highs: Sequence[float], color: str = _BAR) -> None:
    y = np.arange(len(labels))
    err = np.array([[max(0.0, m - lo) for m, lo in zip(means, lows, strict=True)],
                    [max(0.0, hi - m) for m, hi in zip(means, highs, strict=True)]])
    ax.barh(y, means, xerr=err, color=color, ecolor="#333333", capsize=3, height=0.6)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, m, hi in zip(y, means, highs, strict=True):
        ax.text(max(m, hi), float(yi), f"  {m:.3f}", va="center", ha="left", fontsize=8)


def metrics_chart(record: RunRecord, metrics: Iterable[str] | None = None) -> Figure:
    """Bar chart of metric means with 95% CI whiskers (metrics nothing was measured for are left out)."""
    summary: dict[str, Any] = record.metrics.metrics
    names = [m for m in (metrics or summary) if m in summary and summary[m].get("mean") is not None]
    fig, ax = new_figure(7.5, max(2.5, 0.32 * len(names) + 1.2))
    if names:
        _ci_bars(ax, names, [summary[m]["mean"] for m in names], [summary[m]["ci_low"] for m in names],
                 [summary[m]["ci_high"] for m in names])
        ax.set_xlim(0, max(1.0, max(summary[m]["ci_high"] for m in names)) * 1.08)
    ax.set_title(f"Metrics of run {record.name} ({len(record.results)} questions)")
    ax.set_xlabel("mean over questions (whiskers: 95% bootstrap CI)")
    ax.set_ylabel("metric")
    return fig


def worst_metric(record: RunRecord) -> str | None:
    for name in WORST_BY:
        if name in record.results.columns and record.results[name].notna().any():
            return name
    return None


def answer_text(answer: str) -> str:
    """An answer without the extractive generator's fixed prefix (the generator column says which it was)."""
    from axiom.generation import EXTRACTIVE_PREFIX

    text = str(answer or "").strip()
    return text[len(EXTRACTIVE_PREFIX):].strip() if text.startswith(EXTRACTIVE_PREFIX) else text


def per_question_table(record: RunRecord, *, sort_by: str | None = None, limit: int | None = None,
                       text_limit: int = 140) -> pd.DataFrame:
    """One row per question, worst first on `sort_by` (default: ndcg@10, else the first answer metric)."""
    res = record.results
    sort_by = sort_by or worst_metric(record)
    metrics = [m for m in KEY_METRICS if m in res.columns and res[m].notna().any()]
    if sort_by and sort_by not in metrics and sort_by in res.columns:
        metrics.insert(0, sort_by)
    table = pd.DataFrame({"id": res["id"].astype(str), "question": [clip(q, 90) for q in res["question"]]})
    for m in metrics:
        table[m] = [rounded(v) for v in res[m]]
    table["answer"] = [clip(answer_text(a), text_limit) for a in res["answer"]]
    table["relevant → retrieved (top 3)"] = [
        f"{', '.join(map(str, rel))} → {', '.join(map(str, list(ret)[:3]))}"
        for rel, ret in zip(res["relevant_sources"], res["retrieved_sources"], strict=True)]
    if sort_by:  # ties broken by the answer metrics, then the id: the worst answers come first among equals
        keys = [sort_by] + [m for m in ("semantic_similarity", "chrf") if m in table.columns and m != sort_by]
        table = table.sort_values(keys + ["id"], ascending=True, na_position="first", kind="stable")
    table = table.reset_index(drop=True)
    table.index = pd.RangeIndex(1, len(table) + 1)
    return table.head(limit) if limit else table


def latency_table(record: RunRecord) -> pd.DataFrame:
    lat = record.metrics.latency
    rows, labels = [], []
    for key, label in (("retrieval", "retrieval (share of the batch)"), ("generation", "generation"),
                       ("question", "question (retrieval + generation)")):
        s = lat.get(key) or {}
        labels.append(label)
        rows.append({f"{k[:-3]} (ms)": rounded(s.get(k), 1)
                     for k in ("mean_ms", "p50_ms", "p95_ms", "max_ms")})
    return pd.DataFrame(rows, index=pd.Index(labels, name="stage"))


def latency_histogram(record: RunRecord) -> Figure:
    """Per-question latency (its share of the retrieval batch + its generation), with p50 and p95."""
    res = record.results
    total = ((res["retrieval_seconds"] + res["generation_seconds"]) * 1000).dropna()
    fig, ax = new_figure(7.5, 3.6)
    if len(total):
        ax.hist(total, bins=min(30, max(10, len(total) // 2)), color=_BAR, edgecolor="white")
        for q, style in ((0.5, ":"), (0.95, "--")):
            v = float(total.quantile(q))
            ax.axvline(v, color="#C44E52", linestyle=style, label=f"p{int(q * 100)} = {v:.0f} ms")
        ax.legend()
    share = float(res["retrieval_seconds"].mean() * 1000) if len(res) else 0.0
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Latency per question ({len(total)} questions; retrieval share {share:.0f} ms each)")
    ax.set_xlabel("latency per question: retrieval share + generation (ms)")
    ax.set_ylabel("number of questions")
    return fig


def run_files(path: str | Path) -> pd.DataFrame:
    """The files of a run folder with their sizes."""
    root = Path(path)
    rows = [{"file": p.name, "kB": round(p.stat().st_size / 1024, 1)} for p in sorted(root.iterdir())
            if p.is_file()]
    return pd.DataFrame(rows, columns=["file", "kB"]).set_index("file")


# -- sweeps ----------------------------------------------------------------------------------------
def sweep_chart(summary: pd.DataFrame, metric: str) -> Figure:
    """Ranked horizontal bars of one metric per sweep combination, with 95% CI whiskers."""
    rows = summary.dropna(subset=[metric])
    fig, ax = new_figure(7.5, max(2.5, 0.38 * len(rows) + 1.3))
    if len(rows):
        low = rows.get(f"{metric} ci_low", rows[metric]).fillna(rows[metric])
        high = rows.get(f"{metric} ci_high", rows[metric]).fillna(rows[metric])
        _ci_bars(ax, list(rows["combination"]), list(rows[metric]), list(low), list(high))
        ax.set_xlim(0, max(1.0, float(high.max())) * 1.1)
    ax.set_title(f"Sweep ranked by {metric}")
    ax.set_xlabel(f"{metric}: mean over questions (whiskers: 95% CI)")
    ax.set_ylabel("combination")
    return fig


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (pandas + tabulate)."""
    return table.to_markdown(index=False)


def roc_chart(curves: Sequence[Mapping[str, Any]],  # boundary: JSON objects (agreement.roc_points)
              label: str) -> Figure:
    """ROC curves of metrics as scores for one binary human label (`agreement.roc_points` of each metric)."""
    fig, ax = new_figure(6.0, 5.0)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance (AUC 0.5)")
    for colour, curve in zip(BAR_COLOURS * 4, curves, strict=False):
        if curve["fpr"]:
            ax.plot(curve["fpr"], curve["tpr"], color=colour,
                    label=f"{curve['metric']} (AUC {curve['auc']:.3f})")
    ax.set_title(f"ROC curves against the human label {label}")
    ax.set_xlabel("false-positive rate (share of 'no' answers the metric passes)")
    ax.set_ylabel("true-positive rate (share of 'yes' answers it passes)")
    ax.legend(loc="lower right")
    return fig
