"""Opening the persistent embedding cache's SQLite file (`axiom.embedding_cache` keeps the connection and
reads and writes the rows): the folder and the file checked by descriptor before SQLite opens them
(`axiom.private_files`), the connection checked to hold that same file, the schema made or its version
checked, and a file that is not a database moved aside (`*.corrupt-<time>`) and replaced by a new one.
Any other failure raises `CacheUnusable`, whose message says why the cache is not used.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from axiom.private_files import (
    PrivacyError,
    open_descriptors,
    opened_by_this_process,
    private_file,
    refuse_links_beside,
    secure_folder,
)

log = logging.getLogger("axiom.embedding_cache")  # the cache's one logger, whichever module speaks

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
                                   label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    model INTEGER NOT NULL, hash BLOB NOT NULL, vector BLOB NOT NULL, last_used INTEGER NOT NULL,
    PRIMARY KEY (model, hash));
CREATE INDEX IF NOT EXISTS vectors_last_used ON vectors (last_used);
"""


class CacheUnusable(Exception):
    """The cache cannot be used (the reason is logged once)."""


def open_cache_file(path: Path) -> sqlite3.Connection:
    """A connection to the cache file `path`, checked; a file that is not a database is moved aside and a new
    one made. Raises `CacheUnusable` when the cache cannot be used."""
    try:
        return _open_waiting(path, _prepare_file(path))
    except sqlite3.OperationalError as exc:  # locked, read-only, I/O: the file may be fine, leave it
        raise CacheUnusable(f"cannot open it ({exc})") from None
    except sqlite3.DatabaseError as exc:  # not a database / malformed: move it aside, start afresh
        aside = _move_aside(path)
        log.warning("embedding cache %s is unreadable (%s); moved aside to %s, starting a new one",
                    path, exc, aside)
    except OSError as exc:
        raise CacheUnusable(f"cannot create it ({exc.strerror or exc})") from None
    try:
        return _open_waiting(path, _prepare_file(path))
    except (sqlite3.Error, OSError) as exc:
        raise CacheUnusable(f"cannot create a new one ({exc})") from None


def _prepare_file(path: Path) -> tuple[int, int]:
    """The folder and the file checked by descriptor (`axiom.private_files`: a private folder on a path only
    this user or root can change, the file opened without following links, regular, ours, 0600); returns
    the file's (st_dev, st_ino) for `_open`."""
    folder = path.parent
    try:
        folder_fd = secure_folder(folder)
        try:
            refuse_links_beside(folder_fd, (f"{path.name}-wal", f"{path.name}-shm"), folder)
            fd = private_file(folder_fd, path.name, path)
        finally:
            os.close(folder_fd)
    except PrivacyError as exc:
        raise CacheUnusable(str(exc)) from None
    info = os.fstat(fd)
    os.close(fd)
    return info.st_dev, info.st_ino


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _open_waiting(path: Path, identity: tuple[int, int]) -> sqlite3.Connection:
    """`_open`, again while SQLite says "database is locked", for up to BUSY_TIMEOUT_SECONDS: processes that
    open one new file at the same moment (each switching it to WAL, one making the schema) can get that at
    once, without SQLite's busy handler waiting (measured: 2 of 6 processes opening a new file together, in
    1 round of 6, were left without a cache)."""
    retrying = Retrying(retry=retry_if_exception(_is_locked), stop=stop_after_delay(BUSY_TIMEOUT_SECONDS),
                        wait=wait_exponential_jitter(initial=0.02, max=0.5), reraise=True)
    return retrying(_open, path, identity)


def _open(path: Path, identity: tuple[int, int]) -> sqlite3.Connection:
    before = open_descriptors()
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=False)
    try:
        if not opened_by_this_process(identity, os.path.realpath(path), before):
            raise CacheUnusable("the file was replaced while it was being opened; not used")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        # (where WAL is impossible SQLite keeps its locking journal)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise CacheUnusable(f"written by another version of Axiom (schema {version}, this one reads "
                                f"{SCHEMA_VERSION}); delete the file to start a new one")
        if version == 0:  # new: the schema, in one transaction (another process may be making it too)
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path) -> Path | None:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    moved = None
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        try:
            if os.path.lexists(source):
                os.replace(source, Path(f"{aside}{suffix}"))
                moved = moved or Path(f"{aside}{suffix}")
        except OSError as exc:
            raise CacheUnusable(f"unreadable, and it cannot be moved aside ({exc.strerror or exc})") from None
    return moved
