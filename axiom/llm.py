"""The OpenAI-compatible client: the only module that imports `openai`.

Used by the `openai` generator, OpenAI embeddings and (through `async_openai_client`) the LLM-judged
evaluation metrics. Every call to the endpoint, sync or async, goes through ONE retry policy (`RetryPolicy`,
tenacity; the openai library's own retries are off): exponential backoff with jitter on 429, 5xx, timeouts,
connection errors and malformed replies, honouring `Retry-After`; other errors (400, 401, 403, 404) fail at
once. The API key is never logged or put into an error message.

Bounds on a chat completion (what `axiom serve` uses against a slow or failing LLM):
- a deadline (`llm_deadline`, per thread/context): every attempt's timeout is cut to the time left, and no
  retry starts (nor back-off or Retry-After is waited for) when it could not start before the deadline; the
  LLMError then says the deadline was reached;
- a circuit breaker (`axiom.breaker`, optional): while it is open the endpoint is not called
  (`CircuitOpenError`); each call that fails for a reason about the endpoint (5xx, 429, timeouts, connection,
  malformed replies, 401/403/404) counts as one failure, however many attempts it made; a 400/413/422 about
  that one request does not.

Transport seam: `LLMClient(http_client=httpx.Client(transport=httpx.MockTransport(handler)))` (and
`async_openai_client(http_client=httpx.AsyncClient(...))`) put a test's handler where the network would be.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ParamSpec, TypedDict, TypeVar, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam as ChatMessage
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from axiom.breaker import CircuitBreaker, CircuitOpenError
from axiom.config import GenerationSettings
from axiom.errors import LLMError

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 60.0
MIN_ATTEMPT_SECONDS = 0.05  # an attempt is not started with less time than this before the deadline
# about one request, not the endpoint: not a breaker failure
REQUEST_SPECIFIC_STATUSES = frozenset({400, 413, 422})

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic()
    label: str  # how a reason names it, e.g. "the request deadline of 60s (service.request_timeout_seconds)"

    def remaining(self) -> float:
        return self.at - time.monotonic()


_deadline: ContextVar[Deadline | None] = ContextVar("axiom_llm_deadline", default=None)


@contextmanager
def llm_deadline(seconds: float, label: str, *, start: float | None = None) -> Iterator[Deadline]:
    """Chat completions made inside (in this thread or context) end by `start + seconds` (`time.monotonic()`,
    default now): attempts, back-off and Retry-After included."""
    deadline = Deadline((time.monotonic() if start is None else start) + seconds, label)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


class MalformedReplyError(Exception):
    """The endpoint answered 2xx but the body is not a usable completion."""


class NotAttemptedError(LLMError):
    """The deadline had passed before the call: the endpoint was not called (not a failure of the
    endpoint)."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                        openai.APIConnectionError, MalformedReplyError, openai.APIResponseValidationError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds from a `Retry-After` (or `retry-after-ms`) header of a failed response, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


class _Wait:
    """Retry-After when the server gives one (capped), otherwise exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after_seconds(exc)
        if hinted is not None:
            return min(max(hinted, 0.0), RETRY_AFTER_CAP_SECONDS)
        return float(self._backoff(state))


def describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} from the LLM endpoint"
    if isinstance(exc, openai.APITimeoutError):
        return "LLM request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot connect to the LLM endpoint"
    if isinstance(exc, (MalformedReplyError, openai.APIResponseValidationError)):
        return f"malformed reply from the LLM endpoint ({exc})"
    return f"{type(exc).__name__}: {exc}"


class _RetryOptions(TypedDict):
    """The keyword arguments of tenacity's Retrying / AsyncRetrying that make a RetryPolicy."""

    retry: retry_if_exception
    stop: Callable[[RetryCallState], bool]
    wait: _Wait
    before_sleep: Callable[[RetryCallState], None]
    reraise: bool


class RetryPolicy:
    """The one retry policy of every OpenAI-compatible call: up to `max_retries` retries of the errors
    `is_retryable` accepts, waiting Retry-After or exponential backoff with jitter, and (with a deadline) no
    retry that could not start before it. `sleep` / `async_sleep` are what waits (a test may record
    instead)."""

    def __init__(self, max_retries: int = 3, backoff_initial: float = 0.5, backoff_max: float = 8.0) -> None:
        self.max_retries = max_retries
        self.wait = _Wait(backoff_initial, backoff_max)
        self.sleep: Callable[[float], None] = time.sleep
        self.async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def _options(self, deadline: Deadline | None, cut: dict[str, bool] | None) -> _RetryOptions:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("LLM call failed (%s); retry %d of %d", describe(exc) if exc else "?",
                        state.attempt_number, self.max_retries)

        def out_of_time(state: RetryCallState) -> bool:  # tenacity computes the wait before asking
            if deadline is None or deadline.remaining() - (state.upcoming_sleep
                                                           or 0.0) >= MIN_ATTEMPT_SECONDS:
                return False
            if cut is not None:
                cut["deadline"] = True
            return True

        attempts = stop_after_attempt(self.max_retries + 1)

        def stop(state: RetryCallState) -> bool:  # whichever comes first (tenacity takes a plain callable)
            return attempts(state) or out_of_time(state)

        return {"retry": retry_if_exception(is_retryable), "stop": stop,
                "wait": self.wait, "before_sleep": before_sleep, "reraise": True}

    def retrying(self, deadline: Deadline | None = None, cut: dict[str, bool] | None = None) -> Retrying:
        """For one sync call; `cut["deadline"]` is set when it stops for the deadline."""
        return Retrying(sleep=self.sleep, **self._options(deadline, cut))

    def wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """`fn` (an async call to the endpoint) under this policy; the last error is raised as it is."""

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in AsyncRetrying(sleep=self.async_sleep, **self._options(None, None)):
                with attempt:
                    return await fn(*args, **kwargs)
            raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

        return call


@dataclass
class ChatResult:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    model: str = ""


def counts_against_endpoint(exc: BaseException | None) -> bool:
    """Whether a call that ended in `exc` says the endpoint is failing (a circuit breaker failure)."""
    return not (isinstance(exc, openai.APIStatusError) and exc.status_code in REQUEST_SPECIFIC_STATUSES)


class LLMClient:
    def __init__(self, *, model: str, api_key: str | None, base_url: str | None, timeout: float = 30.0,
                 max_retries: int = 3, backoff_initial: float = 0.5, backoff_max: float = 8.0,
                 breaker: CircuitBreaker | None = None, http_client: httpx.Client | None = None) -> None:
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.breaker = breaker  # chat completions only
        self.policy = RetryPolicy(max_retries, backoff_initial, backoff_max)
        # the client's own retries are off: `policy` is the only one; `http_client` (default: openai's own) is
        # the transport, e.g. an httpx.MockTransport in tests
        # openai 3 types http_client as an httpx2 client and takes an httpx one as well (openai/_httpx2.py)
        self._client = openai.OpenAI(api_key=api_key or "not-set", base_url=base_url, timeout=timeout,
                                     max_retries=0, http_client=http_client)  # type: ignore[arg-type]

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    @classmethod
    def from_settings(cls, gen: GenerationSettings, *, breaker: CircuitBreaker | None = None,
                      http_client: httpx.Client | None = None) -> LLMClient:
        return cls(model=gen.model, api_key=gen.api_key.get_secret_value() if gen.api_key else None,
                   base_url=gen.base_url, timeout=gen.timeout_seconds, max_retries=gen.max_retries,
                   backoff_initial=gen.backoff_initial_seconds, backoff_max=gen.backoff_max_seconds,
                   breaker=breaker, http_client=http_client)

    def _run(self, what: str, fn: Callable[[], T], deadline: Deadline | None = None,
             cut: dict[str, bool] | None = None) -> tuple[T, int]:
        """`fn` under the retry policy; with a deadline, `cut["deadline"]` is set by whoever stops for it (the
        retry policy here, or `fn` when it shortened the timeout of an attempt that then timed out)."""
        cut = {} if cut is None else cut
        retrying = self.policy.retrying(deadline, cut)
        try:
            result = retrying(fn)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            if deadline is not None and cut.get("deadline"):
                raise LLMError(f"{what} stopped at {deadline.label} after {attempts} attempt(s) "
                               f"(last: {describe(exc)})") from exc
            raise LLMError(f"{what} failed after {attempts} attempt(s): {describe(exc)}") from exc
        return result, retrying.statistics.get("attempt_number", 1)

    def chat(self, messages: Sequence[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 512
             ) -> ChatResult:
        """One chat completion under the retry policy, the deadline of `llm_deadline` (if any) and the circuit
        breaker (if any). Raises LLMError (CircuitOpenError when the breaker refused)."""
        permit = None
        if self.breaker is not None:
            permit = self.breaker.acquire()
            if permit is None:
                raise CircuitOpenError(self.breaker.describe())
        try:
            result = self._chat(messages, temperature=temperature, max_tokens=max_tokens)
        except LLMError as exc:
            if permit is not None:
                if not isinstance(exc, NotAttemptedError) and counts_against_endpoint(exc.__cause__):
                    permit.failure(describe(exc.__cause__) if exc.__cause__ else exc.message)
                else:
                    permit.release()
            raise
        except BaseException:
            if permit is not None:
                permit.release()
            raise
        if permit is not None:
            permit.success()
        return result

    def _chat(self, messages: Sequence[dict[str, str]], *, temperature: float, max_tokens: int) -> ChatResult:
        deadline = _deadline.get()
        if deadline is not None and deadline.remaining() < MIN_ATTEMPT_SECONDS:
            raise NotAttemptedError(f"chat completion not attempted: {deadline.label} was reached "
                                    "before the LLM was called")
        cut: dict[str, bool] = {}

        def call() -> ChatResult:
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, max(deadline.remaining(), MIN_ATTEMPT_SECONDS))
            try:
                # plain {role, content} dicts: what the API takes, without openai's TypedDicts
                reply = self._client.chat.completions.create(model=self.model,
                                                             messages=cast(list[ChatMessage], list(messages)),
                                                             temperature=temperature, max_tokens=max_tokens,
                                                             timeout=timeout)
            except openai.APITimeoutError:
                if timeout < self.timeout:
                    cut["deadline"] = True  # this attempt's timeout was the deadline's
                raise
            except ValueError as exc:  # body that is not JSON
                raise MalformedReplyError(str(exc)) from exc
            choices = getattr(reply, "choices", None)
            if not choices:
                raise MalformedReplyError("no choices in the reply")
            content = getattr(choices[0].message, "content", None)
            if not isinstance(content, str) or not content.strip():
                raise MalformedReplyError("empty message content")
            usage = {}
            counts = getattr(reply, "usage", None)
            if counts is not None:
                usage = {"prompt_tokens": int(counts.prompt_tokens or 0),
                         "completion_tokens": int(counts.completion_tokens or 0)}
            return ChatResult(text=content.strip(), usage=usage,
                              model=getattr(reply, "model", "") or self.model)

        result, attempts = self._run("chat completion", call, deadline, cut)
        result.attempts = attempts
        return result

    def embed(self, texts: list[str], *, model: str) -> list[list[float]]:
        def call() -> list[list[float]]:
            try:
                reply = self._client.embeddings.create(model=model, input=texts)
            except ValueError as exc:
                raise MalformedReplyError(str(exc)) from exc
            data = sorted(reply.data, key=lambda d: d.index)
            if len(data) != len(texts):
                raise MalformedReplyError(f"{len(data)} embeddings for {len(texts)} inputs")
            return [list(d.embedding) for d in data]

        vectors, _ = self._run("embedding request", call)
        return vectors


def async_openai_client(*, api_key: str | None, base_url: str | None, timeout: float, max_retries: int = 3,
                        http_client: httpx.AsyncClient | None = None) -> openai.AsyncOpenAI:
    """An async client for libraries that take one (the ragas judge). Its own retries are off: its chat
    completions and embeddings go through the same `RetryPolicy` as `LLMClient` (default back-off, no
    deadline), re-raising the last error as the library raised it."""
    client = openai.AsyncOpenAI(api_key=api_key or "not-set", base_url=base_url, timeout=timeout,
                                max_retries=0, http_client=http_client)  # type: ignore[arg-type]  # as above
    policy = RetryPolicy(max_retries)
    # the instance's bound methods are replaced, before any library captures them (instructor takes
    # `client.chat.completions.create` when it wraps the client); the wrapper keeps the signature, which mypy
    # cannot see through `wrap_async`
    client.chat.completions.create = policy.wrap_async(  # type: ignore[method-assign, assignment]
        client.chat.completions.create)
    client.embeddings.create = policy.wrap_async(  # type: ignore[method-assign, assignment]
        client.embeddings.create)
    return client
