"""The built-in PubMedQA golden set: it loads, its evidence is verbatim, and its build is reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axiom.evaluation.datasets import load_golden

REPO = Path(__file__).resolve().parents[2]
SET_DIR = REPO / "evaluation" / "datasets" / "pubmedqa"
GOLDEN = SET_DIR / "golden.jsonl"
CORPUS = SET_DIR / "corpus"
SCRIPT = SET_DIR / "build_pubmedqa.py"
SOURCE = REPO.parent / "shared" / "datasets" / "pubmedqa-pqal-traindev" / "qa.jsonl"


def corpus_names() -> set[str]:
    return {p.name for p in CORPUS.iterdir() if p.is_file()}


def test_corpus_has_all_500_abstracts() -> None:
    names = corpus_names()
    assert len(names) == 500
    assert all(name.endswith(".txt") and name[:-4].isdigit() for name in names)
    for path in sorted(CORPUS.iterdir())[:20]:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n") and not text.endswith("\n\n")
        assert all(p and p == " ".join(p.split()) for p in text[:-1].split("\n\n"))


def test_golden_set_loads_against_the_corpus() -> None:
    items = load_golden(GOLDEN, known_sources=corpus_names())
    assert len(items) >= 200
    assert len({it.id for it in items}) == len(items)
    for item in items:
        pmid = item.metadata["pmid"]
        assert item.id == f"pmqa-{pmid}"
        assert item.relevant_sources == (f"{pmid}.txt",)
        assert item.reference_contexts
        assert item.short_answer is None
        assert item.metadata["final_decision"] in {"yes", "no", "maybe"}


def test_reference_contexts_are_verbatim_paragraphs_of_their_source() -> None:
    for item in load_golden(GOLDEN):
        (source,) = item.relevant_sources
        text = (CORPUS / source).read_text(encoding="utf-8")
        paragraphs = text[:-1].split("\n\n")
        for context in item.reference_contexts:
            assert context in text, (item.id, context[:60])
            assert context in paragraphs[:-1], (item.id, "not a whole context paragraph")
        # the reference is the conclusion: the abstract's last paragraph
        assert paragraphs[-1] == item.reference, item.id


@pytest.mark.skipif(not SOURCE.is_file(), reason=f"PubMedQA source not present at {SOURCE}")
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "stale.txt").write_text("not written by the build\n", encoding="utf-8")
    (tmp_path / "corpus" / "keep.md").write_text("not a corpus text file\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), "--source", str(SOURCE), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["corpus_files"] == 500 and summary["stale_files_removed"] == 1

    assert (tmp_path / "golden.jsonl").read_bytes() == GOLDEN.read_bytes()
    built = {p.name for p in (tmp_path / "corpus").glob("*.txt")}
    assert built == corpus_names()
    for name in sorted(built):
        assert (tmp_path / "corpus" / name).read_bytes() == (CORPUS / name).read_bytes(), name
    assert (tmp_path / "corpus" / "keep.md").is_file()  # only *.txt files are pruned

    again = subprocess.run([sys.executable, str(SCRIPT), "--source", str(SOURCE), "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files_changed"] == 0
