"""The significance tests, checked against scipy and statsmodels on known data."""

from __future__ import annotations

import numpy as np
import pytest

from llama_zoo.suites.core.stats import bootstrap_ratio_ci, mcnemar, paired_bootstrap


@pytest.mark.parametrize("only_a,only_b,both,neither", [(3, 11, 40, 10), (0, 0, 5, 5), (7, 7, 1, 2), (0, 9, 0, 0), (30, 45, 60, 25)])
def test_mcnemar_equals_statsmodels_exact(only_a, only_b, both, neither):
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    ours = mcnemar(a, b)
    theirs = sm_mcnemar([[both, only_a], [only_b, neither]], exact=True)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-12)
    assert ours.estimate == pytest.approx((only_b - only_a) / len(a))
    assert ours.ci_low <= ours.estimate <= ours.ci_high


def test_paired_bootstrap_interval_matches_scipy():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 1.0, 300)
    b = a + rng.normal(0.15, 0.5, 300)  # B is higher by 0.15 on average, with paired noise
    ones = np.ones_like(a)
    ours = paired_bootstrap(a, ones, b, ones)
    theirs = bootstrap((a, b), lambda x, y: np.mean(y) - np.mean(x), paired=True, vectorized=False,
                       n_resamples=10_000, method="percentile", random_state=0).confidence_interval
    assert ours.estimate == pytest.approx(b.mean() - a.mean())
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.01)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.01)
    assert ours.p_value < 0.001
    same = paired_bootstrap(a, ones, a + rng.normal(0, 0.5, 300), ones)
    assert same.p_value > 0.05 and same.ci_low < 0 < same.ci_high


def test_paired_bootstrap_of_a_ratio_metric():
    # token counts differ per document; perplexity is exp(sum nll / sum tokens)
    tokens = np.array([100, 250, 80, 400, 150, 300], dtype=float)
    nll_a = tokens * np.array([2.0, 2.1, 1.9, 2.2, 2.05, 2.0])
    nll_b = nll_a - tokens * 0.1
    diff = paired_bootstrap(nll_a, tokens, nll_b, tokens, np.exp)
    assert diff.estimate == pytest.approx(np.exp(nll_b.sum() / tokens.sum()) - np.exp(nll_a.sum() / tokens.sum()))
    assert diff.ci_high < 0 and diff.p_value < 0.05  # B is better on every document


def test_bootstrap_ratio_ci_brackets_the_estimate():
    low, high = bootstrap_ratio_ci([1, 2, 3, 4], [1, 1, 1, 1], lambda x: x)
    assert low <= 2.5 <= high
