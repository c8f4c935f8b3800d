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
