"""Store + pipeline, run against BOTH the embedded client and a real `chroma run` server (`store_mode`)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from axiom.chunking import chunk_document, chunker_signature
from axiom.errors import EmbeddingMismatchError, StoreError, StoreUnavailableError
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from axiom.types import Answer, Hit
from tests.core.conftest import RenamedEmbedder
from tests.core.test_documents import make_pdf
from tests.support.documents import load_documents

PipelineFactory = Callable[..., RAGPipeline]
SOURCES = ["a.md", "b.txt", "c.md"]


def expected_chunks(folder: Path, pipeline: RAGPipeline) -> dict[str, dict[str, str]]:
    """source -> {chunk id: text}, computed from the files with the pipeline's chunking settings."""
    cfg = pipeline.settings.chunking
    docs, _ = load_documents([folder])
    return {d.source: {c.id: c.text for c in chunk_document(d, cfg.chunk_size, cfg.chunk_overlap)}
            for d in docs}


def stored(pipeline: RAGPipeline) -> dict[str, dict]:
    return {c.id: {**c.metadata, "text": c.text} for c in pipeline.store.iter_chunks(with_text=True)}


def ids_of(pipeline: RAGPipeline, source: str | None = None) -> set[str]:
    return {cid for cid, m in stored(pipeline).items() if source is None or m["source"] == source}


def test_ingest_counts_report_and_metadata(mode_pipeline: PipelineFactory, corpus_copy: Path) -> None:
    pipeline = mode_pipeline()
    report = pipeline.ingest([corpus_copy])
    expected = expected_chunks(corpus_copy, pipeline)
    total = sum(len(v) for v in expected.values())
    assert total >= 3
    assert report.files_ingested == SOURCES
    assert report.files_unchanged == [] and report.files_skipped == []
    assert report.chunks_added == report.chunks_embedded == report.chunks_total == total
    assert report.chunks_removed == 0
    assert report.seconds > 0
    assert set(report.to_dict()) == {"files_ingested", "files_unchanged", "files_skipped", "chunks_added",
                                     "chunks_removed", "chunks_total", "chunks_embedded", "seconds"}
    assert pipeline.store.count() == total
    rows = stored(pipeline)
    assert set(rows) == {cid for chunks in expected.values() for cid in chunks}
    signature = chunker_signature(pipeline.settings.chunking.chunk_size,
                                  pipeline.settings.chunking.chunk_overlap)
    for source, chunks in expected.items():
        for cid, text in chunks.items():
            meta = rows[cid]
            assert meta["text"] == text
            assert meta["source"] == source
            assert meta["root"] == str(corpus_copy.resolve())
            assert meta["chunker"] == signature
            assert meta["n_chunks"] == len(chunks)
            assert "page" not in meta  # text files have no pages
            original = (corpus_copy / source).read_text()
            assert text in original or text in original.replace("\r\n", "\n")


def test_reingest_unchanged_embeds_nothing(mode_pipeline: PipelineFactory, corpus_copy: Path) -> None:
    pipeline = mode_pipeline()
    first = pipeline.ingest([corpus_copy])
    before = stored(pipeline)
    version = pipeline.store.data_version()
    # a second pipeline (a new process would be the same) sees the same store
    again = mode_pipeline().ingest([corpus_copy])
    assert again.chunks_embedded == 0 and again.chunks_added == 0 and again.chunks_removed == 0
    assert again.files_unchanged == SOURCES and again.files_ingested == []
    assert again.chunks_total == first.chunks_total
    assert stored(pipeline) == before
    assert pipeline.store.data_version() == version


def test_changed_file_replaces_its_old_chunks(mode_pipeline: PipelineFactory, corpus_copy: Path) -> None:
    pipeline = mode_pipeline(chunking={"chunk_size": 300, "chunk_overlap": 60})
    pipeline.ingest([corpus_copy])
    old = expected_chunks(corpus_copy, pipeline)
    path = corpus_copy / "b.txt"
    text = path.read_text()
    assert "Mauna Loa" in text
    path.write_text(text.replace("Mauna Loa", "Mauna Kea").replace("volcanologists", "vulcanologists"))
    new = expected_chunks(corpus_copy, pipeline)
    gone = set(old["b.txt"]) - set(new["b.txt"])
    added = set(new["b.txt"]) - set(old["b.txt"])
    assert gone and added and set(old["b.txt"]) & set(new["b.txt"])  # some chunks change, some stay

    report = pipeline.ingest([corpus_copy])
    assert report.files_ingested == ["b.txt"]
    assert report.files_unchanged == ["a.md", "c.md"]
    assert report.chunks_embedded == report.chunks_added == len(added)
    assert report.chunks_removed == len(gone)
    rows = stored(pipeline)
    assert set(rows) == {cid for chunks in new.values() for cid in chunks}
    assert not gone & set(rows)
    assert not any("Mauna Loa" in r["text"] for r in rows.values())
    assert any("Mauna Kea" in r["text"] for r in rows.values())
    # kept chunks of the changed file carry its new hash and chunk count; other files are untouched
    for cid in new["b.txt"]:
        assert rows[cid]["n_chunks"] == len(new["b.txt"])
        assert rows[cid]["doc_hash"] == rows[next(iter(added))]["doc_hash"]
    assert {cid for cid, r in rows.items() if r["source"] != "b.txt"} == set(old["a.md"]) | set(old["c.md"])
    # and it is stable from there on
    assert pipeline.ingest([corpus_copy]).chunks_embedded == 0


def test_deleted_file_is_pruned_and_others_stay(mode_pipeline: PipelineFactory, corpus_copy: Path) -> None:
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy])
    before = stored(pipeline)
    c_ids = {cid for cid, r in before.items() if r["source"] == "c.md"}
    assert c_ids
    (corpus_copy / "c.md").unlink()

    kept = pipeline.ingest([corpus_copy])  # without prune nothing is deleted
    assert kept.chunks_removed == 0 and ids_of(pipeline) == set(before)

    pruned = pipeline.ingest([corpus_copy], prune=True)
    assert pruned.chunks_removed == len(c_ids)
    assert pruned.chunks_embedded == 0
    assert pruned.chunks_total == len(before) - len(c_ids)
    after = stored(pipeline)
    assert set(after) == set(before) - c_ids
    assert {cid: r for cid, r in before.items() if cid not in c_ids} == after
    assert all(h.source != "c.md" for h in pipeline.retrieve("tea Camellia sinensis", retriever="hybrid",
                                                             top_k=10))


def test_prune_leaves_other_roots_alone(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                        tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.md").write_text("A note about lighthouse keepers and their lamps.")
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy, other])
    note_ids = ids_of(pipeline, "note.md")
    (corpus_copy / "a.md").unlink()
    report = pipeline.ingest([corpus_copy], prune=True)
    assert report.chunks_removed > 0
    assert ids_of(pipeline, "note.md") == note_ids
    assert ids_of(pipeline, "a.md") == set()


@pytest.mark.parametrize("name", ["dense", "bm25", "hybrid"])
def test_each_retriever_returns_complete_hits(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                              name: str) -> None:
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy])
    rows = stored(pipeline)
    hits = pipeline.retrieve("How do bees tell each other where flowers are? waggle dance", retriever=name,
                             top_k=3)
    assert 1 <= len(hits) <= 3
    assert hits[0].source == "a.md"
    assert "waggle dance" in hits[0].text
    for h in hits:
        assert isinstance(h, Hit)
        assert h.source in SOURCES
        assert h.page is None
        assert isinstance(h.score, float) and h.score > 0
        assert h.text == rows[h.chunk_id]["text"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    batch = pipeline.retrieve_batch(["waggle dance bees", "Mount Tambora 1815"], retriever=name, top_k=2)
    assert [b[0].source for b in batch] == ["a.md", "b.txt"]


def test_dense_scores_are_cosine_similarities(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                              embedder) -> None:
    """Checked against the model itself (not the memo the pipeline uses)."""
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy])
    question = "Which volcano buried Pompeii?"
    hits = pipeline.retrieve(question, retriever="dense", top_k=2)
    vectors = embedder.embed([question] + [h.text for h in hits])
    for h, v in zip(hits, vectors[1:], strict=True):
        assert h.score == pytest.approx(float(v @ vectors[0]), abs=1e-3)


def test_ask_answers_from_the_store(mode_pipeline: PipelineFactory, corpus_copy: Path) -> None:
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy])
    answer = pipeline.ask("Who brought tea drinking to the English royal court?", top_k=3)
    assert isinstance(answer, Answer)
    assert answer.generator == "extractive" and not answer.degraded
    assert "Catherine of Braganza" in answer.answer
    assert answer.citations and all(c.source in SOURCES for c in answer.citations)
    assert "c.md" in {c.source for c in answer.citations}
    assert {"retrieve", "generate", "total"} <= set(answer.timings)


def test_pdf_pages_reach_the_hits(mode_pipeline: PipelineFactory, tmp_path: Path) -> None:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "guide.pdf").write_bytes(make_pdf("Apples grow in orchards and are picked in autumn.",
                                                "Bananas grow on plantations in the tropics."))
    pipeline = mode_pipeline()
    report = pipeline.ingest([folder])
    assert report.files_ingested == ["guide.pdf"] and report.chunks_total == 2
    for name in ("dense", "bm25", "hybrid"):
        top = pipeline.retrieve("bananas plantations tropics", retriever=name, top_k=2)[0]
        assert (top.source, top.page) == ("guide.pdf", 2), name
        assert "Bananas" in top.text


def test_another_embedding_model_is_refused(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                            cached_embedder) -> None:
    pipeline = mode_pipeline()
    pipeline.ingest([corpus_copy])
    count = pipeline.store.count()
    other = mode_pipeline(embedder_=RenamedEmbedder(cached_embedder, "intfloat/e5-small-v2"))
    with pytest.raises(EmbeddingMismatchError) as info:
        other.ingest([corpus_copy])
    msg = str(info.value)
    assert "all-MiniLM-L6-v2" in msg and "intfloat/e5-small-v2" in msg
    assert pipeline.settings.store.collection in msg
    assert "AXIOM_COLLECTION" in msg  # says what to do
    assert info.value.exit_code == 2
    assert pipeline.store.count() == count
    # another collection name is the way out
    fresh = mode_pipeline(collection=f"{pipeline.settings.store.collection}-e5",
                          embedder_=RenamedEmbedder(cached_embedder, "intfloat/e5-small-v2"))
    assert fresh.ingest([corpus_copy]).chunks_total == count
    assert fresh.status()["embedding_model"] == "intfloat/e5-small-v2"


def test_querying_with_another_embedding_model_is_refused(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                                          cached_embedder) -> None:
    mode_pipeline().ingest([corpus_copy])
    other = mode_pipeline(embedder_=RenamedEmbedder(cached_embedder, "intfloat/e5-small-v2"))
    with pytest.raises(EmbeddingMismatchError):
        other.retrieve("bees", retriever="dense")


def test_status_before_and_after_ingest(mode_pipeline: PipelineFactory, corpus_copy: Path,
                                        store_mode: str) -> None:
    pipeline = mode_pipeline()
    cfg = pipeline.settings.store
    before = pipeline.status()
    expected = {"collection": cfg.collection, "exists": False, "chunks": 0, "sources": 0,
                "embedding_model": "all-MiniLM-L6-v2", "store": store_mode, "location": pipeline.store.where}
    assert expected.items() <= before.items(), before
    with pytest.raises(StoreError) as info:
        pipeline.retrieve("anything")
    assert "does not exist" in str(info.value) and "axiom ingest" in str(info.value)
    report = pipeline.ingest([corpus_copy])
    after = mode_pipeline().status()
    assert after["exists"] is True
    assert after["chunks"] == report.chunks_total
    assert after["sources"] == 3
    assert after["embedding_model"] == "all-MiniLM-L6-v2"
    if store_mode == "server":
        assert after["location"] == f"ChromaDB server 127.0.0.1:{cfg.port}"
    else:
        assert after["location"] == f"embedded ChromaDB at {cfg.path}"
        assert Path(cfg.path).is_dir()


def test_unreachable_server_names_host_and_port(make_settings: Callable, embedder) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        settings = make_settings(store={"host": "127.0.0.1", "port": port, "collection": "nowhere"})
        pipeline = RAGPipeline(settings, embedder, ChromaStore(settings.store))
        for call in (pipeline.status, lambda: pipeline.ingest(["."]), lambda: pipeline.retrieve("q"),
                     pipeline.store.heartbeat):
            with pytest.raises(StoreUnavailableError) as info:
                call()
            assert f"127.0.0.1:{port}" in str(info.value)
            assert "CHROMA_HOST" in str(info.value)


def test_silent_server_times_out_after_store_timeout(make_settings: Callable, cached_embedder) -> None:
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts TCP connections (kernel backlog) but never answers a byte
    port = listener.getsockname()[1]
    settings = make_settings(store={"host": "127.0.0.1", "port": port, "collection": "silent",
                                    "timeout_seconds": 1})
    store = ChromaStore(settings.store)
    _ = ChromaStore(make_settings().store).client  # import chromadb now, outside the timed call
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(store.count())
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    try:
        worker.start()
        worker.join(timeout=8)  # timeout_seconds=1, plus slack for a loaded machine
        finished = not worker.is_alive()
    finally:
        listener.close()  # resets the pending connection so the worker ends either way
        worker.join(timeout=30)
    assert finished, "a store call on a silent server did not give up within 8s (timeout_seconds=1)"
    assert isinstance(outcome[0], StoreUnavailableError) and f"127.0.0.1:{port}" in str(outcome[0])


def test_chromadb_http_timeouts_are_bounded(make_settings: Callable, chroma_server) -> None:  # noqa: ANN001
    """The canary of `store.bound_chromadb_http_timeouts`, the one use of chromadb internals (it has no public
    client timeout): if a chromadb upgrade moves the HttpClient's session, this fails instead of the store
    silently waiting forever on a hung server."""
    import httpx

    from axiom.store import bound_chromadb_http_timeouts

    settings = make_settings(store={"host": chroma_server.host, "port": chroma_server.port,
                                    "timeout_seconds": 3})
    client = ChromaStore(settings.store).client  # bounds its timeouts (a warning is logged if it cannot)
    session = client._server._session  # noqa: SLF001 (what the function relies on)
    assert isinstance(session, httpx.Client), (
        "chromadb moved the HttpClient's session: fix bound_chromadb_http_timeouts"
    )
    assert session.timeout == httpx.Timeout(18.0, connect=3.0)
    try:
        assert bound_chromadb_http_timeouts(client, connect=2.0, read=7.0) is True
        assert session.timeout == httpx.Timeout(7.0, connect=2.0)
    finally:  # chromadb shares the session between clients of one server: leave it as the store set it
        bound_chromadb_http_timeouts(client, connect=3.0, read=18.0)
    assert bound_chromadb_http_timeouts(object(), connect=1.0, read=1.0) is False


def test_two_roots_with_the_same_file_name_are_stable(mode_pipeline: PipelineFactory, tmp_path: Path) -> None:
    footer = "This handbook is maintained by the documentation team and reviewed every spring."
    roots = []
    for name, body in (("v1", "Version one explains the old lamp rotation mechanism in detail."),
                       ("v2", "Version two explains the new electric beacon and its sensors.")):
        root = tmp_path / name
        root.mkdir()
        (root / "README.md").write_text(f"{body}\n\n{footer}")
        roots.append(root)
    pipeline = mode_pipeline(chunking={"chunk_size": 100, "chunk_overlap": 0})
    first = pipeline.ingest(roots)
    assert first.files_ingested == ["README.md", "README.md"]
    second = pipeline.ingest(roots)
    assert second.chunks_embedded == 0
    assert second.files_unchanged == ["README.md", "README.md"]
