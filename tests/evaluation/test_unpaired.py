"""Questions measured in only one of the two runs are left out of the paired comparison, counted per metric,
and named in the verdict line: a comparison never shrinks silently."""

from __future__ import annotations

import math

import numpy as np

from axiom.evaluation.verdict import StatsConfig, compare_metrics, unpaired_count, verdict_line

FAST = StatsConfig(permutations=500, bootstrap_samples=200)


def test_the_questions_measured_on_one_side_are_counted() -> None:
    a = {"q1": 0.5, "q2": 0.7, "q3": math.nan, "q4": 0.1}
    b = {"q1": 0.4, "q2": math.nan, "q3": 0.2, "q5": 0.3}
    assert unpaired_count(a, b) == 4  # q2 and q4 only in A, q3 and q5 only in B
    assert unpaired_count(a, a) == 0


def test_the_verdict_names_what_was_left_out_and_n_is_the_paired_questions() -> None:
    rng = np.random.default_rng(4)
    ids = [f"q{i}" for i in range(40)]
    values = dict(zip(ids, rng.random(40).tolist(), strict=True))
    a = {"rouge_l": dict(values), "chrf": dict(values)}
    b = {"rouge_l": {q: (math.nan if i < 6 else v) for i, (q, v) in enumerate(values.items())},
         "chrf": dict(values)}
    out = compare_metrics(a, b, config=FAST)
    assert out["rouge_l"].n == 34 and out["rouge_l"].unpaired == 6 and out["chrf"].unpaired == 0
    line = verdict_line(out)
    assert "left out, measured in one run only: 6 question(s) of rouge_l" in line and "of chrf" not in line
    assert "left out" not in verdict_line(compare_metrics(a, a, config=FAST))
