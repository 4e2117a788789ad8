"""Evidence metrics over character spans: the span types, interval arithmetic, and evidence recall and
precision of retrieved chunks against the reference passages `axiom.evaluation.spans` located.

Evidence metrics (`evidence_metrics`), for each cutoff k, over the first k retrieved chunks in rank order
    R = the union of the located reference spans of the item (overlapping or repeated passages count once),
    C = the union of the spans of the top-k chunks (characters shared by overlapping chunks count once);
    both are sets of characters keyed by (source, page), computed by merging intervals.
        evidence_recall@k    = |R ∩ C| / |R|
        evidence_precision@k = |R ∩ C| / |C|     (0 when nothing is retrieved)
    Precision divides by the characters actually retrieved, not by k (fewer than k chunks are not padded).
    An item with no located passage (none, or all "missing") is not applicable: it is absent from every
    metric's mapping. A located item with nothing retrieved scores 0 on both.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from axiom.store import ChromaStore

log = logging.getLogger(__name__)

EVIDENCE_CUTOFFS = (5, 10)
EVIDENCE_METRICS: tuple[str, ...] = tuple(f"evidence_{m}@{k}" for k in EVIDENCE_CUTOFFS
                                          for m in ("recall", "precision"))

Interval = tuple[int, int]
PageKey = tuple[str, int | None]


@dataclass(frozen=True)
class LocatedPassage:
    item_id: str
    index: int  # position in the item's reference_contexts
    source: str | None  # corpus source where it was found; None when not located
    page: int | None  # PDF page number (Page.number); None for text files
    start: int  # half-open character offsets into that page's text (Page.text)
    end: int
    method: str  # "exact" | "normalised" | "fuzzy" | "missing"
    similarity: float

    @property
    def located(self) -> bool:
        return self.method != "missing" and self.source is not None and self.end > self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocatedPassage:  # boundary: a JSON object
        page = data["page"]
        return cls(item_id=str(data["item_id"]), index=int(data["index"]),
                   source=None if data["source"] is None else str(data["source"]),
                   page=None if page is None else int(page), start=int(data["start"]), end=int(data["end"]),
                   method=str(data["method"]), similarity=float(data["similarity"]))


@dataclass(frozen=True)
class ChunkSpan:
    source: str
    page: int | None
    start: int
    end: int


# -- interval arithmetic and metrics -------------------------------------------------------------------------
def merge(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, disjoint union of half-open intervals (empty ones dropped; touching ones joined)."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def overlap(x: Sequence[Interval], y: Sequence[Interval]) -> int:
    """Characters in both of two merged interval lists (two pointers)."""
    i = j = total = 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        total += max(0, hi - lo)
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return total


def _union(spans: Iterator[tuple[PageKey, Interval]]) -> dict[PageKey, list[Interval]]:
    grouped: dict[PageKey, list[Interval]] = defaultdict(list)
    for key, interval in spans:
        grouped[key].append(interval)
    return {key: merge(v) for key, v in grouped.items()}


def _length(union: Mapping[PageKey, Sequence[Interval]]) -> int:
    return sum(b - a for intervals in union.values() for a, b in intervals)


def evidence_metrics(located: Mapping[str, Sequence[LocatedPassage]],
                     retrieved: Mapping[str, Sequence[ChunkSpan]], cutoffs: Sequence[int] = EVIDENCE_CUTOFFS
                     ) -> dict[str, dict[str, float]]:
    """{"evidence_recall@k": {item id: value}, "evidence_precision@k": {...}} for each k (see the module
    doc)."""
    out: dict[str, dict[str, float]] = {f"evidence_{m}@{k}": {}
                                        for k in cutoffs for m in ("recall", "precision")}
    for item_id, passages in located.items():
        reference = _union(((str(p.source), p.page), (p.start, p.end)) for p in passages if p.located)
        total = _length(reference)
        if total == 0:
            continue  # not applicable
        ranking = list(retrieved.get(item_id, ()))
        for k in cutoffs:
            chunks = _union(((c.source, c.page), (c.start, c.end)) for c in ranking[:k])
            hit = sum(overlap(reference[key], chunks[key]) for key in reference.keys() & chunks.keys())
            size = _length(chunks)
            out[f"evidence_recall@{k}"][item_id] = hit / total
            out[f"evidence_precision@{k}"][item_id] = hit / size if size else 0.0
    return out


def retrieved_chunk_spans(store: ChromaStore, chunk_id_lists: Mapping[str, Sequence[str]]
                          ) -> dict[str, list[ChunkSpan]]:
    """{item id: the chunks' spans in rank order}, from their stored metadata (looked up by id in batches of
    the store's maximum batch size). A chunk no longer stored, or stored without offsets, keeps its rank as an
    empty span (source "", covering nothing), so later chunks do not move up."""
    wanted = list(dict.fromkeys(cid for ids in chunk_id_lists.values() for cid in ids))
    spans: dict[str, ChunkSpan] = {}
    if wanted:
        batch = store.max_batch_size
        for i in range(0, len(wanted), batch):
            for cid, chunk in store.get(wanted[i:i + batch]).items():
                meta = chunk.metadata
                if meta.get("start") is None or meta.get("end") is None:
                    continue
                page = meta.get("page")
                spans[cid] = ChunkSpan(str(meta.get("source", "")), None if page is None else int(page),
                                       int(meta["start"]), int(meta["end"]))
    lost = [cid for cid in wanted if cid not in spans]
    if lost:
        log.warning("spans: %d retrieved chunk(s) not found in the store or without offsets; counted as "
                    "empty", len(lost))
    empty = ChunkSpan("", None, 0, 0)
    return {item_id: [spans.get(cid, empty) for cid in ids] for item_id, ids in chunk_id_lists.items()}
