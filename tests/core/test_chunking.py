"""Chunking: deterministic, bounded, overlapping, boundary-aware, with exact offsets and content-hash ids."""

from __future__ import annotations

import hashlib
import random
import string
import time
from pathlib import Path

from axiom.chunking import chunk_document, chunk_id, chunker_signature
from axiom.types import Chunk, Document, Page
from tests.support.documents import load_documents

SEED = 20240611


def doc(text: str, source: str = "doc.txt", *, pages: list[str] | None = None,
        numbered: bool = False) -> Document:
    texts = pages if pages is not None else [text]
    return Document(source=source, pages=tuple(Page(i + 1 if numbered else None, t)
                                               for i, t in enumerate(texts)),
                    content_hash=hashlib.sha256("".join(texts).encode()).hexdigest())


def page_text(d: Document, chunk: Chunk) -> str:
    return next(p.text for p in d.pages if p.number == chunk.page)


def sentence(rnd: random.Random, lo: int = 4, hi: int = 9) -> str:
    words = ["".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 9)))
             for _ in range(rnd.randint(lo, hi))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + rnd.choice(".!?")


def paragraph(rnd: random.Random, n: int, lo: int = 4, hi: int = 9) -> str:
    return " ".join(sentence(rnd, lo, hi) for _ in range(n))


def random_text(rnd: random.Random) -> str:
    """Paragraphs, sentences, single newlines, overlong words and unicode, in random proportions."""
    parts = []
    for _ in range(rnd.randint(1, 12)):
        kind = rnd.random()
        if kind < 0.6:
            parts.append(paragraph(rnd, rnd.randint(1, 12)))
        elif kind < 0.75:
            parts.append("\n".join(sentence(rnd) for _ in range(rnd.randint(1, 5))))
        elif kind < 0.85:  # one word longer than any chunk: must be hard-cut
            parts.append("".join(rnd.choice(string.ascii_letters) for _ in range(rnd.randint(50, 900))))
        elif kind < 0.95:
            parts.append(" ".join(rnd.choice(["café", "naïve", "東京", "Zoë", "ß", "—", "ünd"])
                                  for _ in range(rnd.randint(5, 80))))
        else:
            parts.append(" \t ")
    return rnd.choice(["\n\n", "\n \n", "\n\n\n"]).join(parts)


def check_invariants(d: Document, chunks: list[Chunk], size: int) -> None:
    for i, c in enumerate(chunks):
        text = page_text(d, c)
        assert text[c.start:c.end] == c.text, "offsets must point at the chunk text"
        assert 0 < len(c.text) <= size
        assert c.text == c.text.strip()
        assert c.chunk_index == i
        assert c.id == chunk_id(d.source, c.text)
        assert c.source == d.source and c.doc_hash == d.content_hash
    assert len({c.id for c in chunks}) == len(chunks)


def test_chunk_id_is_a_hash_of_source_and_text() -> None:
    expected = hashlib.sha256(b"a.md\x00hello world").hexdigest()[:32]
    assert chunk_id("a.md", "hello world") == expected
    assert chunk_id("b.md", "hello world") != expected
    assert chunk_id("a.md", "hello world!") != expected


def test_same_text_in_another_source_gives_other_ids_and_same_spans() -> None:
    text = paragraph(random.Random(SEED), 40)
    a = chunk_document(doc(text, "a.md"), 300, 60)
    b = chunk_document(doc(text, "sub/b.md"), 300, 60)
    assert [(c.start, c.end, c.text) for c in a] == [(c.start, c.end, c.text) for c in b]
    assert not {c.id for c in a} & {c.id for c in b}


def test_ids_depend_on_text_not_on_file_hash() -> None:
    """A file whose bytes changed elsewhere keeps the ids of its unchanged chunks (no re-embedding)."""
    text = paragraph(random.Random(SEED), 30)
    first = chunk_document(Document("a.md", (Page(None, text),), "hash-1"), 300, 60)
    second = chunk_document(Document("a.md", (Page(None, text),), "hash-2"), 300, 60)
    assert [c.id for c in first] == [c.id for c in second]
    assert {c.doc_hash for c in second} == {"hash-2"}


def test_deterministic_across_calls_and_equal_documents() -> None:
    rnd = random.Random(SEED)
    for _ in range(20):
        text = random_text(rnd)
        size = rnd.randint(80, 900)
        overlap = rnd.randint(0, size - 1)
        one = chunk_document(doc(text), size, overlap)
        two = chunk_document(doc(str(text)), size, overlap)
        assert one == two
        assert [c.to_dict() for c in one] == [c.to_dict() for c in two]


def test_random_texts_keep_every_invariant_and_lose_no_content() -> None:
    rnd = random.Random(SEED)
    for _ in range(150):
        text = random_text(rnd)
        size = rnd.randint(40, 1000)
        overlap = rnd.randint(0, size - 1)
        d = doc(text)
        chunks = chunk_document(d, size, overlap)
        check_invariants(d, chunks, size)
        # every non-space character is inside some chunk (random words make repeated chunks impossible)
        covered = bytearray(len(text))
        for c in chunks:
            covered[c.start:c.end] = b"\x01" * (c.end - c.start)
        lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
        assert not lost, f"size={size} overlap={overlap} lost {text[lost[0]:lost[0] + 40]!r}"
        # chunks come in reading order and always move forward
        assert all(b.start > a.start for a, b in zip(chunks, chunks[1:], strict=False))
        assert all(b.end >= a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_every_chunk_adds_text_its_predecessor_lacks() -> None:
    # minimal case: spans (0,50) (52,58) (59,155); size 100, overlap 60 -> chunks (0,58) then (52,58)
    text = "A" * 50 + ". Bb bb. " + "C" * 95 + "."
    spans = [(c.start, c.end) for c in chunk_document(doc(text), 100, 60)]
    assert all(b[1] > a[1] for a, b in zip(spans, spans[1:], strict=False)), spans
    rnd = random.Random(SEED)
    redundant = []
    for _ in range(150):
        text = random_text(rnd)
        size = rnd.randint(40, 1000)
        overlap = rnd.randint(0, size - 1)
        chunks = chunk_document(doc(text), size, overlap)
        redundant += [(size, overlap, a.start, a.end, b.start, b.end)
                      for a, b in zip(chunks, chunks[1:], strict=False) if b.end <= a.end]
    assert redundant == []


def test_empty_and_whitespace_pages_give_no_chunks() -> None:
    assert chunk_document(doc("", pages=["", "  \n\n \t"]), 100, 10) == []


def test_neighbours_share_about_chunk_overlap_characters() -> None:
    rnd = random.Random(SEED)
    sentences = [sentence(rnd, 3, 6) for _ in range(120)]  # one paragraph of short sentences
    text = " ".join(sentences)
    longest = max(len(s) for s in sentences)
    size, overlap = 400, 120
    d = doc(text)
    chunks = chunk_document(d, size, overlap)
    check_invariants(d, chunks, size)
    assert len(chunks) > 10
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = a.end - b.start
        assert overlap - longest - 1 <= shared <= overlap, (a.start, a.end, b.start, b.end)
        assert shared > 0
        # the shared part is the end of one chunk and the start of the next
        assert a.text.endswith(text[b.start:a.end]) and b.text.startswith(text[b.start:a.end])


def test_zero_overlap_gives_adjacent_chunks() -> None:
    text = paragraph(random.Random(SEED), 60)
    chunks = chunk_document(doc(text), 300, 0)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start >= a.end
        assert text[a.end:b.start].strip() == ""


def test_neighbours_share_text_when_the_text_has_paragraphs() -> None:
    rnd = random.Random(SEED)
    text = "\n\n".join(paragraph(rnd, rnd.randint(3, 6), 3, 6) for _ in range(30))
    chunks = chunk_document(doc(text), 800, 160)
    assert len(chunks) > 3
    no_overlap = [(a.end, b.start) for a, b in zip(chunks, chunks[1:], strict=False) if b.start >= a.end]
    assert no_overlap == []


def test_tiny_corpus_neighbours_overlap_at_default_settings(tiny_corpus: Path) -> None:
    docs, _ = load_documents([tiny_corpus])
    pairs = [(a, b) for d in docs for a, b in zip(chunk_document(d, 800, 160),
                                                  chunk_document(d, 800, 160)[1:],
                                                  strict=False)]
    assert pairs
    assert all(a.end > b.start for a, b in pairs)


def test_chunks_end_at_paragraph_ends_when_paragraphs_fit() -> None:
    rnd = random.Random(SEED)
    paragraphs = [paragraph(rnd, rnd.randint(2, 4), 3, 6) for _ in range(60)]
    assert all(len(p) < 250 for p in paragraphs)
    text = "\n\n".join(paragraphs)
    para_ends = {text.index(p) + len(p) for p in paragraphs}
    para_starts = {text.index(p) for p in paragraphs}
    chunks = chunk_document(doc(text), 600, 100)
    assert len(chunks) > 5
    for c in chunks:
        assert c.end in para_ends, f"chunk ends mid-paragraph: ...{c.text[-30:]!r}"
        assert c.start in para_starts or text[c.start - 1] == " "


def test_chunks_end_at_sentence_ends_inside_a_long_paragraph() -> None:
    rnd = random.Random(SEED)
    sentences = [sentence(rnd) for _ in range(80)]
    text = " ".join(sentences)
    sentence_ends = set()
    pos = 0
    for s in sentences:
        sentence_ends.add(pos + len(s))
        pos += len(s) + 1
    chunks = chunk_document(doc(text), 350, 70)
    assert len(chunks) > 5
    for c in chunks:
        assert c.end in sentence_ends, f"chunk ends mid-sentence: ...{c.text[-30:]!r}"
        assert c.text[0].isupper(), f"chunk starts mid-sentence: {c.text[:30]!r}"


def test_chunks_end_at_word_ends_in_text_without_sentences() -> None:
    rnd = random.Random(SEED)
    text = " ".join("".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 12)))
                    for _ in range(2000))
    chunks = chunk_document(doc(text), 250, 50)
    for c in chunks:
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] == " "


def test_a_chunk_never_crosses_a_page() -> None:
    rnd = random.Random(SEED)
    pages = [paragraph(rnd, 5) for _ in range(4)]
    d = doc("", pages=pages, numbered=True)
    chunks = chunk_document(d, 2000, 100)
    assert [(c.page, c.text) for c in chunks] == [(i + 1, p) for i, p in enumerate(pages)]
    assert all(c.start == 0 for c in chunks)


def test_repeated_text_in_one_source_is_kept_once() -> None:
    block = "The same boilerplate footer appears on every page of this report."
    d = doc("", pages=[block, "Unique body text of page two.", block], numbered=True)
    chunks = chunk_document(d, 200, 20)
    assert [c.text for c in chunks] == [block, "Unique body text of page two."]
    assert [c.page for c in chunks] == [1, 2]


def test_one_megabyte_single_line_chunks_quickly() -> None:
    rnd = random.Random(SEED)
    vocab = ["".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 10)))
             for _ in range(5000)]
    text = " ".join(rnd.choice(vocab) for _ in range(200_000))[:1_000_000].strip()
    assert "\n" not in text and len(text) > 990_000
    d = doc(text)
    t0 = time.perf_counter()
    chunks = chunk_document(d, 800, 160)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, f"{elapsed:.1f}s for 1 MB"
    check_invariants(d, chunks, 800)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert len(chunks) >= len(text) // 800


def test_one_megabyte_without_any_whitespace_is_hard_cut() -> None:
    rnd = random.Random(SEED)
    text = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(1_000_000))
    d = doc(text)
    t0 = time.perf_counter()
    chunks = chunk_document(d, 800, 160)
    assert time.perf_counter() - t0 < 10
    check_invariants(d, chunks, 800)
    assert "".join(c.text for c in chunks) == text  # hard cuts tile the text exactly
    assert len(chunks) == 1250


def test_chunker_signature_tracks_parameters() -> None:
    assert chunker_signature(800, 160) == chunker_signature(800, 160)
    assert len({chunker_signature(800, 160), chunker_signature(800, 100), chunker_signature(500, 160)}) == 3
