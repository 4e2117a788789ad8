"""Golden-set and BEIR loading: every problem reported at once, with line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axiom.errors import DatasetError
from axiom.evaluation import datasets
from axiom.evaluation.datasets import EvalItem, load_beir, load_golden


def test_tiny_golden_loads(repo_root: Path) -> None:
    items = load_golden(repo_root / "tests/fixtures/tiny_golden.jsonl",
                        known_sources={"a.md", "b.txt", "c.md"})
    assert [it.id for it in items] == ["t01", "t02", "t03", "t04", "t05", "t06"]
    assert items[0].relevant_sources == ("a.md",)
    assert items[3].reference_contexts and all(isinstance(c, str) for c in items[3].reference_contexts)
    assert items[0].line == 1
    assert isinstance(items[0], EvalItem)
    with pytest.raises(AttributeError):
        items[0].id = "x"  # type: ignore[misc]  (frozen)


def test_sample_golden_loads(repo_root: Path) -> None:
    sources = {p.name for p in (repo_root / "data").iterdir()}
    items = load_golden(repo_root / "evaluation/datasets/sample/golden.jsonl", known_sources=sources)
    assert len(items) == 52


def test_every_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    good = {"id": "ok1", "question": "Q?", "reference": "R.", "relevant_sources": ["a.md"]}
    lines = [
        json.dumps(good),                                                       # 1 fine
        "{not json",                                                            # 2 bad JSON
        json.dumps({"id": "x2", "reference": "R"}),                             # 3 missing question
        json.dumps({"id": "x3", "question": "   ", "reference": "R"}),          # 4 blank question
        json.dumps({"id": 4, "question": "Q?", "reference": "R"}),              # 5 id not a string
        json.dumps(dict(good)),                                                 # 6 duplicate id ok1
        # 7 not a list
        json.dumps({"id": "x7", "question": "Q?", "reference": "R", "relevant_sources": "a.md"}),
        # 8 unknown
        json.dumps({"id": "x8", "question": "Q?", "reference": "R", "relevant_sources": ["zzz.md"]}),
        "",                                                                     # 9 blank: ignored
        json.dumps({"id": "x10", "question": "Q?", "reference": "R", "colour": "red"}),  # 10 unknown field
        json.dumps(["a", "list"]),                                              # 11 not an object
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_golden(path, known_sources={"a.md"})
    problems = info.value.problems
    text = str(info.value)
    for line in (2, 3, 4, 5, 6, 7, 8, 10, 11):
        assert any(p.startswith(f"line {line}:") for p in problems), (line, problems)
    assert not any(p.startswith("line 1:") or p.startswith("line 9:") for p in problems)
    assert "duplicate id 'ok1' (first used on line 1)" in text
    assert "missing field 'question'" in text
    assert "unknown source(s) 'zzz.md'" in text
    assert info.value.exit_code == 2


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty"):
        load_golden(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        load_golden(tmp_path / "nope.jsonl")


def test_short_answer_rules() -> None:
    long = EvalItem(id="a", question="q", reference="The Mamluk sultan Qaitbay built a fortress in 1480.")
    assert long.expected_short_answer is None
    assert EvalItem(id="b", question="q", reference="In 1480.").expected_short_answer == "In 1480."
    assert EvalItem(id="c", question="q", reference=long.reference,
                    short_answer="1480").expected_short_answer == "1480"


def _beir(folder: Path, qrels_lines: list[str]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Bees", "text": "Queens lay eggs."},
            {"_id": "d2", "title": "", "text": "Lava."}]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    queries = [{"_id": "q1", "text": "who lays eggs"}, {"_id": "q2", "text": "hot rock"},
               {"_id": "q3", "text": "x"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels_lines) + "\n",
                                               encoding="utf-8")
    return folder


def test_load_beir(tmp_path: Path) -> None:
    corpus, queries, qrels = load_beir(_beir(tmp_path / "mini", ["q1\td1\t1", "q2\td2\t1"]))
    assert corpus["d1"] == {"title": "Bees", "text": "Queens lay eggs."}
    assert queries == {"q1": "who lays eggs", "q2": "hot rock"}  # only judged queries
    assert qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_load_beir_reports_unknown_ids(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "bad", ["q1\td1\t1", "q9\td1\t1", "q2\tdX\t1", "q2\td2"])
    with pytest.raises(DatasetError) as info:
        load_beir(folder)
    text = str(info.value)
    assert "line 3: unknown query 'q9'" in text
    assert "line 4: unknown document 'dX'" in text
    assert "line 5: expected 3 tab-separated columns" in text
    with pytest.raises(DatasetError, match="qrels/dev.tsv is missing"):
        load_beir(folder, split="dev")


def test_a_file_beyond_the_size_bound_is_refused_before_it_is_read(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.jsonl"
    line = '{"id": "q1", "question": "Q?", "reference": "R."}\n'
    big.write_text(line * 100, encoding="utf-8")
    monkeypatch.setattr(datasets, "MAX_FILE_BYTES", len(line) * 100 - 1)
    with pytest.raises(DatasetError, match=r"larger than 4\.882 KiB, the limit of a JSONL file"):
        load_golden(big)
    monkeypatch.setattr(datasets, "MAX_FILE_BYTES", len(line) * 100)
    with pytest.raises(DatasetError, match="line 2: duplicate id"):
        load_golden(big)
