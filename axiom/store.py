"""ChromaDB, embedded or server: the only module that imports chromadb.

The collection records the embedding model and dimension it was built with; opening it with another model
raises EmbeddingMismatchError instead of mixing vectors. Every write is an idempotent upsert keyed by
content-hash chunk ids, batched to the client's maximum batch size. A `data_version` counter in the
collection metadata moves on every change so derived indexes (BM25) know when to rebuild.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from axiom.config import StoreSettings
from axiom.errors import EmbeddingMismatchError, StoreError, StoreUnavailableError
from axiom.types import Chunk, Hit

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

T = TypeVar("T")

log = logging.getLogger(__name__)

# The HNSW index of a new collection, searched wide enough that its top 100 (what hybrid fusion reads) is the
# exact top 100: with chromadb's defaults (ef_search 100, ef_construction 100) it was not (114 of 250 PubMedQA
# questions; recall@100 0.9905), and the graph differs from one fresh ingest to the next, so hybrid rankings
# of the same corpus changed between stores (5-9 of 250 questions). With these, 250 of 250 and the same
# rankings from every fresh store (tests/core/test_hnsw_exact.py). Existing collections keep the settings they
# were built with.
HNSW_CONFIGURATION = {"space": "cosine", "ef_search": 500, "ef_construction": 200}


def import_chromadb() -> ModuleType:
    """`import chromadb`, without the 3 s of grammar building it does not need.

    chromadb imports jsonschema (for its embedding functions' config schemas); jsonschema imports the optional
    `rfc3987_syntax` when it is installed (jupyter-events brings it), whose import builds an Earley parser of
    the IRI grammar: 2.9 of the 3.8 s that `import chromadb` takes here. Only jsonschema's "iri" *format*
    checker needs it, and nothing in chromadb or Axiom checks formats. So, when neither is imported yet, the
    module is marked absent while chromadb imports (jsonschema then leaves that one checker out, as it does
    when the package is not installed) and the mark is removed again: a later importer gets the real module.
    """
    if "chromadb" in sys.modules or "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import chromadb
        return chromadb
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import machinery: "not installed"
    try:
        import chromadb
    finally:
        del sys.modules["rfc3987_syntax"]
    return chromadb

_PAGE_SIZE = 5000
_MAX_RESULTS_PER_QUERY_CALL = 10_000


@dataclass(frozen=True)
class StoredChunk:
    id: str
    metadata: dict[str, Any]
    text: str | None = None


def _included(column: list[T] | None) -> list[T]:
    """A column of a chromadb result that the call's `include` named: chromadb types every column optional,
    but an included one is always there (not checked: a missing one fails in `zip` as before)."""
    return cast("list[T]", column)


def _hit(chunk_id: str, text: str | None, meta: Mapping[str, Any] | None,  # boundary: chromadb metadata
         score: float) -> Hit:
    meta = meta or {}
    page = meta.get("page")
    return Hit(chunk_id=chunk_id, source=str(meta.get("source", "")),
               page=int(page) if page is not None else None,
               score=float(score), text=text or "")


def chunk_metadata(chunk: Chunk, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": chunk.source, "chunk_index": chunk.chunk_index, "start": chunk.start,
                            "end": chunk.end, "doc_hash": chunk.doc_hash, **(extra or {})}
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def bound_chromadb_http_timeouts(client: object, *, connect: float, read: float) -> bool:
    """Set connect and read timeouts on a `chromadb.HttpClient`; False when it cannot (nothing was changed).

    Why private internals: chromadb (1.5.x) builds the HttpClient's `httpx.Client` with `timeout=None` (wait
    forever) and has no public way to set it: `HttpClient()` takes no timeout or http client, and the timeouts
    in `chromadb.config.Settings` (`chroma_*_request_timeout_seconds`) are the server's. So this reaches the
    session at `client._server._session`, in this one place; tests/core/test_store_pipeline.py
    (`test_chromadb_http_timeouts_are_bounded`) fails if a chromadb upgrade moves it. Replace this with the
    public setting if chromadb ever offers one."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        return False
    session.timeout = httpx.Timeout(read, connect=connect)
    return True


class ChromaStore:
    """One ChromaDB collection plus the client that reaches it."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._client: ClientAPI | None = None
        self._collection: Collection | None = None
        self._max_batch: int | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        if self.settings.mode == "server":
            return f"ChromaDB server {self.settings.host}:{self.settings.port}"
        return f"embedded ChromaDB at {self.settings.path}"

    @property
    def client(self) -> ClientAPI:
        if self._client is None:
            chromadb = import_chromadb()
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            try:
                if self.settings.mode == "server":
                    self._check_server()
                    client = chromadb.HttpClient(host=self.settings.host, port=self.settings.port,
                                                 settings=chroma_settings)
                    # connect: timeout_seconds; read: six times that (large batched queries take longer)
                    t = self.settings.timeout_seconds
                    if not bound_chromadb_http_timeouts(client, connect=t, read=6 * t):
                        log.warning("cannot bound the ChromaDB client's HTTP timeouts (chromadb internals "
                                    "changed); a silent server can hang a store call")
                    self._client = client
                else:
                    self._client = chromadb.PersistentClient(path=self.settings.path,
                                                             settings=chroma_settings)
            except StoreError:  # the heartbeat's own error already names the server: not wrapped again
                raise
            except Exception as exc:  # chromadb raises ValueError/ConnectionError/httpx errors
                raise StoreUnavailableError(f"cannot reach {self.where}: {exc}",
                                            hint="check CHROMA_HOST/CHROMA_PORT or CHROMA_PATH") from exc
        return self._client

    def _check_server(self) -> None:
        """Fail fast, within `timeout_seconds`, when the server does not answer its heartbeat."""
        import httpx

        url = f"http://{self.settings.host}:{self.settings.port}/api/v2/heartbeat"
        try:
            httpx.get(url, timeout=self.settings.timeout_seconds).raise_for_status()
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"cannot reach {self.where}: {type(exc).__name__}: {exc}",
                hint="check CHROMA_HOST/CHROMA_PORT and that the server runs",
            ) from exc

    def _call(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run one ChromaDB call, turning its errors into StoreErrors that name the store."""
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            kind = type(exc).__name__
            text = str(exc)
            unreachable = any(s in (kind + text).lower()
                              for s in ("connect", "timeout", "refused", "unavailable"))
            cls = StoreUnavailableError if unreachable else StoreError
            if unreachable:
                self._client = None
                self._collection = None
            raise cls(f"{what} failed on {self.where}: {kind}: {text}") from exc

    def heartbeat(self) -> int:
        return int(self._call("heartbeat", lambda: self.client.heartbeat()))

    # -- collection -------------------------------------------------------------------------------
    def get_collection(self) -> Collection | None:
        """The collection, or None when it does not exist yet (never creates it)."""
        if self._collection is not None:
            return self._collection

        def fetch() -> Collection | None:
            try:
                return self.client.get_collection(self.settings.collection)
            except Exception as exc:
                if "does not exist" in str(exc) or type(exc).__name__ in (
                    "NotFoundError",
                    "InvalidCollectionException",
                ):
                    return None
                raise

        self._collection = self._call("get_collection", fetch)
        return self._collection

    def open(self, model_id: str, dimension: int | None) -> Collection:
        """Get or create the collection for `model_id`; refuse one built with another model."""
        collection = self.get_collection()
        if collection is not None:
            meta = collection.metadata or {}
            stored = meta.get("embedding_model")
            if stored and stored != model_id:
                raise EmbeddingMismatchError(
                    f"collection {self.settings.collection!r} on {self.where} was built with embedding model "
                    f"{stored!r}, not {model_id!r}",
                    hint="use the same EMBEDDING_MODEL, or another AXIOM_COLLECTION for the new model",
                )
            stored_dim = meta.get("embedding_dimension")
            if dimension is not None and stored_dim is not None and int(stored_dim) != dimension:
                raise EmbeddingMismatchError(
                    f"collection {self.settings.collection!r} holds {stored_dim}-dimensional vectors, "
                    f"the model gives {dimension}")
            return collection
        if dimension is None:
            raise self.missing_collection_error()
        self._collection = self._call(
            "create_collection", self.client.get_or_create_collection,
            name=self.settings.collection,
            embedding_function=None,
            configuration={"hnsw": HNSW_CONFIGURATION},
            metadata={"embedding_model": model_id, "embedding_dimension": int(dimension), "data_version": 0},
        )
        return self._collection

    def require(self) -> Collection:
        collection = self.get_collection()
        if collection is None:
            raise self.missing_collection_error()
        return collection

    def list_collections(self) -> list[str]:
        """The names of the collections in this store, sorted (neither opens nor creates the configured
        one)."""
        listed = self._call("list_collections", lambda: self.client.list_collections())
        return sorted(c if isinstance(c, str) else c.name for c in listed)

    def missing_collection_error(self, *, shown: int = 20) -> StoreError:
        """The configured collection does not exist: name the ones that do and how to use one."""
        names = self.list_collections()
        if names:
            listed = ", ".join(names[:shown]) + (f" (and {len(names) - shown} more)" if len(names) > shown
                                                 else "")
            return StoreError(f"collection {self.settings.collection!r} does not exist on {self.where}; "
                              f"collections there: {listed}",
                              hint="choose one with --collection NAME (or AXIOM_COLLECTION), e.g. `axiom "
                                   f"query --collection {names[0]} QUESTION`, or run `axiom ingest PATH`")
        return StoreError(f"collection {self.settings.collection!r} does not exist on {self.where}; "
                          "no collections there", hint="run `axiom ingest PATH` first")

    @property
    def embedding_model(self) -> str | None:
        collection = self.get_collection()
        return (collection.metadata or {}).get("embedding_model") if collection is not None else None

    def data_version(self) -> int:
        """Moves whenever chunks are added or removed (read fresh from the server each call)."""
        self._collection = None
        collection = self.get_collection()
        if collection is None:
            return -1
        return int((collection.metadata or {}).get("data_version", 0))

    def _bump_version(self) -> None:
        collection = self.require()
        meta = dict(collection.metadata or {})
        meta["data_version"] = int(meta.get("data_version", 0)) + 1
        self._call("modify", collection.modify, metadata=meta)

    def count(self) -> int:
        collection = self.get_collection()
        return 0 if collection is None else int(self._call("count", collection.count))

    # -- writes -----------------------------------------------------------------------------------
    @property
    def max_batch_size(self) -> int:
        if self._max_batch is None:
            self._max_batch = int(self._call("get_max_batch_size", self.client.get_max_batch_size))
        return self._max_batch

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray,
               extra: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> None:
        """Write chunks with their vectors; `extra` is metadata for all chunks, or one dict per chunk."""
        if not chunks:
            return
        if len(chunks) != len(vectors):
            raise StoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        extras = [extra or {}] * len(chunks) if extra is None or isinstance(extra, dict) else list(extra)
        collection = self.require()
        batch = self.max_batch_size
        for i in range(0, len(chunks), batch):
            part = chunks[i:i + batch]
            metadatas = [chunk_metadata(c, e) for c, e in zip(part, extras[i:i + batch], strict=True)]
            self._call("upsert", collection.upsert, ids=[c.id for c in part], embeddings=vectors[i:i + batch],
                       documents=[c.text for c in part], metadatas=metadatas)
        self._bump_version()

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Rewrite the metadata of chunks whose text (and so vector) is unchanged."""
        if not ids:
            return
        collection = self.require()
        batch = self.max_batch_size
        for i in range(0, len(ids), batch):
            self._call("update", collection.update, ids=list(ids[i:i + batch]),
                       metadatas=list(metadatas[i:i + batch]))

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        collection = self.require()
        batch = self.max_batch_size
        for i in range(0, len(ids), batch):
            self._call("delete", collection.delete, ids=list(ids[i:i + batch]))
        self._bump_version()

    # -- reads ------------------------------------------------------------------------------------
    def iter_chunks(self, *, with_text: bool = False) -> Iterator[StoredChunk]:
        """Every stored chunk (id, metadata, optionally text), paged."""
        collection = self.get_collection()
        if collection is None:
            return
        include = ["metadatas", "documents"] if with_text else ["metadatas"]
        offset = 0
        while True:
            page = self._call("get", collection.get, include=include, limit=_PAGE_SIZE, offset=offset)
            ids = page["ids"]
            docs: Sequence[str | None] = page.get("documents") or [None] * len(ids)
            for cid, meta, text in zip(ids, _included(page["metadatas"]), docs, strict=True):
                yield StoredChunk(cid, dict(meta or {}), text)
            if len(ids) < _PAGE_SIZE:
                return
            offset += len(ids)

    def query(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Nearest chunks for each query vector; score = cosine similarity (1 - distance)."""
        collection = self.require()
        if len(vectors) == 0:
            return []
        out: list[list[Hit]] = []
        # ChromaDB resolves all results of one call in a single SQL statement: keep queries x k under SQLite's
        # variable limit (32,766) by querying in groups
        group = max(1, _MAX_RESULTS_PER_QUERY_CALL // k)
        for i in range(0, len(vectors), group):
            result = self._call("query", collection.query, query_embeddings=vectors[i:i + group], n_results=k,
                                include=["metadatas", "documents", "distances"])
            for ids, docs, metas, dists in zip(result["ids"], _included(result["documents"]),
                                               _included(result["metadatas"]), _included(result["distances"]),
                                               strict=True):
                out.append([_hit(cid, doc, meta, 1.0 - float(dist))
                            for cid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True)])
        return out

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are stored (looked up by id, in batches; no metadata or text is read)."""
        collection = self.get_collection()
        if collection is None or not ids:
            return set()
        found: set[str] = set()
        batch = self.max_batch_size
        for i in range(0, len(ids), batch):
            page = self._call("get", collection.get, ids=list(ids[i:i + batch]), include=[])
            found.update(page["ids"])
        return found

    def get(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        collection = self.require()
        if not ids:
            return {}
        page = self._call("get", collection.get, ids=list(ids), include=["metadatas", "documents"])
        return {cid: StoredChunk(cid, dict(meta or {}), text)
                for cid, meta, text in zip(page["ids"], _included(page["metadatas"]),
                                            _included(page["documents"]), strict=True)}

    def drop(self) -> None:
        """Delete the whole collection (used by benchmarks and tests)."""
        if self.get_collection() is not None:
            self._call("delete_collection", self.client.delete_collection, self.settings.collection)
        self._collection = None
