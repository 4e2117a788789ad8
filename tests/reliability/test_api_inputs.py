"""Bad requests against a real `axiom serve` (subprocess, real ChromaDB server, API keys on): each gets its
exact HTTP status and a JSON error naming the field or the limit (never echoing the input), and afterwards the
store holds exactly what it held before and the service is healthy. Cases already asserted in
tests/service/test_service.py (empty and 4,001-character question, top_k 0/101, unknown retriever, extra
field, bad JSON, text/plain and form bodies, 413 with and without Content-Length, `..` / absolute / symlink
paths) are not repeated here; see docs/RELIABILITY.md."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import SERVICE_MAX_BODY
from tests.service.conftest import API_KEYS, AxiomServer, client


@pytest.fixture(scope="module")
def api(reliability_server: AxiomServer) -> Iterator[httpx.Client]:
    with client(base_url=reliability_server.api, headers={"X-API-Key": API_KEYS[0]}) as c:
        yield c


@pytest.fixture(scope="module")
def chunks_before(api: httpx.Client) -> int:
    r = api.get("/health")
    assert r.status_code == 200, r.text
    return int(r.json()["collection"]["chunks"])


def assert_error(r: httpx.Response, status: int, kind: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == kind and body["request_id"] == r.headers["x-request-id"], body
    for w in words:
        assert w in body["message"], (w, body)
    return body


@pytest.mark.parametrize("question, type_name", [(123, "int"), (None, "None"), (["bees"], "list"),
                                                 ({"text": "bees"}, "dict"), (True, "bool"), (1.5, "float")])
def test_non_string_question_is_422(api: httpx.Client, chunks_before: int, question: object,
                                    type_name: str) -> None:
    body = assert_error(api.post("/query", json={"question": question}), 422, "validation_error",
                        "question: Input should be a valid string")
    assert body["details"][0]["loc"] == ["question"] and "input" not in body["details"][0]


@pytest.mark.parametrize("top_k, words",
                         [(0, "greater than or equal to 1"), (-3, "greater than or equal to 1"),
                                          (10_000, "less than or equal to 100"),
                          (2**63, "less than or equal to 100"),
                                          (2.5, "valid integer")])
def test_top_k_out_of_range_is_422(api: httpx.Client, chunks_before: int, top_k: object, words: str) -> None:
    assert_error(api.post("/query", json={"question": "bees", "top_k": top_k}), 422, "validation_error",
                 f"top_k: Input should be {words}" if "valid" not in words else "top_k:")


def test_huge_question_is_refused_by_length_then_by_body_size(api: httpx.Client, chunks_before: int) -> None:
    r = api.post("/query", json={"question": "lighthouse " * 1000})  # 11,000 characters, a small body
    body = assert_error(r, 422, "validation_error", "11000 characters long; the limit is 4000",
                        "service.max_question_chars")
    assert "lighthouse lighthouse" not in r.text
    r = api.post("/query", json={"question": "x" * (SERVICE_MAX_BODY * 4)})  # over the body limit
    assert_error(r, 413, "payload_too_large", f"over the limit of {SERVICE_MAX_BODY} bytes",
                 "service.max_body_bytes")
    assert body


@pytest.mark.parametrize("question", ["\u0000 lighthouse \u0000", "\u202e lighthouse \u202d keepers 🔦",
                                      "'; DROP TABLE chunks; --",
                                      "{{7*7}} ${jndi:ldap://x} lighthouse", "\t\n lighthouse \r\n"])
def test_odd_but_valid_strings_are_answered_not_500(api: httpx.Client, chunks_before: int,
                                                    question: str) -> None:
    raw = json.dumps({"question": question})
    r = api.post("/query", content=raw.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["generator"] == "extractive" and r.json()["contexts"]


def test_unpaired_surrogate_in_the_question_is_422_not_500(api: httpx.Client, chunks_before: int) -> None:
    """JSON allows an escaped lone surrogate; the tokenizer does not (this was an unhandled 500)."""
    raw = json.dumps({"question": "\ud800 lone surrogate lighthouse"})
    assert "\\ud800" in raw
    r = api.post("/query", content=raw.encode(), headers={"Content-Type": "application/json"})
    assert_error(r, 422, "validation_error", "not valid Unicode text (unpaired surrogate at character 0)")


@pytest.mark.parametrize("path, words", [
    ("a.md\u0000.txt", "NUL byte"), ("%2e%2e/%2e%2e/etc", "does not exist under the data root"),
    ("./../../etc/passwd", "'..' is not allowed"), ("//etc/passwd", "outside the data root"),
    ("~/.ssh", "does not exist under the data root"), ("x" * 5000, "the path is too long (5000 characters)"),
    ("a.md/../../../etc", "'..' is not allowed")])
def test_ingest_path_traversal_variants_are_400(api: httpx.Client, chunks_before: int, path: str,
                                                words: str) -> None:
    r = api.post("/ingest", json={"paths": [path]})
    body = assert_error(r, 400, "bad_request", words)
    assert len(body["message"]) < 400  # a long path is cut in the message


@pytest.mark.parametrize("paths, words", [("a.md", "paths: Input should be a valid list"),
                                          ([1], "paths.0: Input should be a valid string"),
                                          (["a.md"] * 101, "paths: List should have at most 100 items")])
def test_ingest_body_shape_is_422(api: httpx.Client, chunks_before: int, paths: object, words: str) -> None:
    assert_error(api.post("/ingest", json={"paths": paths}), 422, "validation_error", words)


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/xml", "text/json",
                                          "application/jsonp"])
def test_wrong_content_type_is_415(api: httpx.Client, chunks_before: int, content_type: str) -> None:
    r = api.post("/query", content=b'{"question": "bees"}', headers={"Content-Type": content_type})
    assert_error(r, 415, "unsupported_media_type", "Content-Type: application/json")


@pytest.mark.parametrize("length, statuses", [("abc", {400}), ("-1", {400}), ("10485760", {413}),
                                              ("99999999999999999999", {400, 413})])
def test_bad_or_huge_content_length_header(reliability_server: AxiomServer, chunks_before: int, length: str,
                                           statuses: set[int]) -> None:
    """A raw request (httpx would fix the header): an invalid Content-Length is 400 or refused by the HTTP
    parser; a huge one is 413 before any body is read."""
    request = (f"POST /query HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEYS[0]}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
               '{"question": "bees"}').encode()
    with socket.create_connection(("127.0.0.1", reliability_server.api_port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status in statuses, data[:300]  # (uvicorn's parser itself refuses a 20-digit length with 400)


def test_the_store_is_unchanged_and_the_service_healthy(reliability_server: AxiomServer, api: httpx.Client,
                                                        chunks_before: int) -> None:
    r = api.get("/health")
    assert r.status_code == 200 and r.json()["collection"]["chunks"] == chunks_before
    assert reliability_server.proc is not None and reliability_server.proc.poll() is None
    assert "Traceback" not in reliability_server.log_text()  # nothing above was an unhandled error
