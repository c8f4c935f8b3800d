"""The self-contained HTML report (and its Markdown / CSV tables)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from importlib import resources
from typing import Any

from llama_zoo.reports import charts
from llama_zoo.reports.leaderboard import leaderboards, metric_names

PROVENANCE_KEYS = ("model_id", "weights_source", "weights_ref", "weights_revision", "weights_hash", "backend", "dtype",
                   "dataset_name", "dataset_revision", "dataset_hash", "options", "seed", "device", "versions",
                   "git_sha", "created_at", "wall_time_s", "tokens_per_s", "config_hash")


def _human(n: Any) -> str:
    from llama_zoo.cli.common import human

    return human(n) if n else "-"


def render_html(store, suite: str | None = None, model: str | None = None, comparison: dict | None = None) -> str:
    import jinja2

    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.query import row

    boards = leaderboards(store, suite, model)
    evaluated: dict[str, set[str]] = {}
    for name, rows in boards.items():
        for r in rows:
            evaluated.setdefault(r["run"]["model_id"], set()).add(name)
            r["provenance"] = json.dumps({k: r["run"].get(k) for k in PROVENANCE_KEYS}, indent=2, default=str)
    charts_by_suite: dict[str, list[str]] = {}
    for name, rows in boards.items():
        drawn = []
        if name == "perplexity":
            drawn.append(charts.metric_vs_params(rows, "word_perplexity", log_y=True))
        elif name == "humaneval":
            drawn += [charts.metric_vs_params(rows, f"pass@{k}") for k in (1, 10, 100)]
        elif name == "humaneval-infilling":
            drawn.append(charts.fim_by_mode(rows))
        charts_by_suite[name] = [c for c in drawn if c]
    registry = []
    for spec in load_catalog():
        facts = row(spec)
        facts["suites"] = sorted(evaluated.get(spec.id, ()))
        registry.append(facts)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["human"] = _human
    template = env.from_string((resources.files("llama_zoo.reports") / "templates" / "report.html.j2").read_text())
    return template.render(
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        database=store.engine.url.render_as_string(), runs_total=sum(len(r) for r in boards.values()),
        boards=boards, metric_columns={n: metric_names(r) for n, r in boards.items()}, charts=charts_by_suite,
        registry=registry, comparison=comparison)


def flat_rows(store, suite: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The leaderboards as flat rows: for Markdown and CSV."""
    out = []
    for name, rows in leaderboards(store, suite, model).items():
        for r in rows:
            flat = {"suite": name, "model": r["run"]["model_id"], "family": r["family"], "params": r["params"],
                    "weights": r["run"]["weights_source"], "run": r["run"]["id"]}
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
        mine = [r for r in rows if r["suite"] == suite]
        metrics = [k for k in dict.fromkeys(k for r in mine for k in r) if k not in
                   ("suite", "model", "family", "params", "weights", "run") and not k.endswith((".ci_low", ".ci_high"))]
        lines += [f"### {suite}", "", "| model | weights | " + " | ".join(metrics) + " |",
                  "|---|---|" + "---|" * len(metrics)]
        for r in mine:
            cells = []
            for m in metrics:
                if m not in r:
                    cells.append("-")
                elif f"{m}.ci_low" in r:
                    cells.append(f"{r[m]:.4g} [{r[f'{m}.ci_low']:.3g}, {r[f'{m}.ci_high']:.3g}]")
                else:
                    cells.append(f"{r[m]:.4g}")
            lines.append(f"| {r['model']} | {r['weights']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
