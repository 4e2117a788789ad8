"""The benchmark's searched store is built once and reused: a second open embeds nothing, a changed corpus
gets its own folder, and an interrupted build is finished by the next open."""

from __future__ import annotations

import json
from pathlib import Path

from bench.search_store import open_search_store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pubmedqa-beir" / "corpus.jsonl"


def small_corpus(n: int) -> dict[str, str]:
    corpus = {}
    for line in FIXTURE.read_text(encoding="utf-8").splitlines()[:n]:
        doc = json.loads(line)
        corpus[doc["_id"]] = (doc.get("title", "") + " " + doc["text"]).strip()
    return corpus


def test_second_open_reuses_the_store_and_a_changed_corpus_gets_its_own(tmp_path: Path) -> None:
    corpus = small_corpus(6)
    first, _ = open_search_store(corpus, "fixture", tmp_path, progress=False)
    assert not first.reused and first.embedded_now == first.chunks >= 6 and first.documents == 6
    again, pipeline = open_search_store(corpus, "fixture", tmp_path, progress=False)
    assert again.reused and again.embedded_now == 0 and again.chunks == first.chunks
    assert again.folder == first.folder
    hits = pipeline.retrieve(next(iter(corpus.values()))[:200], top_k=1, retriever="dense")
    assert hits and hits[0].source == f"{next(iter(corpus))}.txt"

    changed = {**corpus, "extra-doc": "A document that was not there before, about something else entirely."}
    other, _ = open_search_store(changed, "fixture", tmp_path, progress=False)
    assert other.folder != first.folder and not other.reused and other.chunks == first.chunks + 1


def test_an_interrupted_build_is_finished_by_the_next_open(tmp_path: Path) -> None:
    corpus = small_corpus(6)
    built, pipeline = open_search_store(corpus, "fixture", tmp_path, progress=False)
    # drop the chunks of two documents, as if the build had stopped before embedding them
    lost = [c.id for c in pipeline.store.iter_chunks()
            if c.metadata["source"] in {f"{d}.txt" for d in list(corpus)[:2]}]
    assert lost
    pipeline.store.delete(lost)
    resumed, _ = open_search_store(corpus, "fixture", tmp_path, progress=False)
    assert resumed.folder == built.folder and resumed.embedded_now == len(lost)
    assert resumed.chunks == built.chunks
