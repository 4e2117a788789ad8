"""LLM-judged metrics against the loopback OpenAI-compatible server: they run, a re-run is served from the
cache (zero judge calls), and judge faults (HTTP 500, garbage replies) are unmeasured with a reason."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from axiom.evaluation.answer_metrics import JUDGE_METRICS, JudgeConfig, ScoreInput, score_judged
from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings
from tests.support.fake_openai import FakeOpenAIServer, Reply, chat_completion

SCHEMAS = {
    "NLIStatementOutput": {"statements": [{"statement": "s", "reason": "supported", "verdict": 1},
                                          {"statement": "t", "reason": "not supported", "verdict": 0}]},
    "StatementGeneratorOutput": {"statements": ["The queen lays eggs.", "The queen lays 2,000 eggs a day."]},
    "AnswerRelevanceOutput": {"question": "How many eggs can a queen bee lay in a day?", "noncommittal": 0},
    "ContextPrecisionOutput": {"reason": "useful", "verdict": 1},
    "ContextRecallOutput": {"classifications": [{"statement": "s", "reason": "r", "attributed": 1}]},
    "ClaimDecompositionOutput": {"claims": ["The queen lays 2,000 eggs a day."]},
}


def judge(path: str, body: dict[str, Any]) -> Reply:
    """Answers each ragas prompt with a valid JSON object for the schema it asks for; faults on markers."""
    text = json.dumps(body.get("messages", []))
    if "ZZFAIL500" in text:
        return Reply(status=500, body={"error": {"message": "judge overloaded"}})
    if "ZZGARBAGE" in text:
        return Reply(body=chat_completion("Sure! Here is my verdict: it is fine, I think."))
    for title, reply in SCHEMAS.items():
        if f'\\"title\\": \\"{title}\\"' in text or f'"title": "{title}"' in text:
            return Reply(body=chat_completion(json.dumps(reply), prompt_tokens=100, completion_tokens=20))
    return Reply(status=400, body={"error": {"message": "unexpected prompt"}})


@pytest.fixture
def server():  # noqa: ANN201
    with FakeOpenAIServer(judge) as srv:
        yield srv


def _row(rid: str, marker: str = "") -> ScoreInput:
    return ScoreInput(id=rid, question=f"How many eggs does a queen lay? {marker}".strip(),
                      answer=f"A queen lays up to 2,000 eggs a day. [1] {marker}".strip(),
                      reference=f"A queen honey bee can lay up to 2,000 eggs a day. {marker}".strip(),
                      contexts=("A honey bee colony is built around a single queen, who "
                                "can lay up to 2,000 eggs.",))


def _config(server: FakeOpenAIServer, tmp_path: Path) -> JudgeConfig:
    return JudgeConfig(model="judge-model", base_url=server.base_url, api_key="test-key", concurrency=3,
                       timeout=10.0, max_retries=1, cache_dir=tmp_path / "cache",
                       prices={"input": 1.0, "output": 2.0})


def test_judge_metrics_cache_and_faults(server: FakeOpenAIServer, tmp_path: Path,
                                        embedder) -> None:  # noqa: ANN001
    rows = [_row("ok"), _row("e500", "ZZFAIL500"), _row("junk", "ZZGARBAGE"),
            ScoreInput(id="empty", question="Q?", answer="", reference="R.", contexts=())]
    scores, stats = score_judged(rows, _config(server, tmp_path), embedder)
    assert set(scores) == set(JUDGE_METRICS)
    ok = {m: scores[m][0] for m in JUDGE_METRICS}
    assert all(s.status == "ok" and 0.0 <= s.value <= 1.0 for s in ok.values()), ok
    assert ok["faithfulness"].value == pytest.approx(0.5)  # one of the two verdicts is 1
    assert ok["llm_context_precision"].value == pytest.approx(1.0, abs=1e-6)
    for m in JUDGE_METRICS:
        failed, junk, empty = scores[m][1], scores[m][2], scores[m][3]
        assert failed.status == "unmeasured" and math.isnan(failed.value)
        assert "HTTP 500" in failed.reason, failed.reason
        assert junk.status == "unmeasured" and math.isnan(junk.value)
        assert "could not be parsed" in junk.reason, junk.reason
        assert empty.status == "not_applicable" and math.isnan(empty.value)
    assert stats.judged == 5 and stats.cache_hits == 0
    assert stats.prompt_tokens > 0 and stats.cost_usd == pytest.approx(
        stats.prompt_tokens / 1e6 + 2 * stats.completion_tokens / 1e6)
    # the 500s were retried by the client (max_retries 1) and the garbage re-asked once by instructor
    assert server.calls() > stats.calls - stats.failed_calls

    before = server.calls()
    again, stats2 = score_judged(rows[:1], _config(server, tmp_path), embedder)
    assert server.calls() == before  # every judgement came from the cache
    assert stats2.cache_hits == 5 and stats2.calls == 0
    assert {m: again[m][0].value for m in JUDGE_METRICS} == {m: ok[m].value for m in JUDGE_METRICS}


def test_run_with_judge(server: FakeOpenAIServer, tmp_path: Path, embedder) -> None:  # noqa: ANN001
    lines = TINY_GOLDEN.read_text().splitlines()
    faulty = json.loads(lines[2])
    faulty["reference"] += " ZZFAIL500"  # the reference reaches the context and correctness judges
    golden = tmp_path / "golden.jsonl"
    golden.write_text("\n".join([lines[0], json.dumps(faulty)]) + "\n")
    settings = build_settings(tmp_path,
                              evaluation={"judge_model": "judge-model", "judge_base_url": server.base_url,
                                                    "judge_concurrency": 2},
                              generation={"max_retries": 1, "backoff_initial_seconds": 0.05})
    judged = EvaluationOptions(name="judged", embedder=embedder)
    first = run_evaluation(settings, golden, AnswerSource.pipeline(TINY_CORPUS), judged)
    summary = first.metrics.metrics
    assert summary["faithfulness"]["n"] == 2 and summary["faithfulness"]["unmeasured"] == 0
    for m in ("llm_context_precision", "llm_context_recall", "factual_correctness"):
        assert summary[m]["n"] == 1 and summary[m]["unmeasured"] == 1, m
        assert any("HTTP 500" in reason for reason in summary[m]["unmeasured_reasons"])
    judge_usage = first.metrics.usage["judge"]
    assert judge_usage["model"] == "judge-model" and judge_usage["total_tokens"] > 0
    assert (first.manifest.judge or {})["model"] == "judge-model"
    assert "unmeasured" in json.loads(first.results["notes"][1])["factual_correctness"]
    assert "unmeasured factual_correctness" in first.summary_table()

    good = tmp_path / "good.jsonl"
    good.write_text(lines[0] + "\n")
    before = server.calls()
    second = run_evaluation(settings, good, AnswerSource.pipeline(TINY_CORPUS), judged)
    assert server.calls() == before  # zero judge calls: t01 was judged by the first run
    assert (
        second.metrics.usage["judge"]["cache_hits"] == 5 and second.metrics.usage["judge"]["calls"] == 0
    )
