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


def fim_by_mode(rows: list[dict[str, Any]]) -> str | None:
    """pass@1 per infilling subset, PSM beside SPM, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {}
    for r in rows:
        options = r["run"]["options"] or {}
        if "pass@1" in r["metrics"]:
            cells[(r["run"]["model_id"], options.get("subset"), options.get("fim_mode"))] = r["metrics"]["pass@1"]["value"]
    if not cells:
        return None
    groups = sorted({(m, s) for m, s, _ in cells})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.4
    for k, mode in enumerate(("psm", "spm")):
        ax.bar([i + k * width for i in range(len(groups))], [cells.get((m, s, mode), 0) for m, s in groups],
               width, label=mode.upper())
    ax.set_xticks([i + width / 2 for i in range(len(groups))], [f"{m}\n{s}" for m, s in groups], fontsize=7)
    ax.set_ylabel("pass@1")
    ax.set_title("HumanEval-Infilling: PSM vs SPM")
    ax.legend()
    return _svg(fig)
