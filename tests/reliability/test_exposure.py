"""Secrets and exposure: with API keys and an OpenAI key set, no key appears in the service log, in any error
body or header, in /health, /metrics or the OpenAPI page, or in a run folder (manifest, metrics, results);
CORS stays off when no origin is configured. (The body size limit: tests/reliability/test_api_inputs.py and
tests/service/test_service.py; notebooks, Jupyter and images: see docs/SECURITY.md.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings
from tests.service.conftest import API_KEYS, OPENAI_SECRET, AxiomServer, client
from tests.support.waiting import poll_until

SECRETS = (*API_KEYS, OPENAI_SECRET)
NEAR_MISS = API_KEYS[1][:-2] + "zz"  # a wrong key someone sends: not logged or echoed either


def assert_clean(text: str, where: str) -> None:
    for secret in (*SECRETS, NEAR_MISS):
        assert secret not in text, f"a secret ({secret[:6]}...) is in {where}"


@pytest.fixture(scope="module")
def responses(reliability_server: AxiomServer) -> Iterator[list[httpx.Response]]:
    """One response of every kind the service gives: answers, each error class, health, metrics, docs."""
    out: list[httpx.Response] = []
    good = {"X-API-Key": API_KEYS[0]}
    with client(base_url=reliability_server.api) as api, client(base_url=reliability_server.sidecar) as side:
        out += [api.post("/query", json={"question": "What is the Ring of Fire?"}, headers=good),  # 200
                api.post("/query", json={"question": "bees"}, headers={"X-API-Key": NEAR_MISS}),  # 401
                api.post("/query", json={"question": "bees"},
                         headers={"Authorization": f"Bearer {NEAR_MISS}"}),  # 401
                api.post("/query", json={"question": ""}, headers=good),  # 422
                api.post("/query", json={"question": OPENAI_SECRET * 200}, headers=good),  # 422 (too long)
                api.post("/query", content=b"bees", headers={**good, "Content-Type": "text/plain"}),  # 415
                api.post("/query", content=b"x" * 300_000,
                         headers={**good, "Content-Type": "application/json"}),
                api.post("/ingest", json={"paths": ["../etc"]}, headers=good),  # 400
                api.get("/nope", headers=good),  # 404
                api.get("/health"), side.get("/health"), side.get("/metrics"),
                api.get("/openapi.json"), api.get("/docs")]
    yield out


def test_every_response_is_free_of_secrets(responses: list[httpx.Response]) -> None:
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 401, 401, 422, 422, 415, 413, 400, 404, 200, 200, 200, 200, 200], statuses
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
        assert_clean(r.text, where)
        assert_clean(json.dumps(dict(r.headers)), where + " headers")
    health = responses[9].json()
    assert health["status"] == "ok" and health["generator"]["name"] == "extractive"
    assert not any("key" in k.lower() for k in health)


def test_the_service_log_holds_no_secret(reliability_server: AxiomServer,
                                         responses: list[httpx.Response]) -> None:
    failing = ("POST /query 401", "POST /query 422")  # access lines are written after the responses
    poll_until(lambda: all(line in reliability_server.log_text() for line in failing), timeout=10,
               message=f"the access lines {failing} in {reliability_server.log_path}")
    text = reliability_server.log_text()
    assert "POST /query 401" in text and "POST /query 422" in text  # the failing requests were logged
    assert_clean(text, "the service log")


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "POST"])
def test_cors_is_off_without_configured_origins(reliability_server: AxiomServer, method: str) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "x-api-key,content-type", "X-API-Key": API_KEYS[0]}
    with client(base_url=reliability_server.api) as c:
        if method == "POST":
            r = c.post("/query", json={"question": "bees"}, headers=headers)
            assert r.status_code == 200
        else:
            r = c.request(method, "/query" if method == "OPTIONS" else "/health", headers=headers)
            assert r.status_code in ((405,) if method == "OPTIONS" else (200,)), r.text
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)


def test_run_folder_of_a_run_with_keys_holds_no_secret(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    settings = build_settings(tmp_path, generation={"api_key": OPENAI_SECRET, "provider": "extractive"},
                              service={"api_keys": list(API_KEYS)})
    record = run_evaluation(settings, TINY_GOLDEN, AnswerSource.pipeline(TINY_CORPUS),
                            EvaluationOptions(name="keys", judge=False, embedder=embedder))
    files = sorted(record.path.iterdir())
    assert {f.name for f in files} == {"manifest.json", "metrics.json", "results.parquet", "results.csv"}
    for f in files:
        data = f.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret[:6]}... in {f.name}"
    manifest = json.loads((record.path / "manifest.json").read_text())
    assert manifest["settings"]["generation"]["api_key"] == "***"
    assert manifest["settings"]["service"]["api_keys"] == ["**********", "**********"]
