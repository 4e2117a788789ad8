"""The three outcomes of a primary metric (axiom/evaluation/outcomes.py) and the gate that acts only on a
regression: constructed data, gate_run with a baseline, and `axiom eval --fail-on-regression` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from axiom.errors import DatasetError, UsageError
from axiom.evaluation.gate import BASELINE_FORMAT, gate_run, load_baseline
from axiom.evaluation.outcomes import INCONCLUSIVE, NON_INFERIOR, REGRESSION
from axiom.evaluation.repeats import compare_with_repeats
from axiom.evaluation.verdict import WORSE, StatsConfig, compare_metrics, verdict_line

FAST = StatsConfig(permutations=2000, bootstrap_samples=500)


def _run(ids: list[str], values: np.ndarray) -> dict[str, float]:
    return dict(zip(ids, values.tolist(), strict=True))


def _one(a: np.ndarray, b: np.ndarray, name: str = "ndcg@10", **kwargs: object) -> dict:
    ids = [f"q{i}" for i in range(a.size)]
    return compare_metrics({name: _run(ids, a)}, {name: _run(ids, b)}, config=FAST, **kwargs)[name]


def test_the_three_outcomes_on_constructed_data() -> None:
    rng = np.random.default_rng(4)
    a = rng.uniform(0.3, 1.0, 250)
    # a clear drop, beyond the margin: 0.05 on average
    dropped = _one(a, a - rng.uniform(0.0, 0.1, 250))
    assert dropped.outcome == REGRESSION and dropped.verdict == WORSE
    assert dropped.p_drop_adj < 0.05 and dropped.drop_bound >= dropped.margin == 0.01
    # identical runs (a deterministic pipeline re-run): the bound of the drop is 0, inside the margin
    same = _one(a, a.copy())
    assert same.outcome == NON_INFERIOR and same.drop_bound == pytest.approx(0.0)
    # a handful of questions with noise: neither shown; what the set could detect is stated
    few = _one(a[:8], a[:8] + rng.normal(0, 0.1, 8))
    assert few.outcome == INCONCLUSIVE and few.mde is not None
    line = verdict_line({"ndcg@10": few})
    assert line.startswith("B: primary ndcg@10 inconclusive (") and f"MDE {few.mde:.3f}" in line
    assert "not within margin 0.01" in line


def test_significant_but_small_drops_and_wide_intervals() -> None:
    rng = np.random.default_rng(8)
    a = rng.uniform(0.3, 1.0, 400)
    # worse for sure, but by 0.002: inside the 0.01 margin -> non-inferior (min_delta is a margin, not a
    # threshold on the point estimate)
    small = _one(a, a - 0.002 + rng.normal(0, 0.004, 400))
    assert small.verdict == WORSE and small.outcome == NON_INFERIOR and small.drop_bound < 0.01
    # a drop of 0.015 in a noisy set: not significant, and the margin is inside the interval -> inconclusive
    swings = np.where(np.arange(100) % 2 == 0, 0.15, -0.15)  # mean 0, sd 0.15
    noisy = _one(a[:100], a[:100] - 0.015 + swings)
    assert noisy.outcome == INCONCLUSIVE and noisy.drop_bound > 0.01
    # the margin comes from the baseline: 0.2 makes a 0.05 drop non-inferior
    wide = _one(a, a - rng.uniform(0.0, 0.1, 400), margins={"ndcg@10": 0.2})
    assert wide.verdict == WORSE and wide.outcome == NON_INFERIOR and wide.margin == 0.2


def test_the_run_term_widens_a_primarys_bound() -> None:
    rng = np.random.default_rng(9)
    ids = [f"q{i}" for i in range(120)]
    a = rng.uniform(0.3, 1.0, 120)
    b = a - 0.004 + rng.normal(0, 0.01, 120)
    per_a, per_b = {"groundedness": _run(ids, a)}, {"groundedness": _run(ids, b)}
    plain = compare_metrics(per_a, per_b, config=FAST)["groundedness"]
    shifts = [-0.02, 0.0, 0.02]  # the baseline's repetitions move all questions together: run-level noise
    reps_a = {"groundedness": {q: [v + s for s in shifts] for q, v in zip(ids, a, strict=True)}}
    repeated = compare_with_repeats(per_a, per_b, config=FAST, reps_a=reps_a, reps_b={})["groundedness"]
    assert repeated.run_variance > 0 and repeated.drop_bound > plain.drop_bound + 0.005
    assert plain.outcome == NON_INFERIOR and repeated.outcome == INCONCLUSIVE


def _baseline(ids: list[str], values: dict[str, np.ndarray], **extra: object) -> dict:
    return {"format": BASELINE_FORMAT, "min_delta": 0.01, **extra,
            "metrics": {m: {"mean": float(v.mean()), "n": len(ids), "min_delta": 0.01,
                            "per_question": _run(ids, v)} for m, v in values.items()}}


def _gate(ids: list[str], baseline: dict, values: dict[str, np.ndarray]):  # noqa: ANN202
    results = pd.DataFrame({"id": ids, **values})
    summary = {m: {"mean": float(v.mean()), "n": len(ids)} for m, v in values.items()}
    return gate_run(results, summary, baseline, config=FAST)


def test_the_gate_fails_only_on_a_regression() -> None:
    rng = np.random.default_rng(12)
    ids = [f"q{i}" for i in range(200)]
    base = {"ndcg@10": rng.uniform(0.3, 1.0, 200), "semantic_similarity": rng.uniform(0.3, 1.0, 200),
            "chrf": rng.uniform(0.2, 0.8, 200)}
    baseline = _baseline(ids, base)
    # a secondary metric clearly worse, the primaries unchanged: reported, not gated
    secondary_worse = {**base, "chrf": base["chrf"] - 0.1}
    gate = _gate(ids, baseline, secondary_worse)
    assert gate.passed, gate.failures
    assert gate.statistics["chrf"].verdict == WORSE and gate.statistics["chrf"].role == "secondary"
    assert "worse after the correction over the secondary metrics (reported, not gated): chrf" in gate.notes
    assert gate.family["outcomes"] == {"ndcg@10": NON_INFERIOR, "semantic_similarity": NON_INFERIOR}
    assert "primaries: ndcg@10 non-inferior, semantic_similarity non-inferior" in gate.text()
    # a primary with a noisy small drop: inconclusive, passes
    noisy = {**base, "semantic_similarity": base["semantic_similarity"] - 0.01 + rng.normal(0, 0.2, 200)}
    gate = _gate(ids, baseline, noisy)
    assert gate.passed and gate.family["outcomes"]["semantic_similarity"] == INCONCLUSIVE
    # a primary that dropped beyond its margin: the one failure
    dropped = {**base, "ndcg@10": base["ndcg@10"] - rng.uniform(0.0, 0.1, 200)}
    gate = _gate(ids, baseline, dropped)
    assert not gate.passed and len(gate.failures) == 1
    assert gate.failures[0].startswith("ndcg@10: regression against the baseline (primary)")
    assert gate.verdict.startswith("this run: primary ndcg@10 regression (")
    # the baseline declares its primaries: chrf alone is primary now, and its drop fails the gate
    declared = _gate(ids, _baseline(ids, base, primary=["chrf"]), secondary_worse)
    assert declared.family["primaries"] == ["chrf"] and not declared.passed
    assert declared.statistics["ndcg@10"].role == "secondary"


def test_baselines_declare_their_primaries(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(10)]
    values = {"ndcg@10": np.linspace(0, 1, 10), "chrf": np.linspace(0.1, 0.9, 10)}
    older = _baseline(ids, values) | {"format": 2}
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert "primary" not in load_baseline(tmp_path / "older.json")  # format 2 loads: the default primaries
    (tmp_path / "bad.json").write_text(json.dumps(_baseline(ids, values, primary=["ndcg@10", "mrr@10"])))
    with pytest.raises(DatasetError) as info:
        load_baseline(tmp_path / "bad.json")
    assert info.value.problems == ["primary: 'mrr@10' is not one of the baseline's metrics"]
    (tmp_path / "bad.json").write_text(json.dumps(_baseline(ids, values, primary="ndcg@10")))
    with pytest.raises(DatasetError) as info:
        load_baseline(tmp_path / "bad.json")
    assert info.value.problems == ["primary: expected a non-empty list of metric names"]


def _write_set(root: Path, n: int = 40) -> dict[str, Path]:
    """A golden set of n made-up facts, the responses of a system that answers each from the right document,
    and of one that ranks the right document second and answers nothing."""
    colours = ["red", "blue", "green", "amber", "violet", "silver", "orange", "teal"]
    things = ["lantern", "bridge", "tower", "ferry", "garden", "market", "library", "harbour", "mill",
              "chapel"]
    golden, good, bad = [], [], []
    for i in range(n):
        colour, thing = colours[i % len(colours)], things[i % len(things)]
        reference = (
            f"The {colour} {thing} number {i} is {100 + 7 * i} metres tall and was painted in {1800 + i}."
        )
        golden.append({"id": f"g{i:02d}", "question": f"How tall is the {colour} {thing} number {i}?",
                       "reference": reference, "relevant_sources": [f"doc{i}.md"]})
        good.append({"id": f"g{i:02d}", "answer": reference, "contexts": [reference],
                     "retrieved": [f"doc{i}.md", f"doc{i + 1}.md"]})
        bad.append({"id": f"g{i:02d}", "answer": "I cannot tell from the documents.",
                    "contexts": [f"Nothing about item {i}."], "retrieved": [f"doc{i + 1}.md", f"doc{i}.md"]})
    files = {}
    for name, lines in (("golden", golden), ("good", good), ("bad", bad)):
        files[name] = root / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return files


@pytest.mark.slow  # three whole evaluations (the embedding model scores 40 answers each)
@pytest.mark.usefixtures("restore_logging")
def test_axiom_eval_exits_3_only_on_a_regression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from axiom.cli import main
    from axiom.evaluation.gate import make_baseline
    from axiom.evaluation.run_folder import load_run
    from tests.evaluation.helpers import clean_env, write_config

    clean_env(monkeypatch)
    config, files = write_config(tmp_path), _write_set(tmp_path)
    baseline = tmp_path / "baseline.json"
    common = ["--config", str(config), "eval", "--dataset", str(files["golden"]), "--no-judge", "--json"]
    assert main(common + ["--responses", str(files["good"]), "--name", "good", "--save-baseline",
                          str(baseline)]) == 0
    good_run = json.loads(capsys.readouterr().out)["run"]
    saved = json.loads(baseline.read_text())
    assert saved["format"] == 3 and saved["primary"] == ["ndcg@10", "groundedness"]  # no corpus: no evidence

    # the same answers again: no regression (ndcg@10 is 1.0 on every question: a 0/1 constant whose Tango
    # bound at n 40 is wider than the margin, inconclusive; groundedness non-inferior), exit 0
    gated = common + ["--baseline", str(baseline), "--fail-on-regression"]
    assert main(gated + ["--responses", str(files["good"]), "--name", "same"]) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["passed"] and gate["family"]["outcomes"] == {"ndcg@10": INCONCLUSIVE,
                                                             "groundedness": NON_INFERIOR}
    assert gate["verdict"].startswith("this run: primary ndcg@10 inconclusive (")

    # the right document ranked second, no answer: ndcg@10 regressed, exit 3 naming it (and only it)
    assert main(gated + ["--responses", str(files["bad"]), "--name", "bad"]) == 3
    captured = capsys.readouterr()
    gate = json.loads(captured.out)["gate"]
    assert gate["family"]["outcomes"]["ndcg@10"] == REGRESSION and len(gate["failures"]) == 1
    assert gate["failures"][0].startswith("ndcg@10: regression against the baseline (primary)")
    bad_run = next(Path(good_run).parent.glob("*-bad"))
    assert json.loads((bad_run / "metrics.json").read_text())["gate"]["passed"] is False

    # compare carries the family; --primary declares other primaries
    assert main(["--config", str(config), "compare", good_run, str(bad_run), "--json", "--primary",
                 "chrf"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["family"]["primaries"] == ["chrf"] and result["family"]["outcomes"] == {"chrf": REGRESSION}
    assert result["verdict"].startswith("B: primary chrf regression (")
    assert main(["--config", str(config), "compare", good_run, good_run, "--primary", "nope"]) == 2
    assert "--primary nope: not a metric both runs measured" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--primary evidence_recall@10: not measured in this run"):
        make_baseline(load_run(good_run), primaries=["evidence_recall@10"])


@pytest.mark.parametrize("name", ["sample", "pubmedqa"])
def test_the_committed_baselines_pass_an_identical_run(name: str) -> None:
    """What `make eval` does with the deterministic offline pipeline: the same per-question values as the
    committed baseline (grouped as the golden items are) pass the gate, each declared primary non-inferior or,
    where the set cannot show it, inconclusive, never a regression."""
    from axiom.evaluation.datasets import load_golden
    from tests.evaluation.helpers import REPO

    baseline = load_baseline(REPO / "evaluation" / "baselines" / f"{name}.json")
    assert baseline["format"] == 3 and baseline["primary"] == ["ndcg@10", "evidence_recall@10",
                                                               "groundedness"]
    groups = {item.id: item.cluster for item in load_golden(REPO / baseline["dataset"]["path"])}
    ids = list(baseline["metrics"]["ndcg@10"]["per_question"])
    values = {m: np.asarray([e["per_question"].get(i, np.nan) for i in ids])
              for m, e in baseline["metrics"].items()}
    results = pd.DataFrame({"id": ids, "group": [groups[i] for i in ids], **values})
    summary = {m: {"mean": e["mean"], "n": e["n"]} for m, e in baseline["metrics"].items()}
    gate = gate_run(results, summary, baseline, config=StatsConfig())
    assert gate.passed, gate.failures
    outcomes = gate.family["outcomes"]
    assert list(outcomes) == baseline["primary"] and REGRESSION not in outcomes.values()
    assert outcomes["ndcg@10"] == outcomes["groundedness"] == NON_INFERIOR
    # the sample's evidence recall@10 is 1.0 on all 52 questions: a 0/1 constant whose one-sided bound (Tango)
    # is about 0.05, wider than the 0.01 margin; PubMedQA's 250 questions and graded values show it
    assert outcomes["evidence_recall@10"] == (INCONCLUSIVE if name == "sample" else NON_INFERIOR)
    assert set(gate.family["aliases"]) == {"precision@1", "hit_rate@1", "map@10"}
    # reported per primary: PubMedQA's questions are about one abstract each (no clusters: 1); the sample's 52
    # fall in 11 documents, and identical runs leave the differences no variance to inflate (None)
    expected = None if name == "sample" else 1.0
    assert gate.family["design_effects"] == {m: expected for m in baseline["primary"]}
