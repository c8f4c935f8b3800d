"""``llama-zoo plan``: what a model x suite matrix needs, before anything loads."""

from __future__ import annotations

import inspect
from typing import Any, Optional

import typer

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, print_json
from llama_zoo.cli.options import PLAN, SELECTION, for_command, note, parameter, parameters, take
from llama_zoo.errors import LlamaZooError
from llama_zoo.formatting import human
from llama_zoo.orchestration.executors import SCALE_OPTIONS
from llama_zoo.orchestration.loop import RUN_OPTIONS
from llama_zoo.orchestration.sizing import QUANTIZE_OPTIONS

RUN = for_command(RUN_OPTIONS, PLAN)
GPU = for_command(SCALE_OPTIONS, PLAN)
WEIGHTS_FORMAT = {"auto": "bf16", "bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def plan_command(**kwargs: Any) -> None:
    """Per cell of a matrix: weights and KV-cache memory, the GPUs of a kind it needs, FLOPs per token and an
    estimated time; cells that cannot fit, and why.

    Time is the suite's tokens (its default dataset) over a throughput: a 'bench' run in the store for the same
    model, context and dtype on that GPU kind (measured; 'llama-zoo eval --suite bench --random-weights' makes one),
    else an assumed share of the GPU's data-sheet peak, marked * in the est. time column and named under the table."""
    from rich.table import Table

    from llama_zoo.suites import DEFAULT_SUITE, SUITES
    from llama_zoo.orchestration.matrix import select_models
    from llama_zoo.suites.core.base import Context
    from llama_zoo.orchestration.sizing import gpu_kind, measured_throughput, plan_cell
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.results.store import Store

    model, models, where, suite = (kwargs.pop(name) for name in ("model", "models", "where", "suite"))
    fmt, db = kwargs.pop("fmt"), kwargs.pop("db")
    run = take(kwargs, RUN, PLAN)
    context, limit, batch, quantize = run["context"], run["limit"], run["batch_size"], run["quantize"]
    if run["dtype"] in QUANTIZE_OPTIONS:  # plan's old --dtype int4: a quantisation, as eval names it
        note(f"--dtype {run['dtype']} is deprecated: use --quantize {run['dtype']}")
        quantize = quantize or run["dtype"]
    # the weights' format in the registry's terms (bf16, int4): what the memory arithmetic takes
    dtype = quantize or WEIGHTS_FORMAT.get(run["dtype"], "bf16")
    kind = gpu_kind(take(kwargs, GPU, PLAN)["gpu"])
    suites = list(dict.fromkeys(suite or [DEFAULT_SUITE]))
    for name in suites:
        SUITES.get(name)  # an unknown suite is one line
    chosen = select_models(model or [], models or [], where)
    if not chosen:
        raise LlamaZooError("missing option --model (or --models GLOB, --where EXPR)")
    catalog = load_catalog()
    store = Store.open(db)
    works = {}
    for name in suites:  # a suite's work depends on its data and options, not on the model
        suite_obj = SUITES.get(name)
        ctx = Context(spec=None, options=suite_obj.info.resolve_options({}), tokenizer=None, context=context, limit=limit)
        works[name] = suite_obj.work(ctx) if hasattr(suite_obj, "work") else None
    cells = [plan_cell(catalog.get(m), s, context=context, gpu=kind, dtype=dtype, batch=batch, work=works[s],
                       measured=measured_throughput(store, m, context, dtype, kind)) for m in chosen for s in suites]
    if fmt is TableOrJson.json:
        print_json([c.as_dict() for c in cells])
        return
    table = Table(title=f"{len(cells)} cells · {dtype} weights · context {context:,} x batch {batch} · {kind}",
                  title_justify="left", header_style="bold")
    for col in ("model", "suite", "params", "weights", "KV cache", "needed", "GPUs", "FLOPs/token", "tokens", "est. time", "fits"):
        table.add_column(col, justify="left" if col in ("model", "suite", "fits") else "right")
    for c in cells:
        time_shown = "-" if c.seconds is None else _duration(c.seconds) + ("" if c.time_basis.startswith("measured") else " *")
        table.add_row(c.model, c.suite, human(c.params), _gb(c.weights_bytes), _gb(c.kv_cache_bytes), _gb(c.needed_bytes),
                      "-" if c.gpus is None else str(c.gpus), human(c.flops_per_token), _tokens(c), time_shown,
                      ("yes" if c.fits else f"[red]no[/red]: {c.why_not}") + _smaller(c))
    console.print(table)
    console.print("needed = (weights + the larger of the KV cache and a forward pass's activations) x 1.1; "
                  "several GPUs take --device-map auto (transformers) or --tensor-parallel (vLLM).", highlight=False)
    for basis in dict.fromkeys(c.time_basis for c in cells if c.time_basis):
        marked = "* " if basis.startswith("assumed") else ""
        console.print(f"{marked}time {basis}", highlight=False)


def _smaller(c) -> str:
    """Which --quantize option makes the cell fit (one node; one GPU), where bf16 does not."""
    if not c.quantized_gpus:
        return ""
    return "; " + ", ".join(f"--quantize {q}: {n} GPU{'s' if n > 1 else ''}" for q, n in c.quantized_gpus.items())


def _tokens(c) -> str:
    if c.scored_tokens is None:
        return "-"
    return human(c.scored_tokens) + (f" + {human(c.generated_tokens)} new" if c.generated_tokens else "")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:,.1f} GB"


plan_command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    *parameters(SELECTION, PLAN, helps={"model": "A registry model (repeatable)."}),
    # the old --dtype fp8 / int8 / int4 still plan, as --quantize (with a note)
    *parameters(RUN, PLAN, old_values={"dtype": {q: q for q in QUANTIZE_OPTIONS}}),
    *parameters(GPU, PLAN),
    parameter("fmt", TableOrJson, typer.Option(TableOrJson.table, "--format", help="table, or json (every figure, in bytes and seconds).")),
    parameter("db", Optional[str], DB_OPTION),
])
