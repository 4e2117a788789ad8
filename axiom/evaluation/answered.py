"""The answer-source seam of an evaluation run: which source a run asks (`AnswerSource`, what the faces hand
to `run_evaluation`) and what each source of answers yields per golden item (`ItemAnswer`, `Answered`).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axiom.errors import UsageError

if TYPE_CHECKING:
    from axiom.evaluation.endpoint_config import EndpointConfig
    from axiom.types import IngestReport

NAN = float("nan")
SOURCE_KINDS = ("pipeline", "responses", "endpoint")
BOTH_SOURCES = "--responses and --endpoint are mutually exclusive: give one source of answers"


@dataclass(frozen=True)
class AnswerSource:
    """Where a run's answers come from: Axiom's pipeline (the default), a `responses` file or an `endpoint`
    (an `EndpointConfig`, see `endpoint_config.load_endpoint_config`); giving both raises UsageError.

    `corpus`: the pipeline ingests it (incrementally) and, with `own_collection`, evaluates in the corpus's
    own collection (`run_inputs.prepare_settings`; False: the face chose the collection, `--collection` or a
    notebook's session); without a corpus the pipeline answers from the configured collection. With a
    responses file or an endpoint nothing is ingested: the corpus only adds the evidence metrics.
    `AnswerSource.pipeline(corpus)`, `.from_responses(path, corpus=...)` and
    `.from_endpoint(config, corpus=...)` name the three; a face with optional inputs (the CLI, 03_evaluate)
    gives the fields directly."""

    corpus: Path | None = None
    responses: Path | None = None
    endpoint: EndpointConfig | None = None
    own_collection: bool = True

    def __post_init__(self) -> None:
        if self.responses is not None and self.endpoint is not None:
            raise UsageError(BOTH_SOURCES)
        for name in ("corpus", "responses"):  # paths given as strings (a notebook parameter, a flag)
            object.__setattr__(self, name, _as_path(getattr(self, name)))

    @classmethod
    def pipeline(cls, corpus: str | Path | None = None, *, own_collection: bool = True) -> AnswerSource:
        return cls(corpus=_as_path(corpus), own_collection=own_collection)

    @classmethod
    def from_responses(cls, path: str | Path, *, corpus: str | Path | None = None) -> AnswerSource:
        return cls(corpus=_as_path(corpus), responses=Path(path))

    @classmethod
    def from_endpoint(cls, config: EndpointConfig, *, corpus: str | Path | None = None) -> AnswerSource:
        return cls(corpus=_as_path(corpus), endpoint=config)

    @property
    def kind(self) -> str:
        """"pipeline", "responses" or "endpoint" (`SOURCE_KINDS`)."""
        return "responses" if self.responses is not None else "endpoint" if self.endpoint is not None \
            else "pipeline"

    @property
    def external(self) -> bool:
        """Another system's answers (nothing is ingested, the pipeline is not built)."""
        return self.kind != "pipeline"


def _as_path(value: str | Path | None) -> Path | None:
    """A path given as a string (a flag, a notebook parameter) as a Path; None stays None."""
    return None if value is None else Path(value)


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


def finite_or_nan(value: Any) -> float:  # boundary: a JSON or pandas value; float() decides
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        return NAN
    return out if math.isfinite(out) else NAN
