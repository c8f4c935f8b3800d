"""How to reproduce each number Meta publishes (``recipes.yaml``), and whether a measurement does.

A recipe names the suite and options that follow Meta's protocol for a benchmark, as its model
cards and ``eval_details.md`` state it, with the source cited; a benchmark without one says why.
Recipes are data, matched in order against a published row (``registry/published``): the
benchmark as the card spells it, whether the model is instruction-tuned, the shots, the models.

A verdict holds a published value against a measured one: *reproduced* when the published value
lies inside the measurement's 95% interval (widened by half a unit of the value's last decimal:
the card rounds, 66.7 for anything from 66.65), else *below* or *above*. Shadow and random
weights never reproduce anything: they are not measurements; nor does a run of the first N items
(``--limit``), which measures a subset.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping

import yaml

from llama_zoo.suites.core.local_data import download_hint, hub_offline, local_dataset

NOT_MEASURED = ("shadow", "random")  # weights that measure a code path, not a model
PUBLISHED = "published"  # the weights source of a run imported from Meta's own per-sample results


@dataclass(frozen=True)
class Recipe:
    benchmarks: tuple[str, ...]  # as the cards spell them (any case; * and ? are wildcards)
    suite: str | None = None  # None: no recipe, and ``reason`` says why
    options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None  # the run's --dataset
    instruct: bool | None = None  # only instruction-tuned (True) or pre-trained (False) models
    shots: tuple[str, ...] = ()  # only rows printing these shots (empty: any)
    models: tuple[str, ...] = ()  # only models whose id matches one of these globs (empty: any)
    metric: str | None = None  # the run's metric held against the card (default: its headline)
    # the card's metric (as printed) -> the run's metric, where one table prints several of one run;
    # a row printing a metric not in it is not this recipe's
    metrics: Mapping[str, str] = field(default_factory=dict)
    combine: str | None = None  # "macro": the suite is a group, its runs' headlines averaged
    percent: bool = True  # the card prints percentages, runs store fractions
    data: str | None = None  # "hub:REPO" ({evals}: the model's Meta evals dataset) or "file:NAME"
    source: str = ""  # where the protocol is written down
    reason: str | None = None

    def matches(self, spec, row) -> bool:
        name = row.benchmark.casefold()
        if not any(fnmatch.fnmatchcase(name, b.casefold()) for b in self.benchmarks):
            return False
        if self.instruct is not None and bool(spec.capabilities.instruct) != self.instruct:
            return False
        if self.shots and row.shots is not None and row.shots not in self.shots:
            return False
        if self.metrics and self.run_metric(getattr(row, "metric", None)) is None:
            return False
        return not self.models or any(fnmatch.fnmatchcase(spec.id, glob) for glob in self.models)

    def run_metric(self, card_metric: str | None) -> str | None:
        wanted = (card_metric or "").casefold()
        return next((ours for theirs, ours in self.metrics.items() if theirs.casefold() == wanted), None)

    def data_repo(self, spec) -> str | None:
        if not self.data or not self.data.startswith("hub:"):
            return None
        repo = self.data.removeprefix("hub:")
        if "{evals}" in repo:
            if not spec.hf_repo:
                return None
            from llama_zoo.suites.meta_evals.data import evals_repo  # the suite's own naming rule

            repo = repo.replace("{evals}", evals_repo(spec, None))
        return repo


@functools.lru_cache(maxsize=1)
def recipes() -> tuple[Recipe, ...]:
    raw = yaml.safe_load(resources.files("llama_zoo.orchestration").joinpath("recipes.yaml").read_text(encoding="utf-8"))
    out = []
    for entry in raw["recipes"]:
        entry = dict(entry)
        for key in ("benchmarks", "shots", "models"):
            if key in entry:
                entry[key] = tuple(str(v) for v in entry[key])
        out.append(Recipe(**entry))
    return tuple(out)


def recipe_for(spec, row) -> Recipe | None:
    return next((r for r in recipes() if r.matches(spec, row)), None)


NO_RECIPE = "no recipe yet"  # no suite follows Meta's protocol for it (the card's eval_details.md says what that is)


@dataclass(frozen=True)
class DataStatus:
    reachable: bool
    where: str  # "local PATH", "hub REPO", "in the package", or how to get it


def data_status(recipe: Recipe, spec) -> DataStatus:
    """Where the recipe's data would come from, found without loading anything."""
    if recipe.data and recipe.data.startswith("file:"):
        from llama_zoo.suites.safety.data import NAMED, find_file

        named = NAMED[recipe.data.removeprefix("file:")]
        found = find_file(named.files)
        if found is not None:
            return DataStatus(True, f"local {found}")
        if named.hub is not None and not hub_offline():
            return DataStatus(True, f"hub {named.hub[0]}")
        return DataStatus(False, f"missing: set LLAMA_ZOO_DATA to a directory holding {named.files[0]}")
    repo = recipe.data_repo(spec)
    if repo is None:
        if recipe.data and "{evals}" in recipe.data:
            return DataStatus(False, f"missing: {spec.id} has no hub repo, so no Meta evals dataset")
        return DataStatus(True, "in the package")
    local = local_dataset(repo)
    if local is not None:
        return DataStatus(True, f"local {local}")
    if hub_offline():
        return DataStatus(False, f"missing: {download_hint(repo)}")
    return DataStatus(True, f"hub {repo}")


# -- verdicts


@dataclass(frozen=True)
class Measured:
    value: float  # on the card's scale
    low: float | None
    high: float | None
    weights_source: str  # several, comma-separated, for a macro average over runs
    run_ids: tuple[str, ...]
    limit: int | None = None  # the run measured only the first N items


def rounding(published: float) -> float:
    """Half a unit of the value's last printed decimal (the registry keeps the card's digits)."""
    decimals = len(repr(float(published)).partition(".")[2].rstrip("0")) or 1
    return 0.5 * 10 ** -decimals


def on_card_scale(recipe: Recipe, value: float | None) -> float | None:
    return None if value is None else value * 100 if recipe.percent else value


def from_card_scale(recipe: Recipe, value: float) -> float:
    return value / 100 if recipe.percent else value


def verdict(published: float, measured: Measured | None) -> str:
    if measured is None:
        return "not run"
    sources = set(measured.weights_source.split(","))
    if sources & set(NOT_MEASURED):
        return f"not a measurement ({'/'.join(sorted(sources & set(NOT_MEASURED)))} weights)"
    if PUBLISHED in sources:
        return "Meta's own results"
    if measured.limit is not None:
        return f"limited to {measured.limit} items: no verdict"
    if measured.low is None or measured.high is None:
        return "no interval"
    allowance = rounding(published)
    if measured.low - allowance <= published <= measured.high + allowance:
        return "reproduced"
    return "below" if measured.high + allowance < published else "above"
