"""The groundedness metrics inside an evaluation (answer_metrics/grounding.py): offsets into the recorded
answer, the n/a rules, the unsupported claims in the results, and their highlighted view (escaped)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from axiom.evaluation.answer_metrics import ScoreInput, score_answers
from axiom.evaluation.answer_metrics.grounding import NO_CLAIM, NO_CONTEXTS, masked_answer, score_grounding
from axiom.generation import EXTRACTIVE_PREFIX
from axiom.notebook.markup import highlighted_answer_html, unsupported_claims_view

CONTEXT = ("The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is 330 metres tall and "
           "was designed by the engineering company of Gustave Eiffel.")


def _row(answer: str, contexts: tuple[str, ...] = (CONTEXT,), rid: str = "q") -> ScoreInput:
    return ScoreInput(id=rid, question="When was the Eiffel Tower completed?", answer=answer, reference=None,
                      contexts=contexts)


def test_masking_keeps_every_offset() -> None:
    answer = f"{EXTRACTIVE_PREFIX}It was completed in 1889 [1]. It is 330 metres tall [2]."
    masked = masked_answer(answer)
    assert len(masked) == len(answer)
    assert "[1]" not in masked and EXTRACTIVE_PREFIX not in masked
    start = answer.index("It is 330")
    assert masked[start:start + 9] == "It is 330"


def test_supported_answers_score_above_planted_ones_and_claims_point_into_the_answer(embedder) -> None:  # noqa: ANN001
    supported = "The Eiffel Tower was completed in 1889. It is 330 metres tall [1]."
    planted = ("The Eiffel Tower was completed in 1889. It was painted gold by Napoleon III in 1925 to "
               "celebrate his victory at Waterloo, and it is 900 metres tall.")
    scores, claims = score_grounding([_row(supported, rid="a"), _row(planted, rid="b")], embedder)
    g = [s.value for s in scores["groundedness"]]
    assert g[0] > g[1], g
    assert scores["supported_claims"][0].value >= scores["supported_claims"][1].value
    assert claims[1], "the planted claim is not reported as unsupported"
    for claim in claims[1]:
        assert planted[claim["start"]:claim["end"]] == claim["text"]
        assert 0.0 <= claim["risk"] <= 1.0
    assert any("Napoleon" in c["text"] or "900" in c["text"] for c in claims[1])


def test_no_contexts_or_no_claim_is_not_applicable_with_the_reason(embedder) -> None:  # noqa: ANN001
    scores, claims = score_grounding([_row("It was built in 1889.", contexts=()), _row(" [1] ")], embedder)
    assert [s.status for s in scores["groundedness"]] == ["not_applicable", "not_applicable"]
    assert [s.reason for s in scores["supported_claims"]] == [NO_CONTEXTS, NO_CLAIM]
    assert claims == [[], []]


def test_score_answers_carries_both_metrics_and_the_claims(make_settings, embedder) -> None:  # noqa: ANN001
    result = score_answers([_row("It is 330 metres tall.")], make_settings(), embedder, judge=False)
    assert {"groundedness", "supported_claims"} <= set(result.metric_names)
    assert result.details["unsupported_claims"] == [[]] or isinstance(
        result.details["unsupported_claims"][0], list
    )


def test_highlighted_answer_escapes_everything_and_marks_only_the_spans() -> None:
    answer = "Safe part. <img src=x onerror=alert(1)> is claimed."
    start = answer.index("<img")
    out = highlighted_answer_html(answer, [{"start": start, "end": len(answer)}, {"start": 999, "end": 5}])
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert out.startswith("Safe part. <mark") and out.endswith("</mark>")
    assert out.count("<mark") == 1


def test_the_view_lists_the_least_grounded_first(tmp_path: Path) -> None:
    results = pd.DataFrame([
        {"id": "a", "question": "q<b>", "answer": "All fine.", "groundedness": 0.9, "supported_claims": 1.0,
         "unsupported_claims": "[]"},
        {"id": "b", "question": "q", "answer": "Bad claim.", "groundedness": 0.1, "supported_claims": 0.0,
         "unsupported_claims": json.dumps([{"text": "Bad claim.", "start": 0, "end": 10, "risk": 0.9}])},
    ])
    html = unsupported_claims_view(results).data
    assert html.index("<td>b</td>") < html.index("<td>a</td>")
    assert "<mark" in html and "q&lt;b&gt;" in html


@pytest.mark.parametrize("answer", ["", "   "])
def test_empty_answers_are_not_scored(answer: str, embedder) -> None:  # noqa: ANN001
    scores, _ = score_grounding([_row(answer)], embedder)
    assert scores["groundedness"][0].status == "not_applicable"


def test_the_packaged_minilm_scores_groundedness_whatever_the_run_embeds(embedder) -> None:  # noqa: ANN001
    from axiom.embeddings import CachingEmbedder, LocalEmbedder
    from axiom.evaluation.answer_metrics.grounding import groundedness_embedder

    wrapped = CachingEmbedder(embedder)
    assert groundedness_embedder(wrapped) is wrapped  # the run's own model: nothing else loaded
    other = groundedness_embedder(LocalEmbedder("some/other-model"))
    assert isinstance(other, LocalEmbedder) and other.model_id == "all-MiniLM-L6-v2"
