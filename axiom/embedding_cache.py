"""The persistent embedding cache: float32 vectors in one SQLite file, keyed by (model key, sha256 of the
text).

The second level of `axiom.embeddings.CachingEmbedder` (memory miss -> this file -> the model): a question,
reference, answer or sentence embedded by one process is not embedded again by the next. With
`axiom.embedding_cache_file` (which opens and checks the file) the only module that touches the file. Texts
are never stored, only their sha256.

- Model key: names what produced the vectors (provider, model, backend, a fingerprint of the weights,
  dimension; `axiom.embedding_keys`). A vector is only returned for its key, and only if it has the dimension
  asked for.
- Bounded: when the file's live pages exceed `max_bytes`, least recently used rows go (down to 90%).
  `last_used` is written with the rows and, for hits, in batches (`TOUCH_BATCH`, at the next write, at close).
- Concurrent: WAL journal, busy timeout, short transactions; one connection per process (a new one after a
  fork), shared by its threads under a lock. Writers of several processes wait for each other: nothing is
  lost.
- Robust: an error never reaches the caller. A file that is not a database is moved aside
  (`*.corrupt-<time>`, one warning) and a new one made; any other failure (locked too long, disk full,
  permissions) logs one warning and the call goes on without the cache. The folder and file are checked by
  descriptor before SQLite opens them (`axiom.private_files`): a folder that is a symlink, or that others
  could change (writable by others, another user's, under a parent others may write to), is refused, as is a
  file that is a symlink or not this user's; folders are made 0700, the file 0600; the descriptor SQLite then
  holds is checked to be that same file.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from axiom.embedding_cache_file import CacheUnusable, open_cache_file

log = logging.getLogger(__name__)
T = TypeVar("T")

FILE_NAME = "embeddings.sqlite3"
MB = 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * MB
TOUCH_BATCH = 512  # hits whose last_used waits in memory before it is written
SQL_VARIABLES = 900  # hashes per SELECT (SQLite's variable limit is 999 on old builds)


def _now() -> int:
    return time.time_ns() // 1000  # microseconds: orders the rows of one batch, and across processes


class PersistentEmbeddingCache:
    """The cache file `path` (opened lazily, on first use). Every method returns normally whatever happens to
    the file: `get_many` finds nothing and `put_many` stores nothing while it is unusable (`available` is
    False)."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._models: dict[str, int] = {}
        self._touched: dict[int, set[bytes]] = {}
        self._disabled: str | None = None
        self._warned: set[str] = set()
        self.hits = self.misses = self.writes = 0
        atexit.register(self.close)

    # -- opening ----------------------------------------------------------------------------------------
    @property
    def problem(self) -> str | None:
        """Why the file is not used (None while it is, or has not been tried yet)."""
        return self._disabled

    def _warn(self, what: str, detail: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("embedding cache %s: %s: %s; continuing without it where needed",
                        self.path, what, detail)

    def _disable(self, reason: str) -> None:
        self._disabled = reason
        log.warning("embedding cache %s is not used: %s", self.path, reason)
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._models.clear()
        self._touched.clear()
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _connection(self) -> sqlite3.Connection | None:
        if self._disabled is not None:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:  # inherited through a fork: never use (nor close) the parent's connection
            _INHERITED.append(self._conn)
            self._conn, self._models, self._touched = None, {}, {}
        try:
            self._conn = open_cache_file(self.path)
        except CacheUnusable as exc:
            self._disable(str(exc))
            return None
        self._pid = os.getpid()
        return self._conn

    def _run(self, what: str, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        """`work(conn)` under the lock; any failure is logged once and gives `default`."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return default
            try:
                return work(conn)
            except (sqlite3.OperationalError, OSError, ValueError, MemoryError) as exc:
                self._rollback(conn)  # locked too long, disk full, I/O: this call goes without the cache
                self._warn(what, exc)
            except sqlite3.DatabaseError as exc:  # the file went bad under us: stop using it in this process
                self._rollback(conn)
                self._disable(f"{what}: {exc}")
            return default

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A write transaction (the write lock taken at once: no deadlock of two upgrading readers)."""
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    def _model_id(self, conn: sqlite3.Connection, model_key: str, label: str | None, *,
                  create: bool) -> int | None:
        """The model's row id (ids are never reused, so one remembered after another process cleared the file
        only ever finds this model's own vectors); `create` (in a write transaction) looks it up afresh."""
        found = self._models.get(model_key)
        if found is not None and not create:
            return found
        row = conn.execute("SELECT id FROM models WHERE key = ?", (model_key,)).fetchone()
        if row is None and create:
            conn.execute("INSERT OR IGNORE INTO models (key, label) VALUES (?, ?)",
                         (model_key, label or model_key))
            row = conn.execute("SELECT id FROM models WHERE key = ?", (model_key,)).fetchone()
        if row is None:
            return None
        self._models[model_key] = int(row[0])
        return int(row[0])

    # -- the cache ----------------------------------------------------------------------------------------
    def get_many(self, model_key: str, hashes: Sequence[bytes], dimension: int) -> dict[bytes, np.ndarray]:
        """The stored vectors (float32, `dimension` long) of these text hashes for this model, by hash."""
        hashes = list(dict.fromkeys(hashes))
        if not hashes:
            return {}

        def work(conn: sqlite3.Connection) -> dict[bytes, np.ndarray]:
            model = self._model_id(conn, model_key, None, create=False)
            found: dict[bytes, np.ndarray] = {}
            if model is not None:
                for i in range(0, len(hashes), SQL_VARIABLES):
                    part = hashes[i:i + SQL_VARIABLES]
                    rows = conn.execute(f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN "
                                        f"({','.join('?' * len(part))})", (model, *part)).fetchall()
                    for digest, blob in rows:
                        if len(blob) == 4 * dimension:  # never a vector of another dimension
                            found[bytes(digest)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                if found:
                    self._touched.setdefault(model, set()).update(found)
            self.hits += len(found)
            self.misses += len(hashes) - len(found)
            return found

        empty: dict[bytes, np.ndarray] = {}
        found = self._run("reading", work, empty)
        if sum(len(t) for t in self._touched.values()) >= TOUCH_BATCH:
            self.flush()
        return found

    def put_many(self, model_key: str, items: Iterable[tuple[bytes, np.ndarray]] | Mapping[bytes, np.ndarray],
                 *, label: str | None = None) -> int:
        """Store vectors by text hash for this model (one short transaction); returns how many were
        written."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if not pairs:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            model, now = self._model_id(conn, model_key, label, create=True), _now()
            self._write(conn, [(model, bytes(h), np.ascontiguousarray(v, dtype="<f4").tobytes(), now)
                               for h, v in pairs])
            self.writes += len(pairs)
            return len(pairs)

        return self._run("writing", work, 0)

    def _write(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        """New rows plus the pending last_used of hits, in one transaction; then the size bound."""
        with self._transaction(conn):
            if rows:
                conn.executemany("INSERT INTO vectors (model, hash, vector, last_used) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (model, hash) DO UPDATE SET last_used = excluded.last_used",
                                 rows)
            if self._touched:
                now = _now()
                conn.executemany("UPDATE vectors SET last_used = ? WHERE model = ? AND hash = ?",
                                 [(now, m, h) for m, hs in self._touched.items() for h in hs])
        self._touched.clear()
        self._evict(conn)

    def _live_bytes(self, conn: sqlite3.Connection) -> int:
        pages = (conn.execute("PRAGMA page_count").fetchone()[0]
                 - conn.execute("PRAGMA freelist_count").fetchone()[0])
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Least recently used rows out until the live pages are under 90% of `max_bytes`."""
        for _ in range(20):
            live = self._live_bytes(conn)
            if live <= self.max_bytes:
                return
            count = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            if not count:
                return
            target = int(self.max_bytes * 0.9)
            drop = max(1, min(count, -(-(live - target) * count // live)))
            with self._transaction(conn):
                conn.execute("DELETE FROM vectors WHERE rowid IN "
                             "(SELECT rowid FROM vectors ORDER BY last_used LIMIT ?)", (drop,))
            log.debug("embedding cache %s: %d least recently used vectors evicted", self.path, drop)
            if live - self._live_bytes(conn) <= 0:  # nothing freed (pages of the schema): stop
                return

    def flush(self) -> None:
        """Write the pending last_used of hits now."""
        self._run("writing", lambda conn: self._write(conn, []) if self._touched else None, None)

    def stats(self) -> dict[str, Any]:
        """What the file holds (vectors and bytes, in all and per model) and this object's hits / misses."""
        files = [p for p in (self.path, Path(f"{self.path}-wal")) if os.path.lexists(p)]
        out: dict[str, Any] = {"path": str(self.path), "exists": os.path.lexists(self.path),
                               "max_bytes": self.max_bytes,
                               "file_bytes": sum(os.lstat(p).st_size for p in files), "vectors": 0,
                               "live_bytes": 0, "models": [], "hits": self.hits, "misses": self.misses,
                               "writes": self.writes}

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            models = conn.execute("SELECT m.label, COUNT(*) FROM vectors v JOIN models m ON v.model = m.id "
                                  "GROUP BY m.id ORDER BY m.label").fetchall()
            out["models"] = [{"model": label, "vectors": n} for label, n in models]
            out["vectors"] = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            out["live_bytes"] = self._live_bytes(conn)
            return out

        with self._lock:
            result = self._run("reading", work, out) if out["exists"] else out
            return {**result, "available": self._disabled is None}

    def clear(self, model_key: str | None = None) -> int:
        """Delete the vectors of one model, or of every model (then the file is compacted). Returns how
        many."""
        if not os.path.lexists(self.path):
            return 0

        def work(conn: sqlite3.Connection) -> int:
            with self._transaction(conn):
                if model_key is None:
                    gone = conn.execute("DELETE FROM vectors").rowcount
                    conn.execute("DELETE FROM models")
                else:
                    gone = conn.execute("DELETE FROM vectors WHERE model = "
                                        "(SELECT id FROM models WHERE key = ?)", (model_key,)).rowcount
            self._models.clear()
            self._touched.clear()
            if model_key is None:
                # another process reading: compacted later
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute("VACUUM")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(gone)

        return self._run("clearing", work, 0)

    def close(self) -> None:
        """Write what is pending and close the connection (a later call opens it again)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid() and self._touched:
                self.flush()
            self._drop()


_INHERITED: list[sqlite3.Connection] = []  # connections of a parent process: kept, never closed by a child
_SHARED: dict[Path, PersistentEmbeddingCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(path: str | os.PathLike[str],
                 max_bytes: int = DEFAULT_MAX_BYTES) -> PersistentEmbeddingCache:
    """The process's one object for the file `path` (its memos share one connection); the latest `max_bytes`
    applies."""
    key = Path(os.path.abspath(path))
    with _SHARED_LOCK:
        cache = _SHARED.get(key)
        if cache is None:
            cache = _SHARED[key] = PersistentEmbeddingCache(key, max_bytes)
        else:
            cache.max_bytes = int(max_bytes)
        return cache
