"""Answer and context metrics through ragas (imported by `ragas_adapter.py` only).

    scores.py         ScoreInput (one question), MetricScore (value, status, reason), JudgeStats, AnswerScores
    offline.py        the offline metrics, a registry of one small function per metric
    normalise.py      answer cleaning, SQuAD normalisation, sentences
    judge.py          the judge: its configuration, what each judged metric is asked, failures, scoring
    judge_cache.py    the judge's on-disk cache
    prices.py         token prices and cost
    ragas_adapter.py  ragas: embeddings over an Axiom Embedder, the offline metric objects, the judge LLM

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
- `groundedness` / `supported_claims` (grounding.py over groundedness.py): the calibrated probability that a
  careful reader finds nothing in the answer unsupported by its own contexts, and the share of its claims that
  are supported; the unsupported claims (text, offsets) go to `details["unsupported_claims"]`. Reference-free:
  they need only the answer and its contexts.
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

Embeddings go through the one embedding memo (`axiom.embeddings.CachingEmbedder`): `score_answers` wraps the
given model once (unless it already is one), so the offline and judged metrics embed each text once.
"""

from __future__ import annotations

from collections.abc import Sequence

from axiom.config import Settings
from axiom.embeddings import Embedder, caching_embedder
from axiom.evaluation.answer_metrics.grounding import (
    GROUNDEDNESS_METRICS,
    UNSUPPORTED_CLAIMS,
    score_grounding,
)
from axiom.evaluation.answer_metrics.judge import (
    JUDGE_METRICS,
    JudgeConfig,
    describe_failure,
    judge_config,
    score_judged,
)
from axiom.evaluation.answer_metrics.judge_cache import JudgeCache
from axiom.evaluation.answer_metrics.normalise import clean_answer, normalise, sentences
from axiom.evaluation.answer_metrics.offline import OFFLINE_METRICS, OFFLINE_REGISTRY, score_offline
from axiom.evaluation.answer_metrics.prices import cost_usd, price_for
from axiom.evaluation.answer_metrics.ragas_adapter import EmbedderAdapter
from axiom.evaluation.answer_metrics.scores import AnswerScores, JudgeStats, MetricScore, ScoreInput, Status

__all__ = [
    "GROUNDEDNESS_METRICS", "JUDGE_METRICS", "OFFLINE_METRICS", "UNSUPPORTED_CLAIMS", "OFFLINE_REGISTRY",
    "AnswerScores", "EmbedderAdapter", "JudgeCache",
    "JudgeConfig", "JudgeStats", "MetricScore", "ScoreInput", "Status", "clean_answer", "cost_usd",
    "describe_failure", "judge_config", "normalise", "price_for", "score_answers", "score_judged",
    "score_offline", "sentences",
]


def score_answers(rows: Sequence[ScoreInput], settings: Settings, embedder: Embedder, *, judge: bool = True,
                  use_cache: bool = True) -> AnswerScores:
    """Offline metrics always; LLM-judged metrics too when a judge is configured and `judge` is true
    (`use_cache=False` asks the judge again instead of reading its cache)."""
    embedder = caching_embedder(settings, embedder)  # one memo (and the on-disk cache) for every metric
    scores = score_offline(rows, embedder)
    grounded, unsupported = score_grounding(rows, embedder)
    scores.update(grounded)
    names = list(OFFLINE_METRICS) + list(GROUNDEDNESS_METRICS)
    stats = None
    config = judge_config(settings) if judge else None
    if config is not None and rows:
        judged, stats = score_judged(rows, config, embedder, use_cache=use_cache)
        scores.update(judged)
        names += list(JUDGE_METRICS)
    return AnswerScores(scores=scores, judge=stats, metric_names=names,
                        details={UNSUPPORTED_CLAIMS: unsupported})
