"""`axiom serve` as a subprocess with API keys, against the session's real ChromaDB server: every endpoint,
validation, auth, cache, metrics, logs, and a short load benchmark (printed, not asserted on timings).

The tests run in file order: the first one sees the collection before anything is ingested."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import API_KEYS, OPENAI_SECRET, AxiomServer, client, metric, metric_samples
from tests.support.query_load import QUESTIONS, drive_queries
from tests.support.served import FRESH_MAX_BODY, FreshServices

WRONG_KEY = API_KEYS[0][:-1] + "X"  # a near miss: must not be logged either
MAX_BODY = FRESH_MAX_BODY  # 65,536
PII_QUESTION = (
    "Is the queen bee's keeper jane.roe@example.org, phone (555) 123-4567, card 4111 1111 1111 1111?"
)


@pytest.fixture(scope="module")
def server(fresh_service: FreshServices) -> AxiomServer:
    """The session's fresh server (tests/support/served.py): API keys, an OpenAI key, extractive answers, a
    collection nothing has ingested yet; this module ingests into it, so no other module gets it after it.
    (tests/service/test_hardening.py may have sent it requests before: the counters below are counted from
    `at_start`.)"""
    return fresh_service.take(mutates=True)


@pytest.fixture(scope="module")
def api(server: AxiomServer) -> Iterator[httpx.Client]:
    with client(base_url=server.api, headers={"X-API-Key": API_KEYS[0]}) as c:
        yield c


@pytest.fixture(scope="module")
def sidecar(server: AxiomServer) -> Iterator[httpx.Client]:
    with client(base_url=server.sidecar) as c:
        yield c


def scrape(sidecar: httpx.Client) -> dict:
    r = sidecar.get("/metrics")
    assert r.status_code == 200
    return metric_samples(r.text)


@pytest.fixture(scope="module")
def at_start(sidecar: httpx.Client) -> dict:
    """The metrics before this module's first request (the first test takes them)."""
    return scrape(sidecar)


def test_before_ingest_health_is_503_and_query_says_why(server: AxiomServer, api: httpx.Client,
                                                        sidecar: httpx.Client, at_start: dict) -> None:
    for c in (sidecar, api):
        r = c.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unavailable" and "does not exist" in body["reason"]
        assert body["collection"]["name"].startswith("svc_api_")
    r = api.post("/query", json={"question": "How many eggs can a queen lay?"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "store_error" and "does not exist" in body["message"] and "ingest" in body["hint"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert metric(scrape(sidecar), "axiom_errors_total", stage="retrieve", kind="StoreError") - \
        metric(at_start, "axiom_errors_total", stage="retrieve", kind="StoreError") >= 1


def test_ingest_then_health_is_ok(server: AxiomServer, api: httpx.Client, sidecar: httpx.Client) -> None:
    before = scrape(sidecar)
    r = api.post("/ingest", json={"paths": ["."]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert sorted(report["files_ingested"]) == ["a.md", "b.txt", "c.md"]
    assert report["chunks_added"] > 0 and report["chunks_total"] == report["chunks_added"]
    after = scrape(sidecar)
    assert metric(after, "axiom_ingest_chunks_total") - metric(before, "axiom_ingest_chunks_total") == \
        report["chunks_added"]
    assert metric(after, "axiom_requests_total", endpoint="/ingest", status="200") == \
        metric(before, "axiom_requests_total", endpoint="/ingest", status="200") + 1
    for c in (sidecar, api):
        t0 = time.perf_counter()
        r = c.get("/health")
        assert time.perf_counter() - t0 < 2.0
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ok"
        assert body["collection"]["chunks"] == report["chunks_total"]
        assert body["embedding_model"] == "all-MiniLM-L6-v2"
        assert body["generator"] == {"name": "extractive"}
        assert body["version"] and body["chroma"]["mode"] == "server" and body["chroma"]["heartbeat_ms"] >= 0
        assert OPENAI_SECRET not in r.text and not any(k in r.text for k in API_KEYS)


def test_query_answer_and_request_id(api: httpx.Client) -> None:
    r = api.post("/query", json={"question": "How do worker bees tell their sisters where to find flowers?",
                                 "top_k": 3, "retriever": "dense"}, headers={"X-Request-ID": "test-rid-0001"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-request-id"] == body["request_id"] == "test-rid-0001"
    assert "waggle dance" in body["answer"]
    assert body["generator"] == "extractive" and body["degraded"] is False and body["cached"] is False
    assert 1 <= len(body["contexts"]) <= 3 and body["citations"]
    assert {c["source"] for c in body["citations"]} <= {h["source"] for h in body["contexts"]}
    # the sources of the contexts in rank order: what `axiom eval --endpoint URL` measures retrieval on
    scores = [h["score"] for h in body["contexts"]]
    assert scores == sorted(scores, reverse=True)
    assert body["retrieved"] == [h["source"] for h in body["contexts"]] and body["retrieved"][0] == "a.md"
    assert {"embed", "retrieve", "generate", "total"} <= set(body["timings"])
    # no (or an unsafe) X-Request-ID: a fresh one
    for headers in ({}, {"X-Request-ID": "not ok!"}, {"X-Request-ID": "x" * 200}):
        r = api.post("/query", json={"question": "Which volcano is the largest?"}, headers=headers)
        assert r.status_code == 200
        assert len(r.headers["x-request-id"]) == 32 and r.headers["x-request-id"] == r.json()["request_id"]


def test_query_cache_hits_misses_and_ingest_invalidates(api: httpx.Client, sidecar: httpx.Client) -> None:
    before = scrape(sidecar)
    question = "Where does all true tea come from?"
    first = api.post("/query", json={"question": question}).json()
    second = api.post("/query", json={"question": "  where DOES all true tea   come from? "}).json()
    other_k = api.post("/query", json={"question": question, "top_k": 2}).json()
    assert (first["cached"], second["cached"], other_k["cached"]) == (False, True, False)
    assert (
        second["answer"] == first["answer"]
        and second["question"] == "  where DOES all true tea   come from? "
    )
    assert second["retrieved"] == first["retrieved"] == [h["source"] for h in first["contexts"]]
    assert second["request_id"] != first["request_id"]
    after = scrape(sidecar)
    assert metric(after, "axiom_cache_hits_total") - metric(before, "axiom_cache_hits_total") == 1
    assert metric(after, "axiom_cache_misses_total") - metric(before, "axiom_cache_misses_total") == 2
    r = api.post("/ingest", json={"paths": ["."]})
    assert r.status_code == 200 and r.json()["files_unchanged"] and r.json()["cache_entries_cleared"] >= 2
    assert api.post("/query", json={"question": question}).json()["cached"] is False


@pytest.mark.parametrize("body, words", [
    ({"question": ""}, "question: the question is empty"),
    ({"question": "   \n "}, "question: the question is empty"),
    ({"question": "x" * 4001}, "the limit is 4000"),
    ({"question": "bees", "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
    ({"question": "bees", "top_k": 101}, "top_k: Input should be less than or equal to 100"),
    ({"question": "bees", "top_k": "many"}, "top_k:"),
    ({"question": "bees", "retriever": "magic"}, "retriever: Input should be 'dense', 'bm25' or 'hybrid'"),
    ({"question": "bees", "topk": 3}, "topk: Extra inputs are not permitted"),
    ({}, "question: Field required"),
    ([1, 2], "request body:"),
])
def test_query_validation_is_422_with_a_clear_message(api: httpx.Client, body: object, words: str) -> None:
    r = api.post("/query", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error" and words in r.json()["message"], r.json()
    assert "x" * 100 not in r.text  # the input is not echoed back


def test_bad_json_and_content_types(api: httpx.Client) -> None:
    r = api.post("/query", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["message"]
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                    {}):
        r = api.post("/query", content=b'{"question": "bees"}', headers=headers)
        assert r.status_code == 415, (headers, r.text)
        assert r.json()["error"] == "unsupported_media_type" and "application/json" in r.json()["message"]
    r = api.post("/query", content=b'{"question": "bees"}',
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_body_size_limit_is_413(api: httpx.Client) -> None:
    big = json.dumps({"question": "q" * (MAX_BODY + 10)}).encode()
    r = api.post("/query", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"question": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"q" * 4096
        yield b'"}'

    r = api.post("/query", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"


def test_ingest_refuses_paths_outside_the_data_root(server: AxiomServer, api: httpx.Client,
                                                    tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# secret\n\nnot for the index\n")
    link = server.data_root / "escape"
    link.symlink_to(outside)
    try:
        for path, words in [("..", "'..'"), ("../outside", "'..'"), ("sub/../../x", "'..'"),
                            (str(outside), "outside the data root"), ("/etc", "outside the data root"),
                            ("escape", "symlink"), ("escape/secret.md", "symlink"),
                            ("missing", "does not exist")]:
            r = api.post("/ingest", json={"paths": ["a.md", path]})
            assert r.status_code == 400, (path, r.text)
            assert words in r.json()["message"], (path, r.json())
        r = api.post("/ingest", json={"paths": []})
        assert r.status_code == 422
        r = api.post("/ingest", json={"paths": [str(server.data_root / "a.md")]})  # absolute inside the root
        assert r.status_code == 200 and r.json()["files_unchanged"] == ["a.md"]
    finally:
        link.unlink()


def test_auth_matrix(server: AxiomServer) -> None:
    body = {"question": "Which volcano is the largest?"}
    with client(base_url=server.api) as c:
        refused = [c.post("/query", json=body),
                   c.post("/query", json=body, headers={"X-API-Key": WRONG_KEY}),
                   c.post("/query", json=body, headers={"Authorization": f"Bearer {WRONG_KEY}"}),
                   c.post("/query", json=body, headers={"Authorization": f"Basic {API_KEYS[0]}"}),
                   c.post("/query", json=body, headers={"Authorization": "Bearer"}),
                   c.post("/ingest", json={"paths": ["."]}),
                   c.post("/query", content=b"x", headers={"Content-Type": "text/plain"})]  # 401 before 415
        for r in refused:
            assert r.status_code == 401, r.text
            payload = r.json()
            # the same answer whatever was wrong: no hint
            assert {k: v for k, v in payload.items() if k != "request_id"} == {
                "error": "unauthorized", "message": "missing or invalid API key"}
            assert "www-authenticate" in r.headers
        for headers in ({"X-API-Key": API_KEYS[0]}, {"X-API-Key": API_KEYS[1]},
                        {"Authorization": f"Bearer {API_KEYS[1]}"},
                        {"Authorization": f"bearer {API_KEYS[0]}"}):
            r = c.post("/query", json=body, headers=headers)
            assert r.status_code == 200, (headers, r.text)
        assert c.get("/health").status_code == 200  # health needs no key
        assert c.get("/docs").status_code == 200
        schema = c.get("/openapi.json").json()
        assert {"/query", "/ingest", "/health"} <= set(schema["paths"])
        assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])


def test_metrics_exposition(server: AxiomServer, sidecar: httpx.Client, at_start: dict) -> None:
    r1 = sidecar.get("/metrics")
    r2 = sidecar.get("/metrics/")
    assert (
        r1.status_code == 200
        and r2.status_code == 200
        and r1.headers["content-type"].startswith("text/plain")
    )
    samples = metric_samples(r2.text)
    names = {name for name, _ in samples}
    for name in ("axiom_requests_total", "axiom_errors_total", "axiom_stage_latency_seconds_bucket",
                 "axiom_ingest_chunks_total", "axiom_cache_hits_total", "axiom_cache_misses_total",
                 "process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert name in names, name
    for stage_name in ("embed", "retrieve", "generate", "total"):
        assert metric(samples, "axiom_stage_latency_seconds_count", stage=stage_name) > 0, stage_name
    # scrapes are requests too: the counter moved between the two
    assert metric(samples, "axiom_requests_total", endpoint="/metrics", status="200") >= 1

    def since_start(**labels: str) -> float:  # this module's requests only
        return metric(samples, "axiom_requests_total", **labels) - metric(at_start, "axiom_requests_total",
                                                                           **labels)

    assert since_start(endpoint="/query", status="401") >= 6
    assert since_start(endpoint="/query", status="422") >= 10
    assert since_start(endpoint="/query", status="413") >= 2
    assert since_start(endpoint="/ingest", status="400") >= 8
    with client(base_url=server.sidecar) as c:  # the sidecar serves no API
        assert c.post("/query", json={"question": "x"}).status_code in (404, 405)


def test_logs_are_json_share_the_request_id_and_hold_no_secrets(
    server: AxiomServer, api: httpx.Client
) -> None:
    rid = "log-check-" + uuid.uuid4().hex[:8]
    r = api.post("/query", json={"question": PII_QUESTION}, headers={"X-Request-ID": rid})
    assert r.status_code == 200
    server.wait_for_access_line(rid)  # the access line is written after the response
    records = server.log_records()  # fails on any line that is not JSON
    for rec in records:
        assert {"time", "level", "logger", "message", "request_id", "stage"} <= set(rec)
    mine = [i for i, rec in enumerate(records) if rec["request_id"] == rid]
    assert mine, "no log line carries the request id"
    # every line written while the request ran carries its id (the tests send one request at a time)
    assert all(rec["request_id"] == rid for rec in records[mine[0]:mine[-1] + 1])
    messages = [records[i]["message"] for i in mine]
    assert any(m.startswith("query: ") for m in messages)  # written in the threadpool thread
    assert any(m.startswith("answered by extractive") for m in messages)
    assert any(m.startswith("POST /query 200") for m in messages)
    query_line = next(m for m in messages if m.startswith("query: "))
    assert "[EMAIL]" in query_line and "[PHONE]" in query_line and "[CARD]" in query_line
    # the API keys (and a near miss), the OpenAI key and the question's PII never reach the log
    text = server.log_text()
    for secret in (*API_KEYS, WRONG_KEY, OPENAI_SECRET, "jane.roe@example.org", "123-4567", "4111 1111"):
        assert secret not in text, secret
    # the open-API warning is only for keyless servers
    assert not any("AXIOM_API_KEYS is not set" in rec["message"] for rec in records)
    # the pipeline's own lines inside a request carry its id and stage (the BM25 build ran in the first query)
    bm25 = [rec for rec in records if rec["logger"] == "axiom.retrieval"
            and "BM25 index built" in rec["message"]]
    assert bm25 and all(rec["request_id"] and rec["stage"] == "retrieve" for rec in bm25)


def _report(label: str, latencies: list[float], seconds: float) -> str:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return (f"{label}: {len(latencies)} requests in {seconds:.1f}s = {len(latencies) / seconds:.1f} req/s; "
            f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")


@pytest.mark.slow  # 20 clients for ~14 s: a benchmark, printed
def test_load_benchmark(server: AxiomServer, sidecar: httpx.Client,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """20 concurrent clients for 10 s on /query (extractive, hybrid retrieval, every question new so the cache
    never answers), then 3 s of repeated questions (cache hits, after one warm-up request per question).
    Asserts no errors; prints the numbers."""
    lines = []
    for label, seconds, unique in (("uncached", 10.0, True), ("cached", 3.0, False)):
        if not unique:
            with client(base_url=server.api, headers={"X-API-Key": API_KEYS[0]}) as c:
                for question in QUESTIONS:
                    assert c.post("/query", json={"question": question}).status_code == 200
        t0 = time.perf_counter()
        latencies, errors = asyncio.run(drive_queries(server.api, API_KEYS[0], 20, seconds,
                                                       tag="run" if unique else None))
        elapsed = time.perf_counter() - t0
        assert not errors, errors[:5]
        assert latencies
        lines.append(_report(f"load {label} (20 clients)", latencies, elapsed))
    assert sidecar.get("/health").status_code == 200
    with capsys.disabled():
        print("\n" + "\n".join(lines))
