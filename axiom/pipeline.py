"""Wires the stages from settings: `RAGPipeline.from_settings(settings)`, then `.ingest()`, `.retrieve()`,
`.ask()`. The CLI, the service and the notebooks all drive this class.

Incremental ingest: every stored chunk carries its file's content hash, the chunker signature and the
file's chunk count. A file whose stored chunks all match and are all present is unchanged (not even
parsed). Otherwise it is re-chunked, only chunks whose ids (content hashes) are not stored yet are
embedded, and stale ones are deleted after the new ones are written. Because the store itself is the
record of what is done, an ingest killed at any point is completed by running it again: no duplicates
(ids are content hashes) and no orphans (stale ids are computed from the store).

Ingest reads (and chunks) up to `PLAN_CHUNKS` new chunks before it embeds them, `FLUSH_CHUNKS` per write
(`EMBED_SLICE` per embedding call, or the embedder's own `texts_per_call` when it has one), so its
progress (`axiom.progress`, on stderr) counts chunks embedded against a total known before the embedding
starts (for a larger corpus the total grows as more files are read). A root that does not exist is a
`UsageError` raised before anything is opened or written.

Model load: a local embedding model loads lazily, on first use (seconds). `warm_up()` loads it outside any
timed stage: `ask()` reports it as `timings["model_load"]` (once, on the answer that paid for it) and ingest
leaves it out of `IngestReport.seconds`; `model_load_seconds` is what this pipeline spent loading it. Likewise
the store's first connection is `timings["store_connect"]`; neither is part of `retrieve` or `total`.

Embedding memo: questions (retrieval, then the extractive generator) and answer sentences (the same chunks
come back for many questions) go through `query_embedder`, an `axiom.embeddings.CachingEmbedder` made by
`caching_embedder` (the embedder given when it is one already). Whether ingest's chunk vectors go through it
too is the caller's explicit choice, `cache_chunk_vectors`: off (the CLI's ingest, the service, Ray,
benchmarks), a chunk goes to the model itself (it is embedded once anyway; its vector is not worth keeping in
memory); on (an evaluation run, a notebook session: they share one memo across runs), it goes through the memo
and the persistent cache, so a corpus re-ingested into another collection (a sweep) embeds nothing again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axiom.chunking import chunk_document, chunker_signature
from axiom.config import TOP_K_RANGE, Settings
from axiom.documents import SourceFile, find_sources, parse, read_bytes, sha256_bytes
from axiom.embeddings import (
    CachingEmbedder,
    Embedder,
    caching_embedder,
    make_embedder,
    uncached,
)
from axiom.errors import DocumentError, UsageError
from axiom.generation import Generator, fit_contexts, make_generator
from axiom.observability import stage
from axiom.openai_embedder import OpenAIEmbedder
from axiom.progress import Progress
from axiom.retrieval import RETRIEVERS, Retriever
from axiom.source_tree import RootDir
from axiom.store import ChromaStore, chunk_metadata
from axiom.types import Answer, Chunk, Hit, IngestReport, SkippedFile

log = logging.getLogger(__name__)

FLUSH_CHUNKS = 1024  # chunks embedded and written per batch during ingest
EMBED_SLICE = 256  # chunks per embedding call during ingest (how often the progress moves)
PLAN_CHUNKS = 20_000  # new chunks read ahead of the embedding (the progress total; bounds the memory held)
QUERY_MEMO = 50_000  # question and answer-sentence vectors kept (at most ~80 MB with 384 dimensions)


@dataclass
class _Pending:
    chunks: list[Chunk] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)
    queued_ids: set[str] = field(default_factory=set)  # ids of `chunks`, so a duplicate is not queued twice

    def add(self, chunk: Chunk, extra: dict[str, Any]) -> None:
        if chunk.id not in self.queued_ids:
            self.queued_ids.add(chunk.id)
            self.chunks.append(chunk)
            self.extra.append(extra)


def _require_roots(paths: Sequence[str | Path]) -> None:
    """Every path given to ingest must exist (a typo must not look like an empty corpus)."""
    missing = []
    for path in paths:
        try:
            if not Path(path).exists():
                missing.append(str(path))
        except OSError:
            # cannot tell (a name too long, no permission): discovery reports it as a skipped path
            continue
    if missing:
        raise UsageError("; ".join(f"{path} does not exist" for path in missing),
                         hint="give existing files or folders; nothing was ingested")


class RAGPipeline:
    def __init__(self, settings: Settings, embedder: Embedder, store: ChromaStore,
                 generator: Generator | None = None, *, cache_chunk_vectors: bool = False) -> None:
        self.settings = settings
        self.embedder = embedder
        # the one memo (memory, then the persistent cache of the settings)
        self.query_embedder: CachingEmbedder = caching_embedder(settings, embedder, max_entries=QUERY_MEMO)
        # what ingest embeds chunks with: the memo, or the model under it (see the module docstring)
        self.chunk_embedder: Embedder = self.query_embedder if cache_chunk_vectors else uncached(embedder)
        self.store = store
        self._generator = generator
        self._retrievers: dict[str, Retriever] = {}
        self._warm = self._connected = False
        self.model_load_seconds = 0.0  # spent loading the embedding model (by warm_up)

    @classmethod
    def from_settings(cls, settings: Settings) -> RAGPipeline:
        embedder = make_embedder(settings.embeddings, settings.generation)
        return cls(settings, embedder, ChromaStore(settings.store))

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = make_generator(self.settings.generation, self.query_embedder,
                                             redact_llm_input=self.settings.pii.redact_llm_input)
        return self._generator

    def warm_up(self) -> float | None:
        """Load the embedding model now, outside any timed stage. Returns the seconds it took, or None when
        there was nothing to do (loaded already, or a remote model: no load, and no probe request is sent)."""
        if self._warm:
            return None
        if isinstance(self.query_embedder.inner, OpenAIEmbedder):
            self._warm = True
            return None
        t0 = time.perf_counter()
        self.query_embedder.warm_up()
        seconds = time.perf_counter() - t0
        self._warm = True
        self.model_load_seconds += seconds
        log.info("embedding model %s loaded in %.2fs", self.embedder.model_id, seconds)
        return seconds

    # -- ingest -----------------------------------------------------------------------------------
    def _open_for_write(self) -> None:
        existing = self.store.get_collection()
        if existing is None:  # only load the model (for its dimension) when the collection must be created
            self.warm_up()
        self.store.open(self.embedder.model_id, None if existing is not None else self.embedder.dimension)

    def _stored_index(self) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
        by_file: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for c in self.store.iter_chunks():
            by_file[(str(c.metadata.get("root", "")),
                     str(c.metadata.get("source", "")))].append((c.id, c.metadata))
        return by_file

    def _flush(self, pending: _Pending, report: IngestReport, shown: Progress) -> None:
        """Embed and write the pending chunks (`FLUSH_CHUNKS` per write), then delete the stale ones."""
        per_call, per_write = EMBED_SLICE, FLUSH_CHUNKS
        if pending.chunks:
            self.warm_up()  # a lazy model load is not ingest time
            shown.announce("embedding")
            # an embedder that spreads one call over several workers (axiom.distributed's RayEmbedder) says
            # how many texts keep them all busy; a write then holds at least one such call
            wanted = getattr(self.embedder, "texts_per_call", None)
            if wanted:  # a local embedder keeps EMBED_SLICE per call and FLUSH_CHUNKS per write
                per_call = max(1, int(wanted))
                per_write = max(FLUSH_CHUNKS, per_call)
        for i in range(0, len(pending.chunks), per_write):
            part, extra = pending.chunks[i:i + per_write], pending.extra[i:i + per_write]
            vectors = []
            for j in range(0, len(part), per_call):
                vectors.append(self.chunk_embedder.embed([c.text for c in part[j:j + per_call]]))
                shown.update(len(vectors[-1]))
            report.chunks_embedded += len(part)
            self.store.upsert(part, np.concatenate(vectors), extra)
            report.chunks_added += len(part)
        if pending.stale_ids:
            self.store.delete(pending.stale_ids)
            report.chunks_removed += len(pending.stale_ids)
        pending.chunks.clear()
        pending.extra.clear()
        pending.stale_ids.clear()
        pending.queued_ids.clear()

    def ingest(self, paths: Iterable[str | Path], *, prune: bool = False, progress: bool | None = None,
               within: RootDir | None = None) -> IngestReport:
        """Ingest files and folders (recursive). Unreadable files are skipped and listed with a reason; a path
        that does not exist is a UsageError, before anything is written. `progress`: chunks embedded, on
        stderr (`axiom.progress.progress_mode`: None shows it except in a notebook kernel, False never).
        `within`: an open folder (the service's data root) that every path is resolved and read beneath, by
        descriptor, never following a symlink out of it (`axiom.documents.find_sources`)."""
        t0, loaded_before = time.perf_counter(), self.model_load_seconds
        paths = list(paths)
        if not paths:
            raise UsageError("nothing to ingest: give at least one file or folder")
        if within is None:
            _require_roots(paths)
        cfg = self.settings
        found = find_sources(paths, cfg.ingest.extensions, follow_symlinks=cfg.ingest.follow_symlinks,
                             within=within)
        report = IngestReport(files_skipped=list(found.skipped))
        with Progress("ingest", unit="chunk", verb="embedded", enabled=progress) as shown:
            stored = self._ingest_files(found.files, report, shown)
        if prune:
            report.chunks_removed += self._prune({str(p) for p in found.folders},
                                                 {(str(f.root), f.source) for f in found.files}, stored)
        report.chunks_total = self.store.count()
        report.seconds = time.perf_counter() - t0 - (self.model_load_seconds - loaded_before)
        log.info("ingest: %d ingested, %d unchanged, %d skipped; +%d -%d chunks, %d total in %.2fs",
                 len(report.files_ingested), len(report.files_unchanged), len(report.files_skipped),
                 report.chunks_added, report.chunks_removed, report.chunks_total, report.seconds)
        return report

    def _ingest_files(self, files: Sequence[SourceFile], report: IngestReport, shown: Progress
                      ) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
        """Read, chunk, embed and write the files; returns what was stored before (for pruning)."""
        cfg = self.settings
        signature = chunker_signature(cfg.chunking.chunk_size, cfg.chunking.chunk_overlap)
        self._open_for_write()
        stored = self._stored_index()
        pending = _Pending()
        shown.announce(f"reading {len(files)} file(s)")
        for file in files:
            key = (str(file.root), file.source)
            try:
                data = read_bytes(file, cfg.ingest.max_file_size_mb)
            except DocumentError as exc:
                report.files_skipped.append(SkippedFile(exc.path, exc.reason))
                continue
            digest = sha256_bytes(data)
            existing = stored.get(key, [])
            if existing and all(m.get("doc_hash") == digest and m.get("chunker") == signature
                                and m.get("n_chunks") == len(existing) for _, m in existing):
                report.files_unchanged.append(file.source)
                continue
            try:
                chunks = chunk_document(parse(file, data, digest), cfg.chunking.chunk_size,
                                        cfg.chunking.chunk_overlap)
            except DocumentError as exc:
                report.files_skipped.append(SkippedFile(exc.path, exc.reason))
                continue
            extra = {"root": str(file.root), "chunker": signature, "n_chunks": len(chunks)}
            have = {cid for cid, _ in existing}
            new_ids = {c.id for c in chunks}
            kept = [c for c in chunks if c.id in have]
            if kept:  # same text, new position or file hash: rewrite metadata only, no embedding
                self.store.update_metadata([c.id for c in kept], [chunk_metadata(c, extra) for c in kept])
            queued = len(pending.chunks)
            for c in chunks:
                if c.id not in have:
                    pending.add(c, extra)
            shown.add_total(len(pending.chunks) - queued)
            pending.stale_ids.extend(cid for cid in have if cid not in new_ids)
            report.files_ingested.append(file.source)
            if len(pending.chunks) >= PLAN_CHUNKS:
                self._flush(pending, report, shown)
        self._flush(pending, report, shown)
        return stored

    def _prune(self, roots: set[str], present: set[tuple[str, str]],
               stored: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]) -> int:
        """Delete the chunks of files under the folders given (`roots`, their real paths) that are gone."""
        gone = [cid for (root, source), entries in stored.items()
                if root in roots and (root, source) not in present for cid, _ in entries]
        self.store.delete(gone)
        return len(gone)

    def index_records(self, records: Sequence[tuple[str, str]], *, batch: int = FLUSH_CHUNKS) -> int:
        """Index (id, text) records whole, without chunking (BEIR benchmarks). Returns how many were
        embedded."""
        self._open_for_write()
        # look up only these ids (listing the whole collection cost a full scan on every call)
        have = self.store.existing_ids([rid for rid, _ in records])
        todo = [(rid, text) for rid, text in records if rid not in have]
        for i in range(0, len(todo), batch):
            part = todo[i:i + batch]
            chunks = [Chunk(id=rid, text=text, source=rid, page=None, chunk_index=0, start=0, end=len(text),
                            doc_hash=hashlib.sha256(text.encode()).hexdigest()) for rid, text in part]
            vectors = self.chunk_embedder.embed([c.text for c in chunks])
            self.store.upsert(chunks, vectors, {"root": "records"})
        return len(todo)

    # -- retrieval and answers --------------------------------------------------------------------
    def retriever(self, name: str | None = None) -> Retriever:
        name = name or self.settings.retrieval.retriever
        if name not in RETRIEVERS:
            raise UsageError(f"unknown retriever {name!r}; expected one of: {', '.join(RETRIEVERS)}")
        if name not in self._retrievers:
            if name == "hybrid":  # share the dense and bm25 retrievers
                self.retriever("dense")
                self.retriever("bm25")
            self._retrievers[name] = RETRIEVERS[name](self.store, self.query_embedder,
                                                      self.settings.retrieval,
                                                      self._retrievers)
        return self._retrievers[name]

    def _top_k(self, top_k: int | None) -> int:
        """The settings' top_k (validated when the face built them), or a caller's own count of hits (a
        request's top_k, a retrieval depth) held to the same limit, `config.TOP_K_RANGE`."""
        if top_k is None:
            return self.settings.retrieval.top_k
        low, high = TOP_K_RANGE
        if not low <= top_k <= high:
            raise UsageError(f"top_k must be between {low} and {high}, got {top_k}")
        return top_k

    def _open_for_read(self) -> None:
        """The collection must exist and hold vectors of this pipeline's embedding model."""
        self.store.open(self.embedder.model_id, None)

    def retrieve(self, question: str, *, top_k: int | None = None, retriever: str | None = None) -> list[Hit]:
        return self.retrieve_batch([question], top_k=top_k, retriever=retriever)[0]

    def retrieve_batch(self, questions: Sequence[str], *, top_k: int | None = None,
                       retriever: str | None = None
                       ) -> list[list[Hit]]:
        """Retrieval for many questions at once (one batched embedding call)."""
        self._open_for_read()
        questions = list(questions)
        chosen = self.retriever(retriever)
        k = self._top_k(top_k)
        by_vectors = getattr(chosen, "retrieve_vectors", None)
        if by_vectors is None:  # lexical: no embedding
            return chosen.retrieve_batch(questions, k)
        return by_vectors(questions, self.query_embedder.embed(questions), k)

    def prepare_answers(self, hit_lists: Sequence[Sequence[Hit]]) -> int:
        """Before answering many questions one by one: let the generator do its embedding for all of them in
        one batch (the extractive generator's sentences). Returns the texts embedded ahead."""
        budget = self.settings.generation.context_token_budget
        return self.generator.prepare([fit_contexts(hits, budget, self.embedder.count_tokens)
                                       for hits in hit_lists])

    def answer(self, question: str, hits: Sequence[Hit]) -> Answer:
        """Generate an answer from already retrieved hits (fitted to the context token budget)."""
        with stage("generate") as timer:
            contexts = fit_contexts(hits, self.settings.generation.context_token_budget,
                                    self.embedder.count_tokens)
            answer = self.generator.generate(question, contexts)  # a question retrieval embedded: a memo hit
        answer.timings["generate"] = timer.seconds
        return answer

    def ask(self, question: str, *, top_k: int | None = None, retriever: str | None = None) -> Answer:
        """Retrieve and answer. `top_k` / `retriever`: one call's own choice (a service request, validated
        there); None, as every other face passes, takes the settings this pipeline was built with."""
        if not question or not question.strip():
            raise UsageError("the question is empty")
        try:  # a lone surrogate (JSON "\ud800", undecodable argv bytes) would crash the tokenizer
            question.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError("the question is not valid Unicode text (unpaired surrogate "
                             f"at character {exc.start})"
                             ) from None
        with stage("total") as total:
            # (errors are counted at this stage, the one-off costs' included)
            with stage("retrieve") as retrieved:
                # the store first: a missing collection fails before the model loads
                connect = self._connect()
                model_load = self.warm_up()
                hits = self.retrieve(question, top_k=top_k, retriever=retriever)
            answer = self.answer(question, hits)
        once = (connect or 0.0) + (model_load or 0.0)  # one-off costs of a new pipeline: reported apart
        answer.timings["retrieve"] = retrieved.seconds - once
        answer.timings["total"] = total.seconds - once
        for name, seconds in (("model_load", model_load), ("store_connect", connect)):
            if seconds is not None:
                answer.timings[name] = seconds
        return answer

    def _connect(self) -> float | None:
        """Open the collection the first time (importing chromadb and starting its client take seconds); the
        seconds it took, None afterwards. Raises when the collection is missing or of another model."""
        if self._connected:
            return None
        t0 = time.perf_counter()
        self._open_for_read()
        self._connected = True
        return time.perf_counter() - t0

    def status(self) -> dict[str, Any]:
        collection = self.store.get_collection()
        sources = {(c.metadata.get("root"), c.metadata.get("source")) for c in self.store.iter_chunks()}
        return {
            "collection": self.settings.store.collection,
            "exists": collection is not None,
            "chunks": self.store.count(),
            "sources": len(sources),
            "embedding_model": self.store.embedding_model or self.embedder.model_id,
            "store": self.settings.store.mode,
            "location": self.store.where,
        }
