"""What the answer metrics take and give: one `ScoreInput` per question, one `MetricScore` per metric and
question, judge usage in `JudgeStats`, all of it in `AnswerScores`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "unmeasured", "not_applicable"]


@dataclass(frozen=True)
class ScoreInput:
    """What the metrics see for one question."""

    id: str
    question: str
    answer: str
    reference: str | None  # None: no reference answer (the reference-based metrics are n/a)
    contexts: tuple[str, ...]
    reference_contexts: tuple[str, ...] = ()
    short_answer: str | None = None


@dataclass(frozen=True)
class MetricScore:
    value: float
    status: Status = "ok"
    reason: str | None = None

    @classmethod
    def ok(cls, value: float) -> MetricScore:
        return cls(float(value))

    @classmethod
    def unmeasured(cls, reason: str) -> MetricScore:
        return cls(float("nan"), "unmeasured", reason)

    @classmethod
    def not_applicable(cls, reason: str) -> MetricScore:
        return cls(float("nan"), "not_applicable", reason)


@dataclass
class JudgeStats:
    model: str
    base_url: str | None
    calls: int = 0  # chat requests actually sent (including retries and re-asks)
    failed_calls: int = 0
    cache_hits: int = 0  # (metric, item) judgements served from the cache
    judged: int = 0  # (metric, item) judgements computed this run
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_tokens"] = self.prompt_tokens + self.completion_tokens
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class AnswerScores:
    scores: dict[str, list[MetricScore]]  # metric -> one score per input row, in input order
    judge: JudgeStats | None = None
    metric_names: list[str] = field(default_factory=list)
    # name -> one JSON value per row (unsupported claims)
    details: dict[str, list[Any]] = field(default_factory=dict)  # boundary: JSON values
