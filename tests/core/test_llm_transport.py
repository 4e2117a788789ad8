"""The LLM client's fault handling through its transport seam: `httpx.MockTransport(handler)` stands where the
network would be, so faults are injected without a server and without sleeping (back-off is 0 or recorded).

The real wire (a loopback HTTP server) is covered by tests/core/test_generation.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from axiom.breaker import CircuitBreaker
from axiom.errors import LLMError
from axiom.llm import LLMClient, async_openai_client, llm_deadline
from tests.support.fake_openai import chat_completion, embeddings_response

BASE_URL = "http://llm.test/v1"
KEY = "sk-transport-test-do-not-leak"
MESSAGES = [{"role": "user", "content": "hi"}]
Handler = Callable[[httpx.Request], httpx.Response]


def ok(text: str = "fine") -> httpx.Response:
    return httpx.Response(200, json=chat_completion(text))


def error(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": f"status {status}"}}, headers=headers)


class Script:
    """A handler answering from a list, one reply (or exception) per request; records every request."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            if isinstance(reply, httpx.RequestError):
                reply.request = request
            raise reply
        return reply


def client(handler: Handler, *, max_retries: int = 3, timeout: float = 30.0,
           breaker: CircuitBreaker | None = None) -> tuple[LLMClient, list[float]]:
    llm = LLMClient(model="m", api_key=KEY, base_url=BASE_URL, timeout=timeout, max_retries=max_retries,
                    backoff_initial=0.5, backoff_max=8.0, breaker=breaker,
                    http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    slept: list[float] = []
    llm.policy.sleep = slept.append  # the waits are recorded, not slept
    return llm, slept


def test_429_then_200_is_retried_after_retry_after() -> None:
    script = Script(error(429, {"Retry-After": "2"}), ok("after the rate limit"))
    llm, slept = client(script)
    result = llm.chat(MESSAGES)
    assert result.text == "after the rate limit" and result.attempts == 2
    assert len(script.requests) == 2 and slept == [2.0]  # Retry-After was honoured
    body = json.loads(script.requests[0].content)
    assert body["model"] == "m" and body["messages"] == MESSAGES
    assert script.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_500_on_every_attempt_fails_with_the_typed_error() -> None:
    script = Script(error(500))
    llm, slept = client(script, max_retries=2)
    with pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 3 and len(slept) == 2
    assert info.value.message == "chat completion failed after 3 attempt(s): HTTP 500 from the LLM endpoint"
    assert all(0.0 < s <= 8.0 for s in slept)  # exponential back-off with jitter, capped
    assert KEY not in info.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    script = Script(error(status), ok())
    llm, slept = client(script)
    with pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 1 and slept == []
    assert f"HTTP {status}" in info.value.message and "1 attempt(s)" in info.value.message


def test_a_read_timeout_is_retried() -> None:
    script = Script(httpx.ReadTimeout("no answer"), ok("second try"))
    llm, slept = client(script)
    result = llm.chat(MESSAGES)
    assert result.text == "second try" and result.attempts == 2 and len(slept) == 1


def test_a_connection_error_is_retried_then_named() -> None:
    script = Script(httpx.ConnectError("refused"))
    llm, _ = client(script, max_retries=1)
    with pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 2 and "cannot connect to the LLM endpoint" in info.value.message


def test_the_deadline_stops_retries_and_cuts_each_attempt_timeout() -> None:
    # a Retry-After longer than what is left: no retry, no wait
    script = Script(error(503, {"Retry-After": "30"}), ok())
    llm, slept = client(script)
    with llm_deadline(5.0, "the test's 5s deadline"), pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 1 and slept == []
    assert info.value.message.startswith("chat completion stopped at the test's 5s "
                                         "deadline after 1 attempt(s)")
    assert "HTTP 503" in info.value.message
    # the attempt's timeout is the time left, not the client's 30s
    timeouts = script.requests[0].extensions["timeout"]
    assert 4.0 < timeouts["read"] <= 5.0, timeouts
    # an attempt that times out on the deadline's timeout: the error says the deadline was reached
    script = Script(httpx.ReadTimeout("no answer"))
    llm, _ = client(script)
    with llm_deadline(0.2, "0.2s"), pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert "stopped at 0.2s" in info.value.message and "timed out" in info.value.message
    # a deadline already passed: the endpoint is not called at all
    script = Script(ok())
    llm, _ = client(script)
    with llm_deadline(0.0, "0s"), pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert script.requests == [] and "not attempted" in info.value.message


@pytest.mark.parametrize("reply", [
    httpx.Response(200, content=b"this is not json {", headers={"content-type": "application/json"}),
    httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                              "choices": []}),
    httpx.Response(200, json=chat_completion("   ")),
], ids=["not-json", "no-choices", "empty-content"])
def test_a_malformed_reply_is_retried_then_says_so(reply: httpx.Response) -> None:
    script = Script(reply)
    llm, _ = client(script, max_retries=1)
    with pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 2
    assert info.value.message.startswith("chat completion failed after 2 attempt(s): malformed "
                                         "reply from the LLM endpoint ("), info.value.message


def test_the_breaker_counts_endpoint_failures_not_request_errors() -> None:
    breaker = CircuitBreaker(failures=1, window_seconds=60, open_seconds=60)
    llm, _ = client(Script(error(400)), max_retries=0, breaker=breaker)
    with pytest.raises(LLMError):
        llm.chat(MESSAGES)
    assert breaker.state == "closed"  # a 400 is about that one request
    script = Script(error(502))
    llm, _ = client(script, max_retries=2, breaker=breaker)
    with pytest.raises(LLMError):
        llm.chat(MESSAGES)
    assert breaker.state == "open" and len(script.requests) == 3  # one failed call, however many attempts
    with pytest.raises(LLMError) as info:
        llm.chat(MESSAGES)
    assert len(script.requests) == 3 and "circuit" in info.value.message


def test_embeddings_share_the_retry_policy() -> None:
    script = Script(error(503), httpx.Response(200, json=embeddings_response([[1.0, 0.0], [0.0, 1.0]])))
    llm, slept = client(script)
    assert llm.embed(["a", "b"], model="e") == [[1.0, 0.0], [0.0, 1.0]]
    assert len(script.requests) == 2 and len(slept) == 1
    assert script.requests[0].url.path == "/v1/embeddings"
    llm, _ = client(Script(error(400)))
    with pytest.raises(LLMError) as info:
        llm.embed(["a"], model="e")
    assert info.value.message == "embedding request failed after 1 attempt(s): HTTP 400 from the LLM endpoint"


def test_the_judge_client_shares_the_retry_policy() -> None:
    import openai

    script = Script(error(429, {"retry-after-ms": "0"}), error(500, {"retry-after-ms": "0"}), ok("judged"))

    async def run(max_retries: int) -> str | None:
        judge = async_openai_client(api_key=KEY, base_url=BASE_URL, timeout=5.0, max_retries=max_retries,
                                    http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)))
        try:
            reply = await judge.chat.completions.create(model="j", messages=MESSAGES)
            return reply.choices[0].message.content
        finally:
            await judge.close()

    t0 = time.perf_counter()
    assert asyncio.run(run(max_retries=2)) == "judged" and len(script.requests) == 3
    assert time.perf_counter() - t0 < 5.0
    script = Script(error(500, {"retry-after-ms": "0"}))
    with pytest.raises(openai.InternalServerError):  # the library's own error, as the judge expects
        asyncio.run(run(max_retries=1))
    assert len(script.requests) == 2
    script = Script(error(400), ok())
    with pytest.raises(openai.BadRequestError):
        asyncio.run(run(max_retries=3))
    assert len(script.requests) == 1
