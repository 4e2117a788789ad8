"""The groundedness metrics in an evaluation: `groundedness` and `supported_claims` per answer, offline and on
by default, and the unsupported claims themselves (text and character offsets into the answer as recorded).

The model (claims, their support in the answer's own contexts, the calibrated probability) is
`groundedness.py`; this module decides what it is given and when it does not apply:

- the answer is scored as recorded, with the extractive generator's prefix and the `[n]` citation markers
  blanked out by spaces of the same length, so every claim's offsets point into the recorded answer;
- an answer with no contexts is n/a ("no contexts to ground the answer in"): the model was calibrated on
  answers given passages, and what a system says without any is not a question of grounding in them;
- an answer with nothing left to claim (empty, or only decoration) is n/a ("no claim in the answer").

The model is calibrated on the packaged MiniLM's word-piece vectors, so those are what it is given whatever
embedder the run uses: the run's own when it is the packaged MiniLM (one model in memory), else the packaged
MiniLM loaded once for this (`groundedness_embedder`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from axiom.embeddings import Embedder
from axiom.evaluation.answer_metrics.groundedness import score_groundedness
from axiom.evaluation.answer_metrics.scores import MetricScore, ScoreInput
from axiom.generation import EXTRACTIVE_PREFIX
from axiom.local_embedder import PACKAGED_MODELS, LocalEmbedder

GROUNDEDNESS_METRICS = ("groundedness", "supported_claims")
UNSUPPORTED_CLAIMS = "unsupported_claims"  # the results column: JSON list of {text, start, end, risk}
NO_CONTEXTS = "no contexts to ground the answer in"
NO_CLAIM = "no claim in the answer"
_CITATION = re.compile(r"\[\d{1,3}\]")


def masked_answer(answer: str) -> str:
    """The answer with the extractive prefix and citation markers blanked out, offsets unchanged."""
    text = answer
    stripped = text.lstrip()
    if stripped.startswith(EXTRACTIVE_PREFIX):
        start = len(text) - len(stripped)
        text = text[:start] + " " * len(EXTRACTIVE_PREFIX) + text[start + len(EXTRACTIVE_PREFIX):]
    return _CITATION.sub(lambda m: " " * len(m.group()), text)


@lru_cache(maxsize=1)
def _packaged_minilm() -> LocalEmbedder:
    return LocalEmbedder("all-MiniLM-L6-v2")


def groundedness_embedder(embedder: Embedder) -> Embedder:
    """`embedder` itself (or what it wraps) when it is the packaged MiniLM on this machine, else that
    model."""
    inner: object = embedder
    while getattr(inner, "inner", None) is not None:
        inner = inner.inner  # type: ignore[attr-defined]
    if isinstance(inner, LocalEmbedder) and inner.model_id.lower() in PACKAGED_MODELS:
        return embedder
    return _packaged_minilm()


def score_grounding(rows: Sequence[ScoreInput], embedder: Embedder
                    ) -> tuple[dict[str, list[MetricScore]], list[list[dict[str, Any]]]]:
    """Per row: the two metrics and the unsupported claims (empty where the metrics are n/a)."""
    answers = [masked_answer(r.answer) for r in rows]
    scorable = [i for i, (r, a) in enumerate(zip(rows, answers, strict=True)) if r.contexts and a.strip()]
    results = dict(zip(scorable, score_groundedness([answers[i] for i in scorable],
                                                    [list(rows[i].contexts) for i in scorable],
                                                    groundedness_embedder(embedder)),
                       strict=True))
    scores: dict[str, list[MetricScore]] = {m: [] for m in GROUNDEDNESS_METRICS}
    claims: list[list[dict[str, Any]]] = []
    for i, row in enumerate(rows):
        result = results.get(i)
        if result is None or result.claims == 0:
            why = NO_CONTEXTS if not row.contexts else NO_CLAIM
            for m in GROUNDEDNESS_METRICS:
                scores[m].append(MetricScore.not_applicable(why))
            claims.append([])
            continue
        scores["groundedness"].append(MetricScore.ok(result.groundedness))
        scores["supported_claims"].append(MetricScore.ok(result.supported_claims))
        claims.append([{"text": c.text, "start": c.start, "end": c.end, "risk": round(r, 4)}
                       for c, r in zip(result.unsupported, result.unsupported_risks, strict=True)])
    return scores, claims
