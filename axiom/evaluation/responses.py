"""Responses files: the answers of any RAG system to a golden set, scored by `axiom eval --responses FILE`,
and written by any run with `--save-responses FILE` (so a run of Axiom's own pipeline can be re-scored later).

JSONL, one object a line (blank lines are ignored):

    {"id": "q01",                          # the golden item's id (required)
     "answer": "...",                      # the system's answer (required; may be empty)
     "contexts": ["passage", ...],         # the texts the answer was generated from, in rank order (required)
     "retrieved": ["a.md", ...],           # optional: source ids or paths in rank order (retrieval metrics)
     "retrieved_contexts": ["...", ...],   # optional: the ranked passages when deeper than the contexts
     (evidence) "latency_ms": 812.5,                  # optional: the question's end-to-end latency "usage":
     {"prompt_tokens": 900, "completion_tokens": 60},   # optional: integers "question": "...", # optional:
     checked against the golden question (catches shifted ids) "metadata": {...}} # optional: free-form,
     carried along

Loading validates every line and raises one `DatasetError` naming every problem with its line number (bad
JSON, a line beyond the bounds of `bounded_json.py`, not an object, missing field, wrong type, unknown field,
unknown id, duplicate id, a question that is not the golden item's). Golden items without a response are not
an error:
they are reported (logged, and listed in the manifest's `source.missing`) and counted as unmeasured on every
metric, never dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from axiom.evaluation.answered import Answered, ItemAnswer, finite_or_nan
from axiom.evaluation.bounded_json import dumps_finite
from axiom.evaluation.datasets import EvalItem, file_sha256, json_objects, raise_if_problems, read_jsonl_text

log = logging.getLogger(__name__)

REQUIRED = ("id", "answer", "contexts")
LIST_FIELDS = ("contexts", "retrieved", "retrieved_contexts")
KNOWN = set(REQUIRED) | {"retrieved", "retrieved_contexts", "latency_ms", "usage", "question", "metadata"}
MISSING_LISTED = 50  # ids of items without a response named in the manifest (the count is always there)


def _strings(value: object, name: str, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.append(f"{where}: field {name!r} must be a list of strings, got {type(value).__name__}")
        return None
    bad = [f"{name}[{i}] must be a string, got {type(v).__name__}" if not isinstance(v, str)
           else f"{name}[{i}] is blank"
           for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
    if bad:
        problems.append(f"{where}: " + "; ".join(bad[:3])
                        + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""))
        return None
    return tuple(value)


def _usage(value: object, where: str, problems: list[str]) -> dict[str, int] | None:
    if not isinstance(value, dict):
        problems.append(f"{where}: field 'usage' must be an object, got {type(value).__name__}")
        return None
    bad = [k for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        problems.append(f"{where}: usage {', '.join(map(repr, bad))} must be non-negative integers")
        return None
    return {str(k): int(v) for k, v in value.items()}


def _squash(text: str) -> str:
    return " ".join(text.split())


def _one(number: int, data: dict[str, Any], questions: Mapping[str, str], problems: list[str]
         ) -> ItemAnswer | None:
    """The response of one line, or None after adding its problems."""
    where, before = f"line {number}", len(problems)
    problems.extend(f"{where}: missing field {name!r}" for name in REQUIRED if name not in data)
    unknown = sorted(set(data) - KNOWN)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; allowed: "
                        f"{', '.join(sorted(KNOWN))}")
    item_id = data.get("id")
    if "id" in data and (not isinstance(item_id, str) or not item_id.strip()):
        problems.append(f"{where}: field 'id' must be a non-blank string, got {item_id!r}"[:200])
    elif isinstance(item_id, str) and item_id not in questions:
        problems.append(f"{where}: unknown id {item_id!r} (not in the golden set)")
    if "answer" in data and not isinstance(data["answer"], str):
        problems.append(f"{where}: field 'answer' must be a string, got {type(data['answer']).__name__}")
    lists = {name: _strings(data[name], name, where, problems) for name in LIST_FIELDS
             if data.get(name) is not None or (name == "contexts" and "contexts" in data)}
    latency = data.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))
                                or latency < 0):
        problems.append(f"{where}: field 'latency_ms' must be a non-negative number, got {latency!r}"[:200])
    usage = _usage(data["usage"], where, problems) if data.get("usage") is not None else {}
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        problems.append(f"{where}: field 'metadata' must be an object, got {type(data['metadata']).__name__}")
    question = data.get("question")
    if question is not None and not isinstance(question, str):
        problems.append(f"{where}: field 'question' must be a string, got {type(question).__name__}")
    elif question is not None and isinstance(item_id, str) and item_id in questions \
            and _squash(question) != _squash(questions[item_id]):
        problems.append(f"{where}: question does not match golden item {item_id!r} "
                        f"({_squash(question)[:60]!r} vs {_squash(questions[item_id])[:60]!r})")
    if len(problems) > before:
        return None
    return ItemAnswer(answer=data["answer"], contexts=lists.get("contexts") or (),
                      retrieved=lists.get("retrieved"),
                      retrieved_texts=lists.get("retrieved_contexts"),
                      latency_seconds=finite_or_nan(latency) / 1000.0 if latency is not None
                      else float("nan"),
                      usage=usage or {}, generator="responses", metadata=dict(data.get("metadata") or {}))


def parse_responses_lines(lines: Iterable[str], questions: Mapping[str, str]
                          ) -> tuple[dict[str, ItemAnswer], dict[str, int], list[str]]:
    """({id: answer}, {id: line number}, every problem) of responses-file lines against the golden set's
    {id: question}; never raises."""
    problems: list[str] = []
    answers: dict[str, ItemAnswer] = {}
    first: dict[str, int] = {}
    for number, data in json_objects(lines, "", problems):
        item_id = data.get("id")
        if isinstance(item_id, str) and item_id in first:
            problems.append(f"line {number}: duplicate id {item_id!r} (first used on line {first[item_id]})")
            continue
        if isinstance(item_id, str):
            first[item_id] = number
        answer = _one(number, data, questions, problems)
        if answer is not None:
            answers[str(item_id)] = answer
    return answers, first, problems


def load_responses(path: str | Path, items: Sequence[EvalItem]) -> dict[str, ItemAnswer]:
    """The valid responses of a file, {golden id: answer}. Raises DatasetError naming every bad line."""
    path = Path(path)
    text = read_jsonl_text(path)
    answers, _, problems = parse_responses_lines(text.splitlines(), {it.id: it.question for it in items})
    if not answers and not problems:
        problems.append("the file holds no responses")
    raise_if_problems(path, problems)
    return answers


def responses_answers(path: str | Path, items: Sequence[EvalItem]) -> Answered:
    """Every golden item's answer from a responses file (validated first); items without a response are
    unanswered, with a reason naming the file."""
    path = Path(path)
    found = load_responses(path, items)
    reason = f"no response for this item in {path.name}"
    answers = [found.get(it.id) or ItemAnswer.unanswered(reason, generator="responses") for it in items]
    missing = [it.id for it in items if it.id not in found]
    if missing:
        log.warning("%s: %d of %d golden item(s) have no response and are counted as unmeasured: %s", path,
                    len(missing), len(items), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    source = {"kind": "responses", "path": str(path), "sha256": file_sha256(path), "responses": len(found),
              "missing": len(missing), "missing_ids": missing[:MISSING_LISTED],
              "gives_retrieved": any(a.retrieved is not None for a in found.values())}
    return Answered(kind="responses", answers=answers, source=source, generator="responses",
                    again=lambda: list(answers))


# -- writing ---------------------------------------------------------------------------------------------
def response_record(item: EvalItem, answer: ItemAnswer, *, run: str | None = None) -> dict[str, Any]:
    """The responses-file object of one answered item (the fields `load_responses` reads back)."""
    out: dict[str, Any] = {"id": item.id, "question": item.question, "answer": answer.answer,
                           "contexts": list(answer.contexts)}
    if answer.retrieved is not None:
        out["retrieved"] = list(answer.retrieved)
    if answer.retrieved_texts is not None:
        out["retrieved_contexts"] = list(answer.retrieved_texts)
    latency = finite_or_nan(answer.latency_seconds)
    if latency == latency:  # not NaN
        out["latency_ms"] = round(latency * 1000.0, 3)
    if answer.usage:
        out["usage"] = dict(answer.usage)
    meta = {**answer.metadata, "generator": answer.generator}
    if run:
        meta["run"] = run
    if answer.degraded:
        meta["degraded"] = True
    out["metadata"] = meta
    return out


def write_responses(target: str | Path, items: Sequence[EvalItem], answers: Sequence[ItemAnswer], *,
                    run: str | None = None) -> Path:
    """Write the answered items as a responses file (unanswered ones are left out: they have no answer) in
    standard JSON (a NaN or infinite number, e.g. in free-form metadata, is written as null). Atomic
    (temporary file + rename) and private (0600): it holds the questions and answers."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [dumps_finite(response_record(it, a, run=run), ensure_ascii=False) + "\n"
             for it, a in zip(items, answers, strict=True) if a.answered]
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("responses of %d item(s) written to %s", len(lines), target)
    return target
