"""``llama-zoo bench``: scoring and generation speed of a model shape, through the evaluation loop's
``bench`` suite (the same runner calls evaluation makes)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Optional

import typer
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, print_json
from llama_zoo.cli.options import BENCH, SELECTION, for_command, parameter, parameters, take
from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option
from llama_zoo.orchestration.loop import RUN_OPTIONS

SUITE = BENCH  # the command runs the suite of its name


def _options() -> tuple[tuple[Option, ...], tuple[Option, ...], frozenset[str]]:
    """The run options ``bench`` takes, the suite's other options, and the names both declare (the
    scoring ``--batch-size``: the flag takes the suite's default and help, and its value goes to both)."""
    from llama_zoo.suites import SUITES

    suite = {o.name: o for o in SUITES.get(SUITE).info.options}
    run = tuple(replace(o, default=suite[o.name].default, help=suite[o.name].help, defaults=()) if o.name in suite else o
                for o in for_command(RUN_OPTIONS, BENCH))
    shared = frozenset(suite) & {o.name for o in run}
    return run, tuple(o for name, o in suite.items() if name not in shared), shared


RUN, SUITE_OPTIONS, SHARED = _options()


def bench_command(**kwargs: Any) -> None:
    """Scored tokens/s and model-FLOP utilisation when scoring windows, new tokens/s when generating, peak memory."""
    from llama_zoo.orchestration import RunRequest, evaluate
    from llama_zoo.results.store import Store

    models, fmt, db = kwargs.pop("model") or [], kwargs.pop("fmt"), kwargs.pop("db")
    if len(models) != 1:
        raise LlamaZooError("missing option --model" if not models else "bench measures one model: give --model once")
    model = models[0]
    run = take(kwargs, RUN, BENCH)
    options = {**take(kwargs, SUITE_OPTIONS, BENCH), **{name: run[name] for name in SHARED}}
    store = Store.open(db)
    # one call per timed item: all its windows, or all its sequences, in one batch
    outcome = evaluate(RunRequest(model=model, suite=SUITE, suite_options=options,
                                  **{**run, "batch_size": max(run["batch_size"], options["gen_batch"])}), store)
    batch, gen_batch, new_tokens, context, shadow = (run["batch_size"], options["gen_batch"], options["max_new_tokens"],
                                                     run["context"], run["shadow"])
    results = {m["name"]: m["value"] for m in outcome.metrics}
    results.update(run_id=outcome.run_id, device=outcome.provenance.get("device_name"), dtype=outcome.provenance.get("dtype"),
                   weights_source=outcome.provenance.get("weights_source"))
    if fmt is not TableOrJson.table:
        print_json(results)
        return
    table = Table(title=f"{model}{' (shadow)' if shadow else ''} · {results['device']} · {results['dtype']} · run {results['run_id']}",
                  title_justify="left", show_header=False)
    table.add_column(style="cyan")
    table.add_column(justify="right")
    table.add_row(f"scoring, batch {batch} x {context}", f"{results['score_tokens_per_s']:,.0f} tokens/s")
    if "mfu" in results:
        table.add_row("model-FLOP utilisation", f"{results['mfu']:.1%} of {results['matmul_peak_tflops']:.1f} TFLOP/s measured")
    table.add_row(f"generation, batch {gen_batch} x {new_tokens} new", f"{results['generate_new_tokens_per_s']:,.0f} new tokens/s")
    if "peak_gpu_memory_gb" in results:
        table.add_row("peak GPU memory", f"{results['peak_gpu_memory_gb']:.1f} GB")
    console.print(table)
    if shadow:
        console.print(f"[yellow]shadow: not a measurement of the real model (a tiny model of the family); these rates "
                      f"are not {model}'s.[/yellow]")


bench_command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    *parameters(for_command(SELECTION, BENCH), BENCH, helps={"model": "Registry id or Hugging Face repo id."}),
    *parameters(RUN, BENCH),
    *parameters(SUITE_OPTIONS, BENCH),
    parameter("fmt", TableOrJson, typer.Option(TableOrJson.table, "--format", help="table or json.")),
    parameter("db", Optional[str], DB_OPTION),
])
