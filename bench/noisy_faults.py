"""Graded faults for the calibration under run-to-run noise (`bench.noisy_gate_calibration`): a share of the
questions, drawn afresh for every faulty run, gets a wrong ranking (the retriever answers another question),
an answer quoted from a document that is not among its contexts (a hallucination the answer's own contexts do
not support) or no answer (the system abstains). Each question is hit independently with probability
`fraction` (seeded by the run and the question), so the drop of a faulty run is random around `fraction`
times the drop of a run faulted everywhere.

They are installed for the duration of a `with` block, as `gate_variants.drop_best_hit` is, and only pipelines
built inside the block are affected."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which questions a faulty run hits: each independently with probability `fraction`, seeded by `seed`."""

    fraction: float
    seed: int

    def hits(self, question: str) -> bool:
        if self.fraction <= 0:
            return False
        draw = np.random.default_rng([self.seed, zlib.crc32(question.encode("utf-8"))]).random()
        return bool(draw < self.fraction)


class WrongQueryRetriever:
    """Retrieves for `partner[question]` instead of the question when the selection hits it. No
    `retrieve_vectors`: the pipeline then calls `retrieve_batch` with the texts, which is where the swap
    is."""

    def __init__(self, inner: Any, partner: Mapping[str, str], selection: Selection) -> None:
        self.inner, self.partner, self.selection = inner, partner, selection
        self.name = inner.name

    def _query(self, question: str) -> str:
        return self.partner.get(question, question) if self.selection.hits(question) else question

    def retrieve(self, query: str, k: int) -> list[Any]:
        return self.inner.retrieve(self._query(query), k)

    def retrieve_batch(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        return self.inner.retrieve_batch([self._query(q) for q in queries], k)


class FaultyGenerator:
    """Answers a question `refusal` hits with the extractive generator's own "nothing found" answer (a system
    that abstains: the answer's value goes to about 0 on the reference metrics), one `foreign_quote` hits from
    `donor[question]` (another document's text) instead of its contexts, reporting the real contexts (the
    answer quotes text its sources do not contain); otherwise the inner generator answers."""

    def __init__(self, inner: Any, donor: Mapping[str, str], foreign_quote: Selection | None,
                 refusal: Selection | None = None) -> None:
        self.inner, self.donor, self.foreign_quote, self.refusal = inner, donor, foreign_quote, refusal
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # stochastic, start_repetition, prepare, ...
        return getattr(self.inner, name)

    def generate(self, question: str, contexts: Sequence[Any]) -> Any:
        from axiom.generation import EXTRACTIVE_PREFIX, citations_for, cited_numbers
        from axiom.types import Answer, Hit

        if self.refusal is not None and self.refusal.hits(question):
            return Answer(question=question, answer=f"{EXTRACTIVE_PREFIX} no relevant source text was found.",
                          citations=[], contexts=list(contexts), generator=self.name)
        quote = self.foreign_quote is not None and self.foreign_quote.hits(question)
        if not contexts or question not in self.donor or not quote:
            return self.inner.generate(question, contexts)
        first = contexts[0]
        foreign = [Hit(first.chunk_id, first.source, first.page, first.score, self.donor[question])]
        answer = self.inner.generate(question, foreign)
        answer.contexts = list(contexts)
        answer.citations = citations_for(cited_numbers(answer.answer, len(contexts)), contexts)
        return answer


@contextmanager
def faults(retriever_name: str, *, partner: Mapping[str, str], donor: Mapping[str, str],
           wrong_ranking: Selection | None = None, foreign_quote: Selection | None = None,
           refusal: Selection | None = None) -> Iterator[None]:
    """Inside the block, pipelines built under `retriever_name` retrieve for the partner question of the
    questions `wrong_ranking` hits, answer the questions `foreign_quote` hits from their donor text and
    abstain on those `refusal` hits (`FaultyGenerator`)."""
    import axiom.pipeline
    from bench.gate_variants import wrapped_retriever

    with ExitStack() as undo:
        if wrong_ranking is not None:
            undo.enter_context(wrapped_retriever(
                retriever_name, lambda inner: WrongQueryRetriever(inner, partner, wrong_ranking)))
        if foreign_quote is not None or refusal is not None:
            make = axiom.pipeline.make_generator

            def make_faulty(*args: Any, **kwargs: Any) -> Any:
                return FaultyGenerator(make(*args, **kwargs), donor, foreign_quote, refusal)

            axiom.pipeline.make_generator = make_faulty
            undo.callback(setattr, axiom.pipeline, "make_generator", make)
        yield


def partners(questions: Sequence[str], *, offset: int, source_of: Mapping[str, str] | None = None
             ) -> dict[str, str]:
    """question i -> question (i + offset) mod n, or with `source_of` (question -> its document) the first
    question from there on (cyclically) about another document: a wrong ranking or a foreign quote then comes
    from a document that is not the question's own. ValueError when some question has no such partner."""
    n = len(questions)
    if source_of is None and n and offset % n == 0:
        raise ValueError(f"offset {offset} maps every question of {n} to itself")
    out: dict[str, str] = {}
    for i, question in enumerate(questions):
        for step in range(n):
            other = questions[(i + offset + step) % n]
            if other != question and (source_of is None or source_of[other] != source_of[question]):
                out[question] = other
                break
        else:
            raise ValueError(f"no partner for question {i + 1} of {n} (offset {offset})")
    return out
