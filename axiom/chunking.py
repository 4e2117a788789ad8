"""Deterministic chunking that prefers paragraph, then sentence, then word boundaries.

A page's text is cut into spans no longer than `chunk_size` characters, splitting at the coarsest
boundary that makes a piece fit. Spans are then packed greedily into chunks of at most `chunk_size`
characters; each next chunk starts at the first span that begins within `chunk_overlap` characters of
the previous chunk's end, so neighbours share roughly `chunk_overlap` characters of whole sentences.
A chunk never crosses a page. The chunk id is a hash of (source path, chunk text).
"""

from __future__ import annotations

import hashlib
import re

from axiom.types import Chunk, Document

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n")
_WORD = re.compile(r"\s+")

Span = tuple[int, int]


def chunk_id(source: str, text: str) -> str:
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


def _cut(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[Span]:
    """Split text[start:end] at matches of pattern; the separators are dropped."""
    spans: list[Span] = []
    pos = start
    for m in pattern.finditer(text, start, end):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < end:
        spans.append((pos, end))
    return spans


def _strip(text: str, span: Span) -> Span | None:
    a, b = span
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if b > a else None


def split_spans(text: str, size: int) -> list[Span]:
    """Spans covering the text's content, each at most `size` characters, cut at the coarsest boundary."""
    levels = (_PARAGRAPH, _SENTENCE, _WORD)

    def refine(span: Span, level: int) -> list[Span]:
        if span[1] - span[0] <= size:
            return [span]
        if level == len(levels):
            return [(i, min(i + size, span[1])) for i in range(span[0], span[1], size)]
        out: list[Span] = []
        for piece in _cut(text, span[0], span[1], levels[level]):
            stripped = _strip(text, piece)
            if stripped:
                out.extend(refine(stripped, level + 1))
        return out

    whole = _strip(text, (0, len(text)))
    return refine(whole, 0) if whole else []


def pack(spans: list[Span], size: int, overlap: int) -> list[Span]:
    """Greedily group consecutive spans into windows of at most `size` characters with ~`overlap` shared."""
    windows: list[Span] = []
    i = 0
    n = len(spans)
    while i < n:
        j = i
        while j + 1 < n and spans[j + 1][1] - spans[i][0] <= size:
            j += 1
        windows.append((spans[i][0], spans[j][1]))
        if j + 1 >= n:
            break
        # next window starts at the first span beginning inside the overlap zone, but always moves forward
        boundary = spans[j][1] - overlap
        nxt = j + 1
        for k in range(i + 1, j + 1):
            if spans[k][0] >= boundary:
                nxt = k
                break
        i = nxt
    return windows


def chunk_document(doc: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of every page of `doc`, in order. Identical text twice in one source is kept once."""
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for page in doc.pages:
        for start, end in pack(split_spans(page.text, chunk_size), chunk_size, chunk_overlap):
            text = page.text[start:end]
            cid = chunk_id(doc.source, text)
            if cid in seen:
                continue
            seen.add(cid)
            chunks.append(Chunk(id=cid, text=text, source=doc.source, page=page.number,
                                chunk_index=len(chunks), start=start, end=end, doc_hash=doc.content_hash))
    return chunks


def chunker_signature(chunk_size: int, chunk_overlap: int) -> str:
    """Identifies the chunking parameters; stored with each chunk so a parameter change re-chunks."""
    return f"v1:{chunk_size}:{chunk_overlap}"
