"""Evaluation datasets: golden QA sets (JSONL) and BEIR folders.

Golden set format, one JSON object a line (blank lines are ignored):

    {"id": "q01", "question": "...",
     "reference": "...",                        # optional: the reference answer (reference-based answer
     metrics) "relevant_sources": ["file.md"],           # optional: source paths (relative to the corpus
     root) or doc ids "reference_contexts": ["exact passage"],   # optional: passages that hold the answer
     "short_answer":
     "1480",                    # optional: a short token for exact-match / string-presence "group":
     "file.md",                        # optional: the cluster the question belongs to (default: its
                                                #   first relevant source, else its own id); see clusters.py
     "metadata": {...}}                         # optional: free-form, carried along untouched

Loading validates every line and raises one `DatasetError` that lists every problem with its line number
(bad JSON, missing or blank field, wrong type, unknown field, duplicate id, unknown source), so a broken file
is fixed in one pass (a file with many bad lines: the first MAX_REPORTED_PROBLEMS problems and a count per
kind). Lines are read with bounds (`bounded_json.py`): a line longer than MAX_LINE_BYTES, nested deeper than
64 levels or holding a number longer than 100 characters is a bad line like any other; a file larger than
MAX_FILE_BYTES is refused before it is read.

Only `id` and `question` are required: a set of questions alone (production logs, labelled answers without
reference answers) is valid. A metric that needs what an item lacks is not applicable to it, with the reason
(`metric_support.py` says which metrics a set supports).

BEIR folders hold `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`) and
`qrels/<split>.tsv` (header `query-id corpus-id score`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from axiom.errors import DatasetError
from axiom.evaluation.bounded_json import JSONBoundError, loads_bounded, size_text

REQUIRED_FIELDS = ("id", "question")
OPTIONAL_STRING_FIELDS = ("reference", "short_answer", "group")
OPTIONAL_LIST_FIELDS = ("relevant_sources", "reference_contexts")
KNOWN_FIELDS = set(REQUIRED_FIELDS) | set(OPTIONAL_STRING_FIELDS) | set(OPTIONAL_LIST_FIELDS) | {"metadata"}
SHORT_REFERENCE_WORDS = 4  # a reference of at most this many words is itself a short answer
MAX_REPORTED_PROBLEMS = 20  # a file with more: these first, then a count per kind of problem
MAX_PROBLEM_KINDS = 10
MAX_LINE_BYTES = 16 << 20  # one golden item or response
MAX_FILE_BYTES = 1 << 30  # a golden set or responses file


@dataclass(frozen=True)
class EvalItem:
    """One golden question. `line` is its 1-based line number in the file it came from."""

    id: str
    question: str
    reference: str | None = None  # None: no reference answer (the reference-based answer metrics are n/a)
    relevant_sources: tuple[str, ...] = ()
    reference_contexts: tuple[str, ...] = ()
    short_answer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    line: int = field(default=0, compare=False)
    group: str | None = None  # None: the default cluster (see `cluster`)

    @property
    def cluster(self) -> str:
        """The group the paired test and intervals treat this question in: the explicit `group`, else its
        first relevant source (questions about one document move together), else its own id (a group of
        one)."""
        return self.group or (self.relevant_sources[0] if self.relevant_sources else self.id)

    @property
    def expected_short_answer(self) -> str | None:
        """The short answer exact-match / string-presence test against: the explicit `short_answer`, or the
        reference itself when it is short (at most SHORT_REFERENCE_WORDS words); None otherwise."""
        if self.short_answer:
            return self.short_answer
        if self.reference and len(self.reference.split()) <= SHORT_REFERENCE_WORDS:
            return self.reference
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "question": self.question}
        if self.reference is not None:
            out["reference"] = self.reference
        out.update(relevant_sources=list(self.relevant_sources),
                   reference_contexts=list(self.reference_contexts))
        if self.short_answer is not None:
            out["short_answer"] = self.short_answer
        if self.group is not None:
            out["group"] = self.group
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_string(value: object, name: str, where: str, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
        return None
    if not value.strip():
        problems.append(f"{where}: field {name!r} is blank")
        return None
    return value


def _check_string_list(value: object, name: str, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.append(f"{where}: field {name!r} must be a list of strings, got {type(value).__name__}")
        return None
    out: list[str] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            problems.append(f"{where}: {name}[{i}] must be a string, got {type(entry).__name__}")
            return None
        if not entry.strip():
            problems.append(f"{where}: {name}[{i}] is blank")
            return None
        out.append(entry)
    return tuple(out)


def read_jsonl_text(path: Path) -> str:
    """The text of a JSONL file (golden set, responses), or DatasetError saying why it cannot be read."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise DatasetError(str(path),
                               [f"larger than {size_text(MAX_FILE_BYTES)}, the limit of a JSONL file"])
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise DatasetError(str(path), ["file does not exist"]) from None
    except IsADirectoryError:
        raise DatasetError(str(path), ["is a folder, not a JSONL file"]) from None
    except OSError as exc:
        raise DatasetError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), [f"not UTF-8 text (byte {exc.start})"]) from None
    return text


_LINE_PREFIX = re.compile(r"^(?:\S+ )?line \d+: ")
_VALUES = re.compile(r"((?:\b_?ids?|source\(s\)|golden item|query|document) )'[^']*'(?:, '[^']*')*")
_DETAIL = re.compile(r" \(.*$|\d+")


def problem_kind(problem: str) -> str:
    """What kind of problem a message is: without its line, the ids / sources it names and its details
    ("line 7: missing field 'question'" -> "missing field 'question'")."""
    text = _LINE_PREFIX.sub("", problem)
    text = _VALUES.sub(lambda m: m.group(1) + "...", text)
    return _DETAIL.sub(lambda m: "" if m.group(0).startswith(" (") else "N", text).strip()


def summarise_problems(problems: list[str]) -> list[str]:
    """The problems to show: all of them up to MAX_REPORTED_PROBLEMS; beyond, the first MAX_REPORTED_PROBLEMS,
    then how many more and a count per kind of problem (the commonest MAX_PROBLEM_KINDS kinds)."""
    if len(problems) <= MAX_REPORTED_PROBLEMS:
        return list(problems)
    shown = problems[:MAX_REPORTED_PROBLEMS]
    kinds = Counter(problem_kind(p) for p in problems).most_common()
    shown.append(f"... and {len(problems) - len(shown)} more; {len(problems)} problems by kind:")
    shown += [f"{count} x {kind}" for kind, count in kinds[:MAX_PROBLEM_KINDS]]
    if len(kinds) > MAX_PROBLEM_KINDS:
        rest = sum(count for _, count in kinds[MAX_PROBLEM_KINDS:])
        shown.append(f"{rest} x other ({len(kinds) - MAX_PROBLEM_KINDS} more kinds)")
    return shown


def raise_if_problems(path: str | Path, problems: list[str]) -> None:
    """DatasetError naming the problems (summarised beyond MAX_REPORTED_PROBLEMS, see
    `summarise_problems`)."""
    if problems:
        raise DatasetError(str(path), summarise_problems(problems), total=len(problems))


def json_objects(lines: Iterable[str], label: str,
                 problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line that is a JSON object; each other line is a problem,
    named `<label>line N: ...` (a line beyond the bounds of `loads_bounded` too)."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = loads_bounded(raw, max_bytes=MAX_LINE_BYTES)
        except json.JSONDecodeError as exc:
            problems.append(f"{label}line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except JSONBoundError as exc:
            problems.append(f"{label}line {number}: {exc}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{label}line {number}: expected a JSON object, got {type(data).__name__}")
            continue
        yield number, data


def parse_golden_lines(lines: Iterable[str], known_sources: Iterable[str] | None = None
                       ) -> tuple[list[EvalItem], list[str]]:
    """Parse golden-set lines; returns the items that are valid and every problem found (never raises)."""
    known = set(known_sources) if known_sources is not None else None
    problems: list[str] = []
    items: list[EvalItem] = []
    first_line: dict[str, int] = {}
    for number, data in json_objects(lines, "", problems):
        where = f"line {number}"
        before = len(problems)
        for name in REQUIRED_FIELDS:
            if name not in data:
                problems.append(f"{where}: missing field {name!r}")
        unknown = sorted(set(data) - KNOWN_FIELDS)
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                            f"allowed: {', '.join(sorted(KNOWN_FIELDS))}")
        values: dict[str, Any] = {}
        for name in REQUIRED_FIELDS:
            if name in data:
                values[name] = _check_string(data[name], name, where, problems)
        for name in OPTIONAL_STRING_FIELDS:  # absent or null: the item has none
            if data.get(name) is not None:
                values[name] = _check_string(data[name], name, where, problems)
        for name in OPTIONAL_LIST_FIELDS:
            if data.get(name) is not None:
                values[name] = _check_string_list(data[name], name, where, problems)
        if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
            problems.append(f"{where}: field 'metadata' must be an object, got "
                            f"{type(data['metadata']).__name__}")
        item_id = values.get("id")
        if item_id is not None:
            if item_id in first_line:
                problems.append(f"{where}: duplicate id {item_id!r} (first used on "
                                f"line {first_line[item_id]})")
            else:
                first_line[item_id] = number
        if known is not None and values.get("relevant_sources"):
            missing = [s for s in values["relevant_sources"] if s not in known]
            if missing:
                problems.append(f"{where}: unknown source(s) {', '.join(map(repr, missing))} "
                                f"(not in the corpus)")
        if len(problems) == before:
            items.append(EvalItem(id=values["id"], question=values["question"],
                                  reference=values.get("reference"),
                                  relevant_sources=values.get("relevant_sources") or (),
                                  reference_contexts=values.get("reference_contexts") or (),
                                  short_answer=values.get("short_answer"), group=values.get("group"),
                                  metadata=dict(data.get("metadata") or {}), line=number))
    return items, problems


def load_golden(path: str | Path, known_sources: Iterable[str] | None = None) -> list[EvalItem]:
    """Load and validate a golden set. Raises DatasetError listing every problem (with line numbers)."""
    path = Path(path)
    text = read_jsonl_text(path)
    items, problems = parse_golden_lines(text.splitlines(), known_sources)
    if not items and not problems:
        problems.append("the dataset is empty (no questions)")
    raise_if_problems(path, problems)
    return items


def golden_from_responses(path: str | Path) -> list[EvalItem]:
    """The items of a responses file whose lines carry their own question (production logs: `{id, question,
    answer, contexts, [retrieved]}`): one reference-free item per line. Raises DatasetError naming every line
    without a usable id or question (the rest of each line is checked by `responses.load_responses`)."""
    path = Path(path)
    text = read_jsonl_text(path)
    problems: list[str] = []
    items: list[EvalItem] = []
    first_line: dict[str, int] = {}
    for number, data in json_objects(text.splitlines(), "", problems):
        where, before = f"line {number}", len(problems)
        for name in REQUIRED_FIELDS:
            if name not in data:
                problems.append(f"{where}: missing field {name!r} (without --dataset, every response carries "
                                f"its id and question)")
        values = {name: _check_string(data[name], name, where, problems) for name in REQUIRED_FIELDS
                  if name in data}
        item_id = values.get("id")
        if item_id is not None and item_id in first_line:
            problems.append(f"{where}: duplicate id {item_id!r} (first used on line {first_line[item_id]})")
        elif item_id is not None:
            first_line[item_id] = number
        question = values.get("question")
        if len(problems) == before and item_id is not None and question is not None:
            items.append(EvalItem(id=item_id, question=question, line=number))
    if not items and not problems:
        problems.append("the file holds no responses")
    raise_if_problems(path, problems)
    return items


# -- BEIR -----------------------------------------------------------------------------------------
class BeirData(NamedTuple):
    """A BEIR dataset: corpus {doc_id: {"title", "text"}}, queries {query_id: text} (only those judged in
    the split), qrels {query_id: {doc_id: relevance}}."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _read_jsonl(path: Path, what: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    if not path.is_file():
        problems.append(f"{what} file {path.name} is missing")
        return rows
    with path.open(encoding="utf-8") as fh:
        for number, data in json_objects(fh, f"{path.name} ", problems):
            if not isinstance(data.get("_id"), (str, int)):
                problems.append(f"{path.name} line {number}: expected an '_id' (a string or a number)")
                continue
            rows.append((number, data))
    return rows


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Load a BEIR folder. Raises DatasetError listing every problem (qrels naming unknown docs or queries,
    bad lines, missing files)."""
    folder = Path(folder)
    problems: list[str] = []
    if not folder.is_dir():
        raise DatasetError(str(folder), ["is not a folder (expected corpus.jsonl, queries.jsonl, qrels/)"])
    corpus: dict[str, dict[str, str]] = {}
    for number, row in _read_jsonl(folder / "corpus.jsonl", "corpus", problems):
        doc_id = str(row["_id"])
        if doc_id in corpus:
            problems.append(f"corpus.jsonl line {number}: duplicate _id {doc_id!r}")
            continue
        corpus[doc_id] = {"title": str(row.get("title") or ""), "text": str(row.get("text") or "")}
    all_queries: dict[str, str] = {}
    for number, row in _read_jsonl(folder / "queries.jsonl", "queries", problems):
        qid = str(row["_id"])
        if qid in all_queries:
            problems.append(f"queries.jsonl line {number}: duplicate _id {qid!r}")
            continue
        all_queries[qid] = str(row.get("text") or "")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    if not qrels_path.is_file():
        available = sorted(p.stem
                           for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        problems.append(f"qrels/{split}.tsv is missing (splits here: {', '.join(available) or 'none'})")
    else:
        with qrels_path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for number, cols in enumerate(reader, start=1):
                if not cols or not "".join(cols).strip():
                    continue
                if number == 1 and cols[0].strip().lower() in ("query-id", "query_id", "qid"):
                    continue
                where = f"qrels/{split}.tsv line {number}"
                if len(cols) < 3:
                    problems.append(f"{where}: expected 3 tab-separated columns, got {len(cols)}")
                    continue
                qid, doc_id, score_text = cols[0].strip(), cols[1].strip(), cols[2].strip()
                try:
                    score = int(float(score_text))
                except ValueError:
                    problems.append(f"{where}: score {score_text!r} is not a number")
                    continue
                if qid not in all_queries:
                    problems.append(f"{where}: unknown query {qid!r}")
                    continue
                if doc_id not in corpus:
                    problems.append(f"{where}: unknown document {doc_id!r}")
                    continue
                qrels.setdefault(qid, {})[doc_id] = score
    if not problems and not any(score > 0 for judged in qrels.values() for score in judged.values()):
        problems.append(f"qrels/{split}.tsv holds no positive judgements")
    raise_if_problems(folder, problems)
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirData(corpus, queries, qrels)
