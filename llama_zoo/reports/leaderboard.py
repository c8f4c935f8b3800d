"""Leaderboard rows drawn from the results store (and the registry for specs), ordered by what
each suite declares as its headline metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_zoo.orchestration.recipes import NOT_MEASURED
from llama_zoo.suites import suite_info
from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import param_count
from llama_zoo.results.identity import split_options


def leaderboards(store, suite: str | None = None, model: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per suite, one row per (model, weights source, dataset, options): the newest completed run,
    with its metrics (value and CI) and the registry's facts about the model."""
    catalog = load_catalog()
    runs = store.completed_runs(suite=suite, model=_model_id(catalog, model) if model else None)
    boards: dict[str, list[dict[str, Any]]] = {}
    seen = set()
    for run in runs:
        options, facts, shown = split_options(run["options"])
        key = (run["suite"], run["model_id"], run["weights_source"], run.get("backend"), run["dataset_hash"],
               repr(sorted((k, str(v)) for k, v in {**options, **facts}.items())))
        if key in seen:
            continue
        seen.add(key)
        spec = catalog.specs.get(run["model_id"])
        outside = shown.get("checkpoint") or {}  # a model given by path: what the run recorded of it
        base = catalog.specs.get(outside.get("base")) if outside.get("base") else None
        boards.setdefault(run["suite"], []).append({
            "run": run, "metrics": run["metrics"],
            "family": spec.family if spec else (f"{base.family} (derived)" if base else "community" if outside else None),
            "params": param_count(spec).total if spec else outside.get("params"),
            "base": outside.get("base"),
            "context": spec.max_context if spec else outside.get("context"),
            "release": spec.release_date.isoformat() if spec and spec.release_date else None,
            "measured": run["weights_source"] not in NOT_MEASURED,
            "setup": setup(run["suite"], options, run.get("dataset_name"), facts),
        })
    for name, rows in boards.items():
        info = suite_info(name)
        if info is not None:
            rows.sort(key=lambda r: _rank(info, r))
    # suites with a measurement first, by their newest measurement; then the shadow-only ones: a report
    # opens on real numbers
    newest: dict[str, int] = {}  # suite: the place of its newest measured run (runs come newest first)
    for n, run in enumerate(runs):
        if run["weights_source"] not in NOT_MEASURED:
            newest.setdefault(run["suite"], n)
    return dict(sorted(boards.items(), key=lambda item: (item[0] not in newest, newest.get(item[0], 0))))


def headline(info, run: dict[str, Any]) -> tuple[str, bool]:
    return info.headline_of(run.get("options"))


def _rank(info, row: dict[str, Any]) -> tuple[bool, float]:
    metric, lower = headline(info, row["run"])
    return metric not in row["metrics"], (1 if lower else -1) * row["metrics"].get(metric, {}).get("value", 0)


def _model_id(catalog, model: str) -> str:
    """A registry name's id; anything else as given (a checkpoint's own id, as stored)."""
    from llama_zoo.errors import LlamaZooError

    try:
        return catalog.get(model).id
    except LlamaZooError:
        return model


def setup(suite: str, options: dict[str, Any], dataset: str | None = None, facts: dict[str, Any] | None = None) -> str:
    """What tells two rows of one suite apart, compactly: the dataset (a local one by its
    directory's name), the quantisation, then the options the suite declares, or every option of
    the suite's for one whose plug-in is not installed here (``options`` are the suite's and
    ``facts`` the run's, as ``split_options`` parts a stored run's)."""
    info = suite_info(suite)
    keys = info.setup_keys if info is not None else tuple(options)
    shown = [f"dataset={Path(dataset).name if dataset.startswith('/') else dataset}"] if dataset else []
    quantize = (facts or {}).get("quantize")
    if isinstance(quantize, dict):  # the weights as they ran: int4 is not the model in bf16
        shown.append(f"quantize={quantize['scheme']}")
    # files by name: their directories tell no two rows apart and would crowd the metrics out
    shown += [f"{k}={Path(str(options[k])).name if k.endswith('_file') else options[k]}" for k in keys
              if options.get(k) not in (None, "") and not isinstance(options[k], dict)]
    shown += [f"{k}={v}" for k, v in ((facts or {}).get("backend_options") or {}).items()]  # a backend's, that change results
    return " ".join(shown)


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row["metrics"]))
    return list(names)
