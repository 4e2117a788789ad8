"""The one naming module (axiom/evaluation/naming.py): the collection and folder names every face uses, pinned
to the forms they had before the faces shared it (a changed name would orphan existing collections and
runs)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from axiom.evaluation.naming import (
    beir_collection,
    combination_label,
    eval_collection,
    run_folder_name,
    stamped_name,
    sweep_collection,
    sweep_run_name,
    unique_path,
    utc_stamp,
    work_folder_name,
)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def test_collection_names(tmp_path: Path) -> None:
    corpus = tmp_path / "My Corpus"
    corpus.mkdir()
    digest = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    assert eval_collection(corpus, MODEL) == f"eval-my-corpus-{digest}-all-minilm-l6-v2"
    assert eval_collection(tmp_path / "My Corpus" / ".." / "My Corpus",
                           MODEL) == eval_collection(corpus, MODEL)
    assert sweep_collection(corpus, 400, 50, MODEL) == f"sweep-my-corpus-{digest}-c400o50-all-minilm-l6-v2"
    assert beir_collection(tmp_path / "scifact", MODEL) == "beir-scifact-all-minilm-l6-v2"
    long = eval_collection(tmp_path / ("x" * 250), MODEL)
    assert len(long) == 199 and re.fullmatch(r"[a-z0-9._-]+", long)  # bounded, with a hash of the whole name


def test_folder_names(tmp_path: Path) -> None:
    started = datetime(2026, 12, 7, 9, 5, 3, tzinfo=UTC)
    assert utc_stamp(started) == "20261207T090503Z"
    assert run_folder_name(started, "my run/1") == "20261207T090503Z-my-run-1"
    assert run_folder_name(started, "my run/1", 2) == "20261207T090503Z-2-my-run-1"
    assert re.fullmatch(r"\d{8}T\d{6}Z-sweep-failed", stamped_name("sweep", "failed"))
    assert re.fullmatch(r"\d{8}T\d{6}Z-a-b", stamped_name("a b"))
    assert re.fullmatch(r"\.nb-eval-\d+-\d+", work_folder_name("nb", "eval"))
    assert work_folder_name("tmp", "x") != work_folder_name("tmp", "x")
    first = unique_path(tmp_path / "out")
    assert first == tmp_path / "out"
    first.mkdir()
    assert unique_path(tmp_path / "out") == tmp_path / "out-2"


def test_sweep_run_names() -> None:
    combination = {"top_k": 3, "retriever": "bm25", "chunk_size": 400}
    assert combination_label(combination) == "top_k=3,retriever=bm25,chunk_size=400"  # the grid's order
    assert sweep_run_name("sweep", combination) == "sweep-top_k=3,retriever=bm25,chunk_size=400"
    started = datetime(2026, 12, 7, 9, 5, 3, tzinfo=UTC)
    assert (run_folder_name(started, sweep_run_name("grid", {"top_k": 3}))
            == "20261207T090503Z-grid-top_k-3")  # the folder of that run: its name made file-name-safe
