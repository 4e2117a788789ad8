"""The extractive generator's sampling (`generation.temperature` > 0, `generation.seed`): the real packaged
model on the tiny corpus's texts, nothing stubbed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from axiom.config import Settings
from axiom.errors import ConfigError
from axiom.generation import (
    EXTRACTIVE_PREFIX,
    RELATIVE_CUTOFF,
    ExtractiveGenerator,
    candidate_sentences,
    cited_numbers,
    make_generator,
)
from axiom.types import Answer, Hit

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_corpus"
QUESTIONS = ("How do bees tell each other where the flowers are?", "Which volcano is the largest on Earth?",
             "Where does tea come from and how is green tea made?", "What buried Pompeii?")


def corpus_contexts() -> list[Hit]:
    """Every paragraph of the tiny corpus as a context: many candidate sentences (about 30) to choose from."""
    hits = []
    for path in sorted(CORPUS.iterdir()):
        for i, paragraph in enumerate(p for p in path.read_text(encoding="utf-8").split("\n\n")
                                      if len(p) > 80):
            hits.append(Hit(f"{path.stem}-{i}", path.name, None, 1.0, paragraph))
    return hits


CONTEXTS = corpus_contexts()


def quoted(answer: Answer, contexts: list[Hit]) -> list[tuple[int, str]]:
    """(source number, sentence) of each quoted sentence, checked to come verbatim from the source it
    cites."""
    body = answer.answer[len(EXTRACTIVE_PREFIX):].strip()
    parts = []
    for part in body.split("] "):
        sentence, _, n = part.rstrip("]").rpartition(" [")
        parts.append((int(n), sentence.strip()))
    return parts


def oracle(embedder, question: str, contexts: list[Hit], sentences: int) -> list[str]:  # noqa: ANN001
    """What temperature 0 quotes, from the model's similarities directly: the `sentences` most similar
    candidates (ties by source and position), those below RELATIVE_CUTOFF of the best dropped (not the
    best)."""
    candidates = candidate_sentences(contexts)
    scores = embedder.embed([c[2] for c in candidates]) @ embedder.embed([question])[0]
    order = sorted(range(len(candidates)), key=lambda i: (-round(float(scores[i]), 6), candidates[i][:2]))
    best = float(scores[order[0]])
    keep = [i for n, i in enumerate(order[:sentences]) if n == 0
            or float(scores[i]) >= RELATIVE_CUTOFF * best]
    return list(dict.fromkeys(candidates[i][2] for i in keep))


def test_there_are_many_candidates() -> None:
    assert len(candidate_sentences(CONTEXTS)) >= 25


def test_temperature_zero_quotes_the_best_sentences_whatever_the_seed(cached_embedder) -> None:  # noqa: ANN001
    plain = ExtractiveGenerator(cached_embedder, sentences=3)
    seeded = ExtractiveGenerator(cached_embedder, sentences=3, temperature=0.0, seed=7)
    for question in QUESTIONS:
        answer = plain.generate(question, CONTEXTS)
        assert [s for _, s in quoted(answer, CONTEXTS)] == oracle(cached_embedder, question, CONTEXTS, 3)
        seeded.start_repetition(4)
        assert seeded.generate(question, CONTEXTS).to_dict() == answer.to_dict()


def test_default_settings_build_the_deterministic_generator(make_settings: Callable[..., Settings],
                                                            cached_embedder) -> None:  # noqa: ANN001
    settings = make_settings()
    assert settings.generation.temperature == 0.0 and settings.generation.seed is None
    gen = make_generator(settings.generation, cached_embedder)
    assert isinstance(gen, ExtractiveGenerator) and not gen.stochastic
    sampled = make_generator(make_settings(generation={"temperature": 0.3, "seed": 5}).generation,
                             cached_embedder)
    assert isinstance(sampled, ExtractiveGenerator) and sampled.temperature == 0.3 and sampled.seed == 5


def test_a_seed_reproduces_a_sampled_run_in_any_order(cached_embedder) -> None:  # noqa: ANN001
    one = ExtractiveGenerator(cached_embedder, sentences=3, temperature=0.5, seed=11)
    two = ExtractiveGenerator(cached_embedder, sentences=3, temperature=0.5, seed=11)
    forward = [one.generate(q, CONTEXTS).answer for q in QUESTIONS]
    backward = [two.generate(q, CONTEXTS).answer for q in reversed(QUESTIONS)][::-1]
    assert forward == backward


def test_seeds_and_repetitions_give_different_answers(cached_embedder) -> None:  # noqa: ANN001
    question = QUESTIONS[2]
    by_seed = {ExtractiveGenerator(cached_embedder, sentences=3, temperature=1.0, seed=s
                                   ).generate(question, CONTEXTS).answer for s in range(8)}
    assert len(by_seed) >= 6  # about 30 candidates, three drawn: a coincidence is rare
    gen = ExtractiveGenerator(cached_embedder, sentences=3, temperature=1.0, seed=3)
    by_repetition = []
    for r in range(8):
        gen.start_repetition(r)
        by_repetition.append(gen.generate(question, CONTEXTS).answer)
    assert len(set(by_repetition)) >= 4
    gen.start_repetition(0)  # a repetition's stream is reproducible too
    assert gen.generate(question, CONTEXTS).answer == by_repetition[0]
    unseeded = ExtractiveGenerator(cached_embedder, sentences=3, temperature=1.0)
    assert len({unseeded.generate(question, CONTEXTS).answer for _ in range(6)}) >= 4


def test_a_low_temperature_samples_near_the_best(cached_embedder) -> None:  # noqa: ANN001
    """Sampling follows the similarities: at 0.02 the best sentence is quoted in nearly every draw, at 2 it is
    not (about 3 draws in 30 candidates)."""
    question = QUESTIONS[1]
    best = oracle(cached_embedder, question, CONTEXTS, 1)[0]
    hits = {}
    for temperature in (0.02, 2.0):
        answers = [ExtractiveGenerator(cached_embedder, sentences=3, temperature=temperature, seed=s
                                       ).generate(question, CONTEXTS).answer for s in range(40)]
        hits[temperature] = sum(best in a for a in answers) / len(answers)
    assert hits[0.02] >= 0.9 and hits[2.0] <= 0.6


def test_every_sampled_answer_cites_only_its_contexts(cached_embedder) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    for seed in range(12):
        contexts = [CONTEXTS[i] for i in sorted(rng.choice(len(CONTEXTS), size=4, replace=False))]
        gen = ExtractiveGenerator(cached_embedder, sentences=4, temperature=0.8, seed=seed)
        for question in QUESTIONS:
            answer = gen.generate(question, contexts)
            assert answer.contexts == contexts
            parts = quoted(answer, contexts)
            assert 1 <= len(parts) <= 4
            for n, sentence in parts:
                assert 1 <= n <= len(contexts) and sentence in " ".join(contexts[n - 1].text.split())
            numbers = cited_numbers(answer.answer, len(contexts))
            assert sorted(numbers) == [c.n for c in answer.citations]
            assert all(c.chunk_id == contexts[c.n - 1].chunk_id for c in answer.citations)


def test_bad_temperature_and_seed_are_refused(make_settings: Callable[..., Settings],
                                              cached_embedder) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="generation.temperature"):
        make_settings(generation={"temperature": -0.1})
    with pytest.raises(ConfigError, match="generation.seed"):
        make_settings(generation={"seed": -1})
    with pytest.raises(ValueError, match="temperature"):
        ExtractiveGenerator(cached_embedder, temperature=float("nan"))
