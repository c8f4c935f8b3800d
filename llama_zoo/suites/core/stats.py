"""Statistics for suite metrics: bootstrap confidence intervals over independent units."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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


def rate_metric(name: str, values: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """A stored metric that is the mean of per-sample values (a rate of 0/1 outcomes), with its
    95% bootstrap interval over samples."""
    v = np.asarray(values, dtype=np.float64)
    ci = bootstrap_ratio_ci(v, np.ones_like(v), lambda x: x, seed=seed)
    return {"name": name, "value": float(v.mean()), "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
            "n": len(v), "extra": None}


def macro_mean_ci(
    values: Sequence[float],
    groups: Sequence[Any],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, tuple[float, float] | None]:
    """The mean of per-group means (a benchmark's macro average over its subtasks) and its
    percentile bootstrap CI, resampling within each group: the groups are fixed by the benchmark,
    only the questions inside them are a sample. The interval is None with fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or len(v) != len(groups):
        raise ValueError("a macro mean needs one group per value, and at least one value")
    members: dict[Any, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    parts = [v[np.asarray(idx)] for idx in members.values()]
    value = float(np.mean([p.mean() for p in parts]))
    if len(v) < 2:
        return value, None
    rng = np.random.default_rng(seed)
    # each group's mean on every resample, drawn from that group alone (a stratified bootstrap)
    means = np.stack([p[rng.integers(0, len(p), size=(resamples, len(p)))].mean(axis=1) for p in parts], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means.mean(axis=1), [tail, 100 - tail])
    return value, (float(low), float(high))


@dataclass(frozen=True)
class Difference:
    """B minus A on paired units: the estimate, its confidence interval and a two-sided p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    test: str


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> Difference:
    """McNemar's exact test on paired pass/fail outcomes: only discordant pairs carry evidence.
    The difference is in pass rate (B - A), with a paired bootstrap interval."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("McNemar needs the same, non-empty set of paired outcomes")
    only_a, only_b = int(np.sum(x & ~y)), int(np.sum(~x & y))
    discordant = only_a + only_b
    # two-sided exact binomial test of the discordant pairs against 1/2 (as statsmodels' exact McNemar)
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1)) / 2**discordant
    p = min(1.0, 2 * tail)
    diff = y.astype(float) - x.astype(float)
    low, high = bootstrap_ratio_ci(diff, np.ones_like(diff), lambda x: x, resamples=10_000)
    return Difference(float(diff.mean()), low, high, p, len(x), f"McNemar exact ({only_a} vs {only_b} discordant)")


def paired_bootstrap(
    num_a: Sequence[float], den_a: Sequence[float], num_b: Sequence[float], den_b: Sequence[float],
    transform: Callable[[np.ndarray], np.ndarray] = lambda x: x,
    *, resamples: int = 10_000, seed: int = 0, level: float = 0.95,
) -> Difference:
    """Paired bootstrap of ``transform(sum(num)/sum(den))`` for B minus A: the same resampled units
    for both, so what the units share (a hard document is hard for both) cancels. The p-value is
    twice the smaller share of resampled differences on either side of zero."""
    arrays = [np.asarray(v, dtype=np.float64) for v in (num_a, den_a, num_b, den_b)]
    n = len(arrays[0])
    if n < 2 or any(len(v) != n for v in arrays):
        raise ValueError("a paired bootstrap needs at least two paired units")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    na, da, nb, db = (v[picks].sum(axis=1) for v in arrays)
    deltas = transform(nb / db) - transform(na / da)
    estimate = float(transform(np.array(arrays[2].sum() / arrays[3].sum())) - transform(np.array(arrays[0].sum() / arrays[1].sum())))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    p = float(min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0))))
    return Difference(estimate, float(low), float(high), p, n, "paired bootstrap")


def paired_bootstrap_statistic(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    scores_a: np.ndarray, labels_a: np.ndarray, scores_b: np.ndarray, labels_b: np.ndarray,
    *, resamples: int = 10_000, seed: int = 0, level: float = 0.95,
) -> Difference:
    """Paired bootstrap of a statistic of (score, label) columns, such as average precision, for B
    minus A: both runs are resampled at the same rows. Resamples where the statistic is undefined
    (one class only) are left out; the p-value is as in ``paired_bootstrap``."""
    n = len(scores_a)
    if n < 2 or any(len(v) != n for v in (labels_a, scores_b, labels_b)):
        raise ValueError("a paired bootstrap needs at least two paired units")
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        pick = rng.integers(0, n, size=n)
        deltas.append(statistic(scores_b[pick], labels_b[pick]) - statistic(scores_a[pick], labels_a[pick]))
    deltas = np.asarray(deltas, dtype=np.float64)
    deltas = deltas[~np.isnan(deltas)]
    if len(deltas) == 0:
        raise ValueError("the statistic is undefined on every resample (one class only?)")
    estimate = float(statistic(scores_b, labels_b) - statistic(scores_a, labels_a))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    p = float(min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0))))
    return Difference(estimate, float(low), float(high), p, n, "paired bootstrap")
