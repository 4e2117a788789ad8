"""The answer-source seam of an evaluation run: what each source of answers yields per golden item.

A run's answers come from one of three sources, and everything after them (scoring, the run folder, compare,
the gate, the notebooks) is shared:

    "pipeline"   Axiom's own pipeline (`runs.py`: ingest, one batched retrieval, an answer per question)
    "responses"  a responses file written by any system (`responses.py`)
    "endpoint"   a deployed system asked over HTTP (`endpoint.py`)

Each yields one `ItemAnswer` per golden item, in the golden set's order. An item the source could not answer
(no line in the responses file, a failed HTTP call) has `failure` set to the reason: its metrics are NaN with
status "unmeasured" and that reason, never 0 and never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from axiom.types import IngestReport

NAN = float("nan")
SOURCE_KINDS = ("pipeline", "responses", "endpoint")


@dataclass
class ItemAnswer:
    """One golden item's answer from a source.

    `retrieved`: source ids or paths in rank order (several passages of one source may repeat it; the
    retrieval metrics keep its first rank); None when the source gave none (retrieval metrics are not
    applicable). `retrieved_texts`: the passages of that ranking, for the evidence metrics (None: the contexts
    are the ranking). `chunk_ids`: the ranked chunk ids of Axiom's own pipeline (evidence spans from the
    store). Times are seconds, NaN when unknown; `latency_seconds` is the question's end-to-end latency."""

    answer: str = ""
    contexts: tuple[str, ...] = ()
    context_sources: tuple[str, ...] = ()
    retrieved: tuple[str, ...] | None = None
    retrieved_texts: tuple[str, ...] | None = None
    chunk_ids: tuple[str, ...] = ()
    retrieval_seconds: float = NAN
    generation_seconds: float = NAN
    latency_seconds: float = NAN
    usage: dict[str, int] = field(default_factory=dict)
    generator: str = ""
    degraded: bool = False
    failure: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.failure is None

    @classmethod
    def unanswered(cls, reason: str, *, generator: str = "", latency_seconds: float = NAN) -> ItemAnswer:
        return cls(failure=reason, generator=generator, latency_seconds=latency_seconds)

    def ranking_texts(self) -> tuple[str, ...]:
        """The ranked passages the evidence metrics look at: `retrieved_texts`, else the contexts."""
        return self.retrieved_texts if self.retrieved_texts is not None else self.contexts


@dataclass
class Answered:
    """Every item's answer from one source, and what the manifest says about that source.

    `source` is the manifest's `source` object (kind, file hash or URL without credentials, mapping, timing);
    `again` answers every item once more (`axiom eval --repeat`: the pipeline re-generates, an endpoint is
    asked again, a responses file gives the same answers, so only the judge varies); `depth` is how deep the
    pipeline retrieved (None for other sources); `retrieval_batch` the seconds of its one retrieval batch."""

    kind: str
    answers: list[ItemAnswer]
    source: dict[str, Any]
    generator: str
    again: Callable[[], list[ItemAnswer]]
    depth: int | None = None
    retrieval_batch: float = NAN
    ingest: IngestReport | None = None
    index: dict[str, Any] | None = None

    @property
    def unanswered(self) -> int:
        return sum(1 for a in self.answers if not a.answered)

    @property
    def gives_rankings(self) -> bool:
        """Whether the source ranks sources at all (else the retrieval metrics are not computed)."""
        return self.kind == "pipeline" or bool(self.source.get("gives_retrieved"))


def finite_or_nan(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        return NAN
    return out if math.isfinite(out) else NAN
