"""A slow or failing LLM must not hold the service: the per-request deadline, the concurrency cap and the LLM
circuit breaker, against real `axiom serve` subprocesses (the session's ChromaDB server) and the loopback
OpenAI stand-in, whose replies each test scripts (hang, fail, answer). Unit tests of the breaker and of the
client's deadline run in-process against the same stand-in.

Two servers: `limits` (breaker off, a 5 s request deadline, at most 2 requests in flight) and `breaker` (2
failures open it for 3 s). The tests of each run in file order."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.service.conftest import OPENAI_SECRET, AxiomServer, client, metric, metric_samples
from tests.support.chroma_server import ChromaServer
from tests.support.clock import FakeClock
from tests.support.fake_openai import FakeOpenAIServer, Reply, chat_completion
from tests.support.waiting import poll_until

STUB = "Stub answer citing the first source [1]."
HANG_SECONDS = 120.0  # a hung endpoint: longer than any test waits
DEADLINE = 5.0  # service.request_timeout_seconds of the `limits` server
SLACK = 3.0  # the extractive fallback after the deadline, on a busy 2-core machine
CAP = 2  # service.max_concurrent_requests of the `limits` server
RETRY_AFTER = 7
BREAKER_FAILURES = 2
BREAKER_OPEN = 3.0


@dataclass
class Script:
    """What the stand-in does with the next chat completion: answer, hang, or fail with HTTP 500."""

    mode: str = "ok"

    def __call__(self, path: str, body: dict[str, Any]) -> Reply:
        if self.mode == "hang":
            return Reply(body=chat_completion("Too late [1]."), delay=HANG_SECONDS)
        if self.mode == "fail":
            return Reply(status=500, body={"error": {"message": "boom"}})
        return Reply(body=chat_completion(STUB))




def _start(chroma: ChromaServer, fake: FakeOpenAIServer, workdir: Any, name: str,
           config: dict[str, Any]) -> AxiomServer:
    srv = AxiomServer(
        workdir,
        env={"CHROMA_HOST": chroma.host, "CHROMA_PORT": str(chroma.port),
             "AXIOM_COLLECTION": f"svc_{name}_{uuid.uuid4().hex[:8]}", "OPENAI_API_KEY": OPENAI_SECRET,
             "OPENAI_BASE_URL": fake.base_url, "LLM_PROVIDER": "openai", "LLM_MODEL": "fake-model"},
        config=config,
    ).start()
    with client(base_url=srv.api) as c:
        r = c.post("/ingest", json={"paths": ["."]})
    assert r.status_code == 200, r.text
    return srv


def _scrape(server: AxiomServer) -> dict:
    with client(base_url=server.sidecar) as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    return metric_samples(r.text)


def _health(server: AxiomServer) -> list[httpx.Response]:
    out = []
    for base in (server.sidecar, server.api):
        with client(base_url=base) as c:
            out.append(c.get("/health"))
    return out


# -- the `limits` server: deadline and concurrency cap
# ---------------------------------------------------------
@pytest.fixture(scope="module")
def limits_script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def limits_llm(limits_script: Script) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(limits_script) as fake:
        yield fake


@pytest.fixture(scope="module")
def limits_server(chroma_server: ChromaServer, limits_llm: FakeOpenAIServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[AxiomServer]:
    # without a deadline one hung /query would take 4 attempts x 20 s plus back-off
    srv = _start(chroma_server, limits_llm, tmp_path_factory.mktemp("svc-limits"), "limits", {
        "generation": {"max_retries": 3, "timeout_seconds": 20, "backoff_initial_seconds": 0.5,
                       "backoff_max_seconds": 2, "breaker_failures": 0},
        "service": {"request_timeout_seconds": DEADLINE, "max_concurrent_requests": CAP,
                    "retry_after_seconds": RETRY_AFTER}})
    yield srv
    srv.kill()  # requests to the hung stand-in may still be draining


def test_a_hung_llm_gives_a_degraded_answer_within_the_request_deadline(
        limits_server: AxiomServer, limits_llm: FakeOpenAIServer, limits_script: Script) -> None:
    with client(base_url=limits_server.api) as api:
        limits_script.mode = "ok"
        warm = api.post("/query", json={"question": "How do honey bees find flowers?"})
        assert warm.status_code == 200 and warm.json()["degraded"] is False, warm.text
        limits_script.mode = "hang"
        before = limits_llm.calls()
        t0 = time.perf_counter()
        try:
            r = api.post("/query", json={"question": "Which volcano buried Pompeii?"}, timeout=DEADLINE + 20)
        except httpx.ReadTimeout:
            pytest.fail(f"no answer within {DEADLINE + 20:g}s although the request deadline is {DEADLINE:g}s")
        elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] is True and body["generator"] == "extractive", body
    assert body["answer"].startswith("Extractive answer") and body["citations"]
    reason = body["degraded_reason"]
    assert "deadline" in reason and "service.request_timeout_seconds" in reason, reason
    assert elapsed < DEADLINE + SLACK, f"answered after {elapsed:.1f}s; deadline {DEADLINE:g}s"
    assert limits_llm.calls() >= before + 1  # the LLM was tried, then abandoned at the deadline


def test_one_request_over_the_cap_is_refused_at_once_with_retry_after(
        limits_server: AxiomServer, limits_llm: FakeOpenAIServer, limits_script: Script) -> None:
    limits_script.mode = "hang"  # every admitted /query stays in flight until its deadline
    before_metrics = _scrape(limits_server)
    results: list[tuple[httpx.Response, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CAP + 1)

    def one(i: int) -> None:
        with client(base_url=limits_server.api) as c:
            barrier.wait()
            t0 = time.perf_counter()
            try:
                r = c.post("/query", json={"question": f"Question {i}: how do bees dance, slowly?"},
                           timeout=DEADLINE + 20)
            except httpx.HTTPError as exc:
                with lock:
                    errors.append(f"{type(exc).__name__} after {time.perf_counter() - t0:.1f}s")
                return
            with lock:
                results.append((r, time.perf_counter() - t0))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CAP + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE + 30)
    statuses = sorted(r.status_code for r, _ in results)
    assert not errors and len(results) == CAP + 1, (statuses, errors)
    refused = [(r, s) for r, s in results if r.status_code == 503]
    assert refused, f"no 503 with {CAP + 1} concurrent queries and max_concurrent_requests={CAP}: {statuses}"
    # two outcomes on purpose: which CAP requests win the slots is a race; how many of each is not (below)
    assert all(r.status_code in (200, 503) for r, _ in results), statuses
    assert statuses.count(200) == CAP, statuses  # every admitted one answered (degraded at its deadline)
    for r, seconds in refused:
        assert r.headers["retry-after"] == str(RETRY_AFTER)
        body = r.json()
        assert body["error"] == "overloaded" and "service.max_concurrent_requests" in body["message"], body
        assert body["request_id"] == r.headers["x-request-id"]
        assert seconds < DEADLINE, f"the 503 took {seconds:.1f}s: it waited instead of being refused"
    after_metrics = _scrape(limits_server)
    assert metric(after_metrics, "axiom_rejected_requests_total", endpoint="/query") - \
        metric(before_metrics, "axiom_rejected_requests_total", endpoint="/query") == len(refused)


def test_ingest_counts_against_the_cap_and_slots_are_released(
        limits_server: AxiomServer, limits_llm: FakeOpenAIServer, limits_script: Script) -> None:
    limits_script.mode = "hang"
    before = limits_llm.calls()
    threads = []
    for i in range(CAP):
        def one(i: int = i) -> None:
            with client(base_url=limits_server.api) as c:
                c.post("/query", json={"question": f"Held {i}: what is the waggle dance?"},
                       timeout=DEADLINE + 20)

        threads.append(threading.Thread(target=one))
        threads[-1].start()
    # they stay in flight until their deadline: leave time to send the ingest while they are
    poll_until(lambda: limits_llm.calls() >= before + CAP, timeout=DEADLINE - 1.5,
               message=f"{CAP} queries to reach the LLM")
    with client(base_url=limits_server.api) as api:
        r = api.post("/ingest", json={"paths": ["."]})
        assert r.status_code == 503 and r.headers["retry-after"] == str(RETRY_AFTER), r.text
        assert r.json()["error"] == "overloaded"
        assert metric(_scrape(limits_server), "axiom_requests_in_flight") == CAP
        for t in threads:
            t.join(DEADLINE + 30)
        limits_script.mode = "ok"
        r = api.post("/query", json={"question": "After the rush: how do bees dance?"})
        assert r.status_code == 200 and r.json()["degraded"] is False, r.text
        assert api.post("/ingest", json={"paths": ["."]}).status_code == 200
    for health in _health(limits_server):
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert metric(_scrape(limits_server), "axiom_rejected_requests_total", endpoint="/ingest") >= 1


# -- the `breaker` server
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def breaker_script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def breaker_llm(breaker_script: Script) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(breaker_script) as fake:
        yield fake


@pytest.fixture(scope="module")
def breaker_server(chroma_server: ChromaServer, breaker_llm: FakeOpenAIServer,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[AxiomServer]:
    srv = _start(chroma_server, breaker_llm, tmp_path_factory.mktemp("svc-breaker"), "breaker", {
        "generation": {"max_retries": 0, "timeout_seconds": 10, "breaker_failures": BREAKER_FAILURES,
                       "breaker_window_seconds": 60, "breaker_open_seconds": BREAKER_OPEN},
        "service": {"request_timeout_seconds": 30}})
    yield srv
    srv.terminate()


def test_the_breaker_opens_after_n_failures_answers_without_the_llm_and_closes_after_a_trial(
        breaker_server: AxiomServer, breaker_llm: FakeOpenAIServer, breaker_script: Script) -> None:
    with client(base_url=breaker_server.api) as api:
        breaker_script.mode = "ok"
        r = api.post("/query", json={"question": "How do honey bees find flowers?"})
        assert r.status_code == 200 and r.json()["degraded"] is False, r.text
        for health in _health(breaker_server):
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            assert health.json()["llm_circuit"]["state"] == "closed"
        assert metric(_scrape(breaker_server), "axiom_llm_circuit_open") == 0

        breaker_script.mode = "fail"
        for i in range(BREAKER_FAILURES):
            r = api.post("/query", json={"question": f"Failure {i}: which volcano buried Pompeii?"})
            assert r.status_code == 200 and r.json()["degraded"] is True, r.text
            assert "HTTP 500" in r.json()["degraded_reason"]

        for health in _health(breaker_server):
            assert health.status_code == 200, health.text
            body = health.json()
            assert body["status"] == "degraded" and "circuit" in body["reason"], body
            assert body["llm_circuit"]["state"] == "open", body
        assert metric(_scrape(breaker_server), "axiom_llm_circuit_open") == 1

        calls = breaker_llm.calls()
        t0 = time.perf_counter()
        r = api.post("/query", json={"question": "While open: what is the Ring of Fire?"})
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["degraded"] is True and body["generator"] == "extractive" and body["citations"], body
        assert "circuit" in body["degraded_reason"] and "open" in body["degraded_reason"], body[
            "degraded_reason"
        ]
        assert breaker_llm.calls() == calls, "a request reached the LLM while the circuit was open"
        assert elapsed < 5, elapsed

        # after breaker_open_seconds one trial call goes through; its success closes the circuit
        breaker_script.mode = "ok"

        def trial_answered() -> httpx.Response | None:
            """The answer once a trial call went through; while open, still degraded and no LLM call."""
            reply = api.post("/query", json={"question": "Trial: how long do worker bees live?"})
            assert reply.status_code == 200, reply.text
            if not reply.json()["degraded"]:
                return reply
            assert "circuit" in reply.json()["degraded_reason"]
            assert breaker_llm.calls() == calls
            return None

        r = poll_until(trial_answered, timeout=BREAKER_OPEN + 20, interval=0.2,
                       message="the circuit to let a trial call through")
        assert r.json()["answer"] == STUB
        assert breaker_llm.calls() == calls + 1  # exactly one trial
    for health in _health(breaker_server):
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert health.json()["llm_circuit"]["state"] == "closed"
    assert metric(_scrape(breaker_server), "axiom_llm_circuit_open") == 0


# -- in-process: the breaker and the client's deadline
# ---------------------------------------------------------
def test_breaker_states_with_a_fake_clock() -> None:
    from axiom.breaker import CircuitBreaker

    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failures=3, window_seconds=10, open_seconds=5, clock=clock)
    assert breaker.state == "closed"
    for _ in range(2):
        permit = breaker.acquire()
        assert permit is not None
        permit.failure("HTTP 500")
    clock.now += 11  # those two leave the window
    for _ in range(2):
        breaker.acquire().failure("HTTP 500")
    assert breaker.state == "closed"
    breaker.acquire().failure("HTTP 502")
    assert breaker.state == "open" and breaker.acquire() is None
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["last_failure"] == "HTTP 502" and snap["retry_in_seconds"] == 5
    clock.now += 5
    assert breaker.state == "half_open"
    trial = breaker.acquire()
    assert trial is not None and breaker.acquire() is None  # one trial at a time
    trial.failure("HTTP 500")  # the trial failed: open again for another 5 s
    assert breaker.state == "open"
    clock.now += 5
    breaker.acquire().success()
    assert breaker.state == "closed" and breaker.acquire() is not None


def test_breaker_neutral_outcome_frees_the_trial_and_zero_turns_it_off() -> None:
    from axiom.breaker import CircuitBreaker

    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failures=1, window_seconds=10, open_seconds=5, clock=clock)
    breaker.acquire().failure("x")
    clock.now += 5
    trial = breaker.acquire()
    trial.release()  # neither success nor failure (a 400 about this request): the next call is the trial
    assert breaker.state == "half_open" and breaker.acquire() is not None
    off = CircuitBreaker(failures=0, window_seconds=10, open_seconds=5, clock=clock)
    for _ in range(100):
        off.acquire().failure("x")
    assert off.state == "closed" and not off.enabled


def test_breaker_is_thread_safe() -> None:
    from axiom.breaker import CircuitBreaker

    breaker = CircuitBreaker(failures=1000, window_seconds=60, open_seconds=60)
    admitted = []

    def work() -> None:
        for _ in range(200):
            permit = breaker.acquire()
            if permit is not None:
                admitted.append(1)
                permit.failure("x")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.state == "open"
    # N calls got through, plus at most one already admitted in each other thread when the N-th failure opened
    # it
    assert 1000 <= len(admitted) <= 1000 + 7


def test_client_deadline_bounds_attempts_and_back_off() -> None:
    from axiom.errors import LLMError
    from axiom.llm import LLMClient, llm_deadline

    script = Script("ok")
    with FakeOpenAIServer(script) as fake:
        llm = LLMClient(model="m", api_key="k", base_url=fake.base_url, timeout=20, max_retries=3,
                        backoff_initial=0.5, backoff_max=2)
        # the client's lazy imports: not timed
        assert llm.chat([{"role": "user", "content": "hi"}]).text == STUB
        script.mode = "hang"
        t0 = time.perf_counter()
        with llm_deadline(1.0, "the test's 1s deadline"), pytest.raises(LLMError) as info:
            llm.chat([{"role": "user", "content": "hi"}])
        assert time.perf_counter() - t0 < 2.5
        assert "deadline" in info.value.message and "the test's 1s deadline" in info.value.message
        # a Retry-After longer than what is left is not waited for
        fake.enqueue(Reply(status=429, headers={"Retry-After": "30"},
                           body={"error": {"message": "slow down"}}))
        t0 = time.perf_counter()
        with llm_deadline(2.0, "2s"), pytest.raises(LLMError) as info:
            llm.chat([{"role": "user", "content": "hi"}])
        assert time.perf_counter() - t0 < 1.0 and "HTTP 429" in info.value.message
        # a deadline already passed: no call at all
        calls = fake.calls()
        with llm_deadline(0.0, "0s"), pytest.raises(LLMError):
            llm.chat([{"role": "user", "content": "hi"}])
        assert fake.calls() == calls


def test_client_with_an_open_breaker_does_not_call() -> None:
    from axiom.breaker import CircuitBreaker, CircuitOpenError
    from axiom.errors import LLMError
    from axiom.llm import LLMClient

    with FakeOpenAIServer(Script("fail")) as fake:
        breaker = CircuitBreaker(failures=1, window_seconds=60, open_seconds=60)
        llm = LLMClient(model="m", api_key="k", base_url=fake.base_url, timeout=5, max_retries=0,
                        breaker=breaker)
        with pytest.raises(LLMError):
            llm.chat([{"role": "user", "content": "hi"}])
        calls = fake.calls()
        with pytest.raises(CircuitOpenError) as info:
            llm.chat([{"role": "user", "content": "hi"}])
        assert fake.calls() == calls and "circuit" in info.value.message
        # a 400 about this one request is not the endpoint failing: it does not count
        other = CircuitBreaker(failures=1, window_seconds=60, open_seconds=60)
        llm2 = LLMClient(model="m", api_key="k", base_url=fake.base_url, timeout=5, max_retries=0,
                         breaker=other)
        fake.enqueue(Reply(status=400, body={"error": {"message": "context too long"}}))
        with pytest.raises(LLMError):
            llm2.chat([{"role": "user", "content": "hi"}])
        assert other.state == "closed"
