"""Deterministic chunking that prefers paragraph, then sentence, then word boundaries.

A page's text is cut into sentences (over-long sentences at words, then characters), each no longer than
`chunk_size`. Sentences are packed into chunks of at most `chunk_size` characters, ending at a paragraph end
when that keeps the chunk at least half full; each next chunk starts at the first sentence that begins
within the last `chunk_overlap` characters of the previous one, so neighbours share up to `chunk_overlap`
characters of whole sentences (or the previous chunk's last sentence, when no sentence starts in that zone and
it is at most half a chunk long). A chunk never crosses a page. The chunk id is a hash of (source path,
chunk text).
"""

from __future__ import annotations

import hashlib
import re

from axiom.types import Chunk, Document

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n")
_WORD = re.compile(r"\s+")

Span = tuple[int, int]


def chunk_id(source: str, text: str, root: str = "") -> str:
    """Content hash of (source path, text); the source path includes the ingest root when there is one, so
    two folders holding a file of the same relative name never share ids."""
    path = f"{root.rstrip('/')}/{source}" if root else source
    return hashlib.sha256(f"{path}\x00{text}".encode()).hexdigest()[:32]


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


def units(text: str, size: int) -> list[tuple[Span, bool]]:
    """(span, ends_paragraph) for every sentence of the text; over-long sentences are cut at words, then
    characters, so every span fits in `size`."""
    out: list[tuple[Span, bool]] = []

    def refine(span: Span, level: int) -> list[Span]:
        if span[1] - span[0] <= size:
            return [span]
        if level == 2:
            return [(i, min(i + size, span[1])) for i in range(span[0], span[1], size)]
        pieces: list[Span] = []
        for piece in _cut(text, span[0], span[1], (_SENTENCE, _WORD)[level]):
            stripped = _strip(text, piece)
            if stripped:
                pieces.extend(refine(stripped, level + 1) if stripped[1] - stripped[0] > size else [stripped])
        return pieces

    for cut in _cut(text, 0, len(text), _PARAGRAPH):
        para = _strip(text, cut)
        if not para:
            continue
        sentences: list[Span] = []
        for sentence in _cut(text, para[0], para[1], _SENTENCE):
            stripped = _strip(text, sentence)
            if stripped:
                sentences.extend(refine(stripped, 1))
        out.extend((span, i == len(sentences) - 1) for i, span in enumerate(sentences))
    return out


def pack(spans: list[Span], size: int, overlap: int, para_ends: list[bool] | None = None) -> list[Span]:
    """Group consecutive spans into windows of at most `size` characters.

    A window ends at the last paragraph end it holds when that keeps it at least half full; otherwise it is
    filled greedily. The next window starts at the first span inside the last `overlap` characters of the
    previous one, provided that window then reaches further than the previous one (so no chunk is a mere
    part of its predecessor); if no span qualifies, it starts right after the previous window.
    """
    ends = para_ends or [False] * len(spans)
    windows: list[Span] = []
    i, n = 0, len(spans)
    prev_end = -1
    while i < n:
        j = i
        while j + 1 < n and spans[j + 1][1] - spans[i][0] <= size:
            j += 1
        if j + 1 < n and not ends[j]:
            for k in range(j - 1, i - 1, -1):
                if spans[k][1] <= prev_end:
                    break
                if ends[k] and spans[k][1] - spans[i][0] >= size // 2:
                    j = k
                    break
        windows.append((spans[i][0], spans[j][1]))
        prev_end = spans[j][1]
        if j + 1 >= n:
            break
        boundary = spans[j][1] - overlap
        nxt = j + 1
        for k in range(i + 1, j + 1):
            if spans[k][0] >= boundary and spans[j + 1][1] - spans[k][0] <= size:
                nxt = k
                break
        else:
            # no sentence starts inside the overlap zone: repeat the last sentence when it is short enough
            # to leave the next chunk at least half its room for new text
            last = spans[j]
            if overlap and j > i and last[1] - last[0] <= size // 2 and spans[j + 1][1] - last[0] <= size:
                nxt = j
        i = nxt
    return windows


def chunk_document(doc: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of every page of `doc`, in order. Identical text twice in one source is kept once."""
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for page in doc.pages:
        page_units = units(page.text, chunk_size)
        spans = [u[0] for u in page_units]
        for start, end in pack(spans, chunk_size, chunk_overlap, [u[1] for u in page_units]):
            text = page.text[start:end]
            cid = chunk_id(doc.source, text, doc.root)
            if cid in seen:
                continue
            seen.add(cid)
            chunks.append(Chunk(id=cid, text=text, source=doc.source, page=page.number,
                                chunk_index=len(chunks), start=start, end=end, doc_hash=doc.content_hash))
    return chunks


def chunker_signature(chunk_size: int, chunk_overlap: int) -> str:
    """Identifies the chunking parameters; stored with each chunk so a parameter change re-chunks."""
    return f"v2:{chunk_size}:{chunk_overlap}"
