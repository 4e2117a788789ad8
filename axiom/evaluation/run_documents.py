"""The typed documents of runs, and their one serialisation: `Manifest` (a run folder's manifest.json, what
produced the run), `MetricsDocument` (its metrics.json, what the run measured) and `Comparison` (two runs
compared, what `axiom compare --json` prints and 04_compare_runs shows). Frozen dataclasses read by
attribute; `to_dict` gives the JSON object in the order written (the same keys, values and key order as before
these classes existed), `from_dict` reads one back.

Reading is tolerant, as the dict readers it replaced were: a key an older run folder lacks reads as None (or
as an empty mapping for the mappings every manifest has: source's absence aside, `settings`, `versions`,
`conventions`, `platform`, `evidence_labels`; those of metrics.json: `metrics`, `confidence`, `latency`,
`usage`), and `to_dict` then writes it with that value (metrics.json's `gate` only when set); a key this
module does not know is kept in `extra` and written back after the known ones, so nothing read is lost. Values
are kept as read (no conversion), so a manifest or metrics.json written by this version round-trips to the
identical dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from axiom.evaluation.verdict_entry import VerdictEntry

if TYPE_CHECKING:
    from axiom.evaluation.summary import MetricSummary


def _extra(data: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:  # boundary: a JSON object
    return {k: v for k, v in data.items() if k not in known}


def _mapping(value: Any) -> dict[str, Any]:  # boundary: a JSON value, an object or not
    return dict(value) if isinstance(value, Mapping) else {}


# -- the manifest -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInfo:
    """The golden set of a run: its path, content hash and number of items; `from_responses` (written only
    when True): the items are a responses file's own questions, without reference answers."""

    path: str | None = None
    sha256: str | None = None
    items: int | None = None
    from_responses: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = ("path", "sha256", "items", "from_responses")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetInfo:  # boundary: a JSON object
        return cls(path=data.get("path"), sha256=data.get("sha256"), items=data.get("items"),
                   from_responses=data.get("from_responses"), extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "items": self.items}
        if self.from_responses is not None:
            out["from_responses"] = self.from_responses
        return out | self.extra


@dataclass(frozen=True)
class GeneratorInfo:
    """What answered: the generator's name (extractive, openai; the source's for another system) and the
    model (an OpenAI-compatible generator's only)."""

    name: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = ("name", "model")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorInfo:  # boundary: a JSON object
        return cls(name=data.get("name"), model=data.get("model"), extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model} | self.extra


@dataclass(frozen=True)
class GitState:
    """The commit and dirty flag of the checkout that ran (both None outside a git checkout)."""

    commit: str | None = None
    dirty: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = ("commit", "dirty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GitState:  # boundary: a JSON object
        return cls(commit=data.get("commit"), dirty=data.get("dirty"), extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty} | self.extra


_Part = type[DatasetInfo] | type[GeneratorInfo] | type[GitState]


def _part(value: Any, kind: _Part) -> Any:  # boundary: a JSON value, read into a part when it is an object
    return kind.from_dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Manifest:
    """manifest.json: everything that produced a run (written by run_docs.manifest_doc and run_evaluation;
    the meaning of each field: run_folder.py's module docstring and docs). `baseline`, `timings` and
    `embedding_work` are written only when set."""

    name: str | None = None
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    seed: int | None = None
    source: dict[str, Any] | None = None  # kind (pipeline, responses, endpoint) and what it says of itself
    dataset: DatasetInfo | None = None
    corpus: dict[str, Any] | None = None
    ingest: dict[str, Any] | None = None
    collection: str | None = None
    store: str | None = None
    index: dict[str, Any] | None = None
    evidence_labels: dict[str, Any] = field(default_factory=dict)
    embedding_model: str | None = None
    retriever: str | None = None
    top_k: int | None = None
    retrieval_depth: int | None = None
    generator: GeneratorInfo | None = None
    judge: dict[str, Any] | None = None
    conventions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # the run's settings, secrets masked
    versions: dict[str, str | None] = field(default_factory=dict)
    git: GitState | None = None
    platform: dict[str, str] = field(default_factory=dict)
    baseline: str | None = None
    timings: dict[str, float] | None = None
    embedding_work: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    KEYS = ("name", "started", "ended", "seconds", "seed", "source", "dataset", "corpus", "ingest",
            "collection", "store", "index", "evidence_labels", "embedding_model", "retriever", "top_k",
            "retrieval_depth", "generator", "judge", "conventions", "settings", "versions", "git", "platform",
            "baseline", "timings", "embedding_work")
    WHEN_SET = ("baseline", "timings", "embedding_work")  # written only when not None

    @property
    def source_kind(self) -> str:
        """Who answered: "pipeline" (Axiom's own, also for runs older than the `source` key), "responses"
        or "endpoint"."""
        return str((self.source or {}).get("kind", "pipeline"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:  # boundary: a JSON object
        return cls(
            name=data.get("name"), started=data.get("started"), ended=data.get("ended"),
            seconds=data.get("seconds"), seed=data.get("seed"), source=data.get("source"),
            dataset=_part(data.get("dataset"), DatasetInfo), corpus=data.get("corpus"),
            ingest=data.get("ingest"), collection=data.get("collection"), store=data.get("store"),
            index=data.get("index"), evidence_labels=_mapping(data.get("evidence_labels")),
            embedding_model=data.get("embedding_model"), retriever=data.get("retriever"),
            top_k=data.get("top_k"), retrieval_depth=data.get("retrieval_depth"),
            generator=_part(data.get("generator"), GeneratorInfo), judge=data.get("judge"),
            conventions=_mapping(data.get("conventions")), settings=_mapping(data.get("settings")),
            versions=_mapping(data.get("versions")), git=_part(data.get("git"), GitState),
            platform=_mapping(data.get("platform")), baseline=data.get("baseline"),
            timings=data.get("timings"), embedding_work=data.get("embedding_work"),
            extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of manifest.json, its keys in the order they are written."""
        parts = {"dataset": self.dataset, "generator": self.generator, "git": self.git}
        out: dict[str, Any] = {}
        for key in self.KEYS:
            value = getattr(self, key)
            if key in self.WHEN_SET and value is None:
                continue
            part = parts.get(key)
            out[key] = part.to_dict() if part is not None else value
        return out | self.extra


# -- the metrics document ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Unanswered:
    """How many questions the run's source did not answer, and the commonest reasons (up to 5, counted)."""

    n: int | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = ("n", "reasons")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unanswered:  # boundary: a JSON object
        return cls(n=data.get("n"), reasons=_mapping(data.get("reasons")), extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "reasons": self.reasons} | self.extra


@dataclass(frozen=True)
class Repeats:
    """A run's repetitions (summary.repeat_summary): N, per answer metric the spread and the means of the
    repetitions and the run variance, the table that holds them (repeats.parquet; None for N = 1), the
    method."""

    n: int | None = None
    spread: dict[str, float] = field(default_factory=dict)
    means: dict[str, list[float | None]] = field(default_factory=dict)
    run_variance: dict[str, float] = field(default_factory=dict)
    table: str | None = None
    method: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    KEYS = ("n", "spread", "means", "run_variance", "table", "method")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Repeats:  # boundary: a JSON object
        return cls(n=data.get("n"), spread=_mapping(data.get("spread")), means=_mapping(data.get("means")),
                   run_variance=_mapping(data.get("run_variance")), table=data.get("table"),
                   method=data.get("method"), extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "spread": self.spread, "means": self.means, "run_variance": self.run_variance,
                "table": self.table, "method": self.method} | self.extra


@dataclass(frozen=True)
class MetricsDocument:
    """metrics.json: what a run measured (built by run_docs.metrics_doc; `gate`, the baseline gate's verdict
    as `GateResult.to_dict`, added by run_evaluation and written only when set): per metric its summary, the
    intervals' method, latency, token usage, degraded and unanswered questions, the repetitions."""

    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    confidence: dict[str, Any] = field(default_factory=dict)  # level, method, samples, seed
    latency: dict[str, Any] = field(default_factory=dict)  # per stage its percentiles (latency_summary), note
    usage: dict[str, Any] = field(default_factory=dict)  # generation (tokens, model, cost), judge (or None)
    degraded_answers: int | None = None
    unanswered: Unanswered | None = None
    repeats: Repeats | None = None
    gate: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    KEYS = ("metrics", "confidence", "latency", "usage", "degraded_answers", "unanswered", "repeats", "gate")

    @property
    def repeat_count(self) -> int:
        """N of `axiom eval --repeat N` (1 for a single run, and for runs older than `repeats`)."""
        return int((self.repeats.n if self.repeats is not None else None) or 1)

    @property
    def spread(self) -> dict[str, float]:
        """Per answer metric the run-to-run spread of a repeated run (reported only); empty otherwise."""
        return dict(self.repeats.spread) if self.repeats is not None else {}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsDocument:  # boundary: a JSON object
        unanswered, repeats, gate = data.get("unanswered"), data.get("repeats"), data.get("gate")
        return cls(metrics=_mapping(data.get("metrics")), confidence=_mapping(data.get("confidence")),
                   latency=_mapping(data.get("latency")), usage=_mapping(data.get("usage")),
                   degraded_answers=data.get("degraded_answers"),
                   unanswered=Unanswered.from_dict(unanswered) if isinstance(unanswered, Mapping) else None,
                   repeats=Repeats.from_dict(repeats) if isinstance(repeats, Mapping) else None,
                   gate=dict(gate) if isinstance(gate, Mapping) else None, extra=_extra(data, cls.KEYS))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of metrics.json, its keys in the order they are written."""
        out: dict[str, Any] = {
            "metrics": self.metrics, "confidence": self.confidence, "latency": self.latency,
            "usage": self.usage, "degraded_answers": self.degraded_answers,
            "unanswered": self.unanswered.to_dict() if self.unanswered is not None else None,
            "repeats": self.repeats.to_dict() if self.repeats is not None else None}
        if self.gate is not None:
            out["gate"] = self.gate
        return out | self.extra


# -- a comparison -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One metric of one question in both runs: A's value, B's and B - A (each rounded to 6 places)."""

    a: float
    b: float
    delta: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:  # boundary: a JSON object
        return cls(a=data["a"], b=data["b"], delta=data["delta"])

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "delta": self.delta}


@dataclass(frozen=True)
class QuestionChange:
    """How one question changed between two runs: the summed absolute change over every metric, whether the
    answer text changed, and per metric that changed its `Change`."""

    id: str
    question: str
    total_abs_change: float
    answer_changed: bool
    changes: dict[str, Change]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuestionChange:  # boundary: a JSON object
        return cls(id=data["id"], question=data["question"], total_abs_change=data["total_abs_change"],
                   answer_changed=data["answer_changed"],
                   changes={m: Change.from_dict(c) for m, c in data["changes"].items()})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "total_abs_change": self.total_abs_change,
                "answer_changed": self.answer_changed,
                "changes": {m: c.to_dict() for m, c in self.changes.items()}}


@dataclass(frozen=True)
class Comparison:
    """Run B against run A (compare.compare_runs): the run folders, question counts, the verdict line (with
    the noise note), the family, the test and its configuration, per metric the `VerdictEntry`, the questions
    that changed most, the settings and inputs that differ, the metrics measured in neither run (why), and
    (`axiom compare --labels`, written only when set) the prediction-powered human-judged differences."""

    a: str
    b: str
    questions_a: int
    questions_b: int
    common_questions: int
    verdict: str
    noise_note: str | None
    family: dict[str, Any]
    test: str
    config: dict[str, Any]
    metrics: dict[str, VerdictEntry]
    changed_most: list[QuestionChange]
    unchanged_questions: int
    differences: list[str]
    not_applicable: dict[str, str]
    prediction_powered: list[dict[str, Any]] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:  # boundary: a JSON object
        return cls(a=data["a"], b=data["b"], questions_a=data["questions_a"], questions_b=data["questions_b"],
                   common_questions=data["common_questions"], verdict=data["verdict"],
                   noise_note=data.get("noise_note"), family=dict(data.get("family") or {}),
                   test=data["test"], config=dict(data.get("config") or {}),
                   metrics={m: VerdictEntry.from_dict(e) for m, e in data["metrics"].items()},
                   changed_most=[QuestionChange.from_dict(c) for c in data["changed_most"]],
                   unchanged_questions=data["unchanged_questions"],
                   differences=list(data.get("differences") or []),
                   not_applicable=dict(data.get("not_applicable") or {}),
                   prediction_powered=data.get("prediction_powered"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `axiom compare --json` prints, its keys in that order."""
        out: dict[str, Any] = {
            "a": self.a, "b": self.b, "questions_a": self.questions_a, "questions_b": self.questions_b,
            "common_questions": self.common_questions, "verdict": self.verdict, "noise_note": self.noise_note,
            "family": self.family, "test": self.test, "config": self.config,
            "metrics": {m: e.to_dict() for m, e in self.metrics.items()},
            "changed_most": [c.to_dict() for c in self.changed_most],
            "unchanged_questions": self.unchanged_questions, "differences": self.differences,
            "not_applicable": self.not_applicable}
        if self.prediction_powered is not None:
            out["prediction_powered"] = self.prediction_powered
        return out
