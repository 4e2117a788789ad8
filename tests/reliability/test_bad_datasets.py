"""Bad evaluation datasets through the real `axiom eval` / `axiom retrieval-eval` (the CLI's `main`, in this
process):
DatasetError, exit 2, a message naming the file and the line (also for a line beyond the bounds of
bounded_json.py: too deep, a number too long, too large), no traceback, and nothing written: no runs folder,
no store, no collection (the dataset is validated before anything is ingested). Every-problem-at-once listing
is unit-tested in tests/evaluation/test_datasets.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axiom.cli import main
from axiom.errors import DatasetError
from axiom.evaluation.datasets import load_beir, load_golden
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, clean_env, write_config
from tests.reliability.conftest import tree

pytestmark = pytest.mark.usefixtures("restore_logging")  # main() configures the root logger

GOOD_LINES = TINY_GOLDEN.read_text().splitlines()
T01 = json.loads(GOOD_LINES[0])

GOLDEN_CASES = {
    "malformed_jsonl": ([GOOD_LINES[0], '{"id": "t02", "question": "unterminated', GOOD_LINES[2]],
                        ["line 2: not valid JSON (Unterminated string starting at at column 27)"]),
    "duplicate_ids": ([GOOD_LINES[0], GOOD_LINES[1], json.dumps({**T01, "question": "Again?"})],
                      ["line 3: duplicate id 't01' (first used on line 1)"]),
    # id and question are required; a question alone (line 3) is a valid, reference-free item
    "missing_fields": ([GOOD_LINES[0], json.dumps({"id": "t09", "reference": "R."}),
                        json.dumps({"id": "t10", "question": "Q?"}), json.dumps({"question": "Q?"})],
                       ["line 2: missing field 'question'", "line 4: missing field 'id'", "2 problem(s)"]),
    "unknown_source": ([json.dumps({**T01, "relevant_sources": ["nowhere.md"]})],
                       ["line 1: unknown source(s) 'nowhere.md' (not in the corpus)"]),
    "empty_dataset": (["", "   ", ""], ["the dataset is empty (no questions)"]),
    "not_utf8": (None, ["not UTF-8 text (byte 4)"]),
    "nested_too_deep": ([GOOD_LINES[0], "[" * 100_000, json.dumps({**T01, "id": "t03"})],
                        ["line 2: nested deeper than 64 levels"]),
    "number_too_long": ([GOOD_LINES[0],
                         '{"id": "t02", "question": "Q?", "reference": "R.", "metadata": {"n": '
                         + "9" * 5000 + "}}"],
                        ["line 2: a number is 5000 characters long; the limit is 100"]),
    "line_too_long": ([GOOD_LINES[0], json.dumps({**T01, "id": "t02", "reference": "r" * (16 << 20)})],
                      ["line 2: 16,777,", " bytes long; the limit is 16 MiB"]),
}


@pytest.mark.parametrize("case", list(GOLDEN_CASES))
def test_bad_golden_set_exits_2_naming_the_line_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    clean_env(monkeypatch)
    lines, words = GOLDEN_CASES[case]
    work = tmp_path / "work"
    config = write_config(work)
    dataset = tmp_path / f"{case}.jsonl"
    if lines is None:
        dataset.write_bytes(b'{"id\xff": 1}\n')
    else:
        dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_golden(dataset, known_sources={"a.md", "b.txt", "c.md"})
    assert info.value.exit_code == 2
    before = tree(work)
    code = main(["--config", str(config), "eval", "--dataset", str(dataset), "--corpus", str(TINY_CORPUS),
                 "--name", case])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{dataset}: " in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert tree(work) == before  # no runs folder, no store, no BM25 index, no judge cache
    assert not (work / "runs").exists() and not (work / "chroma").exists()


def _beir(folder: Path, qrels: list[str], corpus: list[dict] | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = corpus if corpus is not None else [{"_id": "d1", "title": "Bees", "text": "Queens lay eggs."},
                                              {"_id": "d2", "title": "", "text": "Lava is hot."}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in (
        {"_id": "q1", "text": "who lays eggs"}, {"_id": "q2", "text": "hot rock"})))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                               + "".join(f"{r}\n" for r in qrels))
    return folder


BEIR_CASES = {
    "qrels_unknown_doc": (["q1\td1\t1", "q2\tdX\t1"], None, ["qrels/test.tsv line 3: unknown document 'dX'"]),
    "qrels_unknown_query": (["q1\td1\t1", "q7\td2\t1"], None, ["qrels/test.tsv line 3: unknown query 'q7'"]),
    "duplicate_doc_ids": (["q1\td1\t1"], [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}],
                          ["corpus.jsonl line 2: duplicate _id 'd1'"]),
    "no_positive_judgements": (["q1\td1\t0"], None, ["qrels/test.tsv holds no positive judgements"]),
}


@pytest.mark.parametrize("case", list(BEIR_CASES))
def test_bad_beir_folder_exits_2_naming_the_line_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    clean_env(monkeypatch)
    qrels, corpus, words = BEIR_CASES[case]
    folder = _beir(tmp_path / case, qrels, corpus)
    with pytest.raises(DatasetError):
        load_beir(folder)
    work = tmp_path / "work"
    config = write_config(work)
    before = tree(work)
    code = main(["--config", str(config), "retrieval-eval", "beir", str(folder), "--retriever", "bm25"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{folder}: " in err
    for w in words:
        assert w in err, (w, err)
    assert tree(work) == before
