"""The self-contained HTML report: leaderboards, the charts each suite declares, provenance, the registry."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Any

from llama_zoo.suites import suite_info
from llama_zoo.formatting import MIN_PAIRED_SAMPLES, human, p_value, with_interval
from llama_zoo.reports import charts
from llama_zoo.reports.leaderboard import leaderboards, metric_names

PROVENANCE_KEYS = ("model_id", "weights_source", "weights_ref", "weights_revision", "weights_hash", "backend", "dtype",
                   "dataset_name", "dataset_revision", "dataset_hash", "options", "seed", "device", "versions",
                   "git_sha", "created_at", "wall_time_s", "tokens_per_s", "config_hash", "runner", "warnings")


def _human(n: Any) -> str:
    return human(n) if n else "-"


def render_html(store, suite: str | None = None, model: str | None = None, comparison: dict | None = None,
                link_base: str | None = None) -> str:
    """The report; ``link_base``: each run links to its page under that URL (``llama-zoo serve``'s)."""
    import jinja2

    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.query import row

    boards = leaderboards(store, suite, model)
    evaluated: dict[str, set[str]] = {}  # suites run on the model's real weights
    exercised: dict[str, set[str]] = {}  # suites run on a shadow or random weights only
    for name, rows in boards.items():
        for r in rows:
            (evaluated if r["measured"] else exercised).setdefault(r["run"]["model_id"], set()).add(name)
            r["provenance"] = json.dumps({k: r["run"].get(k) for k in PROVENANCE_KEYS}, indent=2, default=str)
    catalog = load_catalog()
    charts_by_suite: dict[str, list[str]] = {}
    code_path_charts: dict[str, list[str]] = {}  # drawn inside the shadow and random runs' section only
    for name, rows in boards.items():
        info = suite_info(name)
        drawn = [charts.draw(chart, rows, _published(catalog, name, chart.metric, rows)) for chart in (info.charts if info else ())]
        charts_by_suite[name] = [c for c in drawn if c]
        apart = [charts.draw_code_paths(chart, rows) for chart in (info.charts if info else ())]
        code_path_charts[name] = [c for c in apart if c]
    registry = []
    cards = _cards(store, boards, catalog)
    for spec in catalog:
        facts = row(spec)
        measured = evaluated.get(spec.id, set())
        facts["suites"] = sorted(measured) + [f"{n} (shadow only)" for n in sorted(exercised.get(spec.id, set()) - measured)]
        registry.append(facts)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["human"] = _human
    env.filters["pvalue"] = p_value
    env.globals["interval"] = with_interval
    env.globals["min_paired"] = MIN_PAIRED_SAMPLES
    template = env.from_string((resources.files("llama_zoo.reports") / "templates" / "report.html.j2").read_text())
    return template.render(
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        database=store.engine.url.render_as_string(), runs_total=sum(len(r) for r in boards.values()),
        boards=boards, metric_columns={n: metric_names(r) for n, r in boards.items()}, charts=charts_by_suite,
        code_path_charts=code_path_charts,
        registry=registry, comparison=comparison, cards=cards,
        link_base=None if link_base is None else link_base.rstrip("/"))


def _published(catalog, suite: str, metric: str, rows) -> dict[str, list[tuple[float, str]]]:
    """Meta's numbers for the measured models a chart of ``suite`` plots, per model id."""
    from llama_zoo.orchestration.card import published_points

    out = {}
    for model_id in {r["run"]["model_id"] for r in rows if r["measured"]}:
        if model_id in catalog.specs:
            points = published_points(catalog.get(model_id), suite, metric)
            if points:
                out[model_id] = points
    return out


def _cards(store, boards, catalog) -> list[dict[str, Any]]:
    """Per model with published numbers and stored runs (a checkpoint: its base's card), the rows a
    run on real weights measures, with the verdicts."""
    from llama_zoo.orchestration.card import measure_from_store, plan_card
    from llama_zoo.results.identity import split_options

    runs_of: dict[str, list[dict[str, Any]]] = {}
    card_of: dict[str, str] = {}
    for rows in boards.values():
        for r in rows:
            model_id = r["run"]["model_id"]
            runs_of.setdefault(model_id, []).append(r)
            base = (split_options(r["run"]["options"])[2].get("checkpoint") or {}).get("base")
            card_of[model_id] = model_id if model_id in catalog.specs else base or ""
    cards = []
    for model_id, rows in sorted(runs_of.items()):
        if card_of[model_id] not in catalog.specs:
            continue
        spec = catalog.get(card_of[model_id])  # a look-up by name attaches the published numbers
        if not spec.published:
            continue
        card = plan_card(spec, locate_data=False)
        measure_from_store(card, store, model_id)
        measured = [row.as_dict() for row in card.rows if row.measured is not None]
        title = model_id if model_id == spec.id else f"{model_id} (card of {spec.id})"
        cards.append({"model": title, "rows": measured, "code_paths": sum(not r["measured"] for r in rows)})
    return cards
