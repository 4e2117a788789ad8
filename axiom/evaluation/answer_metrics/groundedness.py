"""Groundedness: is everything an answer says supported by its contexts? Offline, reference-free.

`score_groundedness(answers, contexts, embedder)` gives per answer a `GroundednessResult`:
- `groundedness`: the probability that a careful reader finds nothing unsupported in the answer (a logistic
  model over the answer's features, fitted on human hallucination labels of RAGTruth QA by
  `bench/calibrate_groundedness.py`; its cross-validated agreement is recorded in the model file);
- `supported_claims`: the share of the answer's claims whose probability of being unsupported (a claim-level
  logistic model, fitted on the annotated spans) stays below the model's threshold;
- `unsupported`: those claims, with their character offsets into the answer.

The measures themselves (claim splitting, similarities, word-piece alignment, novel words, conflicts) are in
`groundedness_features`; the fitted weights in `groundedness_model.json` (no pickle: plain numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from axiom.embeddings import Embedder
from axiom.errors import EvaluationError
from axiom.evaluation.answer_metrics.groundedness_features import (
    FEATURE_NAMES,
    AnswerMeasures,
    Claim,
    ClaimMeasures,
    answer_features,
    measure_answer,
    texts_to_encode,
    token_vector_memo,
)

MODEL_PATH = Path(__file__).with_name("groundedness_model.json")
ENCODE_ANSWERS = 64  # answers whose claims and contexts are encoded in one batched call

CLAIM_FEATURE_NAMES = (
    "sim_sentence", "sim_window", "token_precision", "novel_share", "novel_words", "novel_numbers",
    "novel_terms", "number_conflict", "negation_conflict", "meta", "mentions_passages", "log_chars",
    "position",
)
STACKED_FEATURE_NAMES = ("max_claim_risk", "expected_unsupported", "any_unsupported")


def claim_features(measures: AnswerMeasures) -> np.ndarray:
    """One row per claim, in CLAIM_FEATURE_NAMES order."""
    n = len(measures.claims)
    rows = [[c.sim_sentence, c.sim_window, c.token_precision, c.novel_share, math.log1p(c.novel_words),
             math.log1p(c.novel_numbers), math.log1p(c.novel_terms), c.number_conflict, c.negation_conflict,
             float(c.claim.meta), float(c.mentions_passages), math.log1p(len(c.claim.text)),
             i / max(n - 1, 1)]
            for i, c in enumerate(measures.claims)]
    return np.asarray(rows, dtype=np.float64).reshape(n, len(CLAIM_FEATURE_NAMES))


def stacked_features(claim_risks: np.ndarray) -> list[float]:
    """The answer's features from its claims' risks (probability of being unsupported)."""
    if not len(claim_risks):
        return [0.0, 0.0, 0.0]
    return [float(claim_risks.max()), float(claim_risks.sum()), float(1.0 - np.prod(1.0 - claim_risks))]


@dataclass(frozen=True)
class LogisticModel:
    """Standardisation + logistic regression, as plain numbers."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticModel:
        model = cls(tuple(data["features"]), np.asarray(data["mean"], float),
                    np.asarray(data["scale"], float), np.asarray(data["coef"], float),
                    float(data["intercept"]))
        if not (len(model.features) == len(model.mean) == len(model.scale) == len(model.coef)):
            raise ValueError("features, mean, scale and coef differ in length")
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    def probability(self, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        z = ((np.asarray(rows, float) - self.mean) / self.scale) @ self.coef + self.intercept
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p


@dataclass(frozen=True)
class GroundednessModel:
    claim: LogisticModel  # P(claim unsupported)
    answer: LogisticModel  # P(answer faithful)
    claim_threshold: float
    info: dict[str, Any]

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> GroundednessModel:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            model = cls(LogisticModel.from_dict(data["claim_model"]),
                        LogisticModel.from_dict(data["answer_model"]), float(data["claim_threshold"]), data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(f"cannot read the groundedness model {path}: {exc}",
                                  hint="rebuild it with `python -m bench.calibrate_groundedness`") from exc
        if (model.claim.features != CLAIM_FEATURE_NAMES
                or model.answer.features != FEATURE_NAMES + STACKED_FEATURE_NAMES):
            raise EvaluationError(f"the groundedness model {path} was fitted on other features than this "
                                  "code computes",
                                  hint="rebuild it with `python -m bench.calibrate_groundedness`")
        return model


@lru_cache(maxsize=1)
def default_model() -> GroundednessModel:
    return GroundednessModel.load()


@dataclass(frozen=True)
class GroundednessResult:
    groundedness: float  # P(a careful reader finds nothing unsupported)
    supported_claims: float  # share of claims below the claim-risk threshold (1.0 without claims)
    claims: int
    unsupported: tuple[Claim, ...]  # the claims above it, with offsets into the answer
    claim_risks: tuple[float, ...]
    unsupported_risks: tuple[float, ...] = ()  # the risk of each unsupported claim, in the same order


def score_measures(measures: AnswerMeasures, model: GroundednessModel) -> GroundednessResult:
    risks = model.claim.probability(claim_features(measures))
    row = np.asarray([answer_features(measures) + stacked_features(risks)])
    flagged = [(c.claim, float(r)) for c, r in zip(measures.claims, risks, strict=True)
               if r >= model.claim_threshold]
    n = len(measures.claims)
    return GroundednessResult(float(model.answer.probability(row)[0]), 1.0 - len(flagged) / n if n else 1.0,
                              n, tuple(c for c, _ in flagged), tuple(float(r) for r in risks),
                              tuple(r for _, r in flagged))


def score_groundedness(answers: Sequence[str], contexts: Sequence[Sequence[str]], embedder: Embedder,
                       model: GroundednessModel | None = None) -> list[GroundednessResult]:
    """Groundedness of each answer in its own contexts (`contexts[i]` for `answers[i]`)."""
    if len(answers) != len(contexts):
        raise EvaluationError(f"groundedness: {len(answers)} answers but {len(contexts)} context lists")
    model = model or default_model()
    memo = token_vector_memo(embedder)  # shared by the evaluations that use this embedder
    out: list[GroundednessResult] = []
    for start in range(0, len(answers), ENCODE_ANSWERS):  # each distinct text encoded once, in batches
        pairs = list(zip(answers[start:start + ENCODE_ANSWERS], contexts[start:start + ENCODE_ANSWERS],
                         strict=True))
        memo.prime([t for a, c in pairs for t in texts_to_encode(a, list(c))])
        out += [score_measures(measure_answer(a, list(c), memo), model)  # type: ignore[arg-type]
                for a, c in pairs]
    return out


__all__ = ["ClaimMeasures", "GroundednessModel", "GroundednessResult", "LogisticModel", "score_groundedness"]
