"""API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`, compared in constant time against every
configured key. A missing and a wrong key get the same 401; neither the keys nor what the caller sent is ever
logged or echoed."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence

from fastapi import HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import SecretStr

log = logging.getLogger(__name__)

UNAUTHORIZED_MESSAGE = "missing or invalid API key"

# Declared for the OpenAPI schema (the Authorize button in /docs); the check itself is ApiKeyAuth.
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="one of AXIOM_API_KEYS")
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <one of AXIOM_API_KEYS>")


class Unauthorized(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=401, detail=UNAUTHORIZED_MESSAGE,
                         headers={"WWW-Authenticate": 'Bearer, ApiKey realm="axiom"'})


def presented_key(request: Request) -> str | None:
    """The key a request carries (X-API-Key first, then a Bearer token), or None."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
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
        for key in self._keys:  # every key is compared, so timing does not say which one (or whether any) matched
            ok |= hmac.compare_digest(given, key)
        return ok and presented is not None

    def __call__(self, request: Request) -> None:
        if not self.check(presented_key(request)):
            raise Unauthorized()
