"""Numbers as people read them, for the CLI and the reports alike."""

from __future__ import annotations


def human(n: float | int | None, unit: str = "") -> str:
    """8030261248 -> '8.03B'."""
    if n is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}{unit}"
    return f"{n:g}{unit}"


def with_interval(value: float | None, low: float | None = None, high: float | None = None) -> tuple[str, str]:
    """(value, "[low, high]") rounded alike, to the interval's precision: two significant digits of
    its width, so its ends stay distinct (14.96 [14.90, 15.02], not 14.96 [15, 15]). Without an
    interval: four significant digits."""
    import math

    if value is None:
        return "-", ""
    if low is None or high is None or not all(map(math.isfinite, (value, low, high))):
        return f"{value:.4g}", ""
    if max(abs(value), abs(low), abs(high)) >= 1e6:  # digits past the fourth say nothing here
        return f"{value:.4g}", f"[{low:.3g}, {high:.3g}]"
    width = high - low
    if width <= 0:
        return f"{value:.4g}", f"[{low:.4g}, {high:.4g}]"
    decimals = min(8, max(0, 1 - math.floor(math.log10(width))))
    return f"{value:.{decimals}f}", f"[{low:.{decimals}f}, {high:.{decimals}f}]"


# Below this many shared samples a paired test's p-value says nothing reliable: not reported.
MIN_PAIRED_SAMPLES = 10


def p_value(p: float | None, n: int | None = None) -> str:
    """``< 0.001`` rather than 0; none below ``MIN_PAIRED_SAMPLES`` pairs."""
    if p is None:
        return "-"
    if n is not None and n < MIN_PAIRED_SAMPLES:
        return f"n/a (n < {MIN_PAIRED_SAMPLES})"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"
