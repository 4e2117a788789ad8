"""Unit tests of the service's parts that need no server: cache, keys, path checks, settings."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.exceptions import HTTPException

from axiom.config import load_settings
from axiom.errors import ConfigError
from axiom.observability import ERRORS, request_id_var, stage, stage_timings_var
from axiom.service.app import resolve_under_root
from axiom.service.auth import ApiKeyAuth
from axiom.service.cache import QueryCache, cache_key, normalise_question
from axiom.source_tree import RootDir
from tests.service.conftest import REPO
from tests.support.clock import FakeClock
from tests.support.waiting import poll_until


def test_cache_key_normalises_the_question() -> None:
    assert normalise_question("  What is\tthe  LENS? ") == "what is the lens?"
    assert cache_key("What is X?", "hybrid", 5, "c", 1) == cache_key("what  is x?", "hybrid", 5, "c", 1)
    assert cache_key("q", "hybrid", 5, "c", 1) != cache_key("q", "dense", 5, "c", 1)
    assert cache_key("q", "hybrid", 5, "c", 1) != cache_key("q", "hybrid", 3, "c", 1)
    assert cache_key("q", "hybrid", 5, "c", 1) != cache_key("q", "hybrid", 5, "c", 2)  # data_version moved


def test_cache_is_lru_with_ttl() -> None:
    clock = FakeClock(1000.0)
    cache = QueryCache(2, 10.0, clock=clock)
    a, b, c = (cache_key(q, "dense", 5, "c", 0) for q in "abc")
    cache.put(a, 1)
    cache.put(b, 2)
    assert cache.get(a) == 1  # a is now the most recent
    cache.put(c, 3)  # evicts b
    assert cache.get(b) is None and cache.get(a) == 1 and cache.get(c) == 3
    clock.now += 10.5
    assert cache.get(a) is None and len(cache) == 1
    assert cache.clear() == 1 and len(cache) == 0


def test_cache_size_zero_is_off() -> None:
    cache = QueryCache(0, 10.0)
    key = cache_key("q", "dense", 5, "c", 0)
    cache.put(key, 1)
    assert not cache.enabled and cache.get(key) is None


def test_cache_is_thread_safe() -> None:
    cache = QueryCache(50, 60.0)
    keys = [cache_key(str(i), "dense", 5, "c", 0) for i in range(200)]

    def work() -> None:
        for k in keys:
            cache.put(k, 1)
            cache.get(k)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50


def test_api_keys_compare_every_key() -> None:
    auth = ApiKeyAuth([SecretStr("alpha"), SecretStr("bravo")])
    assert auth.enabled
    assert auth.check("alpha") and auth.check("bravo")
    assert not auth.check("alph") and not auth.check("alphaa") and not auth.check("") and not auth.check(None)
    assert not auth.check("ålpha")  # non-ASCII input is compared as bytes, not rejected with a TypeError
    assert ApiKeyAuth([]).check(None)  # no keys: open


def test_api_keys_from_the_environment() -> None:
    settings = load_settings(REPO / "config.yaml", environ={"AXIOM_API_KEYS": " k1, k2 ,, "})
    assert [k.get_secret_value() for k in settings.service.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings) and "k1" not in str(settings.redacted())
    assert load_settings(REPO / "config.yaml", environ={}).service.api_keys == []


def test_bad_api_keys_setting_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(REPO / "config.yaml", environ={}, overrides={"service": {"api_keys": ["ok", 12345]}})
    assert "12345" not in str(info.value)


def test_resolve_under_root(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# a\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "docs")
    (root / "docs" / "rel-in.md").symlink_to("../docs/a.md")
    (root / "docs" / "rel-out").symlink_to("../../outside")
    with RootDir.open(root) as opened:
        assert opened.real == root
        assert resolve_under_root(opened, "docs") == root / "docs"
        assert resolve_under_root(opened, "docs/a.md") == root / "docs" / "a.md"
        assert resolve_under_root(opened, str(root / "docs")) == root / "docs"
        assert resolve_under_root(opened, ".") == root
        assert resolve_under_root(opened, "link-in") == root / "docs"
        assert resolve_under_root(opened, "docs/rel-in.md") == root / "docs" / "a.md"
        for bad, words in [("../outside", "'..'"), ("docs/../../outside", "'..'"),
                           (str(outside), "outside the data root"), ("/etc", "outside the data root"),
                           ("link-out", "symlink"), ("link-out/x.md", "symlink"), ("docs/rel-out", "symlink"),
                           ("missing", "does not exist"), ("docs/a.md/x", "not a folder"),
                           ("docs\x00", "NUL")]:
            with pytest.raises(HTTPException) as info:
                resolve_under_root(opened, bad)
            assert info.value.status_code == 400 and words in str(info.value.detail), (bad, info.value.detail)


def test_stage_records_timings_errors_and_the_log_field(caplog: pytest.LogCaptureFixture) -> None:
    timings: dict[str, float] = {}
    token = stage_timings_var.set(timings)
    rid = request_id_var.set("rid-1")
    before = ERRORS.labels(stage="retrieve", kind="KeyError")._value.get()
    try:
        with caplog.at_level(logging.DEBUG, logger="axiom.stage"), pytest.raises(KeyError):
            with stage("total"), stage("retrieve"):
                raise KeyError("x")
    finally:
        stage_timings_var.reset(token)
        request_id_var.reset(rid)
    assert set(timings) == {"total", "retrieve"}
    # counted once, at the innermost stage
    assert ERRORS.labels(stage="retrieve", kind="KeyError")._value.get() == before + 1
    assert ERRORS.labels(stage="total", kind="KeyError")._value.get() == 0
    assert {r.getMessage().split()[0] for r in caplog.records} == {"retrieve", "total"}


def test_cache_is_single_flight() -> None:
    cache = QueryCache(10, 60.0)
    key = cache_key("popular", "dense", 5, "c", 0)
    runs = []
    gate = threading.Event()

    def compute() -> tuple[str, bool]:
        runs.append(1)
        gate.wait(5)
        return "answer", True

    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute(key, compute)))
               for _ in range(6)]
    for t in threads:
        t.start()

    def all_six_in_the_flight() -> bool:  # one computes, five wait for it (not yet answered from the cache)
        with cache._lock:
            entry = cache._flights.get(key)
            return entry is not None and entry.users == 6

    poll_until(all_six_in_the_flight, timeout=10, interval=0.01,
               message="all six callers in one single flight")
    gate.set()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert sorted(results) == [("answer", False)] + [("answer", True)] * 5


def test_uncacheable_results_are_recomputed() -> None:
    cache = QueryCache(10, 60.0)
    key = cache_key("degraded", "dense", 5, "c", 0)
    assert cache.get_or_compute(key, lambda: ("degraded", False)) == ("degraded", False)
    assert cache.get_or_compute(key, lambda: ("fine", True)) == ("fine", False)
    assert cache.get_or_compute(key, lambda: ("other", True)) == ("fine", True)


@pytest.mark.parametrize("origins", [[], ["https://ui.example"]])
def test_cors_is_off_unless_origins_are_configured(make_settings, tmp_path: Path,
                                                   origins: list[str]) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from axiom.service.app import create_api_app, create_sidecar_app
    from axiom.service.state import build_state

    settings = make_settings(service={"cors_origins": origins, "data_root": str(tmp_path)})
    state = build_state(settings, warm_up=False)  # embedded store in tmp_path; the model is never loaded
    try:
        with TestClient(create_api_app(state)) as api, TestClient(create_sidecar_app(state)) as sidecar:
            preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "x-api-key,content-type"}
            r = api.options("/query", headers=preflight)
            if origins:
                assert r.status_code == 200
                assert r.headers["access-control-allow-origin"] == "https://ui.example"
                r = api.options("/query", headers={**preflight, "Origin": "https://evil.example"})
                assert "access-control-allow-origin" not in r.headers
            else:
                assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
            # the in-process apps answer too: health (embedded store, no collection yet) and metrics
            health = sidecar.get("/health")
            assert health.status_code == 503 and "does not exist" in health.json()["reason"]
            assert sidecar.get("/metrics/").status_code == 200
            assert api.get("/docs").status_code == 200
    finally:
        state.close()


def test_library_log_lines_are_redacted() -> None:
    from axiom.service.server import LibraryPiiFilter

    f = LibraryPiiFilter()
    lib = logging.LogRecord("openai._base_client", logging.DEBUG, "", 0, "Request options: %s",
                            ({"q": "a@b.com"},),
                            None)
    assert f.filter(lib) and lib.getMessage() == "Request options: {'q': '[EMAIL]'}"
    own = logging.LogRecord("axiom.service", logging.INFO, "", 0, "kept as is: %s", ("a@b.com",), None)
    assert f.filter(own) and own.getMessage() == "kept as is: a@b.com"


def test_health_names_the_embedded_store_but_not_its_folder(make_settings,
                                                            tmp_path: Path) -> None:  # noqa: ANN001
    """/health needs no key: it says the store is embedded, never where on the server it lives."""
    from fastapi.testclient import TestClient

    from axiom.service.app import create_sidecar_app
    from axiom.service.state import build_state

    store = tmp_path / "secret-store-folder"
    settings = make_settings(service={"data_root": str(tmp_path)}, store={"path": str(store)})
    state = build_state(settings, warm_up=False)
    try:
        assert state.settings.store.mode == "embedded" and state.health.store.where.endswith(str(store))
        with TestClient(create_sidecar_app(state)) as sidecar:
            r = sidecar.get("/health")
        assert r.status_code == 503, r.text  # nothing ingested: the collection does not exist
        body = r.json()
        assert body["chroma"]["mode"] == "embedded" and "does not exist" in body["reason"]
        assert str(store) not in r.text and str(tmp_path) not in r.text, r.text
    finally:
        state.close()
