"""Span labels: locating reference passages in a real corpus (text + PDF), evidence metrics, and an end-to-end
check with the real pipeline at two chunk sizes (packaged MiniLM, embedded ChromaDB under tmp_path)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fpdf import FPDF
from rapidfuzz import fuzz

from axiom.evaluation import spans
from axiom.evaluation.datasets import EvalItem, load_golden
from axiom.evaluation.spans import (
    EVIDENCE_METRICS,
    ChunkSpan,
    LocatedPassage,
    evidence_metrics,
    locate_passages,
    merge,
    normalise,
    overlap,
    retrieved_chunk_spans,
)
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.evaluation.helpers import build_settings
from tests.support.documents import load_documents

BEES = [
    "# Honey bees",
    "A honey bee colony is built around a single queen, who can lay up to 2,000 eggs in one day during the "
    "height of summer. Almost all of the other bees in the hive are female workers.",
    "Worker bees tell their sisters where to find flowers by performing the waggle dance on the comb. The "
    "Austrian scientist Karl von Frisch decoded this language and shared the Nobel Prize in 1973.",
    "Bees turn flower nectar into honey by adding enzymes and fanning it with their wings. Finished honey "
    "contains less than about 20 percent water, which is why it keeps for so long without spoiling.",
    "Drones are the male bees of the colony. They do not collect food, and their only role is to mate with a "
    "queen from another colony during a short flight in late spring.",
]
VOLCANO = ("Mauna Loa on the island of Hawaii is the largest active volcano on Earth by volume. Its lava "
           "flows are fluid and travel far.\n\nFinished honey contains less than about 20 percent water, "
           "which is why it keeps for so long without spoiling.")
PDF_PAGES = [
    "Lighthouses use Fresnel lenses. Augustin Fresnel designed the first one in 1822 for the Cordouan "
    "lighthouse in France, and it could be seen from more than thirty kilometres away on a clear night.",
    "The Eddystone lighthouse stands on a dangerous reef south of Plymouth. Its fourth tower, built by James "
    "Douglass, was lit in 1882 and still guides ships today.",
    "Keepers log",  # a short page
]
HONEY = (
    "Finished honey contains less than about 20 percent water, which is why it keeps for so long "
    "without spoiling."
)
FRISCH = "The Austrian scientist Karl von Frisch decoded this language and shared the Nobel Prize in 1973."
DRONES = ("Drones are the male bees of the colony. They do not collect food, and their only role is to mate "
          "with a queen from another colony during a short flight in late spring.")


def make_pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "bees.md").write_text("\n\n".join(BEES) + "\n", encoding="utf-8")
    (root / "volcano.txt").write_text(VOLCANO + "\n", encoding="utf-8")
    (root / "lights.pdf").write_bytes(make_pdf(*PDF_PAGES))
    return root


@pytest.fixture(scope="module")
def pages(corpus: Path) -> dict[tuple[str, int | None], str]:
    docs, skipped = load_documents([corpus])
    assert not skipped
    return {(d.source, p.number): p.text for d in docs for p in d.pages}


def item(item_id: str, *contexts: str, sources: tuple[str, ...] = ()) -> EvalItem:
    return EvalItem(item_id, f"question {item_id}?", "reference", relevant_sources=sources,
                    reference_contexts=contexts)


def locate(corpus: Path, *items: EvalItem, tmp: Path, **kwargs: object) -> dict[str, list[LocatedPassage]]:
    return locate_passages(items, corpus, build_settings(tmp), **kwargs)  # type: ignore[arg-type]


# -- locating ------------------------------------------------------------------------------------------------
def test_exact_location_offsets(corpus: Path, pages: dict, tmp_path: Path) -> None:
    found = locate(corpus, item("q1", FRISCH, sources=("bees.md",)), tmp=tmp_path)["q1"]
    [p] = found
    assert (p.item_id, p.index, p.source, p.page, p.method,
            p.similarity) == ("q1", 0, "bees.md", None, "exact", 1.0)
    assert pages[("bees.md", None)][p.start:p.end] == FRISCH
    assert p.to_dict() == {"item_id": "q1", "index": 0, "source": "bees.md", "page": None, "start": p.start,
                           "end": p.end, "method": "exact", "similarity": 1.0}
    assert LocatedPassage.from_dict(p.to_dict()) == p


def test_relevant_sources_first_then_rest_of_corpus(corpus: Path, pages: dict, tmp_path: Path) -> None:
    # HONEY is in both files: the item's own source wins over the corpus order (bees.md sorts first)
    found = locate(corpus, item("own", HONEY, sources=("volcano.txt",)),
                   item("wrong", FRISCH, sources=("volcano.txt", "not-in-corpus.md")), tmp=tmp_path)
    own, wrong = found["own"][0], found["wrong"][0]
    assert own.source == "volcano.txt" and pages[("volcano.txt", None)][own.start:own.end] == HONEY
    assert (wrong.source, wrong.method) == ("bees.md", "exact")  # not in its sources: found in the rest


def test_normalised_location_maps_back_to_original_offsets(corpus: Path, pages: dict, tmp_path: Path) -> None:
    shouty = (
        "  the AUSTRIAN scientist   Karl von frisch\n decoded THIS language and shared the Nobel "
        "Prize in 1973.  "
    )
    # the PDF wraps its lines: the extracted text has a newline where the passage has a space
    wrapped = PDF_PAGES[0].split(". ", 1)[1]
    found = locate(corpus, item("n", shouty, wrapped, sources=("bees.md", "lights.pdf")), tmp=tmp_path)["n"]
    assert [p.method for p in found] == ["normalised", "normalised"]
    text = pages[("bees.md", None)]
    assert text[found[0].start:found[0].end] == FRISCH
    pdf = found[1]
    assert (pdf.source, pdf.page) == ("lights.pdf", 1)
    got = pages[("lights.pdf", 1)][pdf.start:pdf.end]
    assert "\n" in got and " ".join(got.split()) == wrapped


def test_fuzzy_location(corpus: Path, pages: dict, tmp_path: Path) -> None:
    edited = DRONES.replace("male", "boy").replace("short flight", "brief flight").replace("food", "nectar")
    page2 = PDF_PAGES[1].replace("dangerous", "perilous").replace("still guides", "guides")
    found = locate(corpus, item("f", edited, page2, sources=("bees.md",)), tmp=tmp_path)["f"]
    drones, lights = found
    assert drones.method == "fuzzy" and 0.85 <= drones.similarity < 1.0
    text = pages[("bees.md", None)]
    true_start = text.index(DRONES)
    assert abs(drones.start - true_start) <= 3 and abs(drones.end - (true_start + len(DRONES))) <= 6
    assert fuzz.ratio(text[drones.start:drones.end], DRONES) > 95
    # not in its relevant source: found fuzzily on page 2 of the PDF
    assert (lights.source, lights.page, lights.method) == ("lights.pdf", 2, "fuzzy")
    assert fuzz.ratio(" ".join(pages[("lights.pdf", 2)][lights.start:lights.end].split()), PDF_PAGES[1]) > 95


def test_missing_passages(corpus: Path, tmp_path: Path) -> None:
    invented = (
        "Penguins in the Sahara navigate by the smell of pine trees and sing at dawn in four-part harmony."
    )
    # holds the whole (short) third PDF page: not a match of the passage
    holds_page = (
        "The keepers log of every lighthouse on this coast burned in a great fire in the winter of 1703."
    )
    found = locate(corpus, item("m", invented, "   ", holds_page, sources=("bees.md",)), item("none"),
                   tmp=tmp_path)
    missing, blank, short = found["m"]
    assert short.method == "missing" and short.similarity < 0.7  # partial_ratio alone would give 1.0
    assert (missing.source, missing.page, missing.start, missing.end, missing.method) == (None, None, 0, 0,
                                                                                         "missing")
    assert 0.0 < missing.similarity < 0.85
    assert blank.method == "missing" and blank.similarity == 0.0
    assert found["none"] == []


def test_normalise_index_map() -> None:
    text = "Stra\u00dfe  \uFB01ne\tA"  # sharp s stays one character, the fi ligature becomes two
    norm, index = normalise(text)
    assert norm == "stra\u00dfe fine a"
    assert [text[i] for i in index] == list("Stra\u00dfe ") + ["\uFB01", "\uFB01"] + list("ne\tA")


def test_cache_is_used_and_private(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "span-cache"
    items = [item("c1", FRISCH, sources=("bees.md",)), item("c2", PDF_PAGES[1][:60])]
    first = locate(corpus, *items, tmp=tmp_path, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json" and len(files[0].stem) == 64
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and stat.S_IMODE(files[0].stat().st_mode) == 0o600

    calls: list[str] = []
    real_parse = spans.parse
    monkeypatch.setattr(spans, "parse", lambda f, *a: calls.append(f.source) or real_parse(f, *a))
    again = locate(corpus, *items, tmp=tmp_path, cache_dir=cache)
    assert again == first and calls == []  # read from the cache: no file parsed
    assert locate(corpus, *items, tmp=tmp_path) == first and calls  # no cache: the corpus is read
    calls.clear()
    locate(corpus, *items, tmp=tmp_path, cache_dir=cache, min_similarity=0.9)  # another key
    assert calls and len(list(cache.iterdir())) == 2
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]

    changed = tmp_path / "changed"
    changed.mkdir()
    for f in corpus.iterdir():
        (changed / f.name).write_bytes(f.read_bytes())
    (changed / "bees.md").write_text("Nothing about bees here.\n", encoding="utf-8")
    calls.clear()
    moved = locate(changed, *items, tmp=tmp_path, cache_dir=cache)
    assert calls and moved["c1"][0].method == "missing" and len(list(cache.iterdir())) == 3


def test_locate_from_golden_jsonl(corpus: Path, pages: dict, tmp_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        '{"id": "g1", "question": "q?", "reference": "r", "relevant_sources": ["volcano.txt"], '
        '"reference_contexts": ["Mauna Loa on the island of Hawaii is the largest active volcano on Earth by '
        'volume."]}\n', encoding="utf-8")
    [p] = locate_passages(load_golden(golden, known_sources=("bees.md", "volcano.txt", "lights.pdf")),
                          corpus, build_settings(tmp_path))["g1"]
    assert pages[("volcano.txt", None)][p.start:p.end].startswith("Mauna Loa") and p.method == "exact"


# -- evidence metrics ----------------------------------------------------------------------------------------
def lp(item_id: str, index: int, source: str | None, page: int | None, start: int, end: int,
       method: str = "exact") -> LocatedPassage:
    return LocatedPassage(item_id, index, source, page, start, end, method, 1.0)


def test_interval_helpers() -> None:
    assert merge([(5, 9), (0, 3), (3, 4), (8, 12), (20, 20)]) == [(0, 4), (5, 12)]
    assert overlap([(0, 4), (5, 12)], [(2, 6), (10, 30)]) == 2 + 1 + 2


def test_evidence_metrics_hand_computed() -> None:
    located = {
        # two overlapping reference spans: [100, 250) = 150 characters
        "a": [lp("a", 0, "f.md", None, 100, 200), lp("a", 1, "f.md", None, 150, 250)],
        "pdf": [lp("pdf", 0, "r.pdf", 2, 0, 100)],
        "gone": [lp("gone", 0, None, None, 0, 0, "missing")],
        "empty": [],
        "nothing": [lp("nothing", 0, "f.md", None, 0, 10)],
    }
    retrieved = {
        "a": [ChunkSpan("f.md", None, 0, 120), ChunkSpan("f.md", None, 80, 180),  # overlapping chunks
              ChunkSpan("g.md", None, 0, 100), ChunkSpan("f.md", None, 240, 400),
              ChunkSpan("f.md", None, 100, 250)],
        "pdf": [ChunkSpan("r.pdf", 1, 0, 100), ChunkSpan("r.pdf", 2, 50, 150)],  # page 1 is another page
        "gone": [ChunkSpan("f.md", None, 0, 10)],
    }
    m = evidence_metrics(located, retrieved, cutoffs=(2, 4, 5))
    assert list(m) == ["evidence_recall@2", "evidence_precision@2", "evidence_recall@4",
                       "evidence_precision@4",
                       "evidence_recall@5", "evidence_precision@5"]
    assert set(m["evidence_recall@2"]) == {"a", "pdf", "nothing"}  # all-missing and no passages: absent
    # k=2: chunks [0,180) -> 180 characters, 80 of them in [100,250)
    assert m["evidence_recall@2"]["a"] == pytest.approx(80 / 150)
    assert m["evidence_precision@2"]["a"] == pytest.approx(80 / 180)
    # k=4: [0,180) + g.md [0,100) + [240,400) = 440 characters; 80 + 10 relevant
    assert m["evidence_recall@4"]["a"] == pytest.approx(90 / 150)
    assert m["evidence_precision@4"]["a"] == pytest.approx(90 / 440)
    # k=5: [100,250) joins [0,180) and [240,400): [0,400) + g.md = 500 characters, all 150 relevant covered
    assert m["evidence_recall@5"]["a"] == 1.0
    assert m["evidence_precision@5"]["a"] == pytest.approx(150 / 500)
    assert m["evidence_recall@2"]["pdf"] == pytest.approx(50 / 100)
    assert m["evidence_precision@2"]["pdf"] == pytest.approx(50 / 200)
    assert m["evidence_recall@5"]["nothing"] == 0.0 and m["evidence_precision@5"]["nothing"] == 0.0
    assert list(evidence_metrics(located, retrieved)) == list(EVIDENCE_METRICS)


# -- end to end: the same labels at two chunk sizes ----------------------------------------------------------
def ingest(corpus: Path, root: Path, embedder: object, chunk_size: int, overlap: int) -> RAGPipeline:
    settings = build_settings(root, chunking={"chunk_size": chunk_size, "chunk_overlap": overlap},
                              retrieval={"retriever": "dense"})
    pipeline = RAGPipeline(settings, embedder, ChromaStore(settings.store))  # type: ignore[arg-type]
    pipeline.ingest([corpus], progress=False)
    return pipeline


def record_gets(store: ChromaStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A batch size of 2 on the real store, and the size of every `get` it then serves."""
    batches: list[int] = []
    real_get = store.get
    monkeypatch.setattr(store, "_max_batch", 2)
    monkeypatch.setattr(store, "get", lambda wanted: batches.append(len(wanted)) or real_get(wanted))
    return batches


def test_end_to_end_two_chunk_sizes(corpus: Path, tmp_path: Path, embedder: object,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    items = [item("drones", DRONES, sources=("bees.md",)),
             item("frisch", FRISCH.upper(), sources=("bees.md",))]
    questions = ["What is the only role of male drone bees?", "Who decoded the language of the bee dance?"]
    located = locate_passages(items, corpus, build_settings(tmp_path), cache_dir=tmp_path / "cache")
    results = {}
    for size, over in ((200, 40), (1000, 100)):
        pipeline = ingest(corpus, tmp_path / f"store-{size}", embedder, size, over)
        hits = pipeline.retrieve_batch(questions, top_k=10)
        ids = {it.id: [h.chunk_id for h in ranked] for it, ranked in zip(items, hits, strict=True)}
        batches = record_gets(pipeline.store, monkeypatch)
        chunk_spans = retrieved_chunk_spans(pipeline.store, {**ids, "lost": ["no-such-id", ids["drones"][0]]})
        assert batches and max(batches) <= 2
        stored = {c.id: c.metadata for c in pipeline.store.iter_chunks()}
        for item_id, ranked in ids.items():  # rank order kept, offsets straight from the stored metadata
            assert [(s.source, s.start, s.end) for s in chunk_spans[item_id]] == [
                (stored[c]["source"], stored[c]["start"], stored[c]["end"]) for c in ranked]
        assert chunk_spans["lost"][0] == ChunkSpan("", None, 0, 0)  # keeps its rank, covers nothing
        for it, ranked in zip(items, hits, strict=True):  # the top chunk holds the whole reference passage
            ref, top = located[it.id][0], chunk_spans[it.id][0]
            assert ranked[0].source == "bees.md" and top.start <= ref.start and ref.end <= top.end, (
                size,
                it.id,
            )
        results[size] = evidence_metrics(located, chunk_spans, cutoffs=(1, 5, 10))
    small, large = results[200], results[1000]
    for item_id in ("drones", "frisch"):
        for k in (1, 5, 10):
            assert small[f"evidence_recall@{k}"][item_id] == 1.0 == large[f"evidence_recall@{k}"][item_id]
        assert small["evidence_precision@1"][item_id] > large["evidence_precision@1"][item_id]
        assert small["evidence_precision@5"][item_id] > large["evidence_precision@5"][item_id]
    assert "lost" not in small["evidence_recall@1"]
