"""The text the metrics compare: the answer without generator decoration, SQuAD-normalised short answers,
sentences, and a chunk's sentence closest to a reference."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from axiom.generation import EXTRACTIVE_PREFIX

_CITATION = re.compile(r"\s*\[\d{1,3}\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


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


def closest_sentence(chunk: str, references: Sequence[str]) -> str:
    """The sentence of `chunk` most similar (normalised Levenshtein, as ragas) to any reference sentence."""
    from rapidfuzz.distance import Levenshtein

    best, best_score = chunk, -1.0
    for sentence in sentences(chunk) or [chunk]:
        score = max(Levenshtein.normalized_similarity(sentence, ref) for ref in references)
        if score > best_score:
            best, best_score = sentence, score
    return best
