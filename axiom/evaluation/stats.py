"""Small statistics shared by runs and comparisons: bootstrap confidence intervals and the paired
randomisation (sign-flip) test. Every random draw comes from a generator seeded by (seed, metric name), so
results do not depend on the order metrics are processed in."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

PERMUTATIONS = 10_000


def _rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(label.encode("utf-8"))])


def finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return arr[~np.isnan(arr)]


def bootstrap_ci(values: Sequence[float], *, samples: int, seed: int, label: str, level: float = 0.95
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaNs left out). (nan, nan) for no values."""
    arr = finite(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    idx = _rng(seed, label).integers(0, arr.size, size=(samples, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_randomisation_test(a: Sequence[float], b: Sequence[float], *, seed: int, label: str,
                              permutations: int = PERMUTATIONS) -> float:
    """Two-sided p-value that the mean of b - a differs from 0, by randomly flipping the sign of each paired
    difference (the exact test when 2**n <= permutations). Pairs with a NaN on either side are left out."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    diff = (y - x)[keep]
    n = diff.size
    if n == 0:
        return float("nan")
    observed = abs(diff.mean())
    if np.allclose(diff, 0.0):
        return 1.0
    tolerance = 1e-12
    if n <= math.log2(permutations):  # enumerate every sign assignment
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        stats = np.abs((signs * diff).mean(axis=1))
        return float(np.mean(stats >= observed - tolerance))
    signs = _rng(seed, label).integers(0, 2, size=(permutations, n)) * 2 - 1
    stats = np.abs((signs * diff).mean(axis=1))
    return float((np.sum(stats >= observed - tolerance) + 1) / (permutations + 1))
