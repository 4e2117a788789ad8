"""The LLM-judged metrics: which judge (`judge_config`), what each metric is asked (`JUDGE_SPECS`), and
`score_judged`, which serves judgements from the cache (judge_cache.py) and asks the judge for the rest
through ragas (ragas_adapter.py). A failed or unparsable judgement is unmeasured with a reason
(`describe_failure`), never 0."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydantic

from axiom.config import Settings
from axiom.embeddings import Embedder
from axiom.evaluation.answer_metrics.judge_cache import JudgeCache, JudgeInputs
from axiom.evaluation.answer_metrics.normalise import clean_answer
from axiom.evaluation.answer_metrics.prices import cost_usd, price_for
from axiom.evaluation.answer_metrics.ragas_adapter import (
    JUDGE_FACTORIES,
    RAGAS_VERSION,
    EmbedderAdapter,
    judge_usage,
    make_judge_llm,
    run_sync,
)
from axiom.evaluation.answer_metrics.scores import JudgeStats, MetricScore, ScoreInput
from axiom.llm import async_openai_client, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeConfig:
    model: str
    base_url: str | None
    api_key: str | None
    concurrency: int
    timeout: float
    max_retries: int
    cache_dir: Path
    prices: dict[str, float] | None = None  # per million tokens: {"input": x, "output": y}


def judge_config(settings: Settings) -> JudgeConfig | None:
    """The judge LLM settings, or None when no LLM is configured (then only offline metrics run).

    A judge is configured by EVAL_LLM_MODEL / EVAL_LLM_BASE_URL (evaluation.judge_*) or, failing those, by the
    generation settings when they select the OpenAI-compatible generator (OPENAI_API_KEY set).
    """
    ev, gen = settings.evaluation, settings.generation
    if not (ev.judge_model or ev.judge_base_url or gen.resolved_provider == "openai"):
        return None
    model = ev.judge_model or gen.model
    prices = price_for(settings, model)
    return JudgeConfig(model=model, base_url=ev.judge_base_url or gen.base_url,
                       api_key=gen.api_key.get_secret_value() if gen.api_key else None,
                       concurrency=ev.judge_concurrency, timeout=ev.judge_timeout_seconds,
                       max_retries=gen.max_retries, cache_dir=Path(ev.judge_cache_dir), prices=prices)


# -- what each judged metric is asked ---------------------------------------------------------------
@dataclass(frozen=True)
class JudgeSpec:
    inputs: Callable[[ScoreInput], JudgeInputs]  # ragas's ascore keyword arguments (also the cache key)
    needs: tuple[str, ...]  # which of answer / contexts / reference must be non-empty


JUDGE_SPECS: dict[str, JudgeSpec] = {
    "faithfulness": JudgeSpec(
        lambda r: {"user_input": r.question, "response": clean_answer(r.answer),
                   "retrieved_contexts": list(r.contexts)}, ("answer", "contexts")),
    "answer_relevancy": JudgeSpec(
        lambda r: {"user_input": r.question, "response": clean_answer(r.answer)}, ("answer",)),
    "llm_context_precision": JudgeSpec(
        lambda r: {"user_input": r.question, "reference": r.reference,
                   "retrieved_contexts": list(r.contexts)},
        ("contexts", "reference")),
    "llm_context_recall": JudgeSpec(
        lambda r: {"user_input": r.question, "retrieved_contexts": list(r.contexts),
                   "reference": r.reference},
        ("contexts", "reference")),
    "factual_correctness": JudgeSpec(
        lambda r: {"response": clean_answer(r.answer), "reference": r.reference}, ("answer", "reference")),
}
JUDGE_METRICS: tuple[str, ...] = tuple(JUDGE_SPECS)


def _missing(row: ScoreInput, needs: Sequence[str]) -> str | None:
    if "reference" in needs and row.reference is None:
        return "no reference answer for this item"
    if "answer" in needs and not clean_answer(row.answer):
        return "the answer is empty"
    if "contexts" in needs and not row.contexts:
        return "nothing was retrieved"
    return None


# -- failures -----------------------------------------------------------------------------------------
_PARSE_ERRORS = (pydantic.ValidationError, json.JSONDecodeError)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions behind it: its causes / contexts, and the last failed attempt of a retrying
    wrapper (instructor's retry exception keeps them in `failed_attempts`)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.append(current.__cause__ or current.__context__)
        attempts = getattr(current, "failed_attempts", None) or []
        if attempts:
            todo.append(getattr(attempts[-1], "exception", None))
    return seen


def describe_failure(exc: BaseException) -> str:
    """A short reason for an unmeasured judgement."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "judge call timed out"
    chain = _chain(exc)
    for link in chain:
        described = describe(link)
        if described.startswith(("HTTP ", "LLM request timed out", "cannot connect", "malformed reply")):
            return f"judge call failed: {described}"
    text = " ".join(str(exc).split())
    if any(isinstance(link, _PARSE_ERRORS) for link in chain):
        return "judge reply could not be parsed: " + text[-200:]
    return f"judge call failed: {type(exc).__name__}: {text[:200]}"


# -- scoring ----------------------------------------------------------------------------------------
def score_judged(rows: Sequence[ScoreInput], config: JudgeConfig, embedder: Embedder,
                 metrics: Sequence[str] = JUDGE_METRICS, *, use_cache: bool = True
                 ) -> tuple[dict[str, list[MetricScore]], JudgeStats]:
    """The LLM-judged metrics for every row (cache first unless `use_cache` is false, as for repeated runs;
    failures are unmeasured with a reason)."""
    cache = JudgeCache(config.cache_dir)
    stats = JudgeStats(model=config.model, base_url=config.base_url)
    embeddings = EmbedderAdapter(embedder)
    embedding_id = getattr(embedder, "model_id", "?")
    out: dict[str, list[MetricScore]] = {name: [MetricScore.unmeasured("not run")] * len(rows)
                                         for name in metrics}
    todo: list[tuple[str, int, str, JudgeInputs]] = []  # metric, row index, cache key, inputs
    for name in metrics:
        spec = JUDGE_SPECS[name]
        identity = f"{name}@ragas-{RAGAS_VERSION}" + (f"+{embedding_id}" if name == "answer_relevancy"
                                                      else "")
        for i, row in enumerate(rows):
            missing = _missing(row, spec.needs)
            if missing:
                out[name][i] = MetricScore.not_applicable(missing)
                continue
            inputs = spec.inputs(row)
            key = JudgeCache.key(identity, config.model, inputs)
            cached = cache.get(key) if use_cache else None
            if cached is not None:
                stats.cache_hits += 1
                value = cached.get("value")
                out[name][i] = (MetricScore.ok(value) if value is not None and not math.isnan(value)
                                else MetricScore.unmeasured(cached.get("reason")
                                                            or "the judge gave no verdict"))
                continue
            todo.append((name, i, key, inputs))
    if not todo:
        return out, stats

    async def judge_all() -> None:
        client = async_openai_client(api_key=config.api_key, base_url=config.base_url, timeout=config.timeout,
                                     max_retries=config.max_retries)
        deadline = config.timeout * (config.max_retries + 1) * 2 + 5.0
        llm = make_judge_llm(config.model, client, asyncio.Semaphore(config.concurrency), deadline, stats)
        built = {name: JUDGE_FACTORIES[name](llm, embeddings) for name in metrics}

        async def one(name: str, i: int, key: str, inputs: JudgeInputs) -> None:
            usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
            judge_usage.set(usage)
            try:
                result = await built[name].ascore(**inputs)
                value = float(result.value) if result.value is not None else float("nan")
            except Exception as exc:  # any judge failure: unmeasured with a reason, never 0
                failure = describe_failure(exc)
                log.warning("judge %s on %s unmeasured: %s", name, rows[i].id, failure)
                out[name][i] = MetricScore.unmeasured(failure)
                return
            stats.judged += 1
            reason = None if not math.isnan(value) else "the judge gave no verdict (no statements to check)"
            cache.put(key, {"metric": name, "model": config.model,
                            "value": None if math.isnan(value) else value,
                            "reason": reason, "usage": usage, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                        time.gmtime())})
            out[name][i] = MetricScore.ok(value) if reason is None else MetricScore.unmeasured(reason)

        try:
            await asyncio.gather(*(one(*job) for job in todo))
        finally:
            await client.close()

    t0 = time.perf_counter()
    run_sync(judge_all())
    stats.seconds = time.perf_counter() - t0
    stats.cost_usd = cost_usd(config.prices, stats.prompt_tokens, stats.completion_tokens)
    return out, stats
