"""Settings.with_overrides (the one override path of every face) and CachingEmbedder (the one embedding
memo)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from axiom.config import Settings, load_settings
from axiom.embeddings import CachingEmbedder
from axiom.errors import ConfigError


def test_with_overrides_returns_a_validated_copy() -> None:
    base = load_settings(environ={}, config_path=None)
    changed = base.with_overrides({"retrieval.top_k": 3, "store": {"collection": "other"},
                                   "retrieval.retriever": None},
                                  origin="--top-k")
    assert (changed.retrieval.top_k, changed.store.collection) == (3, "other")
    assert changed.retrieval.retriever == base.retrieval.retriever  # None leaves a setting alone
    assert base.retrieval.top_k != 3 or base.store.collection != "other"  # the original is untouched
    assert base.with_overrides({}, origin="nothing") is base


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"retrieval.top_k": 0}, "retrieval.top_k (from notebook parameter top_k)"),
    ({"retrieval.retriever": "nope"}, "retrieval.retriever (from notebook parameter top_k)"),
    ({"retrieval.nope": 1}, "unknown setting retrieval.nope (from notebook parameter top_k)"),
    ({"nosection.key": 1}, "unknown settings section 'nosection' (from notebook parameter top_k)"),
    ({"top_k": 1}, "must name a setting as section.key"),
])
def test_with_overrides_names_the_setting_and_its_origin(overrides: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings().with_overrides(overrides, origin="notebook parameter top_k")
    assert expected in str(info.value)


class CountingEmbedder:
    model_id = "counting"
    dimension = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_caching_embedder_embeds_each_text_once_and_is_bounded() -> None:
    inner = CountingEmbedder()
    cache = CachingEmbedder(inner, max_entries=3)
    first = cache.embed(["a", "bb", "a"])
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]] and inner.calls == [["a", "bb"]]
    cache.embed(["bb", "ccc", "dddd"])  # "a" is the least recently used: evicted
    assert inner.calls[-1] == ["ccc", "dddd"]
    cache.embed(["a"])
    assert inner.calls[-1] == ["a"]
    assert cache.stats() == {"texts_requested": 7, "texts_embedded": 5, "cache_hits": 2, "cached_vectors": 3}
    assert cache.dimension == 2 and cache.count_tokens("x y") == 2 and cache.model_id == "counting"


def test_caching_embedder_is_safe_under_threads() -> None:
    inner = CountingEmbedder()
    cache = CachingEmbedder(inner, max_entries=50)
    texts = [f"text {i}" for i in range(100)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(0, 100, 7):
                chunk = texts[(i + offset) % 100:(i + offset) % 100 + 7]
                assert cache.embed(chunk)[:, 0].tolist() == [len(t) for t in chunk]
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 13,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and cache.stats()["cached_vectors"] <= 50
