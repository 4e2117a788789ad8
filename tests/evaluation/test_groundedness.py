"""The offline groundedness metric: planted unsupported claims and wrong numbers score below a supported
answer (negation flips are measured but not penalised: a known limit); claims keep their offsets; the
committed model file matches the code and its training data.

Fixtures are written here (no RAGTruth / MS MARCO text in the repository)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from axiom.errors import EvaluationError
from axiom.evaluation.answer_metrics.groundedness import (
    MODEL_PATH,
    STACKED_FEATURE_NAMES,
    GroundednessModel,
    score_groundedness,
)
from axiom.evaluation.answer_metrics.groundedness_features import (
    FEATURE_NAMES,
    TokenVectorMemo,
    context_segments,
    measure_answer,
    split_claims,
    token_model,
    token_vector_memo,
)

CONTEXTS = [
    "The Harbour Bridge in Lyndon was opened in 1932 after eight years of construction. It is 503 metres "
    "long and carries eight lanes of traffic and two railway tracks.",
    "The bridge was designed by the engineer Maria Kessel, who also planned the Lyndon ferry terminal. Tolls "
    "are collected only from drivers heading south.",
    "Lyndon's bridge is repainted every decade; the last repainting took two years and used grey paint.",
]
SUPPORTED = ("The Harbour Bridge in Lyndon was opened in 1932. It is 503 metres long and carries eight "
             "lanes of traffic. It was designed by the engineer Maria Kessel.")
PLANTED = {
    "wrong number": "The Harbour Bridge in Lyndon was opened in 1951. It is 780 metres long and carries "
                    "eight lanes of traffic. It was designed by the engineer Maria Kessel.",
    "invented claims": "The Harbour Bridge in Lyndon was opened in 1932. It is 503 metres long and "
                       "carries eight lanes of traffic. It was designed by the engineer Maria Kessel. "
                       "Kessel later won the Pritzker Prize in Tokyo for her Osaka stadium, and the "
                       "bridge appears in 14 Hollywood films.",
}
NEGATED = ("The Harbour Bridge in Lyndon was not opened in 1932. It is 503 metres long and carries eight "
           "lanes of traffic. Tolls are not collected from drivers heading south.")


@pytest.fixture(scope="module")
def model() -> GroundednessModel:
    return GroundednessModel.load()


def test_claims_keep_offsets_into_the_answer() -> None:
    answer = ("Based on the passages, here is what they say:\n\n1. The bridge opened in 1932. Dr. Kessel "
              "designed it.\n  - It is 503 metres long!\n\nI hope this helps.")
    claims = split_claims(answer)
    assert [c.text for c in claims] == ["Based on the passages, here is what they say:",
                                        "The bridge opened in 1932.",
                                        "Dr. Kessel designed it.", "It is 503 metres long!",
                                        "I hope this helps."]
    assert all(answer[c.start:c.end] == c.text for c in claims)
    assert [c.meta for c in claims] == [True, False, False, False, False]


def test_long_contexts_are_cut_at_sentence_ends() -> None:
    context = " ".join(f"Sentence number {i} says something about the bridge." for i in range(60))
    segments = context_segments([context], max_chars=300)
    assert len(segments) > 5 and all(len(s) <= 300 for s in segments)
    assert all(s.endswith(".") for s in segments)
    assert " ".join(segments) == context


def test_supported_answer_scores_above_each_planted_one(embedder, model: GroundednessModel) -> None:
    answers = [SUPPORTED, *PLANTED.values()]
    results = score_groundedness(answers, [CONTEXTS] * len(answers), embedder, model)
    supported, planted = results[0], dict(zip(PLANTED, results[1:], strict=True))
    for name, result in planted.items():
        assert supported.groundedness > result.groundedness, (name, supported, result)
    assert 0.0 <= min(r.groundedness for r in results) and max(r.groundedness for r in results) <= 1.0
    invented = planted["invented claims"]
    assert invented.claims == 4
    assert any("Pritzker" in c.text for c in invented.unsupported)
    assert invented.supported_claims < 1.0
    assert invented.claim_risks[3] == max(invented.claim_risks)
    answer = PLANTED["invented claims"]
    assert all(answer[c.start:c.end] == c.text for c in invented.unsupported)


def test_measures_flag_the_wrong_number_and_the_invented_terms(embedder) -> None:
    wrong = measure_answer(PLANTED["wrong number"], CONTEXTS, embedder)
    assert wrong.claims[0].novel_numbers == 1 and wrong.claims[0].number_conflict == 1
    assert wrong.claims[1].novel_numbers == 1
    right = measure_answer(SUPPORTED, CONTEXTS, embedder)
    assert sum(c.novel_numbers + c.number_conflict + c.novel_terms for c in right.claims) == 0
    invented = measure_answer(PLANTED["invented claims"], CONTEXTS, embedder)
    last = invented.claims[-1]
    assert last.novel_terms >= 4 and last.novel_numbers == 1
    assert last.token_precision < min(c.token_precision for c in right.claims)
    assert last.sim_window < min(c.sim_window for c in right.claims)


def test_negation_flips_are_measured_but_not_penalised_by_the_fitted_model(embedder, model) -> None:
    """A known limit: the negation cue is measured, but RAGTruth gives it no weight (single-feature AUC 0.50),
    so a flipped answer is not scored below the supported one. The test pins the measure and the weight's
    smallness."""
    negated = measure_answer(NEGATED, CONTEXTS, embedder)
    assert [c.negation_conflict for c in negated.claims] == [1, 0, 1]
    weight = model.answer.coef[FEATURE_NAMES.index("negation_conflicts")]
    assert abs(weight) < 0.2


def test_empty_answer_and_bad_input(embedder, model: GroundednessModel) -> None:
    [empty] = score_groundedness([""], [CONTEXTS], embedder, model)
    assert empty.claims == 0 and empty.supported_claims == 1.0 and empty.unsupported == ()
    with pytest.raises(EvaluationError, match="2 answers but 1 context lists"):
        score_groundedness(["a", "b"], [CONTEXTS], embedder, model)


def test_model_file_matches_the_code_and_its_training_data(model: GroundednessModel) -> None:
    data = json.loads(MODEL_PATH.read_text())
    assert model.answer.features == FEATURE_NAMES + STACKED_FEATURE_NAMES
    assert data["answer_model"]["features"] == list(FEATURE_NAMES + STACKED_FEATURE_NAMES)
    hashes = data["training_files_sha256"]
    assert sorted(hashes) == sorted(["golden.jsonl", "labels.jsonl", "responses-llama-2-7b-chat.jsonl",
                                     "responses-llama-2-13b-chat.jsonl", "responses-llama-2-70b-chat.jsonl",
                                     "responses-mistral-7B-instruct.jsonl"])
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes.values())
    assert data["cv_auc"] > max(data["cv_auc_others"]["answer_length"], 0.5)
    assert data["cv_answers"] >= 400 and data["claim_threshold"] == model.claim_threshold
    dataset = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ragtruth-qa-train"
    if dataset.is_dir():  # on the workbench machine: the model was fitted on exactly these files
        assert {name: hashlib.sha256((dataset / name).read_bytes()).hexdigest() for name in hashes} == hashes


def test_a_model_fitted_on_other_features_is_refused(tmp_path: Path) -> None:
    data = json.loads(MODEL_PATH.read_text())
    data["answer_model"]["features"][0] = "something_else"
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EvaluationError, match="fitted on other features"):
        GroundednessModel.load(path)
    path.write_text("{not json")
    with pytest.raises(EvaluationError, match=str(path)):
        GroundednessModel.load(path)


def test_word_piece_vectors_pool_to_the_sentence_vector(embedder) -> None:
    """`LocalEmbedder.token_vectors`: offsets point into the text, and the mean of the pieces (special tokens
    included) is the model's own sentence vector, which is what lets one pass serve both."""
    import numpy as np

    text = "Maria Kessel designed the 503-metre bridge."
    [tokens] = embedder.token_vectors([text])
    assert tokens.pieces[0] == "[CLS]" and tokens.pieces[-1] == "[SEP]"
    inner = zip(tokens.pieces[1:-1], tokens.offsets[1:-1], strict=True)
    assert all(text[a:b].lower() == piece.removeprefix("##") for piece, (a, b) in inner)
    assert len(tokens.pieces) == len(tokens.offsets) == len(tokens.vectors) > 8
    pooled = tokens.vectors.mean(axis=0)
    pooled /= np.linalg.norm(pooled)
    assert float(pooled @ embedder.embed([text])[0]) > 0.9999


class _CountingModel:
    """A word-piece model that counts the texts it encodes (the real model underneath)."""

    def __init__(self, inner) -> None:
        self.inner, self.model_id, self.encoded = inner, inner.model_id, []

    def token_vectors(self, texts):
        self.encoded.extend(texts)
        return token_model(self.inner).token_vectors(texts)


def test_an_embedders_memo_serves_every_evaluation_that_uses_it(embedder, model: GroundednessModel) -> None:
    counting = _CountingModel(embedder)
    first = score_groundedness([SUPPORTED], [CONTEXTS], counting, model)
    segments = context_segments(CONTEXTS)
    assert set(segments) <= set(counting.encoded)
    counting.encoded.clear()
    again = score_groundedness([PLANTED["wrong number"], SUPPORTED], [CONTEXTS] * 2, counting, model)
    assert not set(segments) & set(counting.encoded)  # the contexts come from the memo now
    known = {c.text for c in split_claims(SUPPORTED)}
    assert counting.encoded == [c.text for c in split_claims(PLANTED["wrong number"]) if c.text not in known]
    assert again[1] == first[0]  # the same answer scores the same, from the memo or not
    other = _CountingModel(embedder)
    score_groundedness([SUPPORTED], [CONTEXTS], other, model)
    assert set(segments) <= set(other.encoded)  # another embedder: its own memo
    assert token_vector_memo(counting) is token_vector_memo(counting) is not token_vector_memo(other)


def test_the_memo_drops_the_least_recently_used_text(embedder) -> None:
    memo = TokenVectorMemo(token_model(embedder))
    memo.prime(["alpha one.", "beta two."])
    memo.max_bytes = memo.bytes  # full: one more text drops one
    memo.prime(["alpha one."])  # alpha used again: beta is now the oldest
    memo.prime(["gamma three."])
    assert list(memo._by_text) == ["alpha one.", "gamma three."]
