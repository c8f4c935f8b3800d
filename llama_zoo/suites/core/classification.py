"""Binary-classifier metrics from scores and labels, in numpy: the definitions scikit-learn uses
(tests hold them equal to ``precision_recall_fscore_support``, ``average_precision_score``,
``roc_auc_score``, ``confusion_matrix`` and ``roc_curve``), written here so that a bootstrap can
call them ten thousand times without scikit-learn's input checks.

A sample is positive (unsafe, an attack) when its label is 1 and predicted positive when its score
is at least the threshold, as the Llama Guard and Prompt Guard cards decide.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

THRESHOLD = 0.5


def _curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first (ties share a point)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    return tps, (last_of_tie + 1) - tps


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) P_n, no interpolation (scikit-learn's definition).
    NaN without a positive."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    positives = y.sum()
    if positives == 0:
        return float("nan")
    tps, fps = _curve(s, y)
    precision = tps / (tps + fps)
    recall = tps / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    tps, fps = _curve(s, y)
    positives, negatives = y.sum(), len(y) - y.sum()
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives]


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve by the trapezoid rule; NaN unless both classes are present."""
    y = np.asarray(labels)
    if y.min(initial=1) == y.max(initial=0) or len(y) == 0:
        return float("nan")
    fpr, tpr = roc_points(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def recall_at_fpr(scores: Sequence[float], labels: Sequence[int], fpr: float = 0.01) -> float:
    """The highest true positive rate of any threshold whose false positive rate is at most ``fpr``."""
    y = np.asarray(labels)
    if y.min(initial=1) == y.max(initial=0) or len(y) == 0:
        return float("nan")
    rates, tpr = roc_points(scores, labels)
    return float(tpr[rates <= fpr + 1e-12].max())


def at_threshold(scores: Sequence[float], labels: Sequence[int], threshold: float = THRESHOLD) -> dict[str, float]:
    """Precision, recall (= TPR), F1, FPR and accuracy of ``score >= threshold``; precision 0 without
    positive predictions (scikit-learn's ``zero_division=0``), NaN for what needs an absent class."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    predicted = s >= threshold
    tp, fp = int(np.sum(predicted & y)), int(np.sum(predicted & ~y))
    fn, tn = int(np.sum(~predicted & y)), int(np.sum(~predicted & ~y))
    # without positives, recall and F1 say nothing (scikit-learn's 0 would rank a perfect model with a
    # useless one); with positives but no positive predictions, precision is 0 as scikit-learn has it
    undefined = float("nan")
    precision = tp / (tp + fp) if tp + fp else (0.0 if tp + fn else undefined)
    recall = tp / (tp + fn) if tp + fn else undefined
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fn else undefined
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fp / (fp + tn) if fp + tn else float("nan"),
            "accuracy": (tp + tn) / len(y) if len(y) else float("nan"), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _rate(name: str, threshold: float):
    return lambda s, y: at_threshold(s, y, threshold)[name]


# Metric name -> statistic(scores, labels): what suites store and ``compare`` bootstraps by name.
STATISTICS = {
    "auprc": average_precision,
    "auroc": auroc,
    "recall_at_1pct_fpr": lambda s, y: recall_at_fpr(s, y, 0.01),
    **{name: _rate(name, THRESHOLD) for name in ("precision", "recall", "f1", "fpr", "accuracy")},
    **{f"{rate}@{t}": _rate("recall" if rate == "tpr" else rate, t) for t in (0.5, 0.9) for rate in ("tpr", "fpr")},
}


def bootstrap_statistic_ci(statistic, scores: np.ndarray, labels: np.ndarray, *, resamples: int = 1000,
                           seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ``statistic(scores, labels)`` over resampled samples (resamples
    where it is undefined, such as one class only, are left out). None with fewer than two samples."""
    if len(scores) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(scores), size=len(scores))
        values.append(statistic(scores[pick], labels[pick]))
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < resamples // 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def metric_rows(scores: Sequence[float], labels: Sequence[int], names: Sequence[str], *, prefix: str = "",
                seed: int = 0, resamples: int = 1000) -> list[dict[str, Any]]:
    """Stored metric rows (value, 95% bootstrap CI, n) for each named statistic; undefined values are
    left out rather than stored as NaN."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    positives = int(y.sum())
    rows = []
    for name in names:
        statistic = STATISTICS[name]
        value = statistic(s, y)
        if np.isnan(value) or name == "auprc" and positives == len(s):
            continue  # undefined, or (AUPRC without a negative: 1.0 whatever the scores) meaningless
        ci = bootstrap_statistic_ci(statistic, s, y, resamples=resamples, seed=seed)
        rows.append({"name": prefix + name, "value": float(value), "ci_low": ci[0] if ci else None,
                     "ci_high": ci[1] if ci else None, "n": len(s),
                     "extra": {"positives": positives, "negatives": len(s) - positives}})
    return rows
