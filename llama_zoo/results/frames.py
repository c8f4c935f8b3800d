"""The query API for reports: runs x metrics as a pandas DataFrame, model specs joined."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from llama_zoo.results.db import translate_errors
from llama_zoo.results.orm import Metric, Run

if TYPE_CHECKING:
    import pandas as pd

    from llama_zoo.results.store import Store

RUN_COLUMNS = ("id", "model_id", "suite", "suite_version", "dataset_name", "dataset_revision", "weights_source",
               "weights_ref", "backend", "dtype", "seed", "status", "created_at", "wall_time_s", "tokens_per_s",
               "config_hash")
SPEC_COLUMNS = ("family", "params", "active_params", "context", "instruct", "code", "vision", "release_date")


def runs_frame(
    store: "Store", *, model: str | None = None, suite: str | None = None, status: str | None = "completed",
) -> "pd.DataFrame":
    """One row per run: provenance columns, one column per metric (``<name>``, ``<name>.ci_low``,
    ``<name>.ci_high``, ``<name>.stderr``, ``<name>.n``), and the registry's facts about the model
    (``family``, ``params``, ...; empty where a run names a model the registry does not know)."""
    import pandas as pd

    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.query import row

    query = select(*(getattr(Run, c) for c in RUN_COLUMNS)).order_by(Run.created_at)
    for column, value in (("model_id", model), ("suite", suite), ("status", status)):
        if value:
            query = query.where(getattr(Run, column) == value)
    with translate_errors(store.url), store.engine.connect() as conn:
        runs = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(RUN_COLUMNS))
        metrics = pd.DataFrame(
            conn.execute(select(Metric.run_id, Metric.name, Metric.value, Metric.ci_low, Metric.ci_high,
                                Metric.stderr, Metric.n).where(Metric.run_id.in_(runs["id"].tolist()))).mappings().all(),
            columns=["run_id", "name", "value", "ci_low", "ci_high", "stderr", "n"])
    if not metrics.empty:
        wide = metrics.pivot(index="run_id", columns="name", values=["value", "ci_low", "ci_high", "stderr", "n"])
        wide.columns = [name if field == "value" else f"{name}.{field}" for field, name in wide.columns]
        runs = runs.merge(wide, left_on="id", right_index=True, how="left")
    catalog = load_catalog()
    specs = {}
    for model_id in runs["model_id"].unique():
        if model_id in catalog.specs:
            facts = row(catalog.specs[model_id])
            specs[model_id] = {c: facts[c] for c in SPEC_COLUMNS}
    spec_frame = pd.DataFrame.from_dict(specs, orient="index", columns=list(SPEC_COLUMNS))
    return runs.merge(spec_frame, left_on="model_id", right_index=True, how="left")
