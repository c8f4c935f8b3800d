"""The leaderboards as flat tables: Markdown (for papers) and CSV (for spreadsheets)."""

from __future__ import annotations

import csv
import io
from typing import Any

from llama_zoo.formatting import with_interval
from llama_zoo.orchestration.recipes import NOT_MEASURED
from llama_zoo.reports.leaderboard import leaderboards


def flat_rows(store, suite: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The leaderboards as flat rows: for Markdown and CSV."""
    out = []
    for name, rows in leaderboards(store, suite, model).items():
        for r in rows:
            flat = {"suite": name, "model": r["run"]["model_id"], "family": r["family"], "params": r["params"],
                    "weights": r["run"]["weights_source"], "setup": r["setup"], "run": r["run"]["id"]}
            for metric, m in r["metrics"].items():
                flat[metric] = m["value"]
                if m["ci_low"] is not None:
                    flat[f"{metric}.ci_low"], flat[f"{metric}.ci_high"] = m["ci_low"], m["ci_high"]
            out.append(flat)
    return out


def render_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render_markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for suite in dict.fromkeys(r["suite"] for r in rows):
        # measured rows above the code-path rows, as the HTML report sets them apart
        mine = sorted((r for r in rows if r["suite"] == suite), key=lambda r: r["weights"] in NOT_MEASURED)
        metrics = [k for k in dict.fromkeys(k for r in mine for k in r) if k not in
                   ("suite", "model", "family", "params", "weights", "setup", "run")
                   and not k.endswith((".ci_low", ".ci_high"))]
        lines += [f"### {suite}", "", "| model | weights | setup | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]
        for r in mine:
            cells = []
            for m in metrics:
                if m not in r:
                    cells.append("-")
                else:
                    value, interval = with_interval(r[m], r.get(f"{m}.ci_low"), r.get(f"{m}.ci_high"))
                    cells.append(f"{value} {interval}".strip())
            lines.append(f"| {r['model']} | {r['weights']} | {r['setup'] or '-'} | " + " | ".join(cells) + " |")
        shown = sorted({r["weights"] for r in mine} & set(NOT_MEASURED))
        if shown:
            lines += ["", f"Rows with weights {' or '.join(shown)}: random weights in the model's architecture (tiny, "
                      "for shadow runs); they exercise the code path and measure no model."]
        lines.append("")
    return "\n".join(lines)
