"""Asking a deployed RAG system over HTTP (`axiom eval --endpoint URL [--endpoint-config FILE.yaml]`): the
only module of the evaluation that speaks HTTP (httpx) and retries (tenacity).

Every golden question is sent as the mapping of `endpoint_config.py` says, at most `concurrency` at once (a
thread pool: it works the same from the CLI and inside a notebook's running event loop). Each request is
bounded:
`timeout_seconds` for the connection and for every read, and for the whole reply (a monotonic deadline checked
between the chunks of the streamed body, so a server dripping an endless body is cut off: a request ends at
most one read timeout after its deadline); `max_reply_bytes` for the reply (a larger declared Content-Length
is refused unread, a streamed body is read and inflated no further than the limit: gzip and deflate are
decoded here, a megabyte-sized bomb never inflates past it, other encodings are refused); `bounded_json.py`
for its nesting depth and number lengths. An error status's body is never read. Timeouts, connection errors,
429 and 5xx are retried `retries` times with exponential backoff and jitter (Retry-After honoured, capped at a
minute); other statuses, a reply beyond a bound, a reply that is not JSON and a reply without the mapped
answer (or contexts) are not:
they are that item's failure. A failed item is never fatal: it is recorded as unanswered with its reason (e.g.
`HTTP 500 from the endpoint (2 attempts)`), so its metrics are unmeasured, and the run completes with the
others. Header values never reach a log, an error or the manifest.

`transport=` puts an `httpx.MockTransport` (or any transport) where the network would be, for tests (and
`sleep=` / `clock=` the waits between retries and the monotonic clock of the deadline).
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from axiom.errors import ConfigError
from axiom.evaluation.answered import Answered, ItemAnswer, finite_or_nan
from axiom.evaluation.bounded_json import JSONBoundError, loads_bounded, size_text
from axiom.evaluation.endpoint_config import (
    REQUIRED_IN_REPLY,
    EndpointConfig,
    MissingField,
    extract,
    header_problems,
    render,
)
from axiom.redaction import redact_url

if TYPE_CHECKING:
    from axiom.evaluation.datasets import EvalItem
    from axiom.progress import Progress

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 60.0
GENERATOR = "endpoint"


class _StatusError(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _BadReply(Exception):
    """A 2xx reply that cannot be read through the mapping, or beyond a bound (not retried)."""


class _PastDeadline(Exception):
    """The whole reply took longer than timeout_seconds (retried like a timeout)."""


@dataclass(frozen=True)
class _Reply:
    status: int
    content_type: str
    body: bytes


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _StatusError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (httpx.TransportError, _PastDeadline))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _decoder(encoding: str) -> Callable[[bytes, int], tuple[bytes, bytes]]:
    """(output of at most `room` bytes, input left over) for a reply's Content-Encoding: none, gzip or deflate
    (asked for in Accept-Encoding); another encoding is that item's failure."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return lambda data, room: (data, b"")
    if name not in ("gzip", "x-gzip", "deflate"):
        raise _BadReply(f"the endpoint's reply has Content-Encoding {encoding[:40]!r}; gzip, deflate or none "
                        "is read")
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or zlib header, detected

    def decode(data: bytes, room: int) -> tuple[bytes, bytes]:
        try:
            return inflate.decompress(data, room), inflate.unconsumed_tail
        except zlib.error:
            raise _BadReply(f"the endpoint's reply is not valid {name} data") from None

    return decode


def _strings(value: object, name: str, shown: str, *, ids: bool = False) -> tuple[str, ...]:
    """A list of strings (ids: also integers); passages may be objects holding a `text` string."""
    if not isinstance(value, list):
        raise _BadReply(f"the endpoint's reply: {name} at {shown!r} is {type(value).__name__}, not a list")
    if not ids:
        value = [v["text"] if isinstance(v, dict) and isinstance(v.get("text"), str) else v for v in value]
    ok = (str, int) if ids else (str,)
    bad = [i for i, v in enumerate(value) if isinstance(v, bool) or not isinstance(v, ok)]
    if bad:
        raise _BadReply(f"the endpoint's reply: {name}[{bad[0]}] at {shown!r} is "
                        f"{type(value[bad[0]]).__name__}, not a string")
    return tuple(str(v) for v in value)


class EndpointClient:
    """Asks one question at a time (thread-safe: one httpx.Client shared by the pool's threads)."""

    def __init__(self, config: EndpointConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.paths = config.paths()
        self.sleep, self.clock = sleep, clock
        problems = header_problems(config.headers)
        if problems:
            raise ConfigError("endpoint: " + "; ".join(problems))
        self._client = httpx.Client(timeout=config.timeout_seconds,
                                    headers={"Accept-Encoding": "gzip, deflate", **config.headers},
                                    trust_env=config.trust_env, transport=transport, follow_redirects=False)
        self._backoff = wait_exponential_jitter(initial=config.backoff_initial_seconds,
                                                max=config.backoff_max_seconds,
                                                jitter=config.backoff_initial_seconds)

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _StatusError) and exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP_SECONDS)
        return float(self._backoff(state))

    def _send(self, payload: Any) -> tuple[_Reply, float]:  # boundary: the JSON body (GET: params)
        cfg = self.config
        t0 = time.perf_counter()
        deadline = self.clock() + cfg.timeout_seconds
        given = {"params": payload} if cfg.method == "GET" else {"json": payload}
        with self._client.stream(cfg.method, cfg.url, **given) as response:
            if response.status_code >= 400:
                raise _StatusError(response.status_code, _retry_after(response))
            body = self._body(response, deadline)
            reply = _Reply(response.status_code, response.headers.get("content-type", ""), body)
        return reply, time.perf_counter() - t0

    def _body(self, response: httpx.Response, deadline: float) -> bytes:
        """The reply's body, read as a stream within the deadline and no further than max_reply_bytes."""
        limit = self.config.max_reply_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BadReply(f"the endpoint's reply declares {size_text(int(declared))}, more than "
                            f"max_reply_bytes ({size_text(limit)})")
        if response.is_stream_consumed:  # a transport that gave the body whole (already decoded by httpx)
            pieces: Iterable[bytes] = [response.content]
            decoder = _decoder("")
        else:
            pieces = response.iter_raw()
            decoder = _decoder(response.headers.get("content-encoding", ""))
        body = bytearray()  # one buffer: a list of 2-byte chunks would take 20 times their size
        for raw in pieces:
            pending = raw
            while pending:  # decompressed no further than the limit (a small gzip body can inflate 1000-fold)
                chunk, pending = decoder(pending, limit - len(body) + 1)
                if len(body) + len(chunk) > limit:
                    raise _BadReply("the endpoint's reply is longer than "
                                    f"max_reply_bytes ({size_text(limit)})")
                body += chunk
            if self.clock() > deadline:
                raise _PastDeadline
        return bytes(body)

    def ask(self, item: EvalItem, top_k: int | None) -> ItemAnswer:
        """The system's answer to one golden item, or an unanswered item with the reason."""
        cfg = self.config
        payload = render(cfg.body, question=item.question, item_id=item.id, top_k=top_k)
        attempts = 0

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info("endpoint: %s for %s; retry %d of %d", exc, item.id, state.attempt_number, cfg.retries)

        retrying = Retrying(stop=stop_after_attempt(cfg.retries + 1), wait=self._wait, sleep=self.sleep,
                            retry=retry_if_exception(_retryable), before_sleep=before_sleep, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response, seconds = self._send(payload)
        except _BadReply as exc:
            return ItemAnswer.unanswered(str(exc), generator=GENERATOR)
        except (httpx.TimeoutException, _PastDeadline):
            return self._failed(f"the endpoint timed out after {cfg.timeout_seconds:g}s", attempts)
        except _StatusError as exc:
            return self._failed(f"HTTP {exc.status} from the endpoint", attempts)
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            return self._failed(f"cannot reach the endpoint ({type(exc).__name__})", attempts)
        try:
            return self._read(response, seconds)
        except _BadReply as exc:
            return ItemAnswer.unanswered(str(exc), generator=GENERATOR)

    def _failed(self, what: str, attempts: int) -> ItemAnswer:
        return ItemAnswer.unanswered(f"{what} ({attempts} attempt{'s' if attempts != 1 else ''})",
                                     generator=GENERATOR)

    def _read(self, response: _Reply, seconds: float) -> ItemAnswer:
        try:
            doc = loads_bounded(response.body)
        except JSONBoundError as exc:
            raise _BadReply(f"the endpoint's reply is beyond a bound: {exc}") from None
        except ValueError:  # not JSON, not UTF-8
            kind = response.content_type.split(";")[0] or "no content type"
            raise _BadReply(f"the endpoint's reply is not JSON (HTTP {response.status}, {kind})") from None
        got: dict[str, Any] = {}
        for name, segments in self.paths.items():
            shown = self.config.response[name]
            try:
                got[name] = extract(doc, segments, shown)
            except MissingField as exc:
                if name in REQUIRED_IN_REPLY:
                    raise _BadReply(f"the endpoint's reply has no {name}: {exc}") from None
        answer = got["answer"]
        if not isinstance(answer, str):
            raise _BadReply(f"the endpoint's reply: answer at {self.config.response['answer']!r} is "
                            f"{type(answer).__name__}, not a string")
        pick = {name: _strings(got[name], name, self.config.response[name], ids=name == "retrieved")
                for name in ("contexts", "retrieved", "retrieved_contexts") if got.get(name) is not None}
        reported = finite_or_nan(got.get("latency_ms")) / 1000.0 if "latency_ms" in got else \
            finite_or_nan(got.get("latency_seconds"))
        raw_usage = got.get("usage")
        usage = raw_usage if isinstance(raw_usage, dict) else {}
        return ItemAnswer(answer=answer, contexts=pick.get("contexts", ()), retrieved=pick.get("retrieved"),
                          retrieved_texts=pick.get("retrieved_contexts"),
                          latency_seconds=reported if not math.isnan(reported) else seconds,
                          usage={str(k): int(v) for k, v in usage.items()
                                 if isinstance(v, int) and not isinstance(v, bool)},
                          generator=GENERATOR)


def _ask_all(items: Sequence[EvalItem], config: EndpointConfig, top_k: int | None, shown: Progress | None,
             transport: httpx.BaseTransport | None) -> list[ItemAnswer]:
    out: list[ItemAnswer | None] = [None] * len(items)
    if shown is not None:
        shown.add_total(len(items))
    with EndpointClient(config, transport=transport) as client, \
            ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="axiom-endpoint") as pool:
        futures = {pool.submit(client.ask, item, top_k): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            out[futures[future]] = future.result()
            if shown is not None:
                shown.update()
    failures = Counter(a.failure for a in out if a is not None and a.failure)
    if failures:
        log.warning("endpoint %s: %d of %d question(s) unanswered (counted as unmeasured): %s",
                    redact_url(config.url), sum(failures.values()), len(items),
                    "; ".join(f"{n} x {why}" for why, n in failures.most_common(5)))
    return [a for a in out if a is not None]


def ask_endpoint(items: Sequence[EvalItem], config: EndpointConfig, *, top_k: int | None = None,
                 shown: Progress | None = None, transport: httpx.BaseTransport | None = None) -> Answered:
    """Every golden item's answer from the endpoint; `top_k` fills the template's `{top_k}`."""
    top_k = top_k if config.uses_top_k else None
    t0 = time.perf_counter()
    answers = _ask_all(items, config, top_k, shown, transport)
    failures = Counter(a.failure for a in answers if a.failure)
    source = {"kind": "endpoint", **config.describe(), "top_k": top_k, "questions": len(items),
              "unanswered": sum(failures.values()), "unanswered_reasons": dict(failures.most_common(5)),
              "seconds": round(time.perf_counter() - t0, 3),
              "gives_retrieved": "retrieved" in config.response}
    return Answered(kind="endpoint", answers=answers, source=source, generator=GENERATOR,
                    again=lambda: _ask_all(items, config, top_k, None, transport))
