"""Leaderboard frames drawn from the results store (and the registry for specs)."""

from __future__ import annotations

from typing import Any

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import param_count

# the metric a suite's leaderboard is ordered by, and whether lower is better
HEADLINE = {"perplexity": ("word_perplexity", True), "humaneval": ("pass@1", False),
            "humaneval-infilling": ("pass@1", False), "bench": ("score_tokens_per_s", False)}


def leaderboards(store, suite: str | None = None, model: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per suite, one row per (model, weights source, dataset, options): the newest completed run,
    with its metrics (value and CI) and the registry's facts about the model."""
    from sqlalchemy import select

    from llama_zoo.results.orm import Metric, Run

    catalog = load_catalog()
    query = select(Run.__table__).where(Run.status == "completed").order_by(Run.created_at.desc())
    if suite:
        query = query.where(Run.suite == suite)
    if model:
        query = query.where(Run.model_id == catalog.get(model).id)
    with store.engine.connect() as conn:
        runs = [dict(r) for r in conn.execute(query).mappings()]
        metrics: dict[str, dict[str, dict[str, Any]]] = {}
        for m in conn.execute(select(Metric.__table__)).mappings():
            metrics.setdefault(m["run_id"], {})[m["name"]] = dict(m)
    boards: dict[str, list[dict[str, Any]]] = {}
    seen = set()
    for run in runs:
        key = (run["suite"], run["model_id"], run["weights_source"], run["dataset_hash"],
               repr(sorted((k, str(v)) for k, v in (run["options"] or {}).items() if k != "sandbox")))
        if key in seen:
            continue
        seen.add(key)
        spec = catalog.specs.get(run["model_id"])
        count = param_count(spec) if spec else None
        boards.setdefault(run["suite"], []).append({
            "run": run, "metrics": metrics.get(run["id"], {}),
            "family": spec.family if spec else None, "params": count.total if count else None,
            "context": spec.max_context if spec else None,
            "release": spec.release_date.isoformat() if spec and spec.release_date else None,
            "measured": run["weights_source"] not in ("shadow", "random"),
            "setup": setup(run["options"] or {}),
        })
    for name, rows in boards.items():
        metric, lower = HEADLINE.get(name, (None, False))
        if metric:
            rows.sort(key=lambda r: (metric not in r["metrics"],
                                     (1 if lower else -1) * r["metrics"].get(metric, {}).get("value", 0)))
    return boards


SETUP_KEYS = ("protocol", "context", "stride", "subset", "fim_mode", "samples", "temperature", "limit", "batch")


def setup(options: dict[str, Any]) -> str:
    """The options that tell two rows of one suite apart, compactly."""
    return " ".join(f"{k}={options[k]}" for k in SETUP_KEYS if options.get(k) not in (None, ""))


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row["metrics"]))
    return list(names)
