"""Evidence labels that survive re-chunking: reference passages located as character spans in the corpus.

A golden item's `reference_contexts` are located once in the corpus text that ingest chunks, so relevance is a
span of characters, not a chunk id or a whole file; evidence recall and precision of any chunking can then be
measured against the same labels.

Locating (`locate_passages`)
    The corpus is read with Axiom's own reader (`documents.discover`, `read_bytes`, `parse`, with the ingest
    settings), so offsets are character offsets into `Page.text`, the text ingest chunks; a stored chunk's
    `start`/`end` metadata is in the same coordinates. A span is (source, page, start, end), half-open; `page`
    is the PDF page number (1-based, as `Page.number`) and None for text files. Each reference context is
    searched in the item's `relevant_sources` first (in the order given; names not in the corpus are ignored)
    and, only when it is not found there, in the rest of the corpus (sorted by source). Within a scope the
    methods are tried in order, the first that succeeds wins:
      1. "exact": the passage with its leading/trailing whitespace removed is a substring of a page; the first
         occurrence (scope order, page order, lowest offset) is taken. similarity 1.0.
      2. "normalised": the same after normalising both texts: each character NFKC-normalised and lower-cased,
         every run of whitespace one space. The match is mapped back to original offsets through an index map
         (it starts at its first character and ends after its last, so the span never starts or ends inside a
         whitespace run). similarity 1.0.
      3. "fuzzy": `rapidfuzz.fuzz.partial_ratio_alignment` of the normalised passage against each normalised
         page (the optimal alignment of the passage inside the page, scored by `fuzz.ratio`; a page shorter
         than the passage is scored whole with `fuzz.ratio`); the best-scoring alignment in the scope (the
         first one on ties) is kept when score/100 >= min_similarity. similarity = score/100; the span is the
         aligned part of the page without its outer spaces, mapped back to original offsets.
    A passage found nowhere is "missing": source and page None, start = end = 0, similarity the best fuzzy
    score seen in either scope. An empty (whitespace-only) passage is "missing" with similarity 0.

Evidence metrics (`evidence_metrics`, in `axiom.evaluation.span_metrics`, re-exported here)
    over the located spans and the retrieved chunks' spans: see that module.

Cache
    `locate_passages(..., cache_dir=...)` keeps one JSON file per (items' ids, relevant sources and reference
    contexts; each corpus file's source and sha256; max_file_size_mb; min_similarity; CACHE_FORMAT), named by
    the sha256 of those. A hit costs hashing the corpus files, never parsing them. Files are written
    atomically (temporary file + os.replace) with mode 0600, in a folder created with mode 0700.
    `cache_dir=None`: none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import unicodedata
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from rapidfuzz import fuzz

from axiom.config import Settings
from axiom.documents import SourceFile, discover, parse, read_bytes, sha256_bytes
from axiom.errors import DocumentError, UsageError
from axiom.evaluation.datasets import EvalItem, file_sha256
from axiom.evaluation.span_metrics import (  # re-exported: the metrics moved there
    EVIDENCE_CUTOFFS,
    EVIDENCE_METRICS,
    ChunkSpan,
    Interval,
    LocatedPassage,
    PageKey,
    evidence_metrics,
    merge,
    overlap,
    retrieved_chunk_spans,
)

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
METHODS = ("exact", "normalised", "fuzzy", "missing")

__all__ = ["CACHE_FORMAT", "EVIDENCE_CUTOFFS", "EVIDENCE_METRICS", "METHODS", "ChunkSpan", "Interval",
           "LocatedPassage", "PageKey", "evidence_metrics", "locate_passages", "merge", "normalise",
           "overlap", "retrieved_chunk_spans"]


# -- normalisation -------------------------------------------------------------------------------------------
_WS = re.compile(r"\s+")


def normalise(text: str) -> tuple[str, array[int]]:
    """(normalised text, index map): char j of the result comes from text[index[j]]. Characters are NFKC-
    normalised and lower-cased one by one (which may change their count), whitespace runs become one space."""
    out: list[str] = []
    index = array("q")
    pos = 0
    for m in _WS.finditer(text):
        _fold(text, pos, m.start(), out, index)
        out.append(" ")
        index.append(m.start())
        pos = m.end()
    _fold(text, pos, len(text), out, index)
    return "".join(out), index


def _fold(text: str, a: int, b: int, out: list[str], index: array[int]) -> None:
    if a >= b:
        return
    piece = text[a:b]
    if piece.isascii():  # fast path: lower() keeps ASCII one-to-one
        out.append(piece.lower())
        index.extend(range(a, b))
        return
    for i, ch in enumerate(piece, start=a):
        folded = unicodedata.normalize("NFKC", ch).lower()
        out.append(folded)
        index.extend([i] * len(folded))


def _original(index: array[int], a: int, b: int) -> Interval:
    """Original offsets of normalised span [a, b)."""
    return index[a], index[b - 1] + 1


# -- the corpus, read lazily ---------------------------------------------------------------------------------
class _Corpus:
    """The corpus files ingest would read; pages parsed (and normalised) on first use, then kept."""

    def __init__(self, corpus: Path, settings: Settings) -> None:
        self.settings = settings
        files, _ = discover([corpus], settings.ingest.extensions,
                            follow_symlinks=settings.ingest.follow_symlinks)
        self.files: dict[str, SourceFile] = {f.source: f for f in files}
        self._pages: dict[str, list[tuple[int | None, str]]] = {}
        self._normal: dict[PageKey, tuple[str, array[int]]] = {}
        self.parsed = 0  # files parsed (observability and tests)

    def fingerprint(self) -> list[list[str]]:
        return [[source, file_sha256(f.path)] for source, f in sorted(self.files.items())]

    def pages(self, source: str) -> list[tuple[int | None, str]]:
        if source not in self._pages:
            file = self.files[source]
            try:
                data = read_bytes(file, self.settings.ingest.max_file_size_mb)
                doc = parse(file, data, sha256_bytes(data))
                self._pages[source] = [(p.number, p.text) for p in doc.pages]
            except DocumentError as exc:  # ingest skips it too, so nothing of it can be retrieved
                log.info("spans: %s skipped (%s)", exc.path, exc.reason)
                self._pages[source] = []
            self.parsed += 1
        return self._pages[source]

    def normalised(self, source: str, page: int | None, text: str) -> tuple[str, array[int]]:
        key = (source, page)
        if key not in self._normal:
            self._normal[key] = normalise(text)
        return self._normal[key]


def _fuzzy_align(needle: str, hay: str, cutoff: float) -> tuple[float, int, int] | None:
    """Best alignment of needle in hay: (score 0-100, start, end in hay), None below cutoff. A page shorter
    than the passage is scored whole with fuzz.ratio (partial_ratio would align the page inside the passage
    and give a short page contained in it 100)."""
    if len(hay) < len(needle):
        score = fuzz.ratio(needle, hay, score_cutoff=cutoff)
        return (score, 0, len(hay)) if score and score >= cutoff else None
    hit = fuzz.partial_ratio_alignment(needle, hay, score_cutoff=cutoff)
    if hit is None:
        return None
    lo, hi = hit.dest_start, hit.dest_end  # dest: the span of hay
    while lo < hi and hay[lo] == " ":
        lo += 1
    while hi > lo and hay[hi - 1] == " ":
        hi -= 1
    return (hit.score, lo, hi) if hi > lo else None


def _locate_one(corpus: _Corpus, item_id: str, index: int, passage: str, relevant: Sequence[str],
                min_similarity: float) -> LocatedPassage:
    text = passage.strip()
    missing = LocatedPassage(item_id, index, None, None, 0, 0, "missing", 0.0)
    if not text:
        return missing
    wanted = [s for s in dict.fromkeys(relevant) if s in corpus.files]
    rest = sorted(set(corpus.files) - set(wanted))
    needle, _ = normalise(text)
    best_seen = 0.0
    for scope in (wanted, rest):
        pages = [(source, number, page_text) for source in scope
                 for number, page_text in corpus.pages(source)]
        for source, number, page_text in pages:
            at = page_text.find(text)
            if at >= 0:
                return LocatedPassage(item_id, index, source, number, at, at + len(text), "exact", 1.0)
        for source, number, page_text in pages:
            norm, idx = corpus.normalised(source, number, page_text)
            at = norm.find(needle)
            if at >= 0:
                start, end = _original(idx, at, at + len(needle))
                return LocatedPassage(item_id, index, source, number, start, end, "normalised", 1.0)
        best: tuple[float, str, int | None, int, int] | None = None
        for source, number, page_text in pages:
            norm, idx = corpus.normalised(source, number, page_text)
            hit = _fuzzy_align(needle, norm, best[0] if best else 0.0)
            if hit is not None and (best is None or hit[0] > best[0]):
                start, end = _original(idx, hit[1], hit[2])
                best = (hit[0], source, number, start, end)
        if best is not None:
            similarity = round(best[0] / 100.0, 6)
            if similarity >= min_similarity:
                return LocatedPassage(item_id, index, best[1], best[2], best[3], best[4], "fuzzy", similarity)
            best_seen = max(best_seen, similarity)
    return LocatedPassage(item_id, index, None, None, 0, 0, "missing", best_seen)


# -- cache ---------------------------------------------------------------------------------------------------
def _cache_key(items: Sequence[EvalItem], corpus: _Corpus, settings: Settings, min_similarity: float) -> str:
    blob = {"format": CACHE_FORMAT, "min_similarity": min_similarity,
            "max_file_size_mb": settings.ingest.max_file_size_mb,
            "items": sorted([item.id, list(item.relevant_sources), list(item.reference_contexts)]
                            for item in items),
            "corpus": corpus.fingerprint()}
    return hashlib.sha256(json.dumps(blob, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def _read_cache(path: Path, items: Sequence[EvalItem]) -> dict[str, list[LocatedPassage]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        located = {item_id: [LocatedPassage.from_dict(d) for d in rows]
                   for item_id, rows in data["located"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("span cache %s unreadable (%s); locating again", path, exc)
        return None
    if data.get("format") != CACHE_FORMAT or any(item.id not in located for item in items):
        return None
    return {item.id: located[item.id] for item in items}


def _write_cache(path: Path, located: Mapping[str, Sequence[LocatedPassage]]) -> None:
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    data = {"format": CACHE_FORMAT, "located": {k: [p.to_dict() for p in v] for k, v in located.items()}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def locate_passages(items: Sequence[EvalItem], corpus: str | Path, settings: Settings, *,
                    cache_dir: str | Path | None = None, min_similarity: float = 0.85
                    ) -> dict[str, list[LocatedPassage]]:
    """{item id: one LocatedPassage per reference context, in order} ([] for items without any)."""
    root = Path(corpus)
    if not root.exists():
        raise UsageError(f"corpus {corpus} does not exist")
    if not 0.0 < min_similarity <= 1.0:
        raise UsageError(f"min_similarity must be in (0, 1], got {min_similarity}")
    reader = _Corpus(root, settings)
    path: Path | None = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{_cache_key(items, reader, settings, min_similarity)}.json"
        cached = _read_cache(path, items)
        if cached is not None:
            return cached
    located = {item.id: [_locate_one(reader, item.id, i, passage, item.relevant_sources, min_similarity)
                         for i, passage in enumerate(item.reference_contexts)] for item in items}
    counts = Counter(p.method for passages in located.values() for p in passages)
    log.info("spans: %s (%d files parsed)", ", ".join(f"{counts[m]} {m}" for m in METHODS), reader.parsed)
    if path is not None:
        try:
            _write_cache(path, located)
        except OSError as exc:
            log.warning("span cache %s not written (%s)", path, exc)
    return located
