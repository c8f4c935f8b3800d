"""Charts as inline SVG, drawn with matplotlib: no JavaScript library, so the report stays small
and works offline."""

from __future__ import annotations

import io
from typing import Any


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: it sits inside HTML


def metric_vs_params(rows: list[dict[str, Any]], metric: str, log_y: bool = False) -> str | None:
    """One point per model: the metric against parameter count (log axis), coloured by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["params"], r["metrics"][metric]["value"], r["family"], r["run"]["model_id"], r["measured"])
              for r in rows if r["params"] and metric in r["metrics"]]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for family in sorted({p[2] for p in points}):
        mine = [p for p in points if p[2] == family]
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], label=family,
                   marker="o" if all(p[4] for p in mine) else "x")
        for p in mine:
            ax.annotate(p[3], (p[0], p[1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against model size (x: shadow or random weights)")
    ax.legend(fontsize=7)
    return _svg(fig)


def by_option(rows: list[dict[str, Any]], metric: str, group: str, series: str) -> str | None:
    """Bars of ``metric`` per (model, value of the ``group`` option), one series per value of the
    ``series`` option (HumanEval-Infilling: pass@1 per subset, PSM beside SPM)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {}
    for r in rows:
        options = r["run"]["options"] or {}
        if metric in r["metrics"]:
            cells[(r["run"]["model_id"], str(options.get(group)), str(options.get(series)))] = r["metrics"][metric]["value"]
    if not cells:
        return None
    groups = sorted({(m, g) for m, g, _ in cells})
    kinds = sorted({s for _, _, s in cells})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        ax.bar([i + k * width for i in range(len(groups))], [cells.get((m, g, kind), 0) for m, g in groups],
               width, label=kind.upper())
    ax.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(groups))], [f"{m}\n{g}" for m, g in groups], fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {group}, per {series}")
    ax.legend()
    return _svg(fig)


def draw(chart, rows: list[dict[str, Any]]) -> str | None:
    """A chart a suite declared (``llama_zoo.evals.base.Chart``), or None where there is nothing to draw."""
    if chart.kind == "metric_vs_params":
        return metric_vs_params(rows, chart.metric, log_y=chart.log_y)
    if chart.kind == "by_option":
        return by_option(rows, chart.metric, chart.group, chart.series)
    raise ValueError(f"unknown chart kind {chart.kind!r}")
