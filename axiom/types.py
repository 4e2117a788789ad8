"""Plain data classes that cross module boundaries. All are JSON-serialisable via `to_dict`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    """Text of one page of a document (`number` is 1-based for PDFs, None for text files)."""

    number: int | None
    text: str


@dataclass(frozen=True)
class Document:
    """A loaded file. `source` is the path relative to the ingest root (POSIX separators)."""

    source: str
    pages: tuple[Page, ...]
    content_hash: str  # sha256 of the file's bytes
    root: str = ""  # absolute ingest root the source is relative to

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages)


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    source: str
    page: int | None
    chunk_index: int
    start: int  # character offsets into the page text
    end: int
    doc_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    source: str
    page: int | None
    score: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    page: int | None
    chunk_id: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[Citation]
    contexts: list[Hit]
    generator: str
    degraded: bool = False
    degraded_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [h.to_dict() for h in self.contexts],
            "generator": self.generator,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "timings": dict(self.timings),
            "usage": dict(self.usage),
            "request_id": self.request_id,
        }


@dataclass
class IngestReport:
    files_ingested: list[str] = field(default_factory=list)
    files_unchanged: list[str] = field(default_factory=list)
    files_skipped: list[SkippedFile] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_ingested": list(self.files_ingested),
            "files_unchanged": list(self.files_unchanged),
            "files_skipped": [s.to_dict() for s in self.files_skipped],
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
        }
