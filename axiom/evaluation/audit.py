"""Audit a golden set before trusting its numbers: can every item be answered from the corpus, are questions
duplicated (or leaked from another set), how are they spread over the sources, and is the last run saturated.

    report = audit_dataset("golden.jsonl", settings=settings, corpus="data", against="other.jsonl")
    report.usable, report.unusable, report.text(), report.to_dict()

An item is **unusable** when one of its `relevant_sources` is not in the corpus (the files under `corpus`, or
without it the sources stored in the configured collection) or one of its `reference_contexts` cannot be
located in the corpus (`spans.locate_passages`, which needs `corpus`). Duplicates, leakage, coverage and
saturation are reported, never fatal, and so is which metrics the set supports (`metric_support.py`: a set of
questions alone is valid; a metric needing what no item has is n/a, with why). A malformed dataset raises
DatasetError as `load_golden` does.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from axiom.config import Settings
from axiom.errors import UsageError
from axiom.evaluation.datasets import EvalItem, file_sha256, load_golden
from axiom.evaluation.metric_support import metric_support, support_text
from axiom.evaluation.run_folder import load_run, run_manifests
from axiom.evaluation.spans import locate_passages

if TYPE_CHECKING:
    from axiom.embeddings import Embedder
    from axiom.evaluation.span_metrics import LocatedPassage

CEILING = 1.0
SATURATED_MEAN = 0.99
TOP_SOURCES = 5
_PUNCTUATION = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class Unusable:
    """Why one item cannot be used: `field` is `relevant_sources` or `reference_contexts`, `index` the
    entry."""

    item_id: str
    line: int
    field: str
    index: int
    reason: str

    def text(self) -> str:
        return f"line {self.line} ({self.item_id}): {self.field}[{self.index}] {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.item_id, "line": self.line, "field": self.field, "index": self.index,
                "reason": self.reason, "message": self.text()}


@dataclass
class AuditReport:
    dataset: str
    questions: int
    sources_checked_against: str | None  # "corpus <path>", "collection <name>" or None (not checked)
    items: list[dict[str, Any]]
    unusable: list[Unusable]
    contexts: dict[str, Any]
    duplicates: dict[str, Any]
    coverage: dict[str, Any]
    leakage: dict[str, Any] | None = None
    saturation: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # `metric_support`: what the set can measure

    @property
    def usable(self) -> bool:
        return not self.unusable

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "questions": self.questions, "usable": self.usable,
                "unusable_items": len({u.item_id for u in self.unusable}),
                "unusable": [u.to_dict() for u in self.unusable],
                "sources_checked_against": self.sources_checked_against, "items": self.items,
                "contexts": self.contexts, "duplicates": self.duplicates, "coverage": self.coverage,
                "leakage": self.leakage, "saturation": self.saturation, "metrics": self.metrics}

    def text(self, *, per_item: bool = True) -> str:
        """The report as text; `per_item=False` leaves out the one-line-per-item table (notebooks)."""
        return _text(self, per_item=per_item)


# -- helpers --------------------------------------------------------------------------------------
def normalise_question(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: what makes two questions exact duplicates."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def corpus_sources(corpus: Path, settings: Settings) -> set[str]:
    """Source names of the files `axiom ingest corpus` would read."""
    from axiom.documents import discover

    files, _ = discover([corpus], settings.ingest.extensions, follow_symlinks=settings.ingest.follow_symlinks)
    return {f.source for f in files}


def stored_sources(settings: Settings) -> set[str] | None:
    """Sources stored in the configured collection (None when the collection does not exist)."""
    from axiom.store import ChromaStore

    if settings.store.mode == "embedded" and not Path(settings.store.path).exists():
        return None  # do not create an empty store just to look into it
    store = ChromaStore(settings.store)
    if store.get_collection() is None:
        return None
    return {str(c.metadata.get("source", "")) for c in store.iter_chunks()}


def _similar_pairs(vectors: np.ndarray, others: np.ndarray, threshold: float, *, same: bool
                   ) -> list[tuple[int, int, float]]:
    if len(vectors) == 0 or len(others) == 0:
        return []
    sims = vectors @ others.T
    if same:
        sims = np.where(np.triu(np.ones(sims.shape, dtype=bool), k=1), sims, -np.inf)  # each pair once
    rows, cols = np.nonzero(sims >= threshold)
    return sorted(((int(i), int(j), float(sims[i, j])) for i, j in zip(rows, cols, strict=True)),
                  key=lambda t: (-t[2], t[0], t[1]))


def _pair(a: EvalItem, b: EvalItem, cosine: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"a": a.id, "a_line": a.line, "b": b.id, "b_line": b.line,
                           "a_question": a.question, "b_question": b.question}
    if cosine is not None:
        out["cosine"] = round(cosine, 4)
    return out


# -- the parts ------------------------------------------------------------------------------------
def _check_items(items: list[EvalItem], known: set[str] | None,
                 located: dict[str, list[LocatedPassage]] | None
                 ) -> tuple[list[dict[str, Any]], list[Unusable], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    unusable: list[Unusable] = []
    methods: Counter[str] = Counter({"exact": 0, "normalised": 0, "fuzzy": 0, "missing": 0})
    fuzzy: list[float] = []
    for item in items:
        row: dict[str, Any] = {"id": item.id, "line": item.line,
                               "sources": [{"source": s, "exists": None if known is None else s in known}
                                           for s in item.relevant_sources]}
        for i, src in enumerate(item.relevant_sources):
            if known is not None and src not in known:
                unusable.append(Unusable(item.id, item.line, "relevant_sources", i,
                                         f"{src!r} is not in the corpus"))
        if located is None:
            row["contexts"] = None
        else:
            passages = sorted(located.get(item.id, []), key=lambda p: p.index)
            row["contexts"] = [p.to_dict() for p in passages]
            for p in passages:
                methods[p.method] += 1
                if p.method == "fuzzy":
                    fuzzy.append(float(p.similarity))
                if p.method == "missing":
                    where = f" in {p.source}" if p.source else ""
                    unusable.append(Unusable(item.id, item.line, "reference_contexts", p.index,
                                             "not found in corpus (best similarity "
                                             f"{p.similarity:.2f}{where})"))
        row["usable"] = not any(u.item_id == item.id for u in unusable)
        rows.append(row)
    if located is None:
        contexts: dict[str, Any] = {"checked": False, "note": "not checked (no corpus)",
                                    "total": sum(len(it.reference_contexts) for it in items)}
    else:
        contexts = {"checked": True, "total": sum(methods.values()), "methods": dict(methods),
                    "fuzzy_min_similarity": round(min(fuzzy), 4) if fuzzy else None}
    return rows, unusable, contexts


def _duplicates(items: list[EvalItem], vectors: np.ndarray, threshold: float) -> dict[str, Any]:
    groups: dict[str, list[EvalItem]] = {}
    for item in items:
        groups.setdefault(normalise_question(item.question), []).append(item)
    exact = [{"ids": [it.id for it in g], "lines": [it.line for it in g], "question": g[0].question}
             for g in groups.values() if len(g) > 1]
    near = [_pair(items[i], items[j], cos)
            for i, j, cos in _similar_pairs(vectors, vectors, threshold, same=True)
            if normalise_question(items[i].question) != normalise_question(items[j].question)]
    return {"threshold": threshold, "exact": exact, "near": near}


def _coverage(items: list[EvalItem], known: set[str] | None) -> dict[str, Any]:
    per_source = Counter(s for it in items for s in dict.fromkeys(it.relevant_sources))
    counts = sorted(per_source.values())
    out: dict[str, Any] = {
        "sources_referenced": len(per_source),
        "questions_without_sources": sum(1 for it in items if not it.relevant_sources),
        "per_source": ({"min": counts[0], "median": float(statistics.median(counts)), "max": counts[-1]}
                       if counts else None),
        "top_sources": [{"source": s, "questions": n}
                        for s, n in sorted(per_source.items(), key=lambda t: (-t[1], t[0]))[:TOP_SOURCES]],
        "corpus_sources": None, "unreferenced_sources": None}
    if known is not None:
        unreferenced = sorted(known - set(per_source))
        out.update(corpus_sources=len(known), unreferenced_sources=unreferenced)
    return out


def _leakage(items: list[EvalItem], vectors: np.ndarray, other: list[EvalItem], other_vectors: np.ndarray,
             other_path: Path, threshold: float) -> dict[str, Any]:
    other_norm: dict[str, EvalItem] = {}
    for it in other:
        other_norm.setdefault(normalise_question(it.question), it)
    exact = [_pair(it, other_norm[normalise_question(it.question)]) for it in items
             if normalise_question(it.question) in other_norm]
    near = [_pair(items[i], other[j], cos) for i, j, cos in _similar_pairs(vectors, other_vectors, threshold,
                                                                            same=False)
            if normalise_question(items[i].question) != normalise_question(other[j].question)]
    other_ids = {it.id for it in other}
    return {"against": str(other_path), "questions": len(other), "threshold": threshold, "exact": exact,
            "near": near, "shared_ids": [it.id for it in items if it.id in other_ids],
            "leaked_questions": len({p["a"] for p in exact + near})}


def find_last_run(runs_dir: Path, sha256: str) -> Path | None:
    """The newest run folder under runs_dir whose manifest names a dataset with this sha256."""
    found: list[tuple[str, str, Path]] = []
    for folder, data in run_manifests(runs_dir):
        dataset = data.get("dataset") if isinstance(data, dict) else None
        if isinstance(dataset, dict) and dataset.get("sha256") == sha256:
            found.append((str(data.get("started") or ""), folder.name, folder))
    return max(found)[2] if found else None


def saturation(runs_dir: Path, sha256: str) -> dict[str, Any]:
    """Which metrics of the last run on this dataset sit at their ceiling (1.0) and so cannot show a drop."""
    path = find_last_run(runs_dir, sha256)
    if path is None:
        return {"run": None, "runs_dir": str(runs_dir), "note": f"no run of this dataset under {runs_dir}"}
    record = load_run(path)
    saturated: list[str] = []
    others: dict[str, dict[str, Any]] = {}
    for name, summary in record.metrics.metrics.items():
        mean = summary.get("mean") if isinstance(summary, dict) else None
        values = [float(v) for v in record.results[name].dropna()] if name in record.results.columns else []
        if mean is None and not values:
            continue  # not measured on any question (n/a, unmeasured)
        at_ceiling = sum(1 for v in values if v >= CEILING - 1e-9)
        if (values and at_ceiling == len(values)) or (mean is not None and mean >= SATURATED_MEAN):
            saturated.append(name)
        else:
            others[name] = {"mean": mean, "n": len(values),
                            "share_at_ceiling": round(at_ceiling / len(values), 4) if values else None}
    return {"run": str(path), "runs_dir": str(runs_dir), "saturated": saturated, "not_saturated": others}


def audit_dataset(dataset: str | Path, *, settings: Settings, corpus: str | Path | None = None,
                  against: str | Path | None = None, runs_dir: str | Path | None = None,
                  near_duplicate: float = 0.95, embedder: Embedder | None = None) -> AuditReport:
    """Audit a golden set (see the module docstring). Read-only: nothing is ingested or written except the
    span locator's cache."""
    if not 0.0 < near_duplicate <= 1.0:
        raise UsageError(f"near-duplicate threshold must be in (0, 1], got {near_duplicate}")
    dataset = Path(dataset)
    items = load_golden(dataset)
    other = load_golden(against) if against is not None else None
    corpus_path = Path(corpus) if corpus is not None else None
    if corpus_path is not None and not corpus_path.exists():
        raise UsageError(f"corpus {corpus_path} does not exist")

    located = None
    if corpus_path is not None:
        known: set[str] | None = corpus_sources(corpus_path, settings)
        checked_against: str | None = f"corpus {corpus_path}"
        located = locate_passages(items, corpus_path, settings,
                                  cache_dir=getattr(settings.evaluation, "span_cache_dir", None))
    else:
        known = stored_sources(settings)
        checked_against = f"collection {settings.store.collection}" if known is not None else None
    rows, unusable, contexts = _check_items(items, known, located)

    if embedder is None:
        from axiom.embeddings import make_embedder

        embedder = make_embedder(settings.embeddings, settings.generation)
    questions = [it.question for it in items] + [it.question for it in other or []]
    vectors: np.ndarray = np.asarray(embedder.embed(questions), dtype=np.float32)  # one batch for both sets
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    mine, theirs = vectors[:len(items)], vectors[len(items):]

    leakage = None
    if other is not None and against is not None:  # other is loaded from against
        leakage = _leakage(items, mine, other, theirs, Path(against), near_duplicate)
    runs = Path(runs_dir) if runs_dir is not None else Path(settings.evaluation.runs_dir)
    return AuditReport(dataset=str(dataset), questions=len(items), sources_checked_against=checked_against,
                       items=rows, unusable=unusable, contexts=contexts,
                       duplicates=_duplicates(items, mine, near_duplicate), coverage=_coverage(items, known),
                       leakage=leakage, saturation=saturation(runs, file_sha256(dataset)),
                       metrics=metric_support(items, corpus=corpus_path is not None))


# -- text -----------------------------------------------------------------------------------------
def _item_cells(row: dict[str, Any]) -> tuple[str, str]:
    sources = row["sources"]
    if not sources:
        src = "-"
    elif sources[0]["exists"] is None:
        src = f"{len(sources)} not checked"
    else:
        src = f"{sum(1 for s in sources if s['exists'])}/{len(sources)}"
    contexts = row["contexts"]
    if contexts is None:
        ctx = "not checked"
    elif not contexts:
        ctx = "-"
    else:
        found = [c for c in contexts if c["method"] != "missing"]
        kinds = Counter(c["method"] for c in contexts)
        ctx = f"{len(found)}/{len(contexts)} " + ",".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return src, ctx


def _text(report: AuditReport, *, per_item: bool = True) -> str:
    lines = [f"dataset {report.dataset}: {report.questions} question(s); sources checked against "
             f"{report.sources_checked_against or 'nothing (no corpus, and the collection does not exist)'}",
             ""]
    if per_item:
        width = max([len(r["id"]) for r in report.items] + [2])
        lines.append(f"{'id':<{width}} {'line':>5}  {'sources':<14} {'contexts':<32} status")
        for row in report.items:
            src, ctx = _item_cells(row)
            lines.append(f"{row['id']:<{width}} {row['line']:>5}  {src:<14} {ctx:<32} "
                         f"{'ok' if row['usable'] else 'UNUSABLE'}")
        lines.append("")
    c = report.contexts
    if not c["checked"]:
        lines.append(f"reference contexts: {c['note']}")
    else:
        m = c["methods"]
        fuzzy = (
            f" (min similarity {c['fuzzy_min_similarity']:.2f})"
            if c["fuzzy_min_similarity"] is not None
            else ""
        )
        lines.append(f"reference contexts: {c['total']}: exact {m['exact']}, normalised {m['normalised']}, "
                     f"fuzzy {m['fuzzy']}{fuzzy}, missing {m['missing']}")
    d = report.duplicates
    lines.append(f"duplicate questions: {len(d['exact'])} exact group(s), {len(d['near'])} near pair(s) "
                 f"(cosine >= {d['threshold']})")
    lines += [f"  exact: {', '.join(f'{i} (line {n})' for i, n in zip(g['ids'], g['lines'], strict=True))}: "
              f"{g['question']!r}" for g in d["exact"]]
    lines += [f"  near {p['cosine']:.3f}: {p['a']} (line {p['a_line']}) {p['a_question']!r} ~ {p['b']} "
              f"(line {p['b_line']}) {p['b_question']!r}" for p in d["near"]]
    cov = report.coverage
    if cov["per_source"]:
        ps = cov["per_source"]
        top = ", ".join(f"{t['source']} {t['questions']}" for t in cov["top_sources"])
        lines.append(f"coverage: questions per source over {cov['sources_referenced']} source(s) named: "
                     f"min {ps['min']}, median {ps['median']:g}, max {ps['max']}; top: {top}")
    else:
        lines.append("coverage: no question names a source")
    if cov["questions_without_sources"]:
        lines.append(f"  {cov['questions_without_sources']} question(s) name no source")
    if cov["unreferenced_sources"] is not None:
        un = cov["unreferenced_sources"]
        lines.append(f"  {len(un)} of {cov['corpus_sources']} corpus source(s) have no question"
                     + (f": {', '.join(un[:10])}" + (f" and {len(un) - 10} more" if len(un) > 10 else "")
                        if un else ""))
    if report.leakage is not None:
        lk = report.leakage
        lines.append(f"leakage against {lk['against']} ({lk['questions']} questions): "
                     f"{lk['leaked_questions']} question(s) leaked, {len(lk['shared_ids'])} shared id(s)")
        lines += [f"  exact: {p['a']} (line {p['a_line']}) = {p['b']} (line "
                  f"{p['b_line']}): {p['a_question']!r}"
                  for p in lk["exact"]]
        lines += [f"  near {p['cosine']:.3f}: {p['a']} (line {p['a_line']}) {p['a_question']!r} ~ {p['b']} "
                  f"(line {p['b_line']}) {p['b_question']!r}" for p in lk["near"]]
        if lk["shared_ids"]:
            lines.append(f"  shared ids: {', '.join(lk['shared_ids'])}")
    lines += support_text(report.metrics, report.questions) if report.metrics else []
    sat = report.saturation
    if sat.get("run") is None:
        lines.append(f"saturation: {sat.get('note')}")
    else:
        lines.append(f"saturation (last run {sat['run']}): saturated, cannot detect a regression: "
                     f"{', '.join(sat['saturated']) or 'none'}")
        for name, info in sat["not_saturated"].items():
            share = "n/a" if info["share_at_ceiling"] is None else f"{info['share_at_ceiling']:.0%}"
            mean = "-" if info["mean"] is None else f"{info['mean']:.3f}"
            lines.append(f"  {name}: mean {mean}, {share} of {info['n']} question(s) at the ceiling")
    lines.append("")
    if report.usable:
        lines.append(f"usable: all {report.questions} item(s)")
    else:
        bad = len({u.item_id for u in report.unusable})
        lines.append(f"UNUSABLE: {bad} of {report.questions} item(s)")
        lines += [f"  {u.text()}" for u in report.unusable]
    return "\n".join(lines)
