"""Bounds on what a system under test sends back (issue 24): the bounded JSON parser, the endpoint client's
streamed reply (size, deadline, nesting, number length) through httpx.MockTransport, header values checked
without showing them, the default mapping reading Axiom's own /query reply, and --save-responses writing
standard JSON. The loopback-server and peak-RSS checks are in tests/reliability/test_hostile_endpoint.py."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axiom.errors import ConfigError, DatasetError
from axiom.evaluation.answered import ItemAnswer, finite_or_nan
from axiom.evaluation.bounded_json import (
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    JSONBoundError,
    dumps_finite,
    loads_bounded,
    nesting_depth,
)
from axiom.evaluation.datasets import load_golden
from axiom.evaluation.endpoint import EndpointClient, ask_endpoint
from axiom.evaluation.endpoint_config import DEFAULT_RESPONSE, load_endpoint_config
from axiom.evaluation.responses import load_responses, write_responses
from tests.evaluation.helpers import REPO, TINY_GOLDEN
from tests.support.clock import FakeClock

ITEM = load_golden(TINY_GOLDEN)[0]
GOOD = {"answer": "yes", "contexts": ["c1"], "retrieved": ["a.md"]}


def strict_json(line: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not standard JSON: {name}")

    return json.loads(line, parse_constant=refuse)


# -- the parser ------------------------------------------------------------------------------------------
def test_nesting_depth_counts_brackets_outside_strings_only() -> None:
    assert nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": "\\\\", "c": "\\"[[["}') == 1
    assert nesting_depth(b'["\\\\\\"[[[", [[]]]') == 3  # an escaped backslash, then an escaped quote
    assert nesting_depth(b"[" * 100_000) > MAX_DEPTH  # unbalanced: what a parser would recurse into
    assert nesting_depth(b"[]" * 3_000_000) == 1  # wide is not deep (several megabytes, scanned in blocks)
    assert loads_bounded(json.dumps([[[["ok"]]]])) == [[[["ok"]]]]


@pytest.mark.parametrize(("text", "words"), [
    ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    ('{"latency_ms": ' + "9" * 5000 + "}",
     f"a number is 5000 characters long; the limit is {MAX_NUMBER_CHARS}"),
    ("[1." + "5" * 200 + "]", "a number is 202 characters long"),
])
def test_documents_beyond_a_bound_are_refused_saying_which(text: str, words: str) -> None:
    with pytest.raises(JSONBoundError, match=words):
        loads_bounded(text)
    assert loads_bounded("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert loads_bounded("[" + "9" * MAX_NUMBER_CHARS + "]") == [int("9" * MAX_NUMBER_CHARS)]
    with pytest.raises(JSONBoundError, match="2,049 bytes long; the limit is 1 KiB"):
        loads_bounded(b" " * 2048 + b"1", max_bytes=1024)


def test_standard_json_out() -> None:
    text = dumps_finite({"a": float("nan"), "b": [float("-inf"), 1.5], "c": (float("inf"),)})
    assert strict_json(text) == {"a": None, "b": [None, 1.5], "c": [None]}
    assert math.isnan(finite_or_nan(10 ** 400)) and finite_or_nan("2.5") == 2.5


# -- the endpoint client through a mock transport ---------------------------------------------------------
def client_answer(handler: Any, clock: FakeClock | None = None, **changes: Any) -> ItemAnswer:
    config = dataclasses.replace(load_endpoint_config(url="http://rag.test/ask"), retries=0, **changes)
    with EndpointClient(config, transport=httpx.MockTransport(handler), sleep=lambda s: None,
                        clock=clock or FakeClock()) as client:
        return client.ask(ITEM, None)


def endless_body(chunk: bytes, head: bytes = b"") -> tuple[list[int], Iterator[bytes]]:
    """A reply body that never ends (`head`, then `chunk` forever) and the list of chunks the client
    pulled."""
    pulled: list[int] = []

    def body() -> Iterator[bytes]:
        if head:
            yield head
        while True:
            pulled.append(1)
            yield chunk

    return pulled, body()


def test_an_endless_body_is_read_no_further_than_max_reply_bytes() -> None:
    pulled, endless = endless_body(b"a" * 1024, head=b'{"answer": "')
    answer = client_answer(lambda request: httpx.Response(200, content=endless), max_reply_bytes=10 * 1024)
    assert answer.failure == "the endpoint's reply is longer than max_reply_bytes (10 KiB)"
    assert len(pulled) <= 11


def test_a_declared_oversized_body_is_refused_unread() -> None:
    pulled, body = endless_body(b" " * 65536)
    answer = client_answer(lambda request: httpx.Response(200, content=body,
                                                          headers={"Content-Length": str(1 << 30)}))
    assert answer.failure == "the endpoint's reply declares 1 GiB, more than max_reply_bytes (16 MiB)"
    assert pulled == []


def test_an_error_status_body_is_never_read() -> None:
    pulled, body = endless_body(b"x" * 65536)
    assert client_answer(lambda request: httpx.Response(500, content=body)).failure == \
        "HTTP 500 from the endpoint (1 attempt)"
    assert pulled == []


def test_a_dripping_body_is_cut_at_the_deadline() -> None:
    clock, pulled = FakeClock(), []

    def drip() -> Iterator[bytes]:
        while True:
            clock.now += 0.4  # each chunk arrives 0.4 s after the last: no read ever times out
            pulled.append(1)
            yield b" "

    answer = client_answer(lambda request: httpx.Response(200, content=drip()), clock, timeout_seconds=1.0)
    assert answer.failure == "the endpoint timed out after 1s (1 attempt)"
    assert len(pulled) == 3  # 0.4, 0.8, 1.2 > 1.0


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000,
     f"the endpoint's reply is beyond a bound: nested deeper than {MAX_DEPTH} levels"),
    (json.dumps({**GOOD, "latency_ms": 0}).replace('"latency_ms": 0', '"latency_ms": ' + "7" * 5000).encode(),
     "the endpoint's reply is beyond a bound: a number is 5000 characters long; the "
     f"limit is {MAX_NUMBER_CHARS}"),
    (b"\xff\xfe not utf-8", "the endpoint's reply is not JSON (HTTP 200, application/json)"),
])
def test_a_hostile_reply_is_that_items_failure(body: bytes, reason: str) -> None:
    answer = client_answer(lambda request: httpx.Response(200, content=body,
                                                          headers={"Content-Type": "application/json"}))
    assert answer.failure == reason


def test_one_hostile_reply_leaves_the_others_answered() -> None:
    items = load_golden(TINY_GOLDEN)

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["question"] == items[1].question:
            return httpx.Response(200, content=b"[" * 50_000)
        return httpx.Response(200, json=GOOD)

    config = dataclasses.replace(load_endpoint_config(url="http://rag.test/ask"), retries=0)
    answered = ask_endpoint(items, config, transport=httpx.MockTransport(handler))
    assert [a.answered for a in answered.answers] == [True, False, True, True, True, True]
    assert answered.source["max_reply_bytes"] == 16 << 20 and answered.source["unanswered"] == 1


def test_the_default_mapping_reads_axioms_own_query_reply() -> None:
    """`axiom eval --endpoint URL` without a mapping file against `axiom serve`: contexts are objects holding
    a text, `retrieved` lists the sources in rank order."""
    reply = {"question": ITEM.question, "answer": "Queens lay eggs.", "citations": [],
             "contexts": [{"chunk_id": "c2", "source": "b.md", "page": None, "score": 0.9, "text": "second"},
                          {"chunk_id": "c1", "source": "a.md", "page": 3, "score": 0.8, "text": "first"}],
             "retrieved": ["b.md", "a.md", "c.md"], "generator": "extractive", "degraded": False,
             "degraded_reason": None, "timings": {"total": 0.12}, "usage": {}, "request_id": "r1",
             "cached": False}
    config = load_endpoint_config(url="http://127.0.0.1:8000/query")
    assert config.response == DEFAULT_RESPONSE == {"answer": "answer", "contexts": "contexts",
                                                   "retrieved": "retrieved"}
    answer = client_answer(lambda request: httpx.Response(200, json=reply))
    assert answer.answered and answer.answer == "Queens lay eggs."
    assert answer.contexts == ("second", "first") and answer.retrieved == ("b.md", "a.md", "c.md")
    plain = client_answer(lambda request: httpx.Response(200, json=GOOD))  # the responses-file shape
    assert plain.contexts == ("c1",) and plain.retrieved == ("a.md",)
    mixed = client_answer(lambda request: httpx.Response(200, json={**GOOD, "contexts": [{"source": "x"}]}))
    assert mixed.failure == "the endpoint's reply: contexts[0] at 'contexts' is dict, not a string"
    shipped = load_endpoint_config(REPO / "evaluation" / "endpoints" / "axiom.yaml", environ={})
    assert shipped.response["retrieved"] == "retrieved" and shipped.max_reply_bytes == 16 << 20
    with EndpointClient(shipped,
                        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=reply)),
                        sleep=lambda s: None) as client:
        answer = client.ask(ITEM, 2)
    assert answer.contexts == ("second", "first") and answer.retrieved == ("b.md", "a.md", "c.md")
    assert answer.latency_seconds == 0.12


# -- headers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", ["tök3n-sëcret-value", "line1\nX-Injected: yes", "tab\tok-but-nul\x00"])
def test_a_bad_header_value_names_the_header_never_the_value(tmp_path: Path, secret: str) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("headers: {Authorization: 'Bearer "
                       "${RAG_TOKEN}'}\nheaders_from_env: {X-Key: RAG_KEY}\n")
    with pytest.raises(ConfigError) as info:
        load_endpoint_config(mapping, url="http://rag.test/ask",
                             environ={"RAG_TOKEN": secret, "RAG_KEY": secret})
    message = str(info.value)
    assert "2 problem(s)" in message
    assert (
        "headers.Authorization: the value (from environment variable RAG_TOKEN) holds a character that is "
        "not printable ASCII" in message
    )
    assert "headers.X-Key: the value (from environment variable RAG_KEY)" in message
    for part in ("ö", "ë", "\x00", "tök3n", "sëcret", "Injected", "line1", "nul"):
        assert part not in message, part
    assert "position" not in message and "ordinal" not in message
    config = load_endpoint_config(url="http://rag.test/ask")
    with pytest.raises(ConfigError, match="headers.X-Key: the value holds a character") as info:
        EndpointClient(dataclasses.replace(config, headers={"X-Key": secret}))
    assert secret not in str(info.value)
    with pytest.raises(ConfigError, match="'X Key' is not a valid header name"):
        EndpointClient(dataclasses.replace(config, headers={"X Key": "v"}))


# -- responses files and golden lines --------------------------------------------------------------------
def test_save_responses_writes_standard_json(tmp_path: Path) -> None:
    items = load_golden(TINY_GOLDEN)[:3]
    answers = [ItemAnswer(answer="a", contexts=("c",), latency_seconds=1e306, generator="endpoint",
                          metadata={"score": float("nan"), "spread": [float("-inf"), 0.5]}),
               ItemAnswer(answer="b", contexts=("c",), latency_seconds=0.25, generator="endpoint"),
               ItemAnswer.unanswered("HTTP 500 from the endpoint (1 attempt)")]
    target = write_responses(tmp_path / "saved.jsonl", items, answers)
    lines = [strict_json(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == [items[0].id, items[1].id]
    assert lines[0]["latency_ms"] is None and lines[0]["metadata"]["score"] is None
    assert lines[0]["metadata"]["spread"] == [None, 0.5] and lines[1]["latency_ms"] == 250.0
    back = load_responses(target, items)
    assert math.isnan(back[items[0].id].latency_seconds) and back[items[1].id].latency_seconds == 0.25


def test_responses_and_golden_lines_beyond_a_bound_are_bad_lines(tmp_path: Path) -> None:
    good = {"id": "t01", "answer": "a", "contexts": ["c"]}
    responses = tmp_path / "r.jsonl"
    responses.write_text("\n".join([
        json.dumps(good),
        json.dumps({"id": "t02", "answer": "a", "contexts": ["c"], "metadata": {"x": [[[[[[[[]]]]]]]]}}),
        '{"id": "t03", "answer": "a", "contexts": [], "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"id": "t04", "answer": "a", "contexts": [], "latency_ms": ' + "9" * 5000 + "}",
    ]) + "\n")
    with pytest.raises(DatasetError) as info:
        load_responses(responses, load_golden(TINY_GOLDEN))
    assert info.value.problems == [f"line 3: nested deeper than {MAX_DEPTH} levels",
                                   "line 4: a number is 5000 characters long; the "
                                   f"limit is {MAX_NUMBER_CHARS}"]
    golden = tmp_path / "g.jsonl"
    line = TINY_GOLDEN.read_text().splitlines()[0]
    golden.write_text(line + "\n" + "[" * 100_000 + "\n" + '{"id": "x", "n": 1' + "0" * 4400 + "}\n")
    with pytest.raises(DatasetError) as info:
        load_golden(golden)
    assert info.value.problems == [f"line 2: nested deeper than {MAX_DEPTH} levels",
                                   "line 3: a number is 4401 characters long; the "
                                   f"limit is {MAX_NUMBER_CHARS}"]


def test_compressed_replies_inflate_no_further_than_the_limit() -> None:
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in ~64 KiB
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        answer = client_answer(lambda request: httpx.Response(200, content=iter([bomb]),
                                                              headers={"Content-Encoding": "gzip"}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.failure == "the endpoint's reply is longer than max_reply_bytes (16 MiB)"
    assert peak < 40 << 20, peak  # inflated in one piece it would take 64 MiB
    seen: list[str] = []

    def packed(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Accept-Encoding"])
        return httpx.Response(200, content=iter([zlib.compress(json.dumps(GOOD).encode())]),
                              headers={"Content-Encoding": "deflate"})

    assert client_answer(packed).contexts == ("c1",) and seen == ["gzip, deflate"]
    for encoding, reason in (("zstd",
                              "the endpoint's reply has Content-Encoding 'zstd'; gzip, deflate or none is "
                              "read"), ("gzip", "the endpoint's reply is not valid gzip data")):
        answer = client_answer(lambda request, encoding=encoding: httpx.Response(
            200, content=iter([b"\x00" * 64]), headers={"Content-Encoding": encoding}))
        assert answer.failure == reason


def test_a_body_of_tiny_chunks_takes_no_more_than_its_size() -> None:
    def crumbs() -> Iterator[bytes]:
        for _ in range(150_000):
            yield bytes([32, 32])  # a new object each time, as a network read gives

    tracemalloc.start()
    try:
        answer = client_answer(lambda request: httpx.Response(200, content=crumbs()),
                               max_reply_bytes=512 << 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.failure == "the endpoint's reply is not JSON (HTTP 200, no content type)"
    assert peak < 3 << 20, peak  # kept as 150,000 2-byte objects they would take ~6 MiB
