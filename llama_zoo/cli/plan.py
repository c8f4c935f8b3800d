"""``llama-zoo plan``: what a model x suite matrix needs, before anything loads."""

from __future__ import annotations

from typing import Optional

import typer

from llama_zoo.cli.common import TableOrJson, console, print_json
from llama_zoo.errors import LlamaZooError
from llama_zoo.formatting import human


def plan_command(
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="A registry model (repeatable)."),
    models: Optional[list[str]] = typer.Option(None, "--models", metavar="GLOB", help="Registry models matching a glob, e.g. 'llama-3.1-*'."),
    where: Optional[str] = typer.Option(None, "--where", help="Registry models matching an expression, as in 'models list'."),
    suite: Optional[list[str]] = typer.Option(None, "--suite", help="The suites (default: the default suite of eval); repeatable."),
    context: int = typer.Option(2048, "--context", min=1, help="Tokens per sequence: the KV cache is sized for it."),
    batch: int = typer.Option(1, "--batch", min=1, help="Sequences held at once."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights: fp32, bf16, fp16, fp8, int8 or int4."),
    gpu: str = typer.Option("H100-80GB", "--gpu", help="The GPU kind: H100-80GB, A100-80GB, A100-40GB, L4-24GB, RTX4090-24GB."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table, or json (every figure, in bytes)."),
) -> None:
    """Per cell of a matrix: weights and KV-cache memory, the GPUs of a kind it needs, FLOPs per token; cells that cannot fit, and why."""
    from rich.table import Table

    from llama_zoo.evals import DEFAULT_SUITE, SUITES
    from llama_zoo.orchestration.matrix import select_models
    from llama_zoo.orchestration.plan import gpu_kind, plan_cell
    from llama_zoo.registry.catalog import load_catalog

    kind = gpu_kind(gpu)
    suites = list(dict.fromkeys(suite or [DEFAULT_SUITE]))
    for name in suites:
        SUITES.get(name)  # an unknown suite is one line
    chosen = select_models(model or [], models or [], where)
    if not chosen:
        raise LlamaZooError("missing option --model (or --models GLOB, --where EXPR)")
    catalog = load_catalog()
    cells = [plan_cell(catalog.get(m), s, context=context, gpu=kind, dtype=dtype, batch=batch) for m in chosen for s in suites]
    if fmt is TableOrJson.json:
        print_json([c.as_dict() for c in cells])
        return
    table = Table(title=f"{len(cells)} cells · {dtype} weights · context {context:,} x batch {batch} · {kind}",
                  title_justify="left", header_style="bold")
    for col in ("model", "suite", "params", "weights", "KV cache", "needed", "GPUs", "FLOPs/token", "fits"):
        table.add_column(col, justify="left" if col in ("model", "suite", "fits") else "right")
    for c in cells:
        table.add_row(c.model, c.suite, human(c.params), _gb(c.weights_bytes), _gb(c.kv_cache_bytes), _gb(c.needed_bytes),
                      "-" if c.gpus is None else str(c.gpus), human(c.flops_per_token),
                      "yes" if c.fits else f"[red]no[/red]: {c.why_not}")
    console.print(table)
    console.print("needed = (weights + KV cache) x 1.1 for activations and the runtime; several GPUs need a device "
                  "map or tensor parallelism (not built yet).", highlight=False)


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:,.1f} GB"
