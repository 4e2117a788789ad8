"""Generators: prompt building, token budget, the extractive answer, and the OpenAI client's fault handling
against the loopback OpenAI-compatible stand-in (`fake_llm`)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest

from axiom.config import Settings
from axiom.generation import (
    EXTRACTIVE_PREFIX,
    SYSTEM_PROMPT,
    ExtractiveGenerator,
    build_messages,
    cited_numbers,
    fit_contexts,
    make_generator,
)
from axiom.openai_embedder import OpenAIEmbedder
from axiom.types import Answer, Hit
from tests.support.fake_openai import FakeOpenAIServer, Reply, chat_completion, embeddings_response

KEY = "test-key-do-not-leak"

BEES = Hit("c-bees", "a.md", None, 0.9,
           "Worker bees tell their sisters where to find flowers by performing the waggle dance on the comb. "
           "The angle of the dance shows the direction of the food compared with the sun.")
VOLCANO = Hit("c-volc", "b.txt", None, 0.8,
              "Mauna Loa on the island of Hawaii is the largest active volcano on Earth by volume. "
              "It is a shield volcano built from many thin layers of runny lava.")
TEA = Hit("c-tea", "guide.pdf", 3, 0.7,
          "All true tea comes from the leaves of a single plant species, Camellia sinensis. "
          "Green tea is heated soon after harvesting to stop the leaves from oxidising.")
CONTEXTS = [VOLCANO, BEES, TEA]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- prompt and budget ------------------------------------------------------------------------------------


def test_build_messages_numbers_sources_in_order() -> None:
    messages = build_messages("Which volcano is largest?", CONTEXTS)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    user = messages[1]["content"]
    positions = [user.index(f"[{n}] ({label})") for n, label in
                 ((1, "b.txt"), (2, "a.md"), (3, "guide.pdf, page 3"))]
    assert positions == sorted(positions)
    for hit in CONTEXTS:
        assert hit.text in user
    assert "[4]" not in user
    assert user.rstrip().endswith("Question: Which volcano is largest?\nAnswer with citations:")


def test_cited_numbers_in_first_mention_order_within_range() -> None:
    assert cited_numbers("See [2], then [1][2] and [9] or [0].", limit=3) == [2, 1]
    assert cited_numbers("no citations", limit=3) == []


def word_count(text: str) -> int:
    return len(text.split())


def test_fit_contexts_keeps_whole_contexts_within_budget() -> None:
    costs = [word_count(h.text) for h in CONTEXTS]
    budget = costs[0] + costs[1]
    kept = fit_contexts(CONTEXTS, budget, word_count)
    assert kept == CONTEXTS[:2]


def test_fit_contexts_cuts_the_overflowing_one_at_a_sentence() -> None:
    first_sentence_of_bees = BEES.text.split(". ")[0] + "."
    budget = word_count(VOLCANO.text) + word_count(first_sentence_of_bees) + 2
    kept = fit_contexts(CONTEXTS, budget, word_count)
    assert [h.chunk_id for h in kept] == ["c-volc", "c-bees"]
    assert kept[0] == VOLCANO
    assert kept[1].text == first_sentence_of_bees
    assert (kept[1].source, kept[1].page, kept[1].score) == (BEES.source, BEES.page, BEES.score)
    assert sum(word_count(h.text) for h in kept) <= budget


def test_fit_contexts_with_the_model_tokenizer_never_exceeds_the_budget(cached_embedder) -> None:
    count = cached_embedder.count_tokens
    total = sum(count(h.text) for h in CONTEXTS)
    for budget in range(5, total + 10, 7):
        kept = fit_contexts(CONTEXTS, budget, count)
        assert sum(count(h.text) for h in kept) <= budget
        # order is kept, and every kept text comes from its source context
        assert [h.chunk_id for h in kept] == [h.chunk_id for h in CONTEXTS][:len(kept)]
        for h, original in zip(kept, CONTEXTS, strict=False):
            assert original.text.startswith(h.text)
    assert fit_contexts(CONTEXTS, total, count) == CONTEXTS


def test_fit_contexts_drops_a_first_sentence_that_cannot_fit() -> None:
    assert fit_contexts(CONTEXTS, 3, word_count) == []


# -- extractive ---------------------------------------------------------------------------------------------


def test_extractive_cites_the_source_holding_the_answer(cached_embedder) -> None:
    gen = ExtractiveGenerator(cached_embedder, sentences=1)
    answer = gen.generate("How do bees show each other where the flowers are?", CONTEXTS)
    assert answer.generator == "extractive" and not answer.degraded
    assert answer.answer.startswith(EXTRACTIVE_PREFIX)
    assert "waggle dance" in answer.answer
    assert answer.answer.endswith("[2]")
    assert [(c.n, c.source, c.chunk_id, c.page) for c in answer.citations] == [(2, "a.md", "c-bees", None)]
    assert answer.contexts == CONTEXTS


def test_extractive_is_deterministic_and_numbers_every_sentence(cached_embedder) -> None:
    gen = ExtractiveGenerator(cached_embedder, sentences=3)
    question = "Which plant does tea come from, and which volcano is the largest?"
    one, two = gen.generate(question, CONTEXTS), gen.generate(question, CONTEXTS)
    assert one.to_dict() == two.to_dict()
    body = one.answer[len(EXTRACTIVE_PREFIX):]
    cited = cited_numbers(body, len(CONTEXTS))
    assert set(cited) == {c.n for c in one.citations}
    assert {1, 3} <= set(cited)  # volcano and tea sentences
    for c in one.citations:
        assert c.source == CONTEXTS[c.n - 1].source and c.page == CONTEXTS[c.n - 1].page
    # each quoted sentence is verbatim from the source it cites
    for part in body.strip().split("] "):
        sentence, _, n = part.rstrip("]").rpartition(" [")
        assert sentence.strip() in CONTEXTS[int(n) - 1].text


def test_extractive_without_contexts_says_so(cached_embedder) -> None:
    answer = ExtractiveGenerator(cached_embedder).generate("anything?", [])
    assert answer.answer.startswith(EXTRACTIVE_PREFIX)
    assert "no relevant source text" in answer.answer
    assert answer.citations == []


# -- OpenAI-compatible generator against the loopback stand-in ---------------------------------------------


@pytest.fixture
def openai_settings(make_settings: Callable[..., Settings],
                    fake_llm: FakeOpenAIServer) -> Callable[..., Settings]:
    def build(**generation: object) -> Settings:
        values = {"provider": "openai", "api_key": KEY, "base_url": fake_llm.base_url, "model": "fake-model",
                  "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "max_retries": 3,
                  "timeout_seconds": 5.0, **generation}
        return make_settings(generation=values)

    return build


def generate(settings: Settings, embedder) -> tuple[Answer, float]:
    gen = make_generator(settings.generation, embedder)
    assert gen.name == "openai"
    t0 = time.perf_counter()
    answer = gen.generate("How do bees share where flowers are?", CONTEXTS)
    return answer, time.perf_counter() - t0


def assert_llm_answer(answer: Answer) -> None:
    assert answer.generator == "openai"
    assert not answer.degraded and answer.degraded_reason is None
    assert answer.answer == "Bees dance [2], unlike volcanoes [1]."
    assert [(c.n, c.chunk_id) for c in answer.citations] == [(1, "c-volc"), (2, "c-bees")]


GOOD = Reply(body=chat_completion("Bees dance [2], unlike volcanoes [1].", prompt_tokens=321,
                                  completion_tokens=12))


def test_openai_success_parses_answer_citations_and_usage(openai_settings, fake_llm: FakeOpenAIServer,
                                                          cached_embedder) -> None:
    fake_llm.enqueue(GOOD)
    answer, _ = generate(openai_settings(temperature=0.2, max_tokens=99), cached_embedder)
    assert_llm_answer(answer)
    assert answer.usage == {"prompt_tokens": 321, "completion_tokens": 12}
    assert fake_llm.calls() == 1
    path, body = fake_llm.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 99
    assert body["messages"] == build_messages("How do bees share where flowers are?", CONTEXTS)


def test_429_with_retry_after_waits_then_succeeds(openai_settings, fake_llm: FakeOpenAIServer,
                                                  cached_embedder) -> None:
    fake_llm.enqueue(Reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"}), GOOD)
    answer, elapsed = generate(openai_settings(), cached_embedder)
    assert_llm_answer(answer)
    assert fake_llm.calls() == 2
    assert elapsed >= 0.95, f"Retry-After: 1 was not honoured ({elapsed:.2f}s)"
    assert elapsed < 5


def test_500_then_success(openai_settings, fake_llm: FakeOpenAIServer, cached_embedder) -> None:
    fake_llm.enqueue(Reply(500, {"error": {"message": "boom"}}), GOOD)
    answer, elapsed = generate(openai_settings(), cached_embedder)
    assert_llm_answer(answer)
    assert fake_llm.calls() == 2
    # the configured back-off (0.01 s + jitter up to 0.01 s, at most 0.05 s), not the default's 0.5-1.0 s: the
    # gap between the two requests, which a loaded machine stretches far less than the whole call
    first, second = fake_llm.arrivals
    assert second - first < 0.5, (second - first, elapsed)


def test_read_timeout_then_success(openai_settings, fake_llm: FakeOpenAIServer, cached_embedder) -> None:
    fake_llm.enqueue(Reply(body=chat_completion("too late"), delay=3.0), GOOD)
    answer, elapsed = generate(openai_settings(timeout_seconds=0.5), cached_embedder)
    assert_llm_answer(answer)
    assert fake_llm.calls() == 2
    assert 0.45 <= elapsed < 2.5, elapsed  # gave up after the timeout, not after the slow reply


@pytest.mark.parametrize("bad", [
    Reply(200, "this is not json {"),
    Reply(200, {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}),
    Reply(200, chat_completion("   ")),
], ids=["non-json", "empty-choices", "blank-content"])
def test_malformed_reply_then_success(openai_settings, fake_llm: FakeOpenAIServer, cached_embedder,
                                      bad: Reply) -> None:
    fake_llm.enqueue(bad, GOOD)
    answer, _ = generate(openai_settings(), cached_embedder)
    assert_llm_answer(answer)
    assert fake_llm.calls() == 2


def test_empty_choices_every_time_degrades(openai_settings, fake_llm: FakeOpenAIServer,
                                           cached_embedder) -> None:
    empty = Reply(200, {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []})
    fake_llm.enqueue(*[empty] * 3)
    answer, _ = generate(openai_settings(max_retries=2), cached_embedder)
    assert answer.degraded and answer.generator == "extractive"
    assert "no choices" in (answer.degraded_reason or "")
    assert fake_llm.calls() == 3


def test_retries_exhausted_degrades_to_extractive(openai_settings, fake_llm: FakeOpenAIServer,
                                                  cached_embedder,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    max_retries = 2
    fake_llm.enqueue(*[Reply(503, {"error": {"message": "overloaded"}})] * 10)
    with caplog.at_level(logging.DEBUG):
        answer, _ = generate(openai_settings(max_retries=max_retries), cached_embedder)
    assert fake_llm.calls() == max_retries + 1
    assert answer.degraded is True
    assert answer.generator == "extractive"
    assert (
        answer.degraded_reason and "503" in answer.degraded_reason and "3 attempt" in answer.degraded_reason
    )
    assert answer.answer.startswith(EXTRACTIVE_PREFIX)
    assert "waggle dance" in answer.answer and any(c.n == 2 for c in answer.citations)
    assert answer.to_dict()["degraded"] is True
    assert KEY not in caplog.text and KEY not in answer.degraded_reason


def test_429_without_retry_after_exhausts_with_backoff(openai_settings, fake_llm: FakeOpenAIServer,
                                                       cached_embedder) -> None:
    fake_llm.enqueue(*[Reply(429, {"error": {"message": "slow down"}})] * 5)
    answer, elapsed = generate(openai_settings(max_retries=1), cached_embedder)
    assert fake_llm.calls() == 2
    assert answer.degraded and "429" in (answer.degraded_reason or "")
    assert elapsed < 3


def test_401_is_not_retried_and_degrades(openai_settings, fake_llm: FakeOpenAIServer,
                                         cached_embedder) -> None:
    fake_llm.enqueue(Reply(401, {"error": {"message": "invalid api key"}}), GOOD)
    answer, _ = generate(openai_settings(), cached_embedder)
    assert fake_llm.calls() == 1
    assert answer.degraded and answer.generator == "extractive"
    assert "401" in (answer.degraded_reason or "") and "1 attempt" in (answer.degraded_reason or "")
    assert KEY not in (answer.degraded_reason or "")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_client_errors_are_not_retried(openai_settings, fake_llm: FakeOpenAIServer, cached_embedder,
                                             status: int) -> None:
    fake_llm.enqueue(Reply(status, {"error": {"message": "no"}}), GOOD)
    answer, _ = generate(openai_settings(), cached_embedder)
    assert fake_llm.calls() == 1
    assert answer.degraded and str(status) in (answer.degraded_reason or "")


def test_connection_refused_degrades(make_settings: Callable[..., Settings], cached_embedder) -> None:
    port = free_port()
    settings = make_settings(generation={"provider": "openai", "api_key": KEY,
                                         "base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 1,
                                         "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05})
    answer, elapsed = generate(settings, cached_embedder)
    assert answer.degraded and answer.generator == "extractive"
    assert "cannot connect" in (answer.degraded_reason
                                or "") and "2 attempt" in (answer.degraded_reason or "")
    assert elapsed < 10


# -- OpenAI-compatible embeddings ---------------------------------------------------------------------------


def test_openai_embedder_normalises_and_keeps_order_across_batches(
    make_settings: Callable[..., Settings],
) -> None:
    def responder(path: str, body: dict) -> Reply:
        inputs = body["input"]
        # answer in reverse order: the client must put them back by `index`
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 2.0, 0.0]}
                for i, t in enumerate(inputs)]
        return Reply(body={"object": "list", "model": "e", "data": list(reversed(data)),
                           "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    with FakeOpenAIServer(responder) as server:
        settings = make_settings(generation={"api_key": KEY, "base_url": server.base_url,
                                             "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05})
        emb = OpenAIEmbedder("text-embedding-3-small", settings.generation, batch_size=2)
        texts = ["a", "bbb", "cc", "dddddd", "eeee"]
        vectors = emb.embed(texts)
        assert server.calls("/embeddings") == 3
        assert [body["input"] for _, body in server.requests] == [["a", "bbb"], ["cc", "dddddd"], ["eeee"]]
        assert all(body["model"] == "text-embedding-3-small" for _, body in server.requests)
    assert vectors.shape == (5, 3) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    expected = np.array([[len(t), 2.0, 0.0] for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert emb.dimension == 3


def test_openai_embedder_retries_a_short_reply(make_settings: Callable[..., Settings],
                                               fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue(Reply(body=embeddings_response([[1.0, 0.0]])))  # one vector for two inputs
    settings = make_settings(generation={"api_key": KEY, "base_url": fake_llm.base_url,
                                         "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05})
    vectors = OpenAIEmbedder("e", settings.generation).embed(["first text", "second"])
    assert fake_llm.calls("/embeddings") == 2
    assert vectors.shape == (2, 3)  # the default responder's vectors, after the retry
