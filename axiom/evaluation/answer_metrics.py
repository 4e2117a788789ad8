"""Answer and context metrics through ragas: the only module that imports ragas.

Offline, always (deterministic, no network):
- `nonllm_context_recall` / `nonllm_context_precision`: ragas NonLLMContextRecall and
  NonLLMContextPrecisionWithReference (Levenshtein similarity, threshold 0.5). Both compare strings of
  similar length, but a retrieved chunk (~800 characters) against a one-sentence reference context can never
  reach a similarity of 0.5, so whole chunks would always score 0. We therefore feed ragas sentences:
  recall gets the sentences of the retrieved chunks and of the reference contexts (the share of reference
  sentences found among the retrieved ones); precision gets, for each retrieved chunk in rank order, its
  sentence closest to a reference sentence (the average precision of the chunks, a chunk counting as
  relevant when it holds a near copy of a reference sentence). Items without reference_contexts are n/a.
- `rouge_l` (ROUGE-L F1, stemmed) and `chrf` (sacrebleu chrF): answer against the reference answer.
- `semantic_similarity`: ragas SemanticSimilarity with the pipeline's own embedding model (the packaged
  MiniLM by default), so the model is loaded once: the cosine of the answer and reference embeddings.
- `exact_match` / `string_presence`: ragas ExactMatch / StringPresence on SQuAD-normalised text (lower case,
  no punctuation or articles) against the item's short answer; n/a when an item has none (see
  `EvalItem.expected_short_answer`).
The reference-based answer metrics score the answer text without the extractive generator's fixed prefix and
without citation markers like [1].

With a judge LLM (EVAL_LLM_MODEL / EVAL_LLM_BASE_URL, or else the OPENAI_* generation settings):
`faithfulness`, `answer_relevancy`, `llm_context_precision`, `llm_context_recall`, `factual_correctness`
(ragas collections metrics over an AsyncOpenAI client from `axiom.llm`). At most `judge_concurrency` judge
calls run at once; each HTTP request times out after `judge_timeout_seconds` and is retried by the client
(`generation.max_retries`, exponential backoff, honouring Retry-After); an unparsable reply is re-asked once.
A call that still fails, or a reply that cannot be parsed, leaves the value NaN with status "unmeasured" and a
reason: never 0. Successful judgements are cached on disk (`judge_cache_dir`), one JSON file per sha256 of
(metric, model, inputs), so an identical re-run makes no judge calls. Token usage (and cost, with a price
table) is counted per run.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import math
import os
import re
import string
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas's usage analytics; must be set before import

from ragas.embeddings.base import BaseRagasEmbedding  # noqa: E402
from ragas.llms.base import InstructorBaseRagasLLM  # noqa: E402

from axiom.config import Settings  # noqa: E402
from axiom.embeddings import Embedder  # noqa: E402
from axiom.generation import EXTRACTIVE_PREFIX  # noqa: E402

log = logging.getLogger(__name__)

Status = Literal["ok", "unmeasured", "not_applicable"]

OFFLINE_METRICS: tuple[str, ...] = (
    "nonllm_context_recall", "nonllm_context_precision", "rouge_l", "chrf", "semantic_similarity",
    "exact_match", "string_presence",
)
JUDGE_METRICS: tuple[str, ...] = (
    "faithfulness", "answer_relevancy", "llm_context_precision", "llm_context_recall", "factual_correctness",
)
CACHE_FORMAT = 1
_CITATION = re.compile(r"\s*\[\d{1,3}\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class ScoreInput:
    """What the metrics see for one question."""

    id: str
    question: str
    answer: str
    reference: str
    contexts: tuple[str, ...]
    reference_contexts: tuple[str, ...] = ()
    short_answer: str | None = None


@dataclass(frozen=True)
class MetricScore:
    value: float
    status: Status = "ok"
    reason: str | None = None

    @classmethod
    def ok(cls, value: float) -> MetricScore:
        return cls(float(value))

    @classmethod
    def unmeasured(cls, reason: str) -> MetricScore:
        return cls(float("nan"), "unmeasured", reason)

    @classmethod
    def not_applicable(cls, reason: str) -> MetricScore:
        return cls(float("nan"), "not_applicable", reason)


@dataclass
class JudgeStats:
    model: str
    base_url: str | None
    calls: int = 0  # chat requests actually sent (including retries and re-asks)
    failed_calls: int = 0
    cache_hits: int = 0  # (metric, item) judgements served from the cache
    judged: int = 0  # (metric, item) judgements computed this run
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_tokens"] = self.prompt_tokens + self.completion_tokens
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class AnswerScores:
    scores: dict[str, list[MetricScore]]  # metric -> one score per input row, in input order
    judge: JudgeStats | None = None
    metric_names: list[str] = field(default_factory=list)


# -- text helpers ---------------------------------------------------------------------------------
def clean_answer(text: str) -> str:
    """The answer without the extractive generator's prefix and without [n] citation markers."""
    text = text.strip()
    if text.startswith(EXTRACTIVE_PREFIX):
        text = text[len(EXTRACTIVE_PREFIX):]
    return " ".join(_CITATION.sub("", text).split())


def normalise(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def sentences(text: str) -> list[str]:
    return [s for s in (" ".join(p.split()) for p in _SENTENCE.split(text)) if s]


def _run(coro: Any) -> Any:
    """Run a coroutine to completion, also when the caller already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- embeddings: the pipeline's own model, behind ragas's embedding interface ----------------------
class EmbedderAdapter(BaseRagasEmbedding):
    """ragas embeddings over an `axiom` Embedder; `prime()` embeds many texts in one batch and memoises them."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(cache=None)
        self.embedder = embedder
        self._memo: dict[str, list[float]] = {}

    def prime(self, texts: Sequence[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            for text, vector in zip(todo, self.embedder.embed(todo), strict=True):
                self._memo[text] = [float(x) for x in vector]

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        if text not in self._memo:
            self.prime([text])
        return self._memo[text]

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        return self.embed_text(text)

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        self.prime(texts)
        return [self._memo[t] for t in texts]

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return self.embed_texts(texts)


# -- offline metrics ------------------------------------------------------------------------------
def _closest_sentence(chunk: str, references: Sequence[str]) -> str:
    """The sentence of `chunk` most similar (normalised Levenshtein, as ragas) to any reference sentence."""
    from rapidfuzz.distance import Levenshtein

    best, best_score = chunk, -1.0
    for sentence in sentences(chunk) or [chunk]:
        score = max(Levenshtein.normalized_similarity(sentence, ref) for ref in references)
        if score > best_score:
            best, best_score = sentence, score
    return best


async def _offline_row(row: ScoreInput, embeddings: EmbedderAdapter, m: dict[str, Any]) -> dict[str, MetricScore]:
    from ragas.dataset_schema import SingleTurnSample

    out: dict[str, MetricScore] = {}
    answer = clean_answer(row.answer)
    ref_sentences = [s for ctx in row.reference_contexts for s in sentences(ctx)]
    if not ref_sentences:
        reason = "no reference_contexts for this item"
        out["nonllm_context_recall"] = MetricScore.not_applicable(reason)
        out["nonllm_context_precision"] = MetricScore.not_applicable(reason)
    elif not row.contexts:
        out["nonllm_context_recall"] = MetricScore.ok(0.0)
        out["nonllm_context_precision"] = MetricScore.ok(0.0)
    else:
        retrieved = [s for ctx in row.contexts for s in sentences(ctx)] or list(row.contexts)
        recall = await m["recall"].single_turn_ascore(
            SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=ref_sentences))
        representatives = [_closest_sentence(ctx, ref_sentences) for ctx in row.contexts]
        precision = await m["precision"].single_turn_ascore(
            SingleTurnSample(retrieved_contexts=representatives, reference_contexts=ref_sentences))
        out["nonllm_context_recall"] = MetricScore.ok(recall)
        out["nonllm_context_precision"] = MetricScore.ok(precision)
    if not answer:
        for name in ("rouge_l", "chrf", "semantic_similarity"):
            out[name] = MetricScore.ok(0.0)
    else:
        out["rouge_l"] = MetricScore.ok((await m["rouge"].ascore(reference=row.reference, response=answer)).value)
        out["chrf"] = MetricScore.ok((await m["chrf"].ascore(reference=row.reference, response=answer)).value)
        similarity = (await m["semantic"].ascore(reference=row.reference, response=answer)).value
        out["semantic_similarity"] = MetricScore.ok(min(1.0, max(0.0, similarity)))
    if row.short_answer:
        expected, got = normalise(row.short_answer), normalise(answer)
        out["exact_match"] = MetricScore.ok((await m["exact"].ascore(reference=expected, response=got)).value)
        out["string_presence"] = MetricScore.ok(
            (await m["presence"].ascore(reference=expected, response=got)).value)
    else:
        out["exact_match"] = MetricScore.not_applicable("no short answer for this item")
        out["string_presence"] = MetricScore.not_applicable("no short answer for this item")
    return out


def score_offline(rows: Sequence[ScoreInput], embedder: Embedder) -> dict[str, list[MetricScore]]:
    """The offline metrics for every row (deterministic)."""
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
    from ragas.metrics.collections import (
        CHRFScore,
        ExactMatch,
        RougeScore,
        SemanticSimilarity,
        StringPresence,
    )

    embeddings = EmbedderAdapter(embedder)
    embeddings.prime([r.reference for r in rows] + [clean_answer(r.answer) for r in rows if clean_answer(r.answer)])
    metrics = {
        "recall": NonLLMContextRecall(), "precision": NonLLMContextPrecisionWithReference(),
        "rouge": RougeScore(rouge_type="rougeL", mode="fmeasure"), "chrf": CHRFScore(),
        "semantic": SemanticSimilarity(embeddings=embeddings), "exact": ExactMatch(), "presence": StringPresence(),
    }

    async def score_all() -> list[dict[str, MetricScore]]:
        return [await _offline_row(row, embeddings, metrics) for row in rows]

    per_row = _run(score_all())
    return {name: [r[name] for r in per_row] for name in OFFLINE_METRICS}


# -- the judge ------------------------------------------------------------------------------------
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


def price_for(settings: Settings, model: str) -> dict[str, float] | None:
    table = settings.evaluation.prices_per_million_tokens or {}
    entry = table.get(model)
    if not entry:
        return None
    return {"input": float(entry.get("input", entry.get("prompt", 0.0))),
            "output": float(entry.get("output", entry.get("completion", 0.0)))}


def cost_usd(prices: dict[str, float] | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if not prices:
        return None
    return round(prompt_tokens / 1e6 * prices["input"] + completion_tokens / 1e6 * prices["output"], 6)


class JudgeCache:
    """One JSON file per judgement under `root/<2 hex>/<sha256>.json`, written atomically. Private to its owner
    (it holds questions, answers and references): files 0600, `root` and its folders 0700; a `root` left
    more open by an older version is tightened on the first write when it holds nothing but cache folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_checked = False

    def _private_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o777 != 0o700:
            if path == self.root and not all(re.fullmatch(r"[0-9a-f]{2}", p.name) for p in path.iterdir()):
                # holds other things than cache entries (judge_cache_dir pointed at a shared folder): leave it
                log.warning("judge cache folder %s is readable by others; its entries stay private (0600)", path)
                return
            try:
                path.chmod(0o700)
            except OSError as exc:  # not ours: say so, but keep judging (the files themselves are 0600)
                log.warning("judge cache folder %s is not private and cannot be made so (%s)", path, exc)

    @staticmethod
    def key(metric: str, model: str, inputs: dict[str, Any]) -> str:
        blob = json.dumps({"format": CACHE_FORMAT, "metric": metric, "model": model, "inputs": inputs},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("judge cache entry %s unreadable (%s); judging again", path, exc)
            return None
        return data if isinstance(data, dict) and "value" in data else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        path = self._path(key)
        if not self._root_checked:
            self._private_dir(self.root)
            self._root_checked = True
        if not path.parent.is_dir() or path.parent.stat().st_mode & 0o777 != 0o700:
            self._private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=True))
        os.replace(tmp, path)


_current_usage: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("judge_usage", default=None)


class JudgeLLM(InstructorBaseRagasLLM):
    """The ragas LLM with Axiom's policy around it: a semaphore bounding concurrent calls, a deadline per
    call, and usage accounting (per judgement, through a context variable, and per run)."""

    def __init__(self, inner: Any, semaphore: asyncio.Semaphore, deadline: float, stats: JudgeStats) -> None:
        self.inner = inner
        self.semaphore = semaphore
        self.deadline = deadline
        self.stats = stats
        hooks = getattr(inner, "client", None)
        if hooks is not None and hasattr(hooks, "on"):
            hooks.on("completion:response", self._on_response)
            hooks.on("completion:error", self._on_error)

    def _on_response(self, response: Any) -> None:
        self.stats.calls += 1
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        self.stats.prompt_tokens += prompt
        self.stats.completion_tokens += completion
        row = _current_usage.get()
        if row is not None:
            row["calls"] += 1
            row["prompt_tokens"] += prompt
            row["completion_tokens"] += completion

    def _on_error(self, error: Any) -> None:
        self.stats.calls += 1
        self.stats.failed_calls += 1
        row = _current_usage.get()
        if row is not None:
            row["calls"] += 1

    def generate(self, prompt: str, response_model: Any) -> Any:  # ragas collections only use agenerate
        return _run(self.agenerate(prompt, response_model))

    async def agenerate(self, prompt: str, response_model: Any) -> Any:
        async with self.semaphore:
            return await asyncio.wait_for(self.inner.agenerate(prompt, response_model), timeout=self.deadline)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe_failure(exc: BaseException) -> str:
    """A short reason for an unmeasured judgement."""
    from axiom.llm import describe

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "judge call timed out"
    text = " ".join(str(exc).split())
    for link in _chain(exc):
        described = describe(link)
        if described.startswith(("HTTP ", "LLM request timed out", "cannot connect", "malformed reply")):
            return f"judge call failed: {described}"
    if any(s in text for s in ("validation error", "Invalid JSON", "json_invalid", "JSONDecodeError")):
        return "judge reply could not be parsed: " + text[-200:]
    # instructor wraps API errors in its retry exception with the status in the text
    match = re.search(r"Error code: (\d{3})", text)
    if match:
        return f"judge call failed: HTTP {match.group(1)} from the LLM endpoint"
    return f"judge call failed: {type(exc).__name__}: {text[:200]}"


@dataclass(frozen=True)
class _JudgeSpec:
    build: Callable[[Any, EmbedderAdapter], Any]
    inputs: Callable[[ScoreInput], dict[str, Any]]
    needs: tuple[str, ...]  # which of answer / contexts / reference must be non-empty


def _judge_specs() -> dict[str, _JudgeSpec]:
    from ragas.metrics.collections import (
        AnswerRelevancy,
        ContextPrecisionWithReference,
        ContextRecall,
        FactualCorrectness,
        Faithfulness,
    )

    return {
        "faithfulness": _JudgeSpec(
            lambda llm, emb: Faithfulness(llm=llm),
            lambda r: {"user_input": r.question, "response": clean_answer(r.answer),
                       "retrieved_contexts": list(r.contexts)}, ("answer", "contexts")),
        "answer_relevancy": _JudgeSpec(
            lambda llm, emb: AnswerRelevancy(llm=llm, embeddings=emb, strictness=3),
            lambda r: {"user_input": r.question, "response": clean_answer(r.answer)}, ("answer",)),
        "llm_context_precision": _JudgeSpec(
            lambda llm, emb: ContextPrecisionWithReference(llm=llm),
            lambda r: {"user_input": r.question, "reference": r.reference, "retrieved_contexts": list(r.contexts)},
            ("contexts",)),
        "llm_context_recall": _JudgeSpec(
            lambda llm, emb: ContextRecall(llm=llm),
            lambda r: {"user_input": r.question, "retrieved_contexts": list(r.contexts), "reference": r.reference},
            ("contexts",)),
        "factual_correctness": _JudgeSpec(
            lambda llm, emb: FactualCorrectness(llm=llm, mode="f1"),
            lambda r: {"response": clean_answer(r.answer), "reference": r.reference}, ("answer",)),
    }


def _missing(row: ScoreInput, needs: Sequence[str]) -> str | None:
    if "answer" in needs and not clean_answer(row.answer):
        return "the answer is empty"
    if "contexts" in needs and not row.contexts:
        return "nothing was retrieved"
    return None


def score_judged(rows: Sequence[ScoreInput], config: JudgeConfig, embedder: Embedder,
                 metrics: Sequence[str] = JUDGE_METRICS, *, use_cache: bool = True
                 ) -> tuple[dict[str, list[MetricScore]], JudgeStats]:
    """The LLM-judged metrics for every row (cache first unless `use_cache` is false, as for repeated runs;
    failures are unmeasured with a reason)."""
    from ragas import __version__ as ragas_version
    from ragas.llms import llm_factory

    from axiom.llm import async_openai_client

    specs = _judge_specs()
    cache = JudgeCache(config.cache_dir)
    stats = JudgeStats(model=config.model, base_url=config.base_url)
    embeddings = EmbedderAdapter(embedder)
    embedding_id = getattr(embedder, "model_id", "?")
    out: dict[str, list[MetricScore]] = {name: [MetricScore.unmeasured("not run")] * len(rows) for name in metrics}
    todo: list[tuple[str, int, str, dict[str, Any]]] = []  # metric, row index, cache key, inputs
    for name in metrics:
        spec = specs[name]
        identity = f"{name}@ragas-{ragas_version}" + (f"+{embedding_id}" if name == "answer_relevancy" else "")
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
                                else MetricScore.unmeasured(cached.get("reason") or "the judge gave no verdict"))
                continue
            todo.append((name, i, key, inputs))
    if not todo:
        return out, stats

    async def judge_all() -> None:
        client = async_openai_client(api_key=config.api_key, base_url=config.base_url, timeout=config.timeout,
                                     max_retries=config.max_retries)
        semaphore = asyncio.Semaphore(config.concurrency)
        # one unparsable reply is re-asked once (instructor's max_retries counts attempts)
        inner = llm_factory(config.model, provider="openai", client=client, max_retries=2)
        deadline = config.timeout * (config.max_retries + 1) * 2 + 5.0
        llm = JudgeLLM(inner, semaphore, deadline, stats)
        built = {name: specs[name].build(llm, embeddings) for name in metrics}

        async def one(name: str, i: int, key: str, inputs: dict[str, Any]) -> None:
            usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
            _current_usage.set(usage)
            try:
                result = await built[name].ascore(**inputs)
                value = float(result.value) if result.value is not None else float("nan")
            except Exception as exc:  # any judge failure: unmeasured with a reason, never 0
                reason = describe_failure(exc)
                log.warning("judge %s on %s unmeasured: %s", name, rows[i].id, reason)
                out[name][i] = MetricScore.unmeasured(reason)
                return
            stats.judged += 1
            reason = None if not math.isnan(value) else "the judge gave no verdict (no statements to check)"
            cache.put(key, {"metric": name, "model": config.model, "value": None if math.isnan(value) else value,
                            "reason": reason, "usage": usage, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                        time.gmtime())})
            out[name][i] = MetricScore.ok(value) if reason is None else MetricScore.unmeasured(reason)

        try:
            await asyncio.gather(*(one(*job) for job in todo))
        finally:
            await client.close()

    t0 = time.perf_counter()
    _run(judge_all())
    stats.seconds = time.perf_counter() - t0
    stats.cost_usd = cost_usd(config.prices, stats.prompt_tokens, stats.completion_tokens)
    return out, stats


def score_answers(rows: Sequence[ScoreInput], settings: Settings, embedder: Embedder, *, judge: bool = True,
                  use_cache: bool = True) -> AnswerScores:
    """Offline metrics always; LLM-judged metrics too when a judge is configured and `judge` is true
    (`use_cache=False` asks the judge again instead of reading its cache)."""
    scores = score_offline(rows, embedder)
    names = list(OFFLINE_METRICS)
    stats = None
    config = judge_config(settings) if judge else None
    if config is not None and rows:
        judged, stats = score_judged(rows, config, embedder, use_cache=use_cache)
        scores.update(judged)
        names += list(JUDGE_METRICS)
    return AnswerScores(scores=scores, judge=stats, metric_names=names)

