"""The OpenAI-compatible client: the only module that imports `openai`.

Used by the `openai` generator, OpenAI embeddings and (through `async_openai_client`) the LLM-judged
evaluation metrics. Retries use tenacity: exponential backoff with jitter on 429, 5xx, timeouts,
connection errors and malformed replies, honouring `Retry-After`; other errors (400, 401, 403, 404) fail at
once. The API key is never logged or put into an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from axiom.config import GenerationSettings
from axiom.errors import LLMError

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 60.0


class MalformedReplyError(Exception):
    """The endpoint answered 2xx but the body is not a usable completion."""


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


@dataclass
class ChatResult:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    model: str = ""


class LLMClient:
    def __init__(self, *, model: str, api_key: str | None, base_url: str | None, timeout: float = 30.0,
                 max_retries: int = 3, backoff_initial: float = 0.5, backoff_max: float = 8.0) -> None:
        self.model = model
        self.base_url = base_url
        self.max_retries = max_retries
        self._wait = _Wait(backoff_initial, backoff_max)
        # the client's own retries are off: tenacity owns the policy
        self._client = openai.OpenAI(api_key=api_key or "not-set", base_url=base_url, timeout=timeout,
                                     max_retries=0)

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> LLMClient:
        return cls(model=gen.model, api_key=gen.api_key.get_secret_value() if gen.api_key else None,
                   base_url=gen.base_url, timeout=gen.timeout_seconds, max_retries=gen.max_retries,
                   backoff_initial=gen.backoff_initial_seconds, backoff_max=gen.backoff_max_seconds)

    def _retrying(self) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("LLM call failed (%s); retry %d of %d", describe(exc) if exc else "?",
                        state.attempt_number, self.max_retries)

        return Retrying(retry=retry_if_exception(is_retryable), stop=stop_after_attempt(self.max_retries + 1),
                        wait=self._wait, before_sleep=before_sleep, reraise=True)

    def _run(self, what: str, fn: Any) -> tuple[Any, int]:
        retrying = self._retrying()
        try:
            result = retrying(fn)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise LLMError(f"{what} failed after {attempts} attempt(s): {describe(exc)}") from exc
        return result, retrying.statistics.get("attempt_number", 1)

    def chat(self, messages: Sequence[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 512
             ) -> ChatResult:
        def call() -> ChatResult:
            try:
                reply = self._client.chat.completions.create(model=self.model, messages=list(messages),
                                                             temperature=temperature, max_tokens=max_tokens)
            except ValueError as exc:  # body that is not JSON
                raise MalformedReplyError(str(exc)) from exc
            choices = getattr(reply, "choices", None)
            if not choices:
                raise MalformedReplyError("no choices in the reply")
            content = getattr(choices[0].message, "content", None)
            if not isinstance(content, str) or not content.strip():
                raise MalformedReplyError("empty message content")
            usage = {}
            if getattr(reply, "usage", None) is not None:
                usage = {"prompt_tokens": int(reply.usage.prompt_tokens or 0),
                         "completion_tokens": int(reply.usage.completion_tokens or 0)}
            return ChatResult(text=content.strip(), usage=usage, model=getattr(reply, "model", "") or self.model)

        result, attempts = self._run("chat completion", call)
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


def async_openai_client(*, api_key: str | None, base_url: str | None, timeout: float,
                        max_retries: int = 3) -> openai.AsyncOpenAI:
    """An async client for libraries that take one (the ragas judge); its own retries stay on."""
    return openai.AsyncOpenAI(api_key=api_key or "not-set", base_url=base_url, timeout=timeout,
                              max_retries=max_retries)
