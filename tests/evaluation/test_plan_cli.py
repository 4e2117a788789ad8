"""`axiom plan`, in process: how many questions (and repeats) a comparison needs, from a run folder as the
pilot."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from axiom.cli import main
from axiom.evaluation import sensitivity
from axiom.evaluation.run_documents import Manifest, MetricsDocument
from axiom.evaluation.run_folder import utc_now, write_run_folder
from tests.evaluation.helpers import clean_env, write_config

N = 200


def _run(root: Path, name: str, columns: dict[str, np.ndarray], repeats: pd.DataFrame | None = None) -> Path:
    ids = [f"q{i}" for i in range(N)]
    results = pd.DataFrame({"id": ids, "question": [f"question {i}" for i in ids], "answer": ["a"] * N,
                            **columns})
    doc = MetricsDocument(metrics={m: {"mean": float(np.mean(v)), "n": N, "ci_low": 0.0, "ci_high": 1.0,
                                       "unmeasured": 0, "not_applicable": 0}
                                   for m, v in columns.items() if m != "group"})
    return write_run_folder(root / "runs", name, utc_now(), Manifest(name=name), doc, results,
                            repeats=repeats)


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    clean_env(monkeypatch)
    rng = np.random.default_rng(4)
    columns = {"ndcg@10": rng.beta(2, 2, N), "recall@1": (rng.random(N) < 0.9).astype(float),
               "constant": np.ones(N)}
    return {"config": write_config(tmp_path), "run": _run(tmp_path, "pilot", columns), "tmp": tmp_path,
            "columns": columns}


def _plan(setup: dict, capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["--config", str(setup["config"]), "plan", *[str(a) for a in argv]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_continuous_metric(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A run made once: differences by the planning assumption (sd of a difference = the metric's sd), all 3
    metrics in the family by default; at the count printed the simulated sign-flip test's MDE is the effect
    asked for, and 5% fewer questions do not reach it."""
    code, out, err = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.05, "--from", setup["run"])
    assert code == 0, err
    assert "plan: a drop of 0.05 in ndcg@10 with 80% power, paired sign-flip test at alpha 0.05 / 3" in out
    assert "run-to-run noise is not measured" in out
    needed = int(re.search(r"questions needed: ([\d,]+) \(this run has 200\)", out).group(1).replace(",", ""))
    sd = float(np.std(setup["columns"]["ndcg@10"], ddof=1))
    z = NormalDist().inv_cdf(1 - 0.05 / 6) + NormalDist().inv_cdf(0.8)
    # more than the normal-theory count of a change spread over every question: the plan is for questions
    # losing their value (sensitivity.py), the harder change to see
    assert (z * sd / 0.05) ** 2 < needed < 2 * (z * sd / 0.05) ** 2
    pilot = sensitivity.pilot_of(setup["columns"]["ndcg@10"], None)
    level = 0.05 / 3
    assert sensitivity.mde_for(pilot, needed, level=level, power=0.8, seed=42) <= 0.05
    assert sensitivity.mde_for(pilot, int(needed * 0.95), level=level, power=0.8, seed=42) > 0.05


def test_plan_binary_metric_json(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A 0/1 metric: the exact sign test; at the count printed its power reaches 80%, 3% fewer do not."""
    code, out, _ = _plan(setup, capsys, "--metric", "recall@1", "--effect", 0.03, "--from", setup["run"],
                         "--alpha", 0.05, "--family", 1, "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["test"] == "sign test (mid-p) on discordant pairs" and plan["level"] == 0.05
    assert plan["pilot"]["binary"] and plan["repeats"] == 1
    p = plan["pilot"]["mean"]
    assert plan["pilot"]["discordance"] == pytest.approx(p * (1 - p))
    q = plan["questions"]
    rate = round(p * (1 - p) * q) / q
    assert sensitivity.binary_power(0.03, q, rate, 0.05) >= 0.8
    fewer = int(q * 0.97)
    assert sensitivity.binary_power(0.03, fewer, round(p * (1 - p) * fewer) / fewer, 0.05) < 0.8


def test_plan_with_run_to_run_variance(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """A run repeated 3 times whose repetitions shift together (run sd 0.02): one repetition per run cannot
    detect 0.03 (the run term alone is too large) and the command says how many repetitions are needed; with
    that many it gives a question count."""
    rng = np.random.default_rng(6)
    base = rng.beta(2, 2, N)
    reps = np.stack([np.clip(base + rng.normal(0, 0.02) + rng.normal(0, 0.03, N), 0, 1) for _ in range(3)],
                    axis=1)
    ids = [f"q{i}" for i in range(N)]
    table = pd.DataFrame({"id": ids * 3, "repeat": np.repeat([0, 1, 2], N), "answer": ["a"] * (3 * N),
                          "ndcg@10": reps.T.reshape(-1)})
    run = _run(setup["tmp"], "repeated", {"ndcg@10": reps.mean(axis=1)}, repeats=table)
    code, out, _ = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.03, "--from", run, "--repeat", 1,
                         "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["pilot"]["repetitions"] == 3 and plan["pilot"]["run_variance"] > 0
    assert plan["pilot"]["differences"] == "differences between the run's 3 repetitions"
    assert plan["questions"] is None and plan["min_repeats"] > 1
    code, out, _ = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.03, "--from", run, "--repeat", 1)
    assert f"repeat each run at least {plan['min_repeats']} times" in out
    enough = plan["min_repeats"] + 2
    code, out, _ = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.03, "--from", run, "--repeat",
                         enough, "--json")
    planned = json.loads(out)
    assert code == 0 and planned["questions"] > 0 and planned["repeats"] == enough
    z = NormalDist().inv_cdf(1 - 0.05 / 2) + NormalDist().inv_cdf(0.8)  # family 1: the run has one metric
    assert planned["question_effect"] == pytest.approx(
        math.sqrt(0.03 ** 2 - z * z * 2 * planned["pilot"]["run_variance"] / enough))


def test_plan_bad_input(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _plan(setup, capsys, "--metric", "nope", "--effect", 0.05, "--from", setup["run"])
    assert code == 2
    assert "has no per-question values of metric 'nope'" in err
    assert "axiom: hint: its metrics: ndcg@10, recall@1, constant" in err
    code, _, err = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", -0.1, "--from", setup["run"])
    assert code == 2 and "--effect must be a positive change" in err
    code, _, err = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.1, "--from", setup["run"],
                         "--power", 1.5)
    assert code == 2 and "--power must be between 0 and 1" in err
    code, _, err = _plan(setup, capsys, "--metric", "constant", "--effect", 0.1, "--from", setup["run"])
    assert code == 2 and "constant is constant (1) on every question" in err
    missing = setup["tmp"] / "runs" / "absent"
    code, out, err = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.1, "--from", missing, "--json")
    assert code == 2 and json.loads(out)["error"] == f"run folder {missing} does not exist"
    assert "Traceback" not in err


def test_plan_says_when_questions_are_grouped(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    columns = {"ndcg@10": setup["columns"]["ndcg@10"],
               "group": np.asarray([f"doc{i // 10}" for i in range(N)])}
    run = _run(setup["tmp"], "grouped", columns)
    code, out, _ = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.05, "--from", run)
    assert code == 0 and "note: the run's questions fall in 20 groups" in out
    code, out, _ = _plan(setup, capsys, "--metric", "ndcg@10", "--effect", 0.05, "--from", setup["run"],
                         "--json")
    assert json.loads(out)["groups"] == N
