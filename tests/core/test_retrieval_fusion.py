"""Reciprocal rank fusion against hand-computed scores, and the persisted BM25 index over a real store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from axiom.pipeline import RAGPipeline
from axiom.retrieval import BM25Retriever, bm25_index_dir, rrf_fuse
from axiom.types import Hit


def hit(cid: str, source: str = "", text: str = "") -> Hit:
    return Hit(chunk_id=cid, source=source or f"{cid}.md", page=None, score=0.0, text=text or f"text {cid}")


def test_rrf_matches_hand_computed_weighted_scores() -> None:
    dense = [hit("A"), hit("B"), hit("C")]
    bm25 = [hit("C"), hit("A"), hit("D")]
    fused = rrf_fuse([dense, bm25], [1.0, 0.5], k=10, rrf_k=60)
    expected = {
        "A": 1.0 / 61 + 0.5 / 62,
        "B": 1.0 / 62,
        "C": 1.0 / 63 + 0.5 / 61,
        "D": 0.5 / 63,
    }
    assert [h.chunk_id for h in fused] == ["A", "C", "B", "D"]
    for h in fused:
        assert h.score == pytest.approx(expected[h.chunk_id], rel=1e-12)


def test_rrf_k_parameter_changes_the_scores() -> None:
    fused = rrf_fuse([[hit("A"), hit("B")]], [2.0], k=5, rrf_k=1)
    assert [(h.chunk_id, h.score) for h in fused] == [("A", pytest.approx(1.0)),
                                                      ("B", pytest.approx(2.0 / 3))]


def test_rrf_weights_can_flip_the_order() -> None:
    dense = [hit("A"), hit("B")]
    bm25 = [hit("B"), hit("A")]
    assert [h.chunk_id for h in rrf_fuse([dense, bm25], [2.0, 1.0], k=2)] == ["A", "B"]
    assert [h.chunk_id for h in rrf_fuse([dense, bm25], [1.0, 2.0], k=2)] == ["B", "A"]


def test_rrf_ties_break_by_chunk_id() -> None:
    # mirrored rankings with equal weights: every document gets 1/61 + 1/62 or 1/62 + 1/61
    one = [hit("zeta"), hit("alpha")]
    two = [hit("alpha"), hit("zeta")]
    fused = rrf_fuse([one, two], [1.0, 1.0], k=5)
    assert [h.chunk_id for h in fused] == ["alpha", "zeta"]
    assert fused[0].score == pytest.approx(fused[1].score)
    # same answer whichever ranking comes first
    assert [h.chunk_id for h in rrf_fuse([two, one], [1.0, 1.0], k=5)] == ["alpha", "zeta"]
    # disjoint single rankings: rank-1 hits tie, id decides
    assert [h.chunk_id for h in rrf_fuse([[hit("m")], [hit("b")]], [1.0, 1.0], k=5)] == ["b", "m"]


def test_rrf_cuts_at_k() -> None:
    ranking = [hit(c) for c in "ABCDEFG"]
    fused = rrf_fuse([ranking, list(reversed(ranking))], [1.0, 1.0], k=3)
    assert len(fused) == 3
    assert rrf_fuse([ranking], [1.0], k=100) == rrf_fuse([ranking], [1.0], k=7)
    assert rrf_fuse([], [], k=3) == []


def test_rrf_keeps_fields_of_the_first_ranking_a_document_appears_in() -> None:
    fused = rrf_fuse([[hit("A", "dense.md", "dense text")], [hit("A", "bm25.md", "bm25 text")]], [1.0, 1.0],
                     k=1)
    assert (fused[0].source, fused[0].text) == ("dense.md", "dense text")


def test_rrf_refuses_mismatched_weights() -> None:
    with pytest.raises(ValueError):
        rrf_fuse([[hit("A")], [hit("B")]], [1.0], k=2)


# -- BM25 over a real ingest -------------------------------------------------------------------------------


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every BM25Retriever._build call (the real method still runs)."""
    calls: list[int] = []
    original = BM25Retriever._build

    def counting(self: BM25Retriever, version: int) -> None:
        calls.append(version)
        original(self, version)

    monkeypatch.setattr(BM25Retriever, "_build", counting)
    return calls


@pytest.fixture
def ingested(core_pipeline: Callable[..., RAGPipeline], tiny_corpus: Path) -> RAGPipeline:
    pipeline = core_pipeline()
    pipeline.ingest([tiny_corpus])
    return pipeline


def fresh_bm25(pipeline: RAGPipeline) -> BM25Retriever:
    from axiom.store import ChromaStore

    cfg = pipeline.settings
    return BM25Retriever(ChromaStore(cfg.store), bm25_index_dir(cfg.store),
                         stemmer=cfg.retrieval.bm25_stemmer,
                         stopwords=cfg.retrieval.bm25_stopwords)


@pytest.mark.parametrize(("query", "source", "phrase"), [
    ("waggle dance", "a.md", "waggle dance"),
    ("Pompeii Vesuvius", "b.txt", "Vesuvius"),
    ("Camellia sinensis", "c.md", "Camellia sinensis"),
    ("volcanologists", "b.txt", "volcanologists"),
])
def test_bm25_finds_the_document_with_the_keywords(shared_ingested: RAGPipeline, query: str, source: str,
                                                   phrase: str) -> None:
    hits = shared_ingested.retrieve(query, retriever="bm25", top_k=3)
    assert hits, query
    assert hits[0].source == source
    assert phrase in hits[0].text
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_stems_and_drops_stopwords(shared_ingested: RAGPipeline) -> None:
    # "erupting" only matches through the stemmer ("erupted", "eruption" in b.txt)
    hits = shared_ingested.retrieve("the erupting", retriever="bm25", top_k=3)
    assert hits and hits[0].source == "b.txt"
    # stopwords alone match nothing
    assert shared_ingested.retrieve("the of and", retriever="bm25", top_k=3) == []


def test_bm25_index_is_persisted_and_reloaded_without_a_rebuild(ingested: RAGPipeline,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    builds = count_builds(monkeypatch)
    first = ingested.retrieve("waggle dance", retriever="bm25", top_k=3)
    assert len(builds) == 1
    index_dir = bm25_index_dir(ingested.settings.store)
    assert index_dir == Path(ingested.settings.store.path + "-bm25") / ingested.settings.store.collection
    assert (index_dir / "axiom.json").is_file() and (index_dir / "rows.json").is_file()
    mtimes = {p.name: p.stat().st_mtime_ns for p in index_dir.iterdir()}

    # the same retriever does not even re-read the index while the data version stays
    ingested.retrieve("honey", retriever="bm25", top_k=3)
    assert len(builds) == 1

    # a fresh retriever (a new process would do the same) loads it from disk
    fresh = fresh_bm25(ingested)
    again = fresh.retrieve("waggle dance", 3)
    assert len(builds) == 1
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in index_dir.iterdir()} == mtimes
    assert not index_dir.with_name(index_dir.name + ".tmp").exists()


def test_bm25_rebuilds_when_another_ingest_moves_the_data_version(ingested: RAGPipeline, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    builds = count_builds(monkeypatch)
    assert ingested.retrieve("lighthouse lens", retriever="bm25", top_k=3) == []
    version = ingested.store.data_version()
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "lens.md").write_text("Augustin Fresnel designed a lighthouse lens "
                                   "built from concentric prisms.")
    ingested.ingest([extra])
    assert ingested.store.data_version() > version
    hits = ingested.retrieve("lighthouse lens", retriever="bm25", top_k=3)
    assert [h.source for h in hits] == ["lens.md"]
    assert len(builds) == 2
    # and a fresh retriever picks up the rebuilt index as is
    assert fresh_bm25(ingested).retrieve("lighthouse lens", 3) == hits
    assert len(builds) == 2


def test_bm25_rebuilds_a_damaged_index(ingested: RAGPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    ingested.retrieve("honey", retriever="bm25", top_k=1)
    index_dir = bm25_index_dir(ingested.settings.store)
    (index_dir / "rows.json").write_text("{not json")
    builds = count_builds(monkeypatch)
    hits = fresh_bm25(ingested).retrieve("honey", 1)
    assert builds and hits and hits[0].source == "a.md"


def test_bm25_index_survives_removal_by_rebuilding(ingested: RAGPipeline,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ingested.retrieve("honey", retriever="bm25", top_k=1)
    shutil.rmtree(bm25_index_dir(ingested.settings.store))
    builds = count_builds(monkeypatch)
    assert fresh_bm25(ingested).retrieve("honey", 1)[0].source == "a.md"
    assert len(builds) == 1


def test_bm25_index_of_a_dropped_collection_is_not_reused(core_pipeline: Callable[..., RAGPipeline],
                                                          tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, word in ((first, "Apples"), (second, "Zebras")):
        folder.mkdir()
        for i in range(3):
            (folder / f"{word.lower()}{i}.txt").write_text(f"{word} number {i} are described in this file.")
    pipeline = core_pipeline()
    pipeline.ingest([first])
    assert pipeline.retrieve("apples", retriever="bm25", top_k=3)
    pipeline.store.drop()
    again = core_pipeline(settings=pipeline.settings)
    again.ingest([second])
    assert [h.source for h in again.retrieve("zebras", retriever="bm25", top_k=3)] != []
    assert again.retrieve("apples", retriever="bm25", top_k=3) == []
