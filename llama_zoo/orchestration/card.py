"""``llama-zoo card MODEL``: every number Meta's cards publish for a model, run under Meta's
protocol where a recipe and its data are at hand, and held against the measurement.

Planning loads nothing: each published row gets its recipe (or the reason it has none) and where
its data would come from. Running groups the rows by what they need (one run serves every row
of the same suite, dataset and options), runs each through the loop (so runs are stored, cached
and resumed as ``eval``'s are), and gives each row its measured value, interval and verdict.
Quantised columns (a row's ``variant``) are Meta's numbers for other weights: they are listed
apart and never held against a run of the bf16 model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from llama_zoo.errors import LlamaZooError
from llama_zoo.orchestration.recipes import (NO_RECIPE, NOT_MEASURED, PUBLISHED, DataStatus, Measured, Recipe,
                                             data_status, from_card_scale, on_card_scale, recipe_for, verdict)

if TYPE_CHECKING:
    from llama_zoo.registry.schema import ModelSpec, PublishedResult

Z95 = 1.959964


@dataclass
class CardRow:
    published: PublishedResult
    recipe: Recipe | None
    data: DataStatus | None = None
    measured: Measured | None = None
    error: str | None = None  # the run's one-line failure
    asked: bool = True  # among the benchmarks asked for (--benchmark)

    @property
    def runnable(self) -> bool:
        return (self.asked and self.recipe is not None and self.recipe.suite is not None
                and bool(self.data and self.data.reachable))

    @property
    def why_not(self) -> str | None:
        """Why the row is not run (None: it is, or will be)."""
        if not self.asked:
            return "not asked for (--benchmark)"
        if self.recipe is None:
            return NO_RECIPE
        if self.recipe.suite is None:
            return self.recipe.reason
        if self.data is not None and not self.data.reachable:
            return f"data {self.data.where}"
        return self.error

    @property
    def verdict(self) -> str:
        if self.why_not is not None and self.measured is None:
            return "not run"
        return verdict(self.published.value, self.measured)

    def as_dict(self) -> dict[str, Any]:
        row, m = self.published, self.measured
        return {
            "benchmark": row.benchmark, "category": row.category, "shots": row.shots, "metric": row.metric,
            "table": row.table, "source": row.source, "card": card_file(row.source), "published": row.value,
            "percent": self.recipe is None or self.recipe.percent,
            "recipe": None if self.recipe is None or self.recipe.suite is None else {
                "suite": self.recipe.suite, "dataset": self.recipe.dataset, "options": dict(self.recipe.options),
                "combine": self.recipe.combine, "source": self.recipe.source},
            "data": self.data.where if self.data else None,
            "measured": m.value if m else None, "ci_low": m.low if m else None, "ci_high": m.high if m else None,
            "difference": None if m is None else m.value - row.value,
            "weights_source": m.weights_source if m else None, "runs": list(m.run_ids) if m else [],
            "verdict": self.verdict, "reason": self.why_not,
        }


@dataclass
class Card:
    model_id: str
    rows: list[CardRow]
    spec: ModelSpec | None = None  # the registry model whose card this is
    variants: list[PublishedResult] = field(default_factory=list)  # quantised columns: published, never compared


def plan_card(spec: ModelSpec, benchmarks: tuple[str, ...] = (), locate_data: bool = True) -> Card:
    """Each published bf16 row with its recipe and data; nothing loads. ``benchmarks``: only these
    (as the card spells them, any case) are run; the others are listed. ``locate_data=False`` skips
    looking for each recipe's data (file-system searches), for a report that only reads the store."""
    if not spec.published:
        raise LlamaZooError(f"{spec.id} has no published results in the registry (Meta's cards print none for it); "
                            "'llama-zoo card' works on the models whose cards have benchmark tables")
    wanted = {b.casefold() for b in benchmarks}
    on_card = {p.benchmark.casefold() for p in spec.published if not p.variant}
    unknown = [b for b in benchmarks if b.casefold() not in on_card]
    if unknown:
        raise LlamaZooError(f"--benchmark {', '.join(unknown)}: not on {spec.id}'s card (it has "
                            f"{', '.join(dict.fromkeys(p.benchmark for p in spec.published if not p.variant))})")
    rows, variants = [], []
    for published in spec.published:
        if published.variant:
            variants.append(published)
            continue
        recipe = recipe_for(spec, published)
        data = data_status(recipe, spec) if locate_data and recipe is not None and recipe.suite is not None else None
        rows.append(CardRow(published, recipe, data, asked=not wanted or published.benchmark.casefold() in wanted))
    return Card(spec.id, rows, spec=spec, variants=variants)


def _run_key(recipe: Recipe) -> tuple:
    return recipe.suite, recipe.dataset, tuple(sorted((k, repr(v)) for k, v in recipe.options.items())), recipe.combine


Runner = Callable[[Any], Any]  # a RunRequest -> the loop's Outcome


def card_file(source: str) -> str:
    """Which card a row is from, short: 'llama3_1/MODEL_CARD.md' of 'meta-llama/llama-models:models/llama3_1/MODEL_CARD.md#...'."""
    return source.partition(":")[2].partition("#")[0].removeprefix("models/") or source


def run_card(card: Card, template, run: Runner, store) -> None:
    """Run every runnable row's recipe once (``template`` a RunRequest holding the model and how
    to run it) and measure the rows; a recipe that fails marks its rows with the one-line reason."""
    groups: dict[tuple, list[CardRow]] = {}
    for row in card.rows:
        if row.runnable:
            groups.setdefault(_run_key(row.recipe), []).append(row)
    for rows in groups.values():
        recipe = rows[0].recipe
        try:
            runs = _runs(recipe, card.spec, template, run, store)
        except LlamaZooError as exc:
            for row in rows:
                row.error = f"failed: {exc}"
            continue
        for row in rows:
            _measure_row(row, runs, store, template.seed)


def _measure_row(row: CardRow, runs: list[dict[str, Any]], store, seed: int) -> None:
    """The row's number from the recipe's stored runs (several for a macro average of a group)."""
    try:
        if row.recipe.combine == "macro":
            row.measured = _macro(row.recipe, runs, store, seed)
        else:
            row.measured = _single(row.recipe, runs[0], row.published.metric)
    except LlamaZooError as exc:
        row.error = f"failed: {exc}"


def _runs(recipe: Recipe, spec, template, run: Runner, store) -> list[dict[str, Any]]:
    """The recipe's runs through the loop (stored, cached, resumed as eval's are), as stored."""
    base_options = {**template.suite_options, **recipe.options}
    if recipe.data and "{evals}" in recipe.data:  # the card's model's, also for a checkpoint run under its card
        base_options["evals_dataset"] = recipe.data_repo(spec)
    request = replace(template, suite=recipe.suite, suite_options=base_options,
                      dataset=recipe.dataset if recipe.dataset is not None else template.dataset)
    if recipe.combine == "macro":
        return [store.get(run(replace(request, suite=member)).run_id) for member in _members(recipe, base_options)]
    return [store.get(run(request).run_id)]


def _members(recipe: Recipe, options: dict[str, Any]) -> list[str]:
    """The suites a macro-averaged recipe's group stands for (an lm-eval group's tasks)."""
    from llama_zoo.suites import SUITES

    expands = getattr(SUITES.get(recipe.suite), "expands", None)
    members = expands(options) if expands else None
    if not members:
        raise LlamaZooError(f"{recipe.suite} is not a group: the recipe's macro average needs its members")
    return members


def _metric(recipe: Recipe, run: dict[str, Any], card_metric: str | None) -> dict[str, Any]:
    """The stored metric the card's number is held against: the one the recipe maps the card's
    metric to, else the recipe's, else the run's headline."""
    from llama_zoo.suites import suite_info

    stored = {m["name"]: m for m in run["metrics"]}
    name = (recipe.run_metric(card_metric) or recipe.metric
            or suite_info(run["suite"]).headline_of(run.get("options"))[0])
    if name not in stored:
        raise LlamaZooError(f"the run of {run['suite']} has no metric {name!r} (it has {', '.join(stored) or 'none'})")
    return stored[name]


def _single(recipe: Recipe, run: dict[str, Any], card_metric: str | None = None) -> Measured:
    metric = _metric(recipe, run, card_metric)
    low, high = metric.get("ci_low"), metric.get("ci_high")
    if (low is None or high is None) and metric.get("stderr") is not None:
        low, high = metric["value"] - Z95 * metric["stderr"], metric["value"] + Z95 * metric["stderr"]
    return Measured(on_card_scale(recipe, metric["value"]), on_card_scale(recipe, low), on_card_scale(recipe, high),
                    run["weights_source"], (run["id"],), limit=(run.get("options") or {}).get("limit"))


def _macro(recipe: Recipe, runs: list[dict[str, Any]], store, seed: int) -> Measured:
    """The members' headline values averaged with equal weight (Meta's macro average), with a 95%
    interval from a bootstrap that resamples each member's documents within that member."""
    from llama_zoo.suites.core.stats import macro_mean_ci

    values, groups = [], []
    for run in runs:
        for sample in store.iter_samples(run["id"]):
            score = (sample["scores"] or {}).get("score")
            if score is not None:
                values.append(float(score))
                groups.append(run["suite"])
    if not values:
        raise LlamaZooError(f"the runs of {recipe.suite} stored no per-document scores to average")
    value, interval = macro_mean_ci(values, groups, seed=seed)
    low, high = interval or (None, None)
    sources = sorted({run["weights_source"] for run in runs})
    limits = [(run.get("options") or {}).get("limit") for run in runs]
    return Measured(on_card_scale(recipe, value), on_card_scale(recipe, low), on_card_scale(recipe, high),
                    ",".join(sources), tuple(run["id"] for run in runs),
                    limit=min((n for n in limits if n is not None), default=None))


def measure_from_store(card: Card, store, model_id: str | None = None) -> None:
    """The card's rows measured by runs already stored (the report's model-card section): the newest
    completed run of each recipe on real weights of ``model_id`` (default: the card's model; a
    checkpoint's id for a card it takes from its base); shadow, random and Meta's imported runs never count."""
    model_id = model_id or card.model_id
    measured_suites = {run["suite"] for run in store.completed_runs(model=model_id)
                       if run["weights_source"] not in (*NOT_MEASURED, PUBLISHED)}
    for row in card.rows:
        recipe = row.recipe
        if recipe is None or recipe.suite is None:
            continue
        family = recipe.suite.split(":")[0]
        if not any(s == recipe.suite or recipe.combine and s.startswith(f"{family}:") for s in measured_suites):
            continue  # nothing stored could measure it: do not expand a group (lm-eval's index takes seconds)
        try:
            suites = _members(recipe, dict(recipe.options)) if recipe.combine == "macro" else [recipe.suite]
            runs = [_newest_run(store, model_id, suite, recipe) for suite in suites]
            if all(runs):
                _measure_row(row, [store.get(r["id"]) for r in runs], store, runs[0]["seed"] or 0)
        except LlamaZooError as exc:
            row.error = str(exc)


def _newest_run(store, model_id: str, suite: str, recipe: Recipe) -> dict[str, Any] | None:
    """The newest completed run of ``suite`` on real weights that follows the recipe."""
    from llama_zoo.results.identity import split_options

    for run in store.completed_runs(suite=suite, model=model_id):
        if run["weights_source"] in (*NOT_MEASURED, PUBLISHED):
            continue
        options = split_options(run["options"])[0]
        # an option the run does not record (completions scored from a file keep no sampling
        # settings) does not disqualify it; one it records otherwise does
        if all(options.get(k, v) == v for k, v in recipe.options.items()) and (
                recipe.dataset is None or recipe.dataset == run.get("dataset_name")):
            return run
    return None


def published_points(spec, suite: str, metric: str) -> list[tuple[float, str]]:
    """Meta's bf16 numbers for ``spec`` that a run of ``suite`` measures as ``metric``, on the run's
    scale, each with a label: the markers a report draws beside the measured points."""
    from llama_zoo.suites import suite_info

    info = suite_info(suite)
    out = []
    for row in spec.published:
        recipe = None if row.variant else recipe_for(spec, row)
        if recipe is None or recipe.suite != suite or recipe.combine:
            continue
        measured_as = recipe.run_metric(row.metric) or recipe.metric or (info.headline if info else None)
        if measured_as == metric:  # the same number printed by two cards is one marker
            out.append((from_card_scale(recipe, row.value), f"{spec.id} · {row.benchmark} as Meta's card publishes it: {row.value:g}"))
    return list(dict.fromkeys(out))
