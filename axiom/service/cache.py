"""The query cache: LRU with a time to live, keyed by the normalised question plus everything that changes
the answer (retriever, top_k, collection and its data_version). Thread-safe; ingest clears it, and a write by
any other process moves the data_version, so a stale entry is never served.

`get_or_compute` is single-flight: identical questions arriving together wait for the first one's answer
instead of all computing it (a burst of one popular question costs one pipeline run)."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from axiom.observability import CACHE_HITS, CACHE_MISSES

CacheKey = tuple[str, str, int, str, int]
V = TypeVar("V")  # what is cached (the service: an answer's JSON payload)


def normalise_question(question: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: `What is  X?` and `what is x?` share an entry."""
    return " ".join(unicodedata.normalize("NFKC", question).casefold().split())


def cache_key(question: str, retriever: str, top_k: int, collection: str, data_version: int) -> CacheKey:
    return (normalise_question(question), retriever, top_k, collection, data_version)


class _Flight:
    """One key being computed: the lock its callers take turns on and how many threads use it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class QueryCache(Generic[V]):
    def __init__(self, size: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl_seconds
        self._clock = clock
        self._data: OrderedDict[CacheKey, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[CacheKey, _Flight] = {}

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def _lookup(self, key: CacheKey) -> V | None:
        now = self._clock()
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] <= now:
                del self._data[key]
                item = None
            if item is not None:
                self._data.move_to_end(key)
        return None if item is None else item[1]

    def get(self, key: CacheKey) -> V | None:
        """The cached value, or None (counted as a hit or a miss in /metrics)."""
        if not self.enabled:
            return None
        value = self._lookup(key)
        (CACHE_HITS if value is not None else CACHE_MISSES).inc()
        return value

    @contextmanager
    def _single_flight(self, key: CacheKey) -> Iterator[None]:
        with self._lock:
            entry = self._flights.setdefault(key, _Flight())
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._lock:
                entry.users -= 1
                if entry.users == 0:
                    del self._flights[key]

    def get_or_compute(self, key: CacheKey, compute: Callable[[], tuple[V, bool]]) -> tuple[V, bool]:
        """(value, was_cached). `compute` returns (value, cacheable); concurrent callers with the same key
        wait for the first one and share its value when it is cacheable."""
        if not self.enabled:
            return compute()[0], False
        value = self._lookup(key)
        if value is None:
            with self._single_flight(key):
                value = self._lookup(key)  # filled while this thread waited?
                if value is None:
                    CACHE_MISSES.inc()
                    value, cacheable = compute()
                    if cacheable:
                        self.put(key, value)
                    return value, False
        CACHE_HITS.inc()
        return value, True

    def put(self, key: CacheKey, value: V) -> None:
        if not self.enabled:
            return
        expires = self._clock() + self.ttl
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> int:
        with self._lock:
            n = len(self._data)
            self._data.clear()
        return n
