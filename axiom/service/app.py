"""The two FastAPI apps over one ServiceState.

- sidecar (no auth): GET /health, GET /metrics and /metrics/ (Prometheus text format).
- API: POST /query, POST /ingest (API key when keys are configured), GET /health (same payload, so one port is
  enough), OpenAPI docs at /docs.

Errors are JSON everywhere: {"error": kind, "message": ..., "request_id": ...}; typed Axiom errors map to
statuses in `STATUS_BY_ERROR`. Query and ingest take a slot of the concurrency cap on the event loop (503
`overloaded` with Retry-After when none is free, see `limits.py`), then run in the threadpool (ChromaDB and
the embedding model block); health and metrics are async and never wait for that pool.
"""

# no `from __future__ import annotations` here: FastAPI must see the real classes of the endpoint parameters,
# including the QueryRequest class built per app

import errno
import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from axiom import __version__
from axiom.config import TOP_K_RANGE
from axiom.errors import (
    AxiomError,
    ConfigError,
    DocumentError,
    EmbeddingMismatchError,
    StoreError,
    StoreUnavailableError,
    UsageError,
)
from axiom.observability import (
    INGEST_CHUNKS,
    count_error,
    metrics_exposition,
    request_id_var,
    stage_timings_var,
)
from axiom.redaction import redact
from axiom.retrieval import RETRIEVERS
from axiom.service.auth import ApiKeyAuth, api_key_scheme, bearer_scheme
from axiom.service.cache import cache_key
from axiom.service.limits import request_deadline
from axiom.service.middleware import RequestContextMiddleware, error_body
from axiom.service.state import ServiceState
from axiom.source_tree import MISSING, OUTSIDE, RootDir

log = logging.getLogger("axiom.service")

MAX_INGEST_PATHS = 100
LOGGED_QUESTION_CHARS = 300

# (status, error kind) per Axiom error class; the first match in this order wins
STATUS_BY_ERROR: tuple[tuple[type[AxiomError], int, str], ...] = (
    (StoreUnavailableError, 503, "store_unavailable"),
    (EmbeddingMismatchError, 500, "embedding_mismatch"),
    (StoreError, 503, "store_error"),
    (UsageError, 422, "validation_error"),
    (ConfigError, 500, "config_error"),
    (AxiomError, 500, "internal_error"),
)
_KIND_BY_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                   415: "unsupported_media_type", 422: "validation_error", 503: "unavailable"}

RetrieverName = Literal[tuple(RETRIEVERS)]  # type: ignore[valid-type]


# -- request and response models ----------------------------------------------------------------------
def query_request_model(max_chars: int) -> type[BaseModel]:
    class QueryRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        question: str = Field(description=f"1 to {max_chars} characters",
                              json_schema_extra={"maxLength": max_chars})
        top_k: int | None = Field(None, ge=TOP_K_RANGE[0], le=TOP_K_RANGE[1],
                                  description=f"contexts to retrieve, {TOP_K_RANGE[0]}-{TOP_K_RANGE[1]} "
                                              "(default: config retrieval.top_k)")
        retriever: RetrieverName | None = Field(None, description="default: config retrieval.retriever")

        @field_validator("question")
        @classmethod
        def _question(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("the question is empty")
            if len(value) > max_chars:
                raise ValueError(f"the question is {len(value)} characters long; the limit is {max_chars} "
                                 "(service.max_question_chars)")
            return value

    return QueryRequest


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1, max_length=MAX_INGEST_PATHS,
                             description="folders or files under the data root (relative to "
                                         "it, or absolute inside it)")
    prune: bool = Field(False, description="also remove chunks of files no longer under the given folders")


class CitationOut(BaseModel):
    n: int
    source: str
    page: int | None
    chunk_id: str
    score: float


class HitOut(BaseModel):
    chunk_id: str
    source: str
    page: int | None
    score: float
    text: str


class AnswerOut(BaseModel):
    question: str
    answer: str
    citations: list[CitationOut]
    contexts: list[HitOut]
    retrieved: list[str] = Field(description="the sources of the contexts, in rank order (what `axiom eval "
                                             "--endpoint` measures retrieval on)")
    generator: str
    degraded: bool
    degraded_reason: str | None
    timings: dict[str, float]
    usage: dict[str, int]
    request_id: str | None
    cached: bool


class SkippedOut(BaseModel):
    path: str
    reason: str


class IngestOut(BaseModel):
    files_ingested: list[str]
    files_unchanged: list[str]
    files_skipped: list[SkippedOut]
    chunks_added: int
    chunks_removed: int
    chunks_total: int
    chunks_embedded: int
    seconds: float
    cache_entries_cleared: int
    request_id: str | None


class ErrorOut(BaseModel):
    error: str
    message: str
    request_id: str | None
    hint: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 409, 413, 415, 503)}
ERROR_RESPONSES[503] = {"model": ErrorOut, "description": "the store is unavailable (`store_unavailable`, "
                                                          "`store_error`), or "
                                                          "service.max_concurrent_requests requests are in "
                                                          "flight (`overloaded`, with a Retry-After header)"}


# -- error handlers -----------------------------------------------------------------------------------
def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    parts: list[str] = []
    for err in errors:
        if err.get("type") == "json_invalid":
            position = err.get("loc", ("body", "?"))[-1]
            reason = (err.get("ctx") or {}).get("error", "")
            msg = f"the body is not valid JSON (at character {position}: {reason})"
            parts.append(msg)
            details.append({"loc": ["body"], "msg": msg, "type": "json_invalid"})
            continue
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        where = ".".join(loc) or "request body"
        parts.append(f"{where}: {msg}")
        details.append({"loc": loc, "msg": msg, "type": err.get("type")})  # never the input: it may hold PII
    return "; ".join(parts) or "invalid request", details


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, details = _validation_message(list(exc.errors()))
    return JSONResponse(error_body("validation_error", message, request_id_var.get(), details=details), 422)


async def _on_http(request: Request, exc: HTTPException) -> JSONResponse:
    kind = getattr(exc, "kind", None) or _KIND_BY_STATUS.get(exc.status_code, "error")
    return JSONResponse(error_body(kind, str(exc.detail), request_id_var.get()), exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _on_axiom(request: Request, exc: AxiomError) -> JSONResponse:
    status, kind = next((s, k) for cls, s, k in STATUS_BY_ERROR if isinstance(exc, cls))
    count_error("request", exc)
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(level, "%s: %s", kind, exc.message, extra={"error": kind, "status": status})
    extra = {"hint": exc.hint} if exc.hint else {}
    return JSONResponse(error_body(kind, exc.message, request_id_var.get(), **extra), status)


def _install_common(app: FastAPI, state: ServiceState) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(AxiomError, _on_axiom)  # type: ignore[arg-type]

    @app.get("/health", tags=["health"], summary="Store, collection, model and generator status (no auth)",
             responses={503: {"description": "ChromaDB unreachable or the collection missing"}})
    async def health() -> JSONResponse:
        report = await state.health.check()
        if not report.ok:
            log.warning("health: unavailable: %s", report.payload.get("reason"))
        return JSONResponse(report.payload, report.status_code)


# -- the sidecar ----------------------------------------------------------------------------------------
def create_sidecar_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="Axiom sidecar", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    _install_common(app, state)

    async def metrics() -> Response:
        body, media_type = metrics_exposition()
        return Response(body, media_type=media_type)

    # both spellings answer 200 (no 307 from a mounted app)
    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_route("/metrics/", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=state.settings.service.max_body_bytes)
    return app


# -- the API --------------------------------------------------------------------------------------------
def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise HTTPException(415, f"send the body as JSON with Content-Type: application/json "
                                 f"(got {media[:60] or 'no Content-Type'})")


def resolve_under_root(root: RootDir, raw: str) -> Path:
    """`raw` (relative to the data root, or absolute inside it) as the real path inside the root it leads to,
    resolved beneath the open root (by descriptor, one name at a time: `RootDir.resolve`); HTTP 400 for
    traversal (`..`), paths elsewhere, symlinks leading out of the root and paths that do not exist. The path
    is only a name for the reply and the log: ingest resolves `raw` again beneath the same descriptor."""
    shown = raw[:200]
    if "\x00" in raw:
        raise HTTPException(400, "path contains a NUL byte")
    if ".." in Path(raw).parts:
        raise HTTPException(400, f"{shown!r}: '..' is not allowed; give paths under the data root")
    parts = root.relative_parts(raw)
    if parts is None:
        raise HTTPException(400, f"{shown!r} is outside the data root")
    try:
        names, _ = root.resolve(parts)
    except DocumentError as exc:
        message = {MISSING: f"{shown!r} does not exist under the data root",
                   OUTSIDE: f"{shown!r} is a symlink that leads outside the data root",
                   }.get(exc.reason, f"{shown!r} cannot be resolved ({exc.reason})")
        raise HTTPException(400, message) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise HTTPException(400, f"{shown!r}: the path is too long ({len(raw)} characters)") from None
        raise HTTPException(400,
                            f"{shown!r} cannot be resolved ({exc.strerror or 'broken or looping symlink'})"
                            ) from None
    return root.real.joinpath(*names)


def answer_query(state: ServiceState, question: str, top_k: int | None, retriever: str | None,
                 started: float | None = None) -> dict[str, Any]:
    """One /query, in a threadpool thread: cache lookup, then the pipeline, whose LLM call ends by the request
    deadline (`service.request_timeout_seconds` after `started`, a `time.monotonic()`; default: now)."""
    settings = state.settings
    retriever = retriever or settings.retrieval.retriever
    top_k = top_k or settings.retrieval.top_k
    request_id = request_id_var.get()
    log.info("query: %s", redact(question)[:LOGGED_QUESTION_CHARS],
             extra={"retriever": retriever, "top_k": top_k, "question_chars": len(question)})
    t0 = time.perf_counter()

    def compute() -> tuple[dict[str, Any], bool]:
        timings: dict[str, float] = {}
        token = stage_timings_var.set(timings)
        try:
            with request_deadline(settings.service, started):
                answer = state.pipeline.ask(question, top_k=top_k, retriever=retriever)
        finally:
            stage_timings_var.reset(token)
        answer.request_id = request_id
        answer.timings["embed"] = timings.get("embed", 0.0)
        log.info("answered by %s%s in %.3fs", answer.generator, " (degraded)" if answer.degraded else "",
                 answer.timings.get("total", 0.0),
                 extra={"generator": answer.generator, "degraded": answer.degraded,
                        "citations": len(answer.citations), "cached": False,
                        "timings": {k: round(v, 4) for k, v in answer.timings.items()}})
        payload = {**answer.to_dict(), "retrieved": [hit.source for hit in answer.contexts], "cached": False}
        return payload, not answer.degraded  # a degraded answer is retried next time

    if not state.cache.enabled:
        return compute()[0]
    key = cache_key(question, retriever, top_k, settings.store.collection,
                    state.pipeline.store.data_version())
    payload, cached = state.cache.get_or_compute(key, compute)
    if not cached:
        return payload
    seconds = time.perf_counter() - t0
    log.info("answered from the cache in %.1fms", seconds * 1000, extra={"cached": True})
    return {**payload, "question": question, "cached": True, "request_id": request_id,
            "timings": {"cache": seconds, "total": seconds}}


def run_ingest(state: ServiceState, paths: list[str], prune: bool) -> dict[str, Any]:
    root = state.open_data_root()
    if root is None:
        raise HTTPException(400, "the data root does not exist on the server; nothing can be ingested")
    resolved = [resolve_under_root(root, p) for p in paths]
    if not state.ingest_lock.acquire(blocking=False):
        raise HTTPException(409, "an ingest is already running; try again when it has finished")
    try:
        log.info("ingest of %d path(s) under the data root", len(resolved),
                 extra={"paths": [p.relative_to(root.real).as_posix() or "." for p in resolved]})
        # resolved again beneath the open root (never by a path string): a swap since the check cannot lead
        # out
        report = state.pipeline.ingest(paths, prune=prune, progress=False, within=root)
    finally:
        state.ingest_lock.release()
    INGEST_CHUNKS.inc(report.chunks_added)
    cleared = state.cache.clear()
    return {**report.to_dict(), "cache_entries_cleared": cleared, "request_id": request_id_var.get()}


def create_api_app(state: ServiceState) -> FastAPI:
    service = state.settings.service
    auth = ApiKeyAuth(service.api_keys)
    guarded = [Depends(api_key_scheme), Depends(bearer_scheme), Depends(auth), Depends(require_json)]
    app = FastAPI(
        title="Axiom Workbench API", version=__version__,
        description="Retrieval-augmented answers with numbered citations over the ingested documents. Send "
                    "an API key as `X-API-Key: <key>` or `Authorization: Bearer <key>` when keys are set.")
    _install_common(app, state)
    QueryRequest = query_request_model(service.max_question_chars)  # noqa: N806 (a class)

    @app.post("/query", response_model=AnswerOut, dependencies=guarded, tags=["query"],
              summary="Answer a question with numbered citations", responses=ERROR_RESPONSES)
    async def query(body: QueryRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        started = time.monotonic()  # the deadline counts from here: the wait for a thread is in it
        request: Any = body  # boundary: a model class made at run time (query_request_model), unseen by mypy
        return await state.limit.run("/query", answer_query, state, request.question, request.top_k,
                                     request.retriever, started)

    @app.post("/ingest", response_model=IngestOut, dependencies=guarded, tags=["ingest"],
              summary="Ingest folders or files under the data root", responses=ERROR_RESPONSES)
    async def ingest(body: IngestRequest) -> dict[str, Any]:
        return await state.limit.run("/ingest", run_ingest, state, body.paths, body.prune)

    if service.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=service.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
                           expose_headers=["X-Request-ID"])
    app.add_middleware(RequestContextMiddleware, max_body_bytes=service.max_body_bytes)  # outermost
    return app
