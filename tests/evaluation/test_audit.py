"""`axiom dataset audit` on real files: the packaged model, the span locator, a hand-written run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from axiom.cli import main
from axiom.evaluation.audit import audit_dataset, normalise_question
from axiom.evaluation.datasets import file_sha256
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings, clean_env, write_config

NEAR_A = "Which volcano is the biggest active one on the planet by volume?"
NEAR_B = "Which volcano is the biggest active one on our planet by volume?"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Any) -> dict[str, Path]:
    """A config under tmp_path, a copy of the tiny corpus, and the session's model for the CLI."""
    clean_env(monkeypatch)
    monkeypatch.setattr("axiom.embeddings.make_embedder", lambda *a, **k: embedder)
    corpus = tmp_path / "corpus"
    shutil.copytree(TINY_CORPUS, corpus)
    return {"root": tmp_path, "config": write_config(tmp_path / "cfg"), "corpus": corpus}


def _items() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TINY_GOLDEN.read_text().splitlines() if line.strip()]


def _write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    return path


def _audit(env: dict[str, Path], dataset: Path, *extra: str) -> list[str]:
    return ["--config", str(env["config"]), "dataset", "audit", str(dataset), "--corpus", str(env["corpus"]),
            *extra]


def test_clean_set_is_usable(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit(env, TINY_GOLDEN)) == 0
    out = capsys.readouterr().out
    assert "usable: all 6 item(s)" in out and "UNUSABLE" not in out
    assert "missing 0" in out and "no run of this dataset" in out

    assert main(_audit(env, TINY_GOLDEN, "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["usable"] is True and data["unusable"] == [] and data["questions"] == 6
    assert data["contexts"]["checked"] and data["contexts"]["total"] == 7
    assert data["contexts"]["methods"]["missing"] == 0
    assert all(s["exists"] for row in data["items"] for s in row["sources"])
    assert data["coverage"]["per_source"] == {"min": 2, "median": 2.0, "max": 2}
    assert data["coverage"]["unreferenced_sources"] == []
    assert data["duplicates"]["exact"] == [] and data["duplicates"]["near"] == []


def test_broken_passage_is_unusable(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    items = _items()
    items[3]["reference_contexts"][1] = (
        "Penguins of the southern ice shelves sing in harmony every winter night."
    )
    dataset = _write(env["root"] / "broken.jsonl", items)
    assert main(_audit(env, dataset)) == 2
    out = capsys.readouterr().out
    assert "UNUSABLE: 1 of 6 item(s)" in out
    assert "line 4 (t04): reference_contexts[1] not found in corpus (best similarity" in out

    assert main(_audit(env, dataset, "--json")) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["usable"] is False and data["contexts"]["methods"]["missing"] == 1
    [bad] = data["unusable"]
    assert (bad["id"], bad["line"], bad["field"], bad["index"]) == ("t04", 4, "reference_contexts", 1)


def test_missing_source_is_unusable(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    items = _items()
    items[1]["relevant_sources"] = ["a.md", "nowhere.md"]
    dataset = _write(env["root"] / "missing.jsonl", items)
    assert main(_audit(env, dataset)) == 2
    out = capsys.readouterr().out
    assert "line 2 (t02): relevant_sources[1] 'nowhere.md' is not in the corpus" in out


def test_malformed_dataset_names_lines(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    dataset = env["root"] / "bad.jsonl"
    dataset.write_text(TINY_GOLDEN.read_text().splitlines()[0] + "\n{not json\n")
    assert main(_audit(env, dataset)) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err


def test_without_corpus_contexts_are_not_checked(env: dict[str, Path], embedder: Any) -> None:
    settings = build_settings(env["root"] / "s")
    report = audit_dataset(TINY_GOLDEN, settings=settings, embedder=embedder)
    assert report.usable and report.sources_checked_against is None  # no collection either
    assert report.contexts["note"] == "not checked (no corpus)"
    assert "reference contexts: not checked (no corpus)" in report.text()
    assert not (env["root"] / "s" / "chroma").exists()  # the audit did not create a store


def test_duplicates(env: dict[str, Path], embedder: Any) -> None:
    cosine = float(np.dot(*embedder.embed([NEAR_A, NEAR_B])))
    assert cosine >= 0.95, cosine  # the paraphrase used below really is a near copy for this model
    items = _items()
    items.append(dict(items[0], id="t07", question=items[0]["question"].upper().replace("?", " ?!")))
    items.append(dict(items[2], id="t08", question=NEAR_B))
    dataset = _write(env["root"] / "dups.jsonl", items)
    report = audit_dataset(dataset, settings=build_settings(env["root"] / "s"), corpus=env["corpus"],
                           embedder=embedder)
    assert report.usable
    assert [g["ids"] for g in report.duplicates["exact"]] == [["t01", "t07"]]
    assert [(p["a"], p["b"]) for p in report.duplicates["near"]] == [("t03", "t08")]
    assert report.duplicates["near"][0]["cosine"] == pytest.approx(cosine, abs=1e-3)
    text = report.text()
    assert "1 exact group(s), 1 near pair(s) (cosine >= 0.95)" in text and "t03 (line 3)" in text
    # a stricter threshold keeps the exact duplicate and drops the paraphrase
    strict = audit_dataset(dataset, settings=build_settings(env["root"] / "s"), near_duplicate=0.999,
                           embedder=embedder)
    assert strict.duplicates["near"] == [] and len(strict.duplicates["exact"]) == 1
    assert normalise_question(" Who  was it?? ") == normalise_question("who was IT")


def test_against_finds_leaked_questions(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    other = _write(env["root"] / "other.jsonl", [
        {"id": "o1", "question": "which eruption caused the year without a summer", "reference": "Tambora."},
        {"id": "o2", "question": NEAR_B, "reference": "Mauna Loa."},
        {"id": "t05", "question": "What is the capital of France?", "reference": "Paris."}])
    assert main(_audit(env, TINY_GOLDEN, "--against", str(other), "--json")) == 0
    leakage = json.loads(capsys.readouterr().out)["leakage"]
    assert [(p["a"], p["b"]) for p in leakage["exact"]] == [("t04", "o1")]
    assert [(p["a"], p["b"]) for p in leakage["near"]] == [("t03", "o2")]
    assert leakage["shared_ids"] == ["t05"] and leakage["leaked_questions"] == 2

    assert main(_audit(env, TINY_GOLDEN, "--against", str(other))) == 0
    out = capsys.readouterr().out
    assert "2 question(s) leaked, 1 shared id(s)" in out and "shared ids: t05" in out


def _run_folder(runs: Path, name: str, started: str, sha256: str, values: dict[str, list[float]]) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    manifest = {"name": name, "started": started, "dataset": {"path": "x", "sha256": sha256, "items": 6}}
    metrics = {"metrics": {m: {"mean": float(np.nanmean(v)) if not np.isnan(v).all() else None,
                               "n": int((~np.isnan(v)).sum()), "ci_low": None, "ci_high": None}
                           for m, v in ((m, np.array(v)) for m, v in values.items())}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"id": [f"t0{i}" for i in range(1, 7)], **values}).to_parquet(folder / "results.parquet",
                                                                              index=False)
    return folder


def test_saturation_of_the_last_run(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    runs = env["root"] / "runs"
    sha = file_sha256(TINY_GOLDEN)
    nan = float("nan")
    _run_folder(runs, "20240101T000000Z-old", "2024-01-01T00:00:00.000000Z", sha,
                {"recall@5": [0.0] * 6})
    _run_folder(runs, "20250101T000000Z-other-set", "2025-01-01T00:00:00.000000Z", "0" * 64,
                {"recall@5": [0.5] * 6})
    last = _run_folder(runs, "20240601T000000Z-last", "2024-06-01T00:00:00.000000Z", sha,
                       {"recall@5": [1.0] * 6, "ndcg@10": [1.0, 1.0, 1.0, 0.5, 0.25, 1.0],
                        "exact_match": [nan] * 6})
    assert main(_audit(env, TINY_GOLDEN, "--runs", str(runs), "--json")) == 0
    sat = json.loads(capsys.readouterr().out)["saturation"]
    assert sat["run"] == str(last)
    assert sat["saturated"] == ["recall@5"]
    assert sat["not_saturated"] == {"ndcg@10": {"mean": pytest.approx(0.7917, abs=1e-4), "n": 6,
                                                "share_at_ceiling": pytest.approx(4 / 6, abs=1e-4)}}

    assert main(_audit(env, TINY_GOLDEN, "--runs", str(runs))) == 0
    out = capsys.readouterr().out
    assert "saturated, cannot detect a regression: recall@5" in out
    assert "ndcg@10: mean 0.792, 67% of 6 question(s) at the ceiling" in out


@pytest.mark.parametrize(("dataset", "corpus", "questions"), [
    ("evaluation/datasets/sample/golden.jsonl", "data", 52),
    ("evaluation/datasets/pubmedqa/golden.jsonl", "evaluation/datasets/pubmedqa/corpus", 250)])
def test_built_in_sets_are_usable(dataset: str, corpus: str, questions: int, tmp_path: Path,
                                  embedder: Any) -> None:
    """Both built-in sets: every item usable, every source present, every reference passage located."""
    repo = Path(__file__).resolve().parents[2]
    report = audit_dataset(repo / dataset, settings=build_settings(tmp_path), corpus=repo / corpus,
                           runs_dir=tmp_path / "runs", embedder=embedder).to_dict()
    assert report["questions"] == questions
    assert report["usable"] is True and report["unusable"] == []
    assert report["contexts"]["checked"] and report["contexts"]["methods"]["missing"] == 0
    assert all(s["exists"] for row in report["items"] for s in row["sources"])
