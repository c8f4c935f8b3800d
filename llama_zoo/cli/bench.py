"""``llama-zoo bench``: scoring and generation speed of a model shape, through the evaluation loop's
``bench`` suite (the same runner calls evaluation makes)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, Format, console, print_json


def bench_command(
    model: str = typer.Option(..., "--model", "-m", help="Registry id or Hugging Face repo id."),
    random_weights: bool = typer.Option(False, "--random-weights", help="The full-size architecture with random weights."),
    shadow: bool = typer.Option(False, "--shadow", help="A tiny model of the same family (a CPU smoke test)."),
    context: int = typer.Option(2048, "--context", min=2, help="Window length for scoring."),
    batch: int = typer.Option(8, "--batch", min=1, help="Windows per scoring forward pass."),
    gen_batch: int = typer.Option(32, "--gen-batch", min=1, help="Sequences generated at once."),
    prompt_tokens: int = typer.Option(128, "--prompt-tokens", min=1, help="Prompt length for generation."),
    new_tokens: int = typer.Option(256, "--new-tokens", min=1, help="New tokens per generated sequence."),
    iters: int = typer.Option(5, "--iters", min=1, help="Timed scoring iterations (after one warm-up)."),
    backend: str = typer.Option("hf", "--backend", help="The engine measured."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Scored tokens/s and model-FLOP utilisation when scoring windows, new tokens/s when generating, peak memory."""
    from llama_zoo.orchestration import RunRequest, evaluate
    from llama_zoo.results.store import Store

    store = Store.open(db)
    options = dict(batch=batch, gen_batch=gen_batch, prompt_tokens=prompt_tokens, new_tokens=new_tokens, iters=iters)
    outcome = evaluate(RunRequest(model=model, suite="bench", suite_options=options, backend=backend, context=context,
                                  shadow=shadow, random_weights=random_weights, device=device, dtype=dtype,
                                  # one call per timed item: all its windows, or all its sequences, in one batch
                                  batch_size=max(batch, gen_batch)), store)
    results = {m["name"]: m["value"] for m in outcome.metrics}
    results.update(run_id=outcome.run_id, device=outcome.provenance.get("device_name"), dtype=outcome.provenance.get("dtype"),
                   weights_source=outcome.provenance.get("weights_source"))
    if fmt is not Format.table:
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
