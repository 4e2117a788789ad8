"""Evidence metrics of a run (`spans.py`): how much of each item's reference passages its ranked passages
cover.

The reference passages are located in the corpus files once (exact, normalised, fuzzy). The ranked passages'
spans come from where the answers came from:
- Axiom's own pipeline: the retrieved chunks' stored offsets (looked up in the store by chunk id);
- any other system (a responses file, an endpoint): only texts exist, so each ranked passage
  (`retrieved_contexts`, else the contexts) is located in the corpus by the same locator, searched in the
  item's retrieved sources first; a passage found nowhere keeps its rank as an empty span (it covers no
  reference text).
Without the corpus files (`--corpus`) every item is not applicable, with the reason; so is an item without
reference contexts (its ranked passages are not even located). Unanswered items are left out here (the run
marks them unmeasured).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.config import Settings
from axiom.evaluation.answered import Answered
from axiom.evaluation.datasets import EvalItem
from axiom.evaluation.spans import METHODS as SPAN_METHODS
from axiom.evaluation.spans import (
    ChunkSpan,
    LocatedPassage,
    evidence_metrics,
    locate_passages,
    retrieved_chunk_spans,
)

if TYPE_CHECKING:
    from axiom.store import ChromaStore

NO_CORPUS = "no corpus given: reference passages are located in the corpus files"
NOT_LOCATED = "no reference context of this item was located in the corpus"
_EMPTY = ChunkSpan("", None, 0, 0)


def _span(p: LocatedPassage) -> ChunkSpan:
    return ChunkSpan(str(p.source), p.page, p.start, p.end) if p.located else _EMPTY


def _located_texts(items: Sequence[EvalItem], answered: Answered, corpus: Path, settings: Settings
                   ) -> tuple[dict[str, list[ChunkSpan]], Counter[str]]:
    """{item id: the spans of its ranked passages located in the corpus}, and how they were located."""
    probes = [EvalItem(id=it.id, question=it.question, reference=it.reference,
                       relevant_sources=tuple(dict.fromkeys(a.retrieved or ())),
                       reference_contexts=a.ranking_texts())
              for it, a in zip(items, answered.answers, strict=True) if a.answered and it.reference_contexts]
    located = locate_passages(probes, corpus, settings, cache_dir=settings.evaluation.span_cache_dir)
    methods = Counter(p.method for passages in located.values() for p in passages)
    return {item_id: [_span(p) for p in passages] for item_id, passages in located.items()}, methods


def evidence_scores(items: Sequence[EvalItem], answered: Answered, corpus: Path | None, settings: Settings,
                    store: ChromaStore | None = None) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """({metric: {item id: value}}, the labels: how the reference passages, and for other systems the ranked
    passages, were located; `why_not` is the reason an item without a value is not applicable)."""
    if corpus is None:
        return {}, {"why_not": NO_CORPUS}
    # a reference-free set: nothing to locate (the run says why)
    if not any(it.reference_contexts for it in items):
        return {}, {"why_not": NOT_LOCATED}
    located = locate_passages(items, corpus, settings, cache_dir=settings.evaluation.span_cache_dir)
    located = {it.id: located[it.id] for it, a in zip(items, answered.answers, strict=True) if a.answered}
    labels: dict[str, Any] = {}
    if answered.kind == "pipeline" and store is not None:
        chunk_ids = {it.id: list(a.chunk_ids) for it, a in zip(items, answered.answers, strict=True)
                     if a.answered}
        spans = retrieved_chunk_spans(store, chunk_ids)
    else:
        spans, found = _located_texts(items, answered, corpus, settings)
        labels["ranked_passages"] = {"passages": sum(found.values()),
                                     **{m: found.get(m, 0) for m in SPAN_METHODS}}
    methods = Counter(p.method for passages in located.values() for p in passages)
    labels = {"passages": sum(methods.values()), **{m: methods.get(m, 0) for m in SPAN_METHODS}, **labels}
    return evidence_metrics(located, spans), {**labels, "why_not": NOT_LOCATED}
