"""The typed run documents (axiom/evaluation/run_documents.py): a manifest, a metrics.json and a comparison
read back from their JSON give the same dict, key order included; older or partial manifests and metrics.json
are read tolerantly (a missing key reads as None or an empty mapping, an unknown one is kept); the readers use
attributes. (A real run folder's manifest and metrics.json round-trip in tests/evaluation/test_runs.py:
test_manifest_round_trips, test_metrics_round_trips; a repeated, gated one's metrics.json in
tests/evaluation/test_run_repeats.py.)"""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from axiom.errors import EvaluationError
from axiom.evaluation.run_documents import (
    Change,
    Comparison,
    DatasetInfo,
    GeneratorInfo,
    GitState,
    Manifest,
    MetricsDocument,
    QuestionChange,
    Repeats,
    Unanswered,
)
from axiom.evaluation.run_folder import load_run, read_manifest, read_metrics
from tests.evaluation.helpers import keys_in_order, verdict_entry


def test_an_older_manifest_reads_with_defaults_and_keeps_unknown_keys() -> None:
    old = {"name": "old", "started": "2025-01-01T00:00:00.000000Z",
           "dataset": {"path": "g.jsonl", "sha256": "ab", "items": 3, "origin": "hand-made"},
           "generator": {"name": "extractive"}, "git": {"commit": "c0ffee"}, "retired_key": [1, 2]}
    manifest = Manifest.from_dict(old)
    assert manifest.name == "old" and manifest.dataset == DatasetInfo(path="g.jsonl", sha256="ab", items=3,
                                                                      extra={"origin": "hand-made"})
    assert manifest.generator == GeneratorInfo(name="extractive")
    assert manifest.git == GitState(commit="c0ffee")
    assert manifest.source is None and manifest.source_kind == "pipeline"  # before `source`: the pipeline
    assert manifest.settings == {} and manifest.index is None and manifest.extra == {"retired_key": [1, 2]}
    out = manifest.to_dict()
    # what was there comes back unchanged; a missing key is written with its default; the unknown one last
    kept = {k: v for k, v in old.items() if k not in ("generator", "git")}
    assert {k: out[k] for k in kept} == kept
    assert out["generator"] == {"name": "extractive", "model": None}
    assert out["git"] == {"commit": "c0ffee", "dirty": None}
    assert list(out)[-1] == "retired_key" and "baseline" not in out and "timings" not in out
    assert Manifest.from_dict(out) == manifest  # stable from then on


def test_attributes_and_frozenness() -> None:
    manifest = Manifest.from_dict({"name": "n", "source": {"kind": "endpoint", "url": "http://x"},
                                   "ingest": {"seconds": 1.5}})
    assert manifest.source_kind == "endpoint" and manifest.ingest == {"seconds": 1.5}
    assert Manifest.from_dict({"name": "old"}).source_kind == "pipeline"  # runs older than the source key
    assert not hasattr(manifest, "get") and not hasattr(manifest, "__getitem__")  # no dict view: attributes
    with pytest.raises(FrozenInstanceError):
        manifest.name = "other"  # type: ignore[misc]


def test_read_manifest_and_a_manifest_that_is_not_an_object(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "x", "started": "2025"}')
    assert read_manifest(folder) == Manifest(name="x", started="2025")
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_manifest(folder)
    for name in ("metrics.json", "results.parquet"):
        (folder / name).write_text("{}")
    with pytest.raises(EvaluationError, match="not a JSON object"):
        load_run(folder)


def test_an_older_metrics_document_reads_with_defaults_and_keeps_unknown_keys(tmp_path: Path) -> None:
    old = {"metrics": {"ndcg@10": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 6, "unmeasured": 0,
                                   "not_applicable": 0}},
           "latency": {"question": {"n": 6, "p50_ms": 1.0}}, "degraded_answers": 0,
           "repeats": {"n": 2, "spread": {"chrf": 0.1}, "origin": "hand-made"}, "retired_key": [1, 2]}
    doc = MetricsDocument.from_dict(old)
    # keys older runs lack (confidence, usage, unanswered, gate): an empty mapping or None
    assert doc.confidence == {} and doc.usage == {} and doc.unanswered is None and doc.gate is None
    assert doc.repeats == Repeats(n=2, spread={"chrf": 0.1}, extra={"origin": "hand-made"})
    assert doc.repeat_count == 2 and doc.spread == {"chrf": 0.1} and doc.extra == {"retired_key": [1, 2]}
    out = doc.to_dict()
    assert {k: out[k] for k in ("metrics", "latency", "degraded_answers")} == {
        k: old[k] for k in ("metrics", "latency", "degraded_answers")}
    assert out["unanswered"] is None and out["confidence"] == {} and "gate" not in out
    assert out["repeats"] == {"n": 2, "spread": {"chrf": 0.1}, "means": {}, "run_variance": {}, "table": None,
                              "method": None, "origin": "hand-made"}
    assert list(out)[-1] == "retired_key" and MetricsDocument.from_dict(out) == doc  # stable from then on
    oldest = MetricsDocument.from_dict({"metrics": {}})  # before repeats: one run, no spread
    assert oldest.repeat_count == 1 and oldest.spread == {} and oldest.repeats is None
    # a run folder that old loads, its metrics by attribute
    folder = tmp_path / "old-run"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(old))
    assert read_metrics(folder) == doc
    (folder / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="metrics.json is not a JSON object"):
        read_metrics(folder)


def test_a_metrics_document_with_a_gate_writes_it_last_and_has_no_dict_view() -> None:
    gate = {"baseline": "b.json", "passed": True, "verdict": "no change", "failures": []}
    doc = MetricsDocument(metrics={}, unanswered=Unanswered(n=1, reasons={"timeout": 1}), gate=gate)
    out = doc.to_dict()
    assert list(out) == ["metrics", "confidence", "latency", "usage", "degraded_answers", "unanswered",
                         "repeats", "gate"]
    assert out["unanswered"] == {"n": 1, "reasons": {"timeout": 1}} and out["gate"] == gate
    assert MetricsDocument.from_dict(json.loads(json.dumps(out))) == doc
    assert not hasattr(doc, "get") and not hasattr(doc, "__getitem__")  # no dict view: attributes
    assert not hasattr(doc.unanswered, "get") and not hasattr(Repeats(), "__getitem__")
    with pytest.raises(FrozenInstanceError):
        doc.gate = None  # type: ignore[misc]


def _comparison(**extra: object) -> Comparison:
    data = {"a": "runs/a", "b": "runs/b", "questions_a": 3, "questions_b": 3, "common_questions": 3,
            "verdict": "B: no change", "noise_note": None, "family": {"primaries": ["ndcg@10"]},
            "test": "paired sign-flip test", "config": {"alpha": 0.05},
            "metrics": {"ndcg@10": verdict_entry(n=3, a=0.5, b=0.6, delta=0.1).to_dict()},
            "changed_most": [{"id": "q1", "question": "why?", "total_abs_change": 0.5, "answer_changed": True,
                              "changes": {"ndcg@10": {"a": 0.5, "b": 1.0, "delta": 0.5}}}],
            "unchanged_questions": 2, "differences": ["retrieval.top_k: 5 -> 1"], "not_applicable": {}}
    return Comparison.from_dict(data | extra)


def test_a_comparison_round_trips() -> None:
    comparison = _comparison()
    assert comparison.changed_most == [QuestionChange(id="q1", question="why?", total_abs_change=0.5,
                                                      answer_changed=True,
                                                      changes={"ndcg@10": Change(a=0.5, b=1.0, delta=0.5)})]
    data = comparison.to_dict()
    assert "prediction_powered" not in data  # only with `axiom compare --labels`
    assert Comparison.from_dict(json.loads(json.dumps(data))) == comparison
    labelled = _comparison(prediction_powered=[{"label": "good", "metric": "ndcg@10", "text": "+0.1"}])
    again = labelled.to_dict()
    assert list(again)[-1] == "prediction_powered" and Comparison.from_dict(again) == labelled
    assert keys_in_order(Comparison.from_dict(again).to_dict()) == keys_in_order(again)


def _tiny_run(root: Path, name: str, columns: dict[str, object], repeats: object = None) -> Path:
    import numpy as np
    import pandas as pd

    from axiom.evaluation.run_folder import utc_now, write_run_folder

    ids = [f"q{i}" for i in range(30)]
    results = pd.DataFrame({"id": ids, "question": ids, "answer": ["a"] * 30, **columns})
    doc = MetricsDocument(metrics={m: {"mean": float(np.nanmean(np.asarray(v, dtype=float))), "n": 30}
                                   for m, v in columns.items()})
    return write_run_folder(root / "runs", name, utc_now(), Manifest(name=name), doc, results,
                            repeats=repeats)


def test_real_verdict_entries_round_trip(tmp_path: Path) -> None:
    """The entries of a comparison of two real tiny runs (repeated: run term; primaries with outcomes, an
    alias, a constant, a secondary): from_dict(to_dict) gives the same entry,
    the JSON written is the same dict with the same keys in the same order, and what is written only when set
    (the primaries' margin, bound and outcome, the alias's alias_of) is so."""
    import numpy as np
    import pandas as pd

    from axiom.evaluation.compare import compare_runs
    from axiom.evaluation.verdict import StatsConfig
    from axiom.evaluation.verdict_entry import VerdictEntry

    rng = np.random.default_rng(3)
    folders = []
    for name, shift in (("a", 0.0), ("b", -0.1)):
        ndcg = np.clip(rng.beta(2, 2, 30) + shift, 0, 1)
        reps = np.stack([np.clip(ndcg + rng.normal(0, 0.05) + rng.normal(0, 0.02, 30), 0, 1)
                         for _ in range(3)])
        table = pd.DataFrame({"id": [f"q{i}" for i in range(30)] * 3, "repeat": np.repeat([0, 1, 2], 30),
                              "answer": ["a"] * 90, "ndcg@10": reps.reshape(-1)})
        columns = {"ndcg@10": reps.mean(axis=0), "recall@5": reps.mean(axis=0), "constant": np.ones(30),
                   "mrr": rng.beta(2, 3, 30)}
        folders.append(_tiny_run(tmp_path, name, columns, repeats=table))
    comparison = compare_runs(load_run(folders[0]), load_run(folders[1]),
                              config=StatsConfig(permutations=2000, bootstrap_samples=500))
    entries = comparison.metrics
    assert all(isinstance(e, VerdictEntry) for e in entries.values())
    assert entries["ndcg@10"].run_variance and entries["ndcg@10"].outcome is not None
    assert entries["recall@5"].alias_of == "ndcg@10" and entries["constant"].role == "constant"
    for entry in entries.values():
        written = json.loads(json.dumps(entry.to_dict()))
        assert list(written) == list(entry.to_dict()) and VerdictEntry.from_dict(written) == entry
    ndcg, mrr = comparison.to_dict()["metrics"]["ndcg@10"], comparison.to_dict()["metrics"]["mrr"]
    assert list(ndcg)[18:] == ["spread", "unpaired", "margin", "drop_bound", "p_drop", "p_drop_adj", "role",
                               "correction", "mde_power", "mde_spread", "verdict", "outcome", "repeats",
                               "run_variance"]
    assert ndcg["repeats"] == [3, 3] and ndcg["run_variance"] > 0
    assert "margin" not in mrr and "outcome" not in mrr and "alias_of" not in mrr and mrr["repeats"] == [1, 1]
    alias = comparison.to_dict()["metrics"]["recall@5"]
    assert list(alias).index("alias_of") == list(alias).index("role") + 1
    assert keys_in_order(Comparison.from_dict(json.loads(json.dumps(comparison.to_dict()))).to_dict()) == \
        keys_in_order(comparison.to_dict())
