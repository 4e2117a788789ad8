"""Bootstrap intervals and the paired randomisation test."""

from __future__ import annotations

import numpy as np
import pytest

from axiom.evaluation.stats import bootstrap_ci, paired_randomisation_test


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean() -> None:
    values = list(np.random.default_rng(0).random(50))
    a = bootstrap_ci(values, samples=500, seed=42, label="m")
    assert a == bootstrap_ci(values, samples=500, seed=42, label="m")
    assert a[0] < float(np.mean(values)) < a[1]
    assert bootstrap_ci([0.5, 0.5], samples=100, seed=1, label="m") == (0.5, 0.5)
    assert all(np.isnan(bootstrap_ci([float("nan")], samples=10, seed=1, label="m")))


def test_paired_test() -> None:
    a = [0.5] * 30
    assert paired_randomisation_test(a, a, seed=1, label="m") == 1.0
    better = [0.9] * 30
    assert paired_randomisation_test(a, better, seed=1, label="m") < 0.001
    # exact enumeration for small n: 4 positive differences -> p = 2/16
    assert paired_randomisation_test([0, 0, 0, 0], [1, 1, 1, 1], seed=1, label="m") == pytest.approx(2 / 16)
    noisy = list(np.random.default_rng(3).normal(0.5, 0.2, 40))
    noise = np.random.default_rng(4).normal(0, 0.2, 40)
    shifted = [v + e for v, e in zip(noisy, noise, strict=True)]
    assert paired_randomisation_test(noisy, shifted, seed=1, label="m") > 0.01
