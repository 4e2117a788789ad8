"""kill -9 in the middle of an ingest, then ingest again: the store ends up exactly like a clean ingest.

Runs against the real `chroma run` server so the test can watch the store fill up over HTTP while another
process writes to it (two processes opening one embedded store path is not safe in chromadb).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from axiom.chunking import chunk_document
from axiom.config import Settings
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore
from tests.core.conftest import unique_collection
from tests.support.documents import load_documents

REPO = Path(__file__).resolve().parents[2]
CHUNKING = {"chunk_size": 200, "chunk_overlap": 40}
N_FILES = 300
# chunks per embed-and-write batch in the killed process: several batches, so a midway state exists
FLUSH = 128

INGEST_SCRIPT = f"""
import json, sys
import axiom.pipeline
from axiom.config import load_settings
from axiom.pipeline import RAGPipeline
assert isinstance(axiom.pipeline.FLUSH_CHUNKS, int)
axiom.pipeline.FLUSH_CHUNKS = {FLUSH}
settings = load_settings(environ={{}}, overrides=json.loads(sys.argv[1]))
print("ready", flush=True)
report = RAGPipeline.from_settings(settings).ingest([sys.argv[2]], progress=False)
print(json.dumps(report.to_dict()), flush=True)
"""


def make_corpus(root: Path, vocabulary: list[str]) -> None:
    """300 files of 2-4 short paragraphs of English words (few tokens each: cheap to embed); each paragraph
    fits in one chunk, two never do (~900 chunks)."""
    rnd = random.Random(7)

    def sentence() -> str:
        words = [rnd.choice(vocabulary) for _ in range(rnd.randint(6, 10))]
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    for i in range(N_FILES):
        folder = root / f"part{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        paragraphs = []
        for _ in range(2 + i % 3):
            text = sentence()
            while len(text) < 110:
                text += " " + sentence()
            paragraphs.append(text[:190].rsplit(" ", 1)[0] + ".")
        (folder / f"doc{i:03d}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")


def snapshot(pipeline: RAGPipeline) -> dict[str, dict[str, Any]]:
    keys = ("source", "root", "doc_hash", "n_chunks", "chunker", "start", "end", "chunk_index")
    rows: dict[str, dict[str, Any]] = {}
    for c in pipeline.store.iter_chunks(with_text=True):
        assert c.id not in rows, f"duplicate id {c.id}"
        rows[c.id] = {**{k: c.metadata.get(k) for k in keys}, "text": c.text}
    return rows


@pytest.mark.timeout(600)
def test_ingest_killed_midway_is_completed_by_the_next_ingest(
        tmp_path: Path, chroma_server, make_settings, cached_embedder, tiny_corpus: Path,
        server_collections: list[dict[str, Any]]) -> None:
    vocabulary = sorted({w.lower() for f in tiny_corpus.iterdir() for w in f.read_text().split()
                         if w.isalpha() and len(w) > 2})
    assert len(vocabulary) > 150
    corpus = tmp_path / "corpus"
    make_corpus(corpus, vocabulary)
    docs, skipped = load_documents([corpus])
    assert skipped == [] and len(docs) == N_FILES
    expected_ids = {c.id for d in docs for c in chunk_document(d, **CHUNKING)}
    total = len(expected_ids)
    assert 850 <= total <= 1200 and total > 3 * FLUSH

    def server_settings(collection: str) -> Settings:
        store = {"host": chroma_server.host, "port": chroma_server.port, "collection": collection}
        server_collections.append(store)
        return make_settings(store=store, chunking=CHUNKING)

    settings = server_settings(unique_collection())
    overrides = {"store": {**settings.store.model_dump(), "bm25_dir": str(tmp_path / "bm25")},
                 "chunking": CHUNKING}
    watcher = ChromaStore(settings.store)

    env = {**os.environ, "PYTHONPATH": str(REPO), "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, json.dumps(overrides), str(corpus)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            count = watcher.count()
            if not seen or seen[-1] != count:
                seen.append(count)
            if 0 < count < total:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"the ingest was not caught midway (counts seen: {seen}); "
        f"rc={proc.returncode}\n{out[-500:]}\n{err[-2000:]}")
    assert "ready" in out and '"chunks_total"' not in out  # it really died before finishing

    left = watcher.count()
    assert 0 < left < total, seen

    # the next ingest completes the work: only the missing chunks are embedded
    resumed = RAGPipeline(settings, cached_embedder, ChromaStore(settings.store))
    report = resumed.ingest([corpus])
    assert report.files_skipped == []
    assert len(report.files_ingested) + len(report.files_unchanged) == N_FILES
    assert report.files_unchanged, "files fully written before the kill must not be redone"
    assert report.chunks_embedded == total - left
    assert report.chunks_removed == 0
    assert report.chunks_total == total

    # ... and the store now equals a clean ingest of the same corpus into a fresh collection
    clean_settings = server_settings(unique_collection())
    clean = RAGPipeline(clean_settings, cached_embedder, ChromaStore(clean_settings.store))
    clean_report = clean.ingest([corpus])
    assert clean_report.chunks_total == total
    after_kill, reference = snapshot(resumed), snapshot(clean)
    assert set(after_kill) == set(reference) == expected_ids
    assert resumed.store.count() == clean.store.count() == total
    assert after_kill == reference

    # stable from there on, and searchable
    again = resumed.ingest([corpus])
    assert again.chunks_embedded == 0 and len(again.files_unchanged) == N_FILES
    some_text = reference[next(iter(sorted(reference)))]["text"]
    hits = resumed.retrieve(some_text, retriever="dense", top_k=1)
    assert hits[0].text == some_text
