"""Everything ragas: the only module of Axiom that imports it.

- `EmbedderAdapter`: ragas's embedding interface over an Axiom Embedder, through the package's one embedding
  memo (`axiom.embeddings.CachingEmbedder`).
- `RagasOffline`: ragas's deterministic metrics, one awaitable per metric returning a plain float.
- `JudgeLLM` / `make_judge_llm`: the ragas LLM with Axiom's policy (bounded concurrency, a deadline per call,
  token accounting); `JUDGE_FACTORIES` builds ragas's judged (collections) metrics over it.
- `run_sync`: run ragas's coroutines from synchronous code, also inside a running event loop (notebooks).

ragas's usage analytics are switched off by `RAGAS_DO_NOT_TRACK`, which the faces set before this module is
imported (`axiom.observability.apply_process_defaults`).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import BaseModel
from ragas import __version__ as RAGAS_VERSION  # noqa: N812 (a constant of this module)
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM

from axiom.embeddings import CachingEmbedder, Embedder, caching_embedder
from axiom.evaluation.answer_metrics.scores import JudgeStats

if TYPE_CHECKING:
    from ragas.metrics.collections.base import BaseMetric

__all__ = ["JUDGE_FACTORIES", "RAGAS_VERSION", "EmbedderAdapter", "JudgeLLM", "RagasOffline", "judge_usage",
           "make_judge_llm", "run_sync"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)  # the structured reply a ragas metric asks the judge for


def run_sync(coro: Coroutine[object, object, T]) -> T:
    """Run a coroutine to completion, also when the caller already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    value: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            value.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return value[0]


# -- embeddings: the pipeline's own model, behind ragas's embedding interface ----------------------
class EmbedderAdapter(BaseRagasEmbedding):
    """ragas embeddings over an Axiom Embedder, memoised by a CachingEmbedder: the given one (`score_answers`
    gives one, with the settings' on-disk cache), or a memory-only memo around a bare model
    (`caching_embedder` without settings); `prime()` embeds many texts in one batch ahead of the metrics
    asking one by one."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(cache=None)
        self.embedder: CachingEmbedder = caching_embedder(None, embedder)

    def prime(self, texts: Sequence[str]) -> None:
        if texts:
            self.embedder.embed(list(texts))

    def embed_text(self, text: str, **kwargs: object) -> list[float]:
        return [float(x) for x in self.embedder.embed([text])[0]]

    async def aembed_text(self, text: str, **kwargs: object) -> list[float]:
        return self.embed_text(text)

    def embed_texts(self, texts: list[str], **kwargs: object) -> list[list[float]]:
        if not texts:
            return []
        return [[float(x) for x in vector] for vector in self.embedder.embed(texts)]

    async def aembed_texts(self, texts: list[str], **kwargs: object) -> list[list[float]]:
        return self.embed_texts(texts)


# -- offline metrics ------------------------------------------------------------------------------
class RagasOffline:
    """ragas's deterministic metrics, built once per scoring pass; each method gives the metric's value (ragas
    types its scores as Any: cast to the float they are)."""

    def __init__(self, embeddings: EmbedderAdapter) -> None:
        from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
        from ragas.metrics.collections import (
            CHRFScore,
            ExactMatch,
            RougeScore,
            SemanticSimilarity,
            StringPresence,
        )

        self._recall = NonLLMContextRecall()
        self._precision = NonLLMContextPrecisionWithReference()
        self._rouge = RougeScore(rouge_type="rougeL", mode="fmeasure")
        self._chrf = CHRFScore()
        self._semantic = SemanticSimilarity(embeddings=embeddings)
        self._exact = ExactMatch()
        self._presence = StringPresence()

    async def context_recall(self, retrieved: list[str], references: list[str]) -> float:
        from ragas.dataset_schema import SingleTurnSample

        return cast(float, await self._recall.single_turn_ascore(
            SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=references)))

    async def context_precision(self, retrieved: list[str], references: list[str]) -> float:
        from ragas.dataset_schema import SingleTurnSample

        return cast(float, await self._precision.single_turn_ascore(
            SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=references)))

    async def rouge_l(self, reference: str, response: str) -> float:
        return cast(float, (await self._rouge.ascore(reference=reference, response=response)).value)

    async def chrf(self, reference: str, response: str) -> float:
        return cast(float, (await self._chrf.ascore(reference=reference, response=response)).value)

    async def semantic_similarity(self, reference: str, response: str) -> float:
        return cast(float, (await self._semantic.ascore(reference=reference, response=response)).value)

    async def exact_match(self, reference: str, response: str) -> float:
        return cast(float, (await self._exact.ascore(reference=reference, response=response)).value)

    async def string_presence(self, reference: str, response: str) -> float:
        return cast(float, (await self._presence.ascore(reference=reference, response=response)).value)


# -- the judge ------------------------------------------------------------------------------------
# token usage of the judgement being computed (set per judgement task; the LLM's hooks add to it)
judge_usage: contextvars.ContextVar[dict[str,
                                         int] | None] = contextvars.ContextVar("judge_usage", default=None)


class JudgeLLM(InstructorBaseRagasLLM):
    """The ragas LLM with Axiom's policy around it: a semaphore bounding concurrent calls, a deadline per
    call, and usage accounting (per judgement, through `judge_usage`, and per run)."""

    def __init__(self, inner: InstructorBaseRagasLLM, semaphore: asyncio.Semaphore, deadline: float,
                 stats: JudgeStats) -> None:
        self.inner = inner
        self.semaphore = semaphore
        self.deadline = deadline
        self.stats = stats
        hooks = getattr(inner, "client", None)
        if hooks is not None and hasattr(hooks, "on"):
            hooks.on("completion:response", self._on_response)
            hooks.on("completion:error", self._on_error)

    def _on_response(self, response: object) -> None:
        self.stats.calls += 1
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        self.stats.prompt_tokens += prompt
        self.stats.completion_tokens += completion
        row = judge_usage.get()
        if row is not None:
            row["calls"] += 1
            row["prompt_tokens"] += prompt
            row["completion_tokens"] += completion

    def _on_error(self, error: object) -> None:
        self.stats.calls += 1
        self.stats.failed_calls += 1
        row = judge_usage.get()
        if row is not None:
            row["calls"] += 1

    def generate(self, prompt: str, response_model: type[M]) -> M:  # ragas collections only use agenerate
        return run_sync(self.agenerate(prompt, response_model))

    async def agenerate(self, prompt: str, response_model: type[M]) -> M:
        async with self.semaphore:
            return await asyncio.wait_for(self.inner.agenerate(prompt, response_model), timeout=self.deadline)


def make_judge_llm(model: str, client: object, semaphore: asyncio.Semaphore, deadline: float,
                   stats: JudgeStats) -> JudgeLLM:
    """A JudgeLLM over an AsyncOpenAI `client`; an unparsable reply is re-asked once (instructor's
    max_retries counts attempts)."""
    from ragas.llms import llm_factory

    return JudgeLLM(llm_factory(model, provider="openai", client=client, max_retries=2), semaphore, deadline,
                    stats)


def _faithfulness(llm: JudgeLLM, emb: EmbedderAdapter) -> BaseMetric:
    from ragas.metrics.collections import Faithfulness

    return Faithfulness(llm=llm)


def _answer_relevancy(llm: JudgeLLM, emb: EmbedderAdapter) -> BaseMetric:
    from ragas.metrics.collections import AnswerRelevancy

    return AnswerRelevancy(llm=llm, embeddings=emb, strictness=3)


def _context_precision(llm: JudgeLLM, emb: EmbedderAdapter) -> BaseMetric:
    from ragas.metrics.collections import ContextPrecisionWithReference

    return ContextPrecisionWithReference(llm=llm)


def _context_recall(llm: JudgeLLM, emb: EmbedderAdapter) -> BaseMetric:
    from ragas.metrics.collections import ContextRecall

    return ContextRecall(llm=llm)


def _factual_correctness(llm: JudgeLLM, emb: EmbedderAdapter) -> BaseMetric:
    from ragas.metrics.collections import FactualCorrectness

    return FactualCorrectness(llm=llm, mode="f1")


# Axiom's judged metric name -> the ragas collections metric over the judge LLM (and the embeddings);
# each is scored with `await metric.ascore(**inputs)`, the inputs as judge.py builds them
JUDGE_FACTORIES: dict[str, Callable[[JudgeLLM, EmbedderAdapter], BaseMetric]] = {
    "faithfulness": _faithfulness,
    "answer_relevancy": _answer_relevancy,
    "llm_context_precision": _context_precision,
    "llm_context_recall": _context_recall,
    "factual_correctness": _factual_correctness,
}
