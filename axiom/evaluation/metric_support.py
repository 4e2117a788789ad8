"""Which metrics a golden set supports: for each metric of `axiom eval`, what an item needs for it, how many
items have it, and so whether the metric is measured for the set (supported, partly) or not applicable with
why.

    retrieval metrics       relevant_sources (and a ranking: Axiom's pipeline, or `retrieved` in the
    responses) evidence metrics        reference_contexts, and the corpus files (`--corpus`) to locate them in
    context metrics         reference_contexts (nonllm_context_recall / nonllm_context_precision) reference
    answer        reference (rouge_l, chrf, semantic_similarity; judged llm_context_*, factual_correctness)
    short answer            short_answer, or a reference of at most SHORT_REFERENCE_WORDS words (exact_match,
    ...) groundedness            only the answer and its contexts: offline groundedness, supported_claims;
    judged
                            faithfulness, answer_relevancy (every item)

The answer-metric names are listed here rather than imported (the answer metrics import ragas, which is slow
to load); tests check that the lists match. `axiom dataset audit` shows the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from axiom.evaluation.datasets import EvalItem
from axiom.evaluation.retrieval_metrics import RETRIEVAL_METRICS
from axiom.evaluation.spans import EVIDENCE_METRICS

OFFLINE_CONTEXT = ("nonllm_context_recall", "nonllm_context_precision")
OFFLINE_REFERENCE = ("rouge_l", "chrf", "semantic_similarity")
OFFLINE_SHORT = ("exact_match", "string_presence")
OFFLINE_GROUNDEDNESS = ("groundedness", "supported_claims")
JUDGED_GROUNDEDNESS = ("faithfulness", "answer_relevancy")
JUDGED_REFERENCE = ("llm_context_precision", "llm_context_recall", "factual_correctness")


@dataclass(frozen=True)
class MetricFamily:
    name: str
    metrics: tuple[str, ...]
    needs: str  # what an item needs, in words
    has: Callable[[EvalItem], bool]  # whether an item has it
    judged: bool = False
    needs_corpus: bool = False
    also: str = ""  # what a run needs besides the items' fields


FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("retrieval", tuple(RETRIEVAL_METRICS), "relevant_sources",
                 lambda it: bool(it.relevant_sources),
                 also="a ranking: Axiom's pipeline, or `retrieved` in a responses file"),
    MetricFamily("evidence", tuple(EVIDENCE_METRICS), "reference_contexts + corpus",
                 lambda it: bool(it.reference_contexts), needs_corpus=True),
    MetricFamily("context", OFFLINE_CONTEXT, "reference_contexts", lambda it: bool(it.reference_contexts)),
    MetricFamily("reference answer", OFFLINE_REFERENCE, "reference", lambda it: it.reference is not None),
    MetricFamily("short answer", OFFLINE_SHORT, "short_answer (or a short reference)",
                 lambda it: it.expected_short_answer is not None),
    MetricFamily("groundedness", OFFLINE_GROUNDEDNESS, "answer + contexts only", lambda it: True),
    MetricFamily("groundedness (judged)", JUDGED_GROUNDEDNESS, "answer + contexts only", lambda it: True,
                 judged=True),
    MetricFamily("reference answer (judged)", JUDGED_REFERENCE, "reference",
                 lambda it: it.reference is not None,
                 judged=True),
)


def metric_support(items: Sequence[EvalItem], *, corpus: bool) -> list[dict[str, Any]]:
    """One row per metric family: its metrics, what they need, how many items have it, and `status`
    ("supported" every item, "partly" some, "n/a" none or no corpus) with `why` when not every item counts."""
    rows = []
    for family in FAMILIES:
        having = sum(1 for it in items if family.has(it))
        if having == 0:
            status, why = "n/a", f"no item has {family.needs}"
        elif family.needs_corpus and not corpus:
            status, why = "n/a", "no corpus given (--corpus): reference passages are located in its files"
        elif having < len(items):
            status, why = "partly", f"{len(items) - having} item(s) without {family.needs} are n/a"
        else:
            status, why = "supported", None
        rows.append({"family": family.name, "metrics": list(family.metrics), "needs": family.needs,
                     "items": having, "status": status, "why": why,
                     "requires": "a judge LLM" if family.judged else (family.also or None)})
    return rows


def support_text(rows: Sequence[dict[str, Any]], questions: int) -> list[str]:
    """The table of `metric_support` as text lines."""
    width = max(len(r["family"]) for r in rows)
    lines = [f"metrics this set supports ({questions} question(s)):",
             f"  {'family':<{width}}  {'status':<9} {'items':>5}  needs / why"]
    for r in rows:
        judge = f" (needs {r['requires']})" if r["requires"] else ""
        lines.append(f"  {r['family']:<{width}}  {r['status']:<9} {r['items']:>5}  {r['why'] or r['needs']}")
        lines.append(f"  {'':<{width}}  {'':<9} {'':>5}    {', '.join(r['metrics'])}{judge}")
    return lines
