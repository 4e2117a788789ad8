"""The gate calibration benchmark's pieces: subset restriction, the drop-best-hit fault injection, the renamed
corpus. The benchmark itself is not run here (`python -m bench.gate_calibration --quick` is its smoke
check)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axiom.evaluation.datasets import load_golden
from axiom.evaluation.gate import make_baseline
from axiom.evaluation.run_documents import DatasetInfo, Manifest, MetricsDocument
from axiom.evaluation.run_folder import RunRecord
from axiom.evaluation.verdict import StatsConfig
from axiom.pipeline import RAGPipeline
from axiom.retrieval import RETRIEVERS
from axiom.store import ChromaStore
from bench.gate_draws import calibrate, draw_subset, gate_draw, restrict_baseline, restrict_results
from bench.gate_report import render_markdown
from bench.gate_variants import (
    VARIANTS,
    DropBestHit,
    drop_best_hit,
    renamed_source,
    write_renamed_corpus,
    write_shuffled_golden,
)
from tests.evaluation.helpers import TINY_CORPUS, TINY_GOLDEN, build_settings


def synthetic_record(n: int, shift: float = 0.0, seed: int = 0) -> RunRecord:
    rng = np.random.default_rng(seed)
    ids = [f"q{i:03d}" for i in range(n)]
    score = rng.uniform(0.2, 0.9, n) - shift
    other = rng.uniform(0.0, 1.0, n)
    other[3] = np.nan  # one unmeasured question
    results = pd.DataFrame({"id": ids, "score": score, "other": other})
    metrics = MetricsDocument(metrics={m: {"mean": float(np.nanmean(results[m])), "ci_low": None,
                                           "ci_high": None, "n": int(results[m].notna().sum()),
                                           "unmeasured": 0, "not_applicable": 0} for m in ("score", "other")})
    return RunRecord(path=Path("synthetic"),
                     manifest=Manifest(name="synthetic", dataset=DatasetInfo(items=n)),
                     metrics=metrics, results=results)


def test_subset_restriction_gives_a_gate_over_exactly_the_subset() -> None:
    base, variant = synthetic_record(40), synthetic_record(40, shift=0.0)
    ids = [str(i) for i in base.results["id"]]
    subset = draw_subset(ids, 25, draw=3)
    assert len(subset) == len(set(subset)) == 25 and subset == [i for i in ids if i in set(subset)]
    assert draw_subset(ids, 25, draw=3) == subset and draw_subset(ids, 25, draw=4) != subset

    baseline = make_baseline(base)
    restricted = restrict_baseline(baseline, subset)
    assert restricted["dataset"]["items"] == 25
    assert set(restricted["metrics"]["score"]["per_question"]) == set(subset)
    assert restricted["metrics"]["score"]["n"] == 25
    assert restricted["metrics"]["score"]["mean"] == pytest.approx(
        np.mean([baseline["metrics"]["score"]["per_question"][i] for i in subset]))
    assert baseline["metrics"]["score"]["n"] == 40  # the full baseline is left alone

    rows, summary = restrict_results(variant.results, variant.metric_names, subset)
    assert sorted(rows["id"]) == sorted(subset)
    assert summary["score"]["n"] == 25 and summary["score"]["mean"] == pytest.approx(
        float(variant.results.set_index("id").loc[subset, "score"].mean()))
    assert summary["other"]["n"] == 25 - ("q003" in subset)

    draw = gate_draw(baseline, variant, subset, StatsConfig(seed=3, permutations=2000, bootstrap_samples=200))
    assert draw["n"] == 25 and draw["n_by_metric"]["score"] == 25
    assert draw["n_by_metric"]["other"] == 25 - ("q003" in subset)
    assert not draw["failed"] and draw["named"] == []  # identical values: all ties


def test_a_real_drop_is_named_by_the_gate() -> None:
    base, worse = synthetic_record(60), synthetic_record(60, shift=0.2)
    subset = draw_subset([str(i) for i in base.results["id"]], 50, draw=1)
    draw = gate_draw(make_baseline(base), worse, subset, StatsConfig(seed=1, permutations=2000,
                                                                       bootstrap_samples=200))
    assert draw["failed"] and draw["named"] == ["score"] and draw["worse"] == ["score"]
    assert draw["delta"]["score"] == pytest.approx(-0.2)


def test_drop_best_hit_drops_exactly_the_first_hit_and_restores_the_registry(
    tmp_path: Path, embedder
) -> None:  # noqa: ANN001
    settings = build_settings(tmp_path)
    questions = [item.question for item in load_golden(TINY_GOLDEN)]
    plain = RAGPipeline(settings, embedder, ChromaStore(settings.store))
    plain.ingest([TINY_CORPUS], progress=False)
    reference = plain.retrieve_batch(questions, top_k=4, retriever="hybrid")
    original = RETRIEVERS["hybrid"]

    with drop_best_hit("hybrid"):
        assert RETRIEVERS["hybrid"] is not original
        faulty = RAGPipeline(settings, embedder, ChromaStore(settings.store))
        assert isinstance(faulty.retriever("hybrid"), DropBestHit)
        dropped = faulty.retrieve_batch(questions, top_k=3, retriever="hybrid")
        single = faulty.retrieve(questions[0], top_k=3, retriever="hybrid")
        assert RETRIEVERS["dense"] is not None and not isinstance(faulty.retriever("dense"), DropBestHit)
    assert RETRIEVERS["hybrid"] is original
    assert [[h.chunk_id for h in hits] for hits in dropped] == [[h.chunk_id for h in hits[1:4]]
                                                                for hits in reference]
    assert [h.chunk_id for h in single] == [h.chunk_id for h in reference[0][1:4]]
    unaffected = RAGPipeline(settings, embedder, ChromaStore(settings.store))
    assert [h.chunk_id for h in unaffected.retrieve(questions[0], top_k=4, retriever="hybrid")] == \
        [h.chunk_id for h in reference[0]]

    with pytest.raises(RuntimeError), drop_best_hit("hybrid"):
        raise RuntimeError("boom")
    assert RETRIEVERS["hybrid"] is original


def test_renamed_corpus_keeps_texts_and_maps_sources(tmp_path: Path) -> None:
    corpus, golden = tmp_path / "corpus", tmp_path / "golden.jsonl"
    corpus.mkdir()
    texts = {"111.txt": "First abstract.\n", "222.txt": "Second abstract.\n", "333.txt": "Third.\n"}
    for name, text in texts.items():
        (corpus / name).write_text(text, encoding="utf-8")
    items = [{"id": "a", "question": "q1?", "reference": "r1", "relevant_sources": ["222.txt"]},
             {"id": "b", "question": "q2?", "reference": "r2", "relevant_sources": ["111.txt", "333.txt"],
              "reference_contexts": ["First abstract."]}]
    golden.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")

    out_corpus, out_golden = tmp_path / "renamed", tmp_path / "renamed.jsonl"
    (out_corpus).mkdir()
    (out_corpus / "stale.txt").write_text("left over", encoding="utf-8")
    mapping = write_renamed_corpus(corpus, golden, out_corpus, out_golden)
    assert mapping == {name: renamed_source(name) for name in texts}
    assert (
        renamed_source("111.txt").startswith("doc-")
        and len(renamed_source("111.txt")) == len("doc-.txt") + 10
    )
    assert {p.name for p in out_corpus.iterdir()} == set(mapping.values())
    for old, new in mapping.items():
        assert (out_corpus / new).read_text(encoding="utf-8") == texts[old]

    renamed = load_golden(out_golden, known_sources=set(mapping.values()))
    assert [it.id for it in renamed] == ["a", "b"]
    assert renamed[0].relevant_sources == (mapping["222.txt"],)
    assert renamed[1].relevant_sources == (mapping["111.txt"], mapping["333.txt"])
    assert renamed[1].reference_contexts == ("First abstract.",) and renamed[1].question == "q2?"

    shuffled = write_shuffled_golden(golden, tmp_path / "shuffled.jsonl", seed=1)
    assert sorted(shuffled.read_text().splitlines()) == sorted(golden.read_text().splitlines())


def test_calibration_counts_false_alarms_and_power_and_renders_the_table() -> None:
    base = synthetic_record(60)
    records = {"baseline": base, **{name: base for name, kind, _ in VARIANTS if kind == "null"},
               **{name: synthetic_record(60, shift=0.2) for name, kind, _ in VARIANTS if kind == "injected"}}
    cal = calibrate(records, draws=2, subset=50,
                    base_config=StatsConfig(permutations=2000, bootstrap_samples=200))
    assert cal["null_gate_runs"] == 8 and cal["null_failures"] == 0
    by_name = {v["variant"]: v for v in cal["variants"]}
    assert by_name["top_k-1"]["failures"] == 2 and by_name["top_k-1"]["named"] == [("score", 2)]
    assert by_name["rerun"]["rate"] == 0.0 and by_name["rerun"]["ci95"][0] == 0.0
    assert [d["seed"] for d in cal["draws"]["rerun"]] == [1, 2]
    assert cal["null_differences"]["rerun"]["score"]["differ"] == 0

    timing = {name: {"label": name, "seconds": 1.0, "run": "x"} for name, _, _ in VARIANTS}
    timing["baseline"] = {"label": "baseline", "seconds": 2.0, "run": "x", "ingest_seconds": 1.0}
    meta = {"dataset_label": "synthetic", "date": "today", "git_commit": "abc", "cores": 2, "command": "test",
            "questions": 60, "corpus_files": 0, "draws": 2, "subset": 50, "stats": "test",
            "total_seconds": 3.0, "evaluation_seconds": 2.0, "calibration_seconds": 1.0}
    table = render_markdown({"meta": meta, "timing": timing, "calibration": cal})
    assert "**Null gate runs: 0 false alarm(s) in 8.**" in table
    assert "| top_k-1: (i) top_k 5 -> 1 | injected | 2 | 2 | 1.00 [" in table
