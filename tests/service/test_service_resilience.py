"""`axiom serve` without API keys, answering with the `openai` generator on the loopback OpenAI stand-in, with
pii.redact_llm_input on and LOG_LEVEL=DEBUG, against its OWN ChromaDB server (which the outage test stops and
restarts): open API + warning, LLM input redaction, degraded answers, request ids through every stage,
ChromaDB outage and recovery without a restart, SIGTERM with a request in flight.

The tests run in file order; the last one stops the server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.service.conftest import OPENAI_SECRET, AxiomServer, client, metric_samples
from tests.support.chroma_server import ChromaServer
from tests.support.fake_openai import FakeOpenAIServer, Reply, chat_completion
from tests.support.waiting import poll_until

HEALTH_TIMEOUT = 1.5
STUB_ANSWER = "Stub answer citing the first source [1]."


@pytest.fixture(scope="module")
def own_chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """This module's own ChromaDB server (port chosen, not started yet: the `server` fixture starts it)."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-outage") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_llm_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(own_chroma: ChromaServer, fake_llm_server: FakeOpenAIServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[AxiomServer]:
    srv = AxiomServer(
        tmp_path_factory.mktemp("svc-open"),
        env={"CHROMA_HOST": own_chroma.host, "CHROMA_PORT": str(own_chroma.port),
             "AXIOM_COLLECTION": f"svc_open_{uuid.uuid4().hex[:8]}", "OPENAI_API_KEY": OPENAI_SECRET,
             "OPENAI_BASE_URL": fake_llm_server.base_url, "LLM_PROVIDER": "openai", "LLM_MODEL": "fake-model",
             "LOG_LEVEL": "DEBUG"},
        config={"generation": {"max_retries": 1, "backoff_initial_seconds": 0, "backoff_max_seconds": 0,
                               "timeout_seconds": 10},
                "pii": {"redact_llm_input": True},
                "service": {"health_timeout_seconds": HEALTH_TIMEOUT, "shutdown_grace_seconds": 10}},
    ).launch()
    try:
        own_chroma.start()  # while axiom loads its model: axiom starts without ChromaDB and connects later
        srv.wait_ready()
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def api(server: AxiomServer) -> Iterator[httpx.Client]:
    with client(base_url=server.api) as c:  # no key: the API is open
        yield c


def test_open_api_warns_and_answers_without_a_key(server: AxiomServer, api: httpx.Client) -> None:
    warnings = [r["message"] for r in server.log_records() if r["level"] == "WARNING"]
    assert sum("AXIOM_API_KEYS is not set" in m for m in warnings) == 1
    r = api.post("/ingest", json={"paths": ["."]})
    assert r.status_code == 200, r.text
    for base in (server.sidecar, server.api):
        with client(base_url=base) as c:
            health = c.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["generator"] == {"name": "openai", "model": "fake-model"}
        assert OPENAI_SECRET not in health.text


def test_llm_answers_and_pii_is_redacted_from_its_input(api: httpx.Client,
                                                        fake_llm_server: FakeOpenAIServer) -> None:
    question = "Does jane.roe@example.org (SSN 123-45-6789, tel +44 20 7946 0958) know how bees dance?"
    before = fake_llm_server.calls()
    r = api.post("/query", json={"question": question, "retriever": "bm25"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generator"] == "openai" and body["answer"] == STUB_ANSWER and body["degraded"] is False
    assert [c["n"] for c in body["citations"]] == [1]
    assert body["question"] == question  # the caller gets their own question back
    assert fake_llm_server.calls() == before + 1
    sent = "\n".join(m["content"] for m in fake_llm_server.requests[-1][1]["messages"])
    for pii in ("jane.roe@example.org", "123-45-6789", "7946 0958"):
        assert pii not in sent
    assert "[EMAIL]" in sent and "[SSN]" in sent and "[PHONE]" in sent and "waggle" in sent


def test_llm_failure_gives_a_degraded_extractive_answer_that_is_not_cached(
        server: AxiomServer, api: httpx.Client, fake_llm_server: FakeOpenAIServer) -> None:
    rid = "degraded-" + uuid.uuid4().hex[:8]
    question = "Which volcano buried Pompeii?"
    fake_llm_server.enqueue(Reply(status=500, body={"error": {"message": "boom"}}),
                            # max_retries=1: two attempts
                            Reply(status=500, body={"error": {"message": "boom"}}))
    r = api.post("/query", json={"question": question}, headers={"X-Request-ID": rid})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["degraded"] is True
        and body["generator"] == "extractive"
        and "HTTP 500" in body["degraded_reason"]
    )
    assert body["answer"].startswith("Extractive answer")
    calls = fake_llm_server.calls()
    again = api.post("/query", json={"question": question}).json()
    assert again["cached"] is False and again["degraded"] is False and fake_llm_server.calls() == calls + 1
    server.wait_for_access_line(rid)  # the request's last line: its warnings were written before it
    mine = [rec for rec in server.log_records() if rec["request_id"] == rid]
    warnings = [rec for rec in mine if rec["level"] == "WARNING"]
    assert {rec["logger"] for rec in warnings} >= {"axiom.llm", "axiom.generation"}
    assert all(rec["stage"] == "generate" for rec in warnings)


def test_request_id_reaches_every_stage(server: AxiomServer, api: httpx.Client) -> None:
    rid = "stages-" + uuid.uuid4().hex[:8]
    r = api.post("/query", json={"question": "How long do worker bees live?", "retriever": "hybrid"},
                 headers={"X-Request-ID": rid})
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    server.wait_for_access_line(rid)  # written after the response
    records = server.log_records()
    mine = [i for i, rec in enumerate(records) if rec["request_id"] == rid]
    window = records[mine[0]:mine[-1] + 1]
    # at DEBUG every library line written during the request is there too (openai, httpx, chromadb): all carry
    # it
    assert all(rec["request_id"] == rid for rec in window), [rec for rec in window
                                                             if rec["request_id"] != rid][:3]
    stage_lines = {rec["stage"] for rec in window if rec["logger"] == "axiom.stage"}
    assert stage_lines == {"embed", "retrieve", "generate", "total"}
    loggers = {rec["logger"] for rec in window}
    assert "axiom.service" in loggers and "axiom.service.access" in loggers
    # the LLM call, in-thread
    assert any(name.startswith(("openai", "httpx", "httpcore")) for name in loggers)


def test_chroma_outage_gives_503_and_recovers_without_a_restart(
        server: AxiomServer, api: httpx.Client, own_chroma: ChromaServer) -> None:
    question = {"question": "What is the Ring of Fire?", "retriever": "dense"}
    assert api.post("/query", json=question).status_code == 200
    own_chroma.stop()
    try:
        for base in (server.sidecar, server.api):
            with client(base_url=base) as c:
                t0 = time.perf_counter()
                r = c.get("/health")
                elapsed = time.perf_counter() - t0
            assert r.status_code == 503, r.text
            assert elapsed < HEALTH_TIMEOUT + 1.0, elapsed
            assert r.json()["status"] == "unavailable" and r.json()["reason"]
        for body in (question, {"question": "A new question while ChromaDB is down?"}):
            r = api.post("/query", json=body)
            assert r.status_code == 503, r.text
            payload = r.json()
            assert payload["error"] == "store_unavailable"
            assert f"{own_chroma.host}:{own_chroma.port}" in payload["message"]
        with client(base_url=server.sidecar) as c:
            samples = metric_samples(c.get("/metrics").text)
        assert sum(v for (name, labels), v in samples.items() if name == "axiom_errors_total"
                   and ("kind", "StoreUnavailableError") in labels) >= 2
    finally:
        own_chroma.start()  # same port, same data folder
    replies: list[httpx.Response] = []

    def answered() -> bool:
        replies.append(api.post("/query", json=question))
        return replies[-1].status_code == 200

    poll_until(answered, timeout=30, interval=0.5,
               message=lambda: f"a 200 after ChromaDB came back (last: {replies[-1].status_code} "
                               f"{replies[-1].text})")
    r = replies[-1]
    with client(base_url=server.sidecar) as c:
        health = c.get("/health")
    assert health.status_code == 200 and health.json()["collection"]["chunks"] > 0


def test_sigterm_finishes_in_flight_requests_and_exits_0(server: AxiomServer,
                                                          fake_llm_server: FakeOpenAIServer) -> None:
    fake_llm_server.enqueue(Reply(body=chat_completion("Slow answer [1]."), delay=2.0))
    before = fake_llm_server.calls()
    result: dict[str, httpx.Response] = {}

    def slow_query() -> None:
        with client(base_url=server.api) as c:
            result["r"] = c.post("/query", json={"question": "Who decoded the waggle dance, slowly?"})

    thread = threading.Thread(target=slow_query)
    thread.start()
    poll_until(lambda: fake_llm_server.calls() != before, timeout=30, message="the request to reach the LLM")
    assert fake_llm_server.calls() == before + 1, "the request never reached the LLM"
    t0 = time.perf_counter()
    code = server.terminate(timeout=30)
    stopped_in = time.perf_counter() - t0
    thread.join(10)
    assert code == 0
    assert result["r"].status_code == 200 and result["r"].json()["answer"] == "Slow answer [1]."
    assert stopped_in < 10, stopped_in
    with pytest.raises(httpx.TransportError), client(base_url=server.api) as c:
        c.get("/health")
    records = server.log_records()
    messages = [rec["message"] for rec in records]
    assert any(m.startswith("SIGTERM: finishing in-flight requests") for m in messages)
    assert any(m.startswith("stopped after") for m in messages)
    assert OPENAI_SECRET not in server.log_text()
