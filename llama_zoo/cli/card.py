"""``llama-zoo card MODEL``: Meta's published numbers for a model, reproduced under Meta's protocol."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any, Optional

import typer

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, interrupted_said, print_json
from llama_zoo.cli.eval import BACKEND_FLAGS, EVAL_RUN, backend_parameters, progress_bar, progress_callback
from llama_zoo.cli.options import EVAL, parameter, parameters, take
from llama_zoo.errors import LlamaZooError
from llama_zoo.orchestration.card import card_file
from llama_zoo.orchestration.recipes import NO_RECIPE

# eval's run flags that make sense for a whole card: the model's weights, backend, quantisation and
# checkpoint; not those that name one suite's data (--dataset, --samples-file)
CARD_RUN = tuple(o for o in EVAL_RUN if o.name not in ("dataset", "dataset_revision", "samples_file", "predictions_file"))

VERDICT_STYLE = {"reproduced": "green", "below": "red", "above": "yellow"}


def card_command(model: str, **kwargs: Any) -> None:
    """Every benchmark Meta's model card publishes for MODEL, with the recipe that reproduces it under
    Meta's protocol (the suite, shots, chat template and metric, with the protocol's source), run
    where its data is at hand ($LLAMA_ZOO_DATA, else the hub), and a verdict: reproduced (the
    published value inside the measurement's 95% interval), below, above, or not run and why.
    A checkpoint given by path takes --base: the registry model whose card applies. Shadow and
    random weights never reproduce anything."""
    from llama_zoo.orchestration import RunRequest
    from llama_zoo.orchestration.card import plan_card, run_card
    from llama_zoo.registry.checkpoint import find_model

    dry_run, fmt, db, benchmarks = kwargs.pop("dry_run"), kwargs.pop("fmt"), kwargs.pop("db"), kwargs.pop("benchmark")
    run_options = take(kwargs, CARD_RUN, EVAL)
    backend_options = {k: kwargs.pop(k) for k in BACKEND_FLAGS if kwargs.get(k) is not None}
    spec, checkpoint = find_model(model, run_options.get("base"))
    if checkpoint is not None:
        if not run_options.get("base"):
            raise LlamaZooError(f"{model} is a checkpoint: give --base, the registry model whose card applies to it")
        from llama_zoo.registry.catalog import load_catalog

        card_spec = load_catalog().get(run_options["base"])
    else:
        card_spec = spec
    card = plan_card(card_spec, tuple(benchmarks or ()))
    if not dry_run:
        from llama_zoo.orchestration import Kept, evaluate
        from llama_zoo.results.store import Store

        store = Store.open(db)
        known = {f.name for f in fields(RunRequest)}
        template = RunRequest(model=model, backend_options=backend_options,
                              **{k: v for k, v in run_options.items() if k in known})
        quiet = fmt is TableOrJson.json
        kept = Kept()  # the card's benchmarks load the model once
        with progress_bar(quiet) as bar:
            def run(request):
                task = bar.add_task(f"{card_spec.id if checkpoint is None else model} · {request.suite}", total=None, rate="")
                try:
                    with interrupted_said():
                        return evaluate(request, store, progress_callback(bar, task), kept)
                finally:
                    bar.remove_task(task)

            run_card(card, template, run, store)
    if fmt is TableOrJson.json:
        print_json({"model": card.model_id, "checkpoint": model if checkpoint is not None else None,
                    "dry_run": dry_run, "rows": [row.as_dict() for row in card.rows],
                    "variants_not_compared": len(card.variants)})
        return
    _show(card, dry_run, model if checkpoint is not None else None)


def _show(card, dry_run: bool, checkpoint: str | None) -> None:
    from rich.table import Table

    about = f"{checkpoint} (card of {card.model_id})" if checkpoint else card.model_id
    table = Table(title=f"{about}: {len(card.rows)} published numbers" + (" (plan)" if dry_run else ""),
                  title_justify="left", header_style="bold")
    for col in ("benchmark", "shots", "metric", "published"):
        table.add_column(col, justify="right" if col in ("shots", "published") else "left", overflow="fold")
    if dry_run:
        table.add_column("recipe, or why none", overflow="fold", ratio=3)
        table.add_column("data", overflow="fold", ratio=2)
    else:
        table.add_column("measured [95% CI]", justify="right")
        table.add_column("diff", justify="right")
        table.add_column("verdict", overflow="fold")
    current = None
    for row in card.rows:
        p = row.published
        heading = f"{card_file(p.source)} · {p.table}"
        if heading != current:  # each card's own tables, in its order: base and instruct numbers apart
            if current is not None:
                table.add_section()
            table.add_row(f"[bold]{heading}[/bold]", *[""] * (len(table.columns) - 1))
            current = heading
        cells = [p.benchmark, p.shots or "-", p.metric or "-", f"{p.value:g}"]
        if dry_run:
            recipe = row.recipe
            if recipe is None or recipe.suite is None:
                cells += [f"[dim]{row.why_not}[/dim]", "-"]
            else:
                where = row.data.where if row.data else "-"
                cells += [_recipe_text(recipe), "missing (below)" if where.startswith("missing: ") else where]
        else:
            m, digits = row.measured, 1 if row.recipe is None or row.recipe.percent else 3  # as the card prints
            shown = "-" if m is None else f"{m.value:.{digits}f}" + (
                f" [{m.low:.{digits}f}, {m.high:.{digits}f}]" if m.low is not None else "")
            verdict = row.verdict
            style = VERDICT_STYLE.get(verdict)
            text = f"[{style}]{verdict}[/{style}]" if style else verdict
            if verdict == "not run" and row.why_not:
                text = f"not run: [dim]{row.why_not}[/dim]"
            cells += [shown, "-" if m is None else f"{m.value - p.value:+.{digits}f}", text]
        table.add_row(*cells)
    console.print(table)
    missing = dict.fromkeys(r.data.where.removeprefix("missing: ") for r in card.rows
                            if r.data is not None and r.data.where.startswith("missing: "))
    if missing:  # whole lines, to copy: a table cell would fold them
        console.print("To get the data that is missing:", highlight=False)
        for how in missing:
            console.print(f"  {how}", highlight=False, soft_wrap=True)
    counts: dict[str, int] = {}
    for row in card.rows:
        key = ("planned" if row.runnable else "not run") if dry_run else row.verdict
        counts[key] = counts.get(key, 0) + 1
    console.print(", ".join(f"{n} {what}" for what, n in sorted(counts.items())), highlight=False)
    if any(row.why_not == NO_RECIPE for row in card.rows):
        console.print(f"{NO_RECIPE}: no suite follows Meta's protocol for it yet (the card's eval_details.md "
                      "says what that protocol is).", highlight=False)
    if card.variants:
        kinds = sorted({v.variant for v in card.variants})
        console.print(f"{len(card.variants)} numbers of quantised variants ({', '.join(kinds)}) are listed by "
                      f"'llama-zoo models show {card.model_id}', not held against these weights.", highlight=False)
    if not dry_run and any(r.measured and r.verdict.startswith("not a measurement") for r in card.rows):
        console.print("[yellow]shadow/random weights: these runs exercise the code path; they measure no model and "
                      "reproduce nothing.[/yellow]")


def _recipe_text(recipe) -> str:
    options = ", ".join(f"{k}={v}" for k, v in recipe.options.items())
    parts = [recipe.suite, f"--dataset {recipe.dataset}" if recipe.dataset else "", options,
             f"({recipe.combine} average)" if recipe.combine else ""]
    return " ".join(p for p in parts if p)


def _parameters() -> list[inspect.Parameter]:
    return [
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                          default=typer.Argument(..., help="Registry id or hub repo id, or a checkpoint path with --base.")),
        *parameters(CARD_RUN, EVAL),
        *backend_parameters(),
        parameter("benchmark", Optional[list[str]], typer.Option(
            None, "--benchmark", "-b", metavar="NAME", help="Only these benchmarks, as the card spells them (any case; "
            "repeatable), e.g. -b MMLU -b 'ARC-Challenge'; the others are listed, not run.")),
        parameter("dry_run", bool, typer.Option(False, "--dry-run", help="Print each benchmark's recipe (or why it has none) "
                                                "and where its data is, loading nothing.")),
        parameter("fmt", TableOrJson, typer.Option(TableOrJson.table, "--format", help="table, or json.")),
        parameter("db", Optional[str], DB_OPTION),
    ]


card_command.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
