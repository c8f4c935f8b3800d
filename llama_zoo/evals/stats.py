"""Statistics for suite metrics: bootstrap confidence intervals over independent units."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def bootstrap_ratio_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    transform: Callable[[np.ndarray], np.ndarray],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ``transform(sum(num) / sum(den))``, resampling units (documents,
    chunks) with replacement. Ratios of sums, not means of ratios: a long document weighs more, as
    it does in the point estimate. None with fewer than two units."""
    num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    if len(num) < 2:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(num), size=(resamples, len(num)))
    values = transform(num[picks].sum(axis=1) / den[picks].sum(axis=1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
