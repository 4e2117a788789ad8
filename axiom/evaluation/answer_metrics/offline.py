"""The offline answer and context metrics (deterministic, no network), as a registry: `OFFLINE_REGISTRY` maps
each metric name to one small async function `(row, ragas) -> MetricScore`. See the package docstring for what
each measures; ragas computes the values (`ragas_adapter.RagasOffline`).

Context metrics compare sentences, not whole chunks (a ~800-character chunk never reaches ragas's Levenshtein
threshold of 0.5 against a one-sentence reference context): recall gets the sentences of the retrieved chunks,
precision each chunk's sentence closest to a reference sentence. Answer metrics score the answer without the
extractive generator's prefix and without citation markers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from axiom.embeddings import Embedder
from axiom.evaluation.answer_metrics.normalise import clean_answer, closest_sentence, normalise, sentences
from axiom.evaluation.answer_metrics.ragas_adapter import EmbedderAdapter, RagasOffline, run_sync
from axiom.evaluation.answer_metrics.scores import MetricScore, ScoreInput

NO_REFERENCE_CONTEXTS = "no reference_contexts for this item"
NO_SHORT_ANSWER = "no short answer for this item"
NO_REFERENCE = "no reference answer for this item"


@dataclass(frozen=True)
class OfflineRow:
    """One question as the offline metrics see it, prepared once for all of them."""

    input: ScoreInput
    answer: str  # the cleaned answer
    reference_sentences: list[str]

    @classmethod
    def of(cls, row: ScoreInput) -> OfflineRow:
        return cls(row, clean_answer(row.answer),
                   [s for ctx in row.reference_contexts for s in sentences(ctx)])


OfflineMetric = Callable[[OfflineRow, RagasOffline], Awaitable[MetricScore]]


def _context_shortcut(row: OfflineRow) -> MetricScore | None:
    """n/a without reference contexts, 0 with nothing retrieved, else None (score it)."""
    if not row.reference_sentences:
        return MetricScore.not_applicable(NO_REFERENCE_CONTEXTS)
    if not row.input.contexts:
        return MetricScore.ok(0.0)
    return None


async def context_recall(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    """Share of the reference sentences found among the sentences of the retrieved chunks."""
    if (shortcut := _context_shortcut(row)) is not None:
        return shortcut
    retrieved = [s for ctx in row.input.contexts for s in sentences(ctx)] or list(row.input.contexts)
    return MetricScore.ok(await ragas.context_recall(retrieved, row.reference_sentences))


async def context_precision(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    """Average precision of the chunks in rank order, each represented by its sentence closest to a
    reference."""
    if (shortcut := _context_shortcut(row)) is not None:
        return shortcut
    representatives = [closest_sentence(ctx, row.reference_sentences) for ctx in row.input.contexts]
    return MetricScore.ok(await ragas.context_precision(representatives, row.reference_sentences))


async def rouge_l(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    if row.input.reference is None:
        return MetricScore.not_applicable(NO_REFERENCE)
    if not row.answer:
        return MetricScore.ok(0.0)
    return MetricScore.ok(await ragas.rouge_l(row.input.reference, row.answer))


async def chrf(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    if row.input.reference is None:
        return MetricScore.not_applicable(NO_REFERENCE)
    if not row.answer:
        return MetricScore.ok(0.0)
    return MetricScore.ok(await ragas.chrf(row.input.reference, row.answer))


async def semantic_similarity(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    """Cosine of the answer and reference embeddings, clipped to [0, 1]."""
    if row.input.reference is None:
        return MetricScore.not_applicable(NO_REFERENCE)
    if not row.answer:
        return MetricScore.ok(0.0)
    similarity = await ragas.semantic_similarity(row.input.reference, row.answer)
    return MetricScore.ok(min(1.0, max(0.0, similarity)))


async def exact_match(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    if not row.input.short_answer:
        return MetricScore.not_applicable(NO_SHORT_ANSWER)
    return MetricScore.ok(await ragas.exact_match(normalise(row.input.short_answer), normalise(row.answer)))


async def string_presence(row: OfflineRow, ragas: RagasOffline) -> MetricScore:
    if not row.input.short_answer:
        return MetricScore.not_applicable(NO_SHORT_ANSWER)
    return MetricScore.ok(await ragas.string_presence(normalise(row.input.short_answer),
                                                      normalise(row.answer)))


OFFLINE_REGISTRY: dict[str, OfflineMetric] = {
    "nonllm_context_recall": context_recall,
    "nonllm_context_precision": context_precision,
    "rouge_l": rouge_l,
    "chrf": chrf,
    "semantic_similarity": semantic_similarity,
    "exact_match": exact_match,
    "string_presence": string_presence,
}
OFFLINE_METRICS: tuple[str, ...] = tuple(OFFLINE_REGISTRY)


def score_offline(rows: Sequence[ScoreInput], embedder: Embedder) -> dict[str, list[MetricScore]]:
    """The offline metrics for every row (deterministic)."""
    embeddings = EmbedderAdapter(embedder)
    answers = [clean_answer(r.answer) for r in rows]
    embeddings.prime([r.reference for r in rows if r.reference is not None]
                     + [a for a, r in zip(answers, rows, strict=True) if a and r.reference is not None])
    ragas = RagasOffline(embeddings)

    async def score_all() -> dict[str, list[MetricScore]]:
        out: dict[str, list[MetricScore]] = {name: [] for name in OFFLINE_REGISTRY}
        for row in rows:
            prepared = OfflineRow.of(row)
            for name, metric in OFFLINE_REGISTRY.items():
                out[name].append(await metric(prepared, ragas))
        return out

    return run_sync(score_all())
