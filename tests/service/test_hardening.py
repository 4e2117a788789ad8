"""Security review fixes on the service face.

- The API key is checked in the ASGI middleware, before routing and before any byte of the body is read or
  parsed: no key and a malformed body is 401 (not 422), no key and a huge declared body is 401 (not 413); open
  paths (/health, /docs, /openapi.json, the sidecar) stay open, unknown paths stay 404.
- `axiom serve` refuses a non-loopback address without API keys (unless --insecure-no-auth), and keys shorter
  than service.min_api_key_chars; both before anything binds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.service.conftest import API_KEYS, REPO, AxiomServer, client
from tests.support.served import FreshServices
from tests.support.waiting import poll_until

UNAUTHORIZED = {"error": "unauthorized", "message": "missing or invalid API key"}
MALFORMED = b'{"question": "bees", '  # cut short: not JSON


@pytest.fixture(scope="module")
def server(fresh_service: FreshServices) -> AxiomServer:
    """A real `axiom serve` (uvicorn) with keys, over a collection nothing has ingested (nothing here reaches
    the pipeline): the session's fresh server (tests/support/served.py), which this module only reads, before
    tests/service/test_service.py ingests into it."""
    return fresh_service.take()


def assert_unauthorized(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert {k: v for k, v in r.json().items() if k != "request_id"} == UNAUTHORIZED
    assert "www-authenticate" in r.headers and "x-request-id" in r.headers


def assert_collection_missing(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "unavailable" and "does not exist" in r.json()["reason"], r.text


def test_malformed_body_without_a_key_is_401_not_422(server: AxiomServer) -> None:
    json_type = {"Content-Type": "application/json"}
    with client(base_url=server.api) as c:
        for path in ("/query", "/ingest"):
            assert_unauthorized(c.post(path, content=MALFORMED, headers=json_type))
            assert_unauthorized(c.post(path, content=MALFORMED,
                                       headers={**json_type, "X-API-Key": "wrong-key-" * 3}))
            assert_unauthorized(c.post(path, content=b"", headers=json_type))
            assert_unauthorized(c.post(path, json={"question": "bees", "unexpected": 1}))  # would be 422 too
        # with a key, the same body is validated as before
        r = c.post("/query", content=MALFORMED, headers={**json_type, "X-API-Key": API_KEYS[0]})
        assert r.status_code == 422 and r.json()["error"] == "validation_error", r.text


def test_body_of_an_unauthenticated_request_is_never_read(server: AxiomServer) -> None:
    """Headers only, announcing 10 MB: the 401 comes at once (no 413, no wait for a body that never comes)."""
    request = (b"POST /query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 10485760\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.split(b" ", 2)[1] == b"401", data[:300]


def test_open_paths_stay_open_and_unknown_paths_stay_404(server: AxiomServer) -> None:
    with client(base_url=server.api) as api, client(base_url=server.sidecar) as side:
        assert api.post("/query", json={"question": "bees"}).status_code == 401
        assert api.post("/ingest", json={"paths": ["."]}).status_code == 401
        # answered without a key; 503 because this module's fresh collection is never ingested (every /ingest
        # here is refused), which /health reports on both ports
        assert_collection_missing(api.get("/health"))
        assert api.get("/docs").status_code == 200
        assert api.get("/openapi.json").status_code == 200
        assert api.get("/nope").status_code == 404
        assert api.get("/query").status_code == 405  # the method is checked by the router, as before
        assert_collection_missing(side.get("/health"))
        assert side.get("/metrics").status_code == 200 and side.get("/metrics/").status_code == 200
    # the access line is written just after the response
    poll_until(lambda: "POST /ingest 401" in server.log_text(), timeout=5,
               message=f"the access line 'POST /ingest 401' in {server.log_path}")
    text = server.log_text()
    # refused requests are still access-logged
    assert "POST /query 401" in text and "POST /ingest 401" in text


def test_cross_origin_401_keeps_the_cors_headers(make_settings, tmp_path: Path) -> None:  # noqa: ANN001
    """In process: with CORS on, a refused cross-origin request still gets the CORS headers (the browser can
    read the 401) and preflights need no key."""
    from fastapi.testclient import TestClient

    from axiom.service.app import create_api_app
    from axiom.service.state import build_state

    settings = make_settings(service={"cors_origins": ["https://ui.example"], "data_root": str(tmp_path),
                                      "api_keys": list(API_KEYS)})
    state = build_state(settings, warm_up=False)
    try:
        with TestClient(create_api_app(state)) as api:
            origin = {"Origin": "https://ui.example"}
            r = api.post("/query", content=MALFORMED, headers={**origin, "Content-Type": "application/json"})
            assert_unauthorized(r)
            assert r.headers["access-control-allow-origin"] == "https://ui.example"
            r = api.options("/query", headers={**origin, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "x-api-key,content-type"})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ui.example"
            r = api.post("/query", content=MALFORMED,
                         headers={**origin, "Content-Type": "application/json", "X-API-Key": API_KEYS[1]})
            assert r.status_code == 422
    finally:
        state.close()


# -- axiom serve: refuse to expose an open API ----------------------------------------------------------
class Started(Exception):
    """Raised by the stand-in for the server's `run`: the command got past its checks."""


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`axiom.cli.main(["serve", ...])` with the server's `run` replaced: nothing binds or loads. Returns
    (exit code or "started", settings passed to run)."""
    import axiom.service.server as server_module
    from axiom.cli import main
    from axiom.config import ENV_VARS

    for name in [*ENV_VARS, "AXIOM_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["store"]["path"] = str(tmp_path / "chroma")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    seen: dict[str, Any] = {}

    def fake_run(settings: Any, *, ingest_first: bool = False) -> int:
        seen["settings"] = settings
        raise Started

    monkeypatch.setattr(server_module, "run", fake_run)
    monkeypatch.setattr(os, "_exit", lambda code: pytest.fail(f"os._exit({code}) reached"))

    def call(*args: str, keys: str | None = None) -> tuple[int | str, Any]:
        if keys is not None:
            monkeypatch.setenv("AXIOM_API_KEYS", keys)
        else:
            monkeypatch.delenv("AXIOM_API_KEYS", raising=False)
        seen.clear()
        try:
            code: int | str = main(["--config", str(path), "serve", *args])
        except Started:
            code = "started"
        return code, seen.get("settings")

    yield call
    import logging

    for handler in list(logging.getLogger().handlers):  # main() configured logging onto capsys's stream
        if getattr(handler, "_axiom", False):
            logging.getLogger().removeHandler(handler)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org", "10.0.0.1"])
def test_serve_refuses_a_public_address_without_keys(serve: Any, host: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    code, settings = serve("--host", host)
    assert code == 2 and settings is None
    err = capsys.readouterr().err
    assert "AXIOM_API_KEYS" in err and "--insecure-no-auth" in err and host in err, err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST"])
def test_serve_on_loopback_needs_no_key(serve: Any, host: str) -> None:
    code, settings = serve("--host", host)
    assert code == "started" and settings.service.host == host


def test_serve_public_with_keys_or_the_explicit_flag_starts(serve: Any,
                                                            capsys: pytest.CaptureFixture) -> None:
    code, settings = serve("--host", "0.0.0.0", keys=",".join(API_KEYS))
    assert code == "started" and settings.service.host == "0.0.0.0"
    code, settings = serve("--host", "0.0.0.0", "--insecure-no-auth")
    assert code == "started" and settings.service.host == "0.0.0.0"


def test_serve_refuses_short_keys(serve: Any, capsys: pytest.CaptureFixture) -> None:
    short = "abc123short"  # 11 characters
    for host in ("127.0.0.1", "0.0.0.0"):
        code, settings = serve("--host", host, keys=f"{API_KEYS[0]},{short}")
        assert code == 2 and settings is None
        err = capsys.readouterr().err
        assert "service.min_api_key_chars" in err and "AXIOM_API_KEYS" in err and "16" in err, err
        assert short not in err  # the key itself is never echoed
    # --insecure-no-auth does not waive the length of keys that are set
    code, _ = serve("--host", "0.0.0.0", "--insecure-no-auth", keys=short)
    assert code == 2
    # the minimum is a setting
    assert serve("--host", "127.0.0.1", keys="x" * 16)[0] == "started"
