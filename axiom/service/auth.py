"""API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`, compared in constant time against every
configured key. A missing and a wrong key get the same 401; neither the keys nor what the caller sent is ever
logged or echoed.

Where the check happens: the routes that need a key declare an `ApiKeyAuth` dependency (`guarded_routes` finds
them), and `RequestContextMiddleware` checks the key for a request to such a route *before* routing, so before
any byte of the body is read or parsed: without a valid key a malformed, oversized or wrongly typed body gets
the same 401 as a good one. The dependency itself stays as a second check (and documents the security schemes
in OpenAPI). Routes without it (`/health`, `/docs`, `/openapi.json`, the whole sidecar) need no key; unknown
paths stay 404 and a wrong method 405, as before.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Mapping, Sequence

from fastapi import HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import SecretStr
from starlette.routing import BaseRoute

log = logging.getLogger(__name__)

UNAUTHORIZED_MESSAGE = "missing or invalid API key"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer, ApiKey realm="axiom"'}

# Declared for the OpenAPI schema (the Authorize button in /docs); the check itself is ApiKeyAuth.
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of AXIOM_API_KEYS")
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <one of AXIOM_API_KEYS>")


class Unauthorized(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=401, detail=UNAUTHORIZED_MESSAGE, headers=dict(UNAUTHORIZED_HEADERS))


def presented_key(source: Request | Mapping[str, str]) -> str | None:
    """The key a request (or its headers, case-insensitive as Starlette's `Headers`) carries: X-API-Key first,
    then a Bearer token; or None."""
    headers = source.headers if isinstance(source, Request) else source
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class ApiKeyAuth:
    """A FastAPI dependency. With no keys configured it lets everything through (a warning is logged once at
    start by the server)."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._keys = [k.get_secret_value().encode("utf-8") for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, presented: str | None) -> bool:
        if not self._keys:
            return True
        given = (presented or "").encode("utf-8")
        ok = False
        # every key is compared, so timing does not say which one (or whether any) matched
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return ok and presented is not None

    def __call__(self, request: Request) -> None:
        if not self.check(presented_key(request)):
            raise Unauthorized()


def _auths_of(dependant: object) -> Iterator[ApiKeyAuth]:  # a FastAPI Dependant, read by getattr
    call = getattr(dependant, "call", None)
    if isinstance(call, ApiKeyAuth):
        yield call
    for sub in getattr(dependant, "dependencies", None) or ():
        yield from _auths_of(sub)


def guarded_routes(app: object) -> list[tuple[BaseRoute, ApiKeyAuth]]:
    """(route, its ApiKeyAuth) for every route of `app` that depends on an ApiKeyAuth, at any depth."""
    out = []
    for route in getattr(app, "routes", None) or ():
        auth = next(_auths_of(getattr(route, "dependant", None)), None)
        if auth is not None:
            out.append((route, auth))
    return out
