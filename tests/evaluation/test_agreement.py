"""Agreement of metrics with human labels: numbers on score tables with a known answer, the numpy fast paths
against scikit-learn, the inputs' errors, and the `axiom metrics agreement` / `axiom compare --labels`
faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score, roc_auc_score

from axiom.cli import main
from axiom.errors import DatasetError, UsageError
from axiom.evaluation.agreement import (
    agreement_report,
    best_f1_threshold,
    confusion_stats,
    metric_agreement,
    rank_auc,
    roc_points,
    system_ranking,
)
from axiom.evaluation.agreement_data import load_labels, load_systems, system_names
from axiom.evaluation.run_documents import Manifest, MetricsDocument
from axiom.evaluation.run_folder import utc_now, write_run_folder
from axiom.evaluation.stats import cluster_resamples
from tests.evaluation.helpers import clean_env, write_config


def _table(labels: np.ndarray, scores: np.ndarray, systems: int = 1) -> pd.DataFrame:
    n = labels.size // systems
    return pd.DataFrame({"system": np.repeat([f"s{k}" for k in range(systems)], n),
                         "id": [f"q{i}" for i in range(n)] * systems, "metric": scores, "label": labels})


def test_numpy_fast_paths_equal_scikit_learn():
    rng = np.random.default_rng(1)
    for _ in range(30):
        y = (rng.random(80) < rng.uniform(0.2, 0.8)).astype(int)
        s = np.round(rng.random(80) + 0.3 * y, 1)  # rounding makes ties
        decided = (s >= np.median(s)).astype(int)
        assert rank_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        got = confusion_stats(y, decided)
        assert got["precision"] == pytest.approx(precision_score(y, decided, zero_division=0.0), abs=1e-12)
        assert got["recall"] == pytest.approx(recall_score(y, decided, zero_division=0.0), abs=1e-12)
        assert got["f1"] == pytest.approx(f1_score(y, decided, zero_division=0.0), abs=1e-12)
        assert got["kappa"] == pytest.approx(cohen_kappa_score(y, decided), abs=1e-12)


def test_a_metric_equal_to_the_label_agrees_perfectly_and_noise_does_not():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.4).astype(float)
    table = _table(y, y.copy())
    table["noise"] = rng.random(300)
    table["inverse"] = 1.0 - y
    out = {e["metric"]: e for e in metric_agreement(table, ["metric", "noise", "inverse"], ["label"],
                                                    ["label"],
                                                    samples=200, seed=0)}
    perfect = out["metric"]
    assert perfect["kind"] == "binary" and perfect["threshold"] == 1.0
    for stat in ("roc_auc", "f1", "precision", "recall", "kappa"):
        assert perfect[stat]["value"] == pytest.approx(1.0)
        assert perfect[stat]["ci_low"] == pytest.approx(1.0)
    noise = out["noise"]["roc_auc"]
    assert noise["ci_low"] < 0.5 < noise["ci_high"] and noise["ci_high"] - noise["ci_low"] < 0.2
    assert out["inverse"]["roc_auc"]["value"] == pytest.approx(0.0)


def test_best_f1_threshold_separates_the_classes():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert best_f1_threshold(y, s) == 0.7


def test_graded_labels_get_rank_correlations():
    rng = np.random.default_rng(3)
    spans = rng.integers(0, 5, 200).astype(float)
    table = _table(spans, -2.0 * spans)
    (entry,) = metric_agreement(table, ["metric"], ["label"], [], samples=200, seed=0)
    assert entry["kind"] == "graded"
    assert entry["spearman"]["value"] == pytest.approx(-1.0, abs=1e-9)
    assert entry["kendall"]["value"] == pytest.approx(-1.0, abs=1e-9)


def test_one_valued_label_is_a_note_not_an_error():
    table = _table(np.ones(20), np.linspace(0, 1, 20))
    (entry,) = metric_agreement(table, ["metric"], ["label"], ["label"], samples=100, seed=0)
    assert "one value" in entry["note"] and "roc_auc" not in entry


def test_cluster_resamples_keep_a_questions_rows_together_and_are_seeded():
    clusters = ["a", "a", "b", "c", "c", "c"]
    draws = cluster_resamples(clusters, samples=50, seed=4, label="x")
    for rows in draws:
        picked = [clusters[i] for i in rows]
        for name, size in (("a", 2), ("b", 1), ("c", 3)):
            assert picked.count(name) % size == 0
    again = cluster_resamples(clusters, samples=50, seed=4, label="x")
    assert all(np.array_equal(x, y) for x, y in zip(draws, again, strict=True))


def test_system_ranking_tau_against_people():
    rows = []
    for k, (metric_mean, human_mean) in enumerate([(0.2, 0.1), (0.5, 0.6), (0.9, 0.8)]):
        rows += [{"system": f"s{k}", "id": f"q{i}", "metric": metric_mean,
                  "label": float(i < 10 * human_mean),
                  "reversed": 1.0 - metric_mean} for i in range(10)]
    table = pd.DataFrame(rows)
    ranking = {r["metric"]: r for r in system_ranking(table, ["metric", "reversed"], ["label"])}
    assert ranking["metric"]["kendall_tau"] == pytest.approx(1.0)
    assert ranking["metric"]["by_label"] == ["s2", "s1", "s0"]
    assert ranking["reversed"]["kendall_tau"] == pytest.approx(-1.0)


def test_roc_points_run_from_0_to_1():
    table = _table(np.array([0, 1, 0, 1.0]), np.array([0.1, 0.9, 0.2, 0.8]))
    points = roc_points(table, "metric", "label")
    assert points["auc"] == 1.0 and points["fpr"][0] == 0.0 and points["tpr"][-1] == 1.0


def test_labels_file_errors_name_the_line(tmp_path: Path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "q1", "ok": true}\nnot json\n{"ok": false}\n{"id": "q1", "ok": true}\n')
    with pytest.raises(DatasetError) as err:
        load_labels(path)
    text = str(err.value)
    assert (
        "line 2: not valid JSON" in text and "line 3: `id` is missing" in text and "line 4: a second" in text
    )
    path.write_text('{"id": "q1", "grade": "high"}\n')
    with pytest.raises(DatasetError, match="label 'grade' is str, expected a boolean or a number"):
        load_labels(path, ["grade"])
    with pytest.raises(UsageError, match="expected NAME=RUN"):
        system_names(["no-equals-sign"])


def _write_scores(tmp_path: Path, rng: np.random.Generator,
                  n: int = 60) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """A score table of two systems (model column) where `good` follows the label and `bad` is noise, and a
    labels file that labels the first 40 questions of each system."""
    truth = {"sys-a": (rng.random(n) < 0.4).astype(float), "sys-b": (rng.random(n) < 0.8).astype(float)}
    scores, labels = tmp_path / "scores.jsonl", tmp_path / "labels.jsonl"
    with scores.open("w") as f, labels.open("w") as g:
        for model, y in truth.items():
            for i in range(n):
                f.write(json.dumps({"id": f"q{i}", "model": model, "good": y[i] * 0.8 + rng.random() * 0.2,
                                    "bad": rng.random()}) + "\n")
                if i < 40:
                    g.write(json.dumps({"id": f"q{i}", "model": model, "faithful": bool(y[i]),
                                        "spans": 2 - y[i]})
                            + "\n")
    return scores, labels, truth


def test_agreement_report_on_a_score_table(tmp_path: Path):
    scores, labels, truth = _write_scores(tmp_path, np.random.default_rng(5))
    result, table = agreement_report([str(scores)], str(labels), samples=200)
    assert result["systems"] == ["sys-a", "sys-b"] and result["rows"] == 80 and len(table) == 80
    by_metric = {e["metric"]: e for e in result["agreement"]}
    assert by_metric["good"]["roc_auc"]["value"] == 1.0 and by_metric["bad"]["roc_auc"]["value"] < 0.8
    (good_rank,) = [r for r in result["ranking"] if r["metric"] == "good"]
    assert good_rank["kendall_tau"] == pytest.approx(1.0)
    estimates = [e for e in result["estimates"] if e["metric"] == "good"]
    assert {e["system"] for e in estimates} == {"sys-a", "sys-b"}
    for e in estimates:
        assert e["labelled"] == 40 and e["scored"] == 60
        assert e["ci_low"] <= truth[e["system"]].mean() <= e["ci_high"]


def _run(root: Path, name: str, ids: list[str], metric: np.ndarray) -> Path:
    results = pd.DataFrame({"id": ids, "question": [f"question {i}" for i in ids], "answer": ["a"] * len(ids),
                            "good": metric})
    doc = MetricsDocument(metrics={"good": {"mean": float(metric.mean()), "n": len(ids), "ci_low": 0.0,
                                            "ci_high": 1.0, "unmeasured": 0, "not_applicable": 0}})
    return write_run_folder(root, name, utc_now(), Manifest(name=name), doc, results)


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_agreement_and_compare_with_labels(tmp_path: Path, capsys, monkeypatch):
    clean_env(monkeypatch)
    config = write_config(tmp_path / "cfg")
    rng = np.random.default_rng(6)
    ids = [f"q{i}" for i in range(80)]
    human = {"small": (rng.random(80) < 0.3).astype(float), "large": (rng.random(80) < 0.9).astype(float)}
    runs = {name: _run(tmp_path / "runs", f"run-{name}", ids, y * 0.7 + rng.random(80) * 0.3)
            for name, y in human.items()}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": q, "model": name, "faithful": bool(y[i])}) + "\n"
                              for name, y in human.items() for i, q in enumerate(ids[:50])))
    systems = [f"--system={name}={path}" for name, path in runs.items()]

    code, out, err = cli(capsys, "--config", config, "metrics", "agreement", runs["small"], runs["large"],
                         "--labels", labels, *systems, "--samples", 200, "--json")
    assert code == 0, err
    result = json.loads(out)
    (entry,) = result["agreement"]
    assert entry["metric"] == "good" and entry["n"] == 100 and entry["roc_auc"]["value"] > 0.9
    (ranking,) = result["ranking"]
    assert ranking["by_label"] == ["large", "small"] and ranking["resampling"] == "questions"
    assert ranking["tau_ci_low"] <= ranking["kendall_tau"] <= ranking["tau_ci_high"]
    (pair,) = ranking["adjacent_pairs"]
    assert (pair["higher"], pair["lower"]) == ("large", "small") and pair["p_people"] > 0.99

    code, out, err = cli(capsys, "--config", config, "compare", runs["small"], runs["large"], "--labels",
                         labels,
                         *systems)
    assert code == 0, err
    assert "human-judged difference B - A (prediction-powered, 95% CI):" in out
    code, out, _ = cli(capsys, "--config", config, "compare", runs["small"], runs["large"], "--labels",
                       labels,
                       *systems, "--json")
    (ppi,) = json.loads(out)["prediction_powered"]
    true_difference = float((human["large"] - human["small"]).mean())
    assert ppi["labelled"] == 50 and ppi["scored"] == 80
    assert ppi["ci_low"] <= true_difference <= ppi["ci_high"]

    code, _, err = cli(capsys, "--config", config, "compare", runs["small"], runs["large"], "--labels",
                       labels)
    assert (
        code == 2 and "no label in" in err and "'run-small' or 'run-large'" in err and "large, small" in err
    )

    code, _, err = cli(capsys, "--config", config, "metrics", "agreement", runs["small"], "--labels", labels)
    assert code == 2 and "system 'run-small' has no labelled question" in err and "--system NAME=RUN" in err
    assert "Traceback" not in err


def test_load_systems_refuses_two_inputs_of_one_name(tmp_path: Path):
    rng = np.random.default_rng(7)
    scores, _, _ = _write_scores(tmp_path, rng)
    with pytest.raises(UsageError, match="two inputs are both system 'sys-a'"):
        load_systems([str(scores), str(scores)])
    with pytest.raises(UsageError, match="neither a run folder nor a score table"):
        load_systems([str(tmp_path / "missing")])
