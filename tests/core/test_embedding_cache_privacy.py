"""The embedding cache's folder and file are checked by descriptor before SQLite opens them (issue 24): a
folder that is a symlink or that others could change is refused, folders are made 0700 and the file 0600, a
hard-linked or symlinked file is refused, and the descriptor SQLite holds is the file that was checked. A
refused cache never stops the embedder (it goes on without the file, with one warning), and nothing is written
where it was
refused."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from axiom.embedding_cache import FILE_NAME, PersistentEmbeddingCache
from axiom.embeddings import CachingEmbedder
from axiom.private_files import open_descriptors, opened_by_this_process
from tests.core.test_embedding_cache import KeyedFake


def embed_twice(path: Path,
                caplog: pytest.LogCaptureFixture) -> tuple[PersistentEmbeddingCache, list[str], int]:
    """Embed through a cache at `path`, then through a fresh memo on a fresh cache object; returns the second
    cache, the warnings and the second memo's disk hits."""
    with caplog.at_level(logging.WARNING, logger="axiom.embedding_cache"):
        first = CachingEmbedder(KeyedFake(), persistent=PersistentEmbeddingCache(path))
        assert first.embed(["a", "b"]).shape == (2, 8)
        cache = PersistentEmbeddingCache(path)
        second = CachingEmbedder(KeyedFake(), persistent=cache)
        assert second.embed(["a", "b"]).shape == (2, 8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return cache, warnings, second.stats()["disk_hits"]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_missing_folders_are_made_0700_and_the_file_0600_whatever_the_umask(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "deep" / "cache" / FILE_NAME
    old = os.umask(0o000)
    try:
        cache, warnings, hits = embed_twice(path, caplog)
    finally:
        os.umask(old)
    assert warnings == [] and cache.problem is None and hits == 2
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert all(mode(p) & 0o077 == 0
               for p in path.parent.iterdir()), {p.name: oct(mode(p)) for p in path.parent.iterdir()}


def test_an_existing_file_open_to_others_is_made_0600(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    (folder / FILE_NAME).write_bytes(b"")
    (folder / FILE_NAME).chmod(0o666)
    cache, warnings, hits = embed_twice(folder / FILE_NAME, caplog)
    assert warnings == [] and hits == 2 and mode(folder / FILE_NAME) == 0o600


@pytest.mark.parametrize("folder_mode", [0o777, 0o770, 0o703])
def test_a_cache_folder_others_may_write_to_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       folder_mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(folder_mode)
    cache, warnings, hits = embed_twice(folder / FILE_NAME, caplog)
    assert (
        hits == 0 and cache.problem and "writable by others" in cache.problem and "chmod 700" in cache.problem
    )
    assert len(warnings) == 2 and all("writable by others" in w for w in warnings)  # one per cache object
    assert list(folder.iterdir()) == [] and mode(folder) == folder_mode  # nothing written, nothing changed


def test_a_symlinked_cache_folder_is_refused_and_nothing_is_written_behind_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(target)
    cache, _, hits = embed_twice(link / FILE_NAME, caplog)
    assert hits == 0 and cache.problem and "symlink" in cache.problem
    assert list(target.iterdir()) == []


def test_a_folder_under_a_parent_everyone_may_write_is_refused_unless_sticky(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    parent = tmp_path / "open"
    (parent / "cache").mkdir(parents=True, mode=0o700)
    parent.chmod(0o777)
    cache, _, hits = embed_twice(parent / "cache" / FILE_NAME, caplog)
    assert hits == 0 and cache.problem and "writable by every user and not sticky" in cache.problem
    assert list((parent / "cache").iterdir()) == []
    parent.chmod(0o1777)  # sticky, as /tmp: others cannot rename or delete what is ours in it
    caplog.clear()
    cache, warnings, hits = embed_twice(parent / "cache" / FILE_NAME, caplog)
    assert warnings == [] and hits == 2 and cache.problem is None


@pytest.mark.parametrize("planted", ["symlink", "hard link", "-wal symlink"])
def test_a_planted_file_link_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        planted: str) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim.sqlite3"
    sqlite3.connect(victim).close()  # an empty database: SQLite would happily write into it
    before = victim.read_bytes()
    if planted == "symlink":
        (folder / FILE_NAME).symlink_to(victim)
    elif planted == "hard link":
        os.link(victim, folder / FILE_NAME)
    else:
        (folder / f"{FILE_NAME}-wal").symlink_to(victim)
    cache, _, hits = embed_twice(folder / FILE_NAME, caplog)
    words = {"symlink": "symlink", "hard link": "2 hard links",
             "-wal symlink": "-wal is refused: it is a symlink"}
    assert hits == 0 and cache.problem and words[planted] in cache.problem, cache.problem
    assert victim.read_bytes() == before


def test_the_descriptor_sqlite_holds_must_be_the_checked_file(tmp_path: Path) -> None:
    checked, other = tmp_path / "checked.sqlite3", tmp_path / "other.sqlite3"
    for path in (checked, other):
        sqlite3.connect(path).close()
    info = os.stat(checked)
    before = open_descriptors()
    assert before is not None  # Linux: /proc is there
    conn = sqlite3.connect(checked)
    try:
        real = os.path.realpath(checked)
        assert opened_by_this_process((info.st_dev, info.st_ino), real, before)
        other_info = os.stat(other)  # as if a swap had made SQLite open another file under that name
        assert not opened_by_this_process((other_info.st_dev, other_info.st_ino), real, before)
        assert not opened_by_this_process((info.st_dev, info.st_ino), os.path.realpath(other), before)
    finally:
        conn.close()
