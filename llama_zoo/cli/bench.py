"""``llama-zoo bench``: scoring and generation speed of a model shape."""

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
    new_tokens: int = typer.Option(256, "--new-tokens", min=1, help="New tokens per generated sequence."),
    iters: int = typer.Option(5, "--iters", min=1, help="Timed scoring iterations (after one warm-up)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Scored tokens/s and model-FLOP utilisation for perplexity, new tokens/s for generation, peak memory."""
    from llama_zoo.bench import BenchOptions, run_bench

    results = run_bench(BenchOptions(model=model, random_weights=random_weights, shadow=shadow, context=context,
                                     batch=batch, gen_batch=gen_batch, new_tokens=new_tokens, iters=iters,
                                     device=device, dtype=dtype, db=db))
    if fmt is not Format.table:
        print_json(results)
        return
    table = Table(title=f"{model} · {results['device']} · {results['dtype']} · run {results['run_id']}",
                  title_justify="left", show_header=False)
    table.add_column(style="cyan")
    table.add_column(justify="right")
    table.add_row(f"scoring, batch {batch} x {context}", f"{results['score_tokens_per_s']:,.0f} tokens/s")
    table.add_row("model-FLOP utilisation", f"{results['mfu']:.1%} of {results['matmul_peak_tflops']:.1f} TFLOP/s measured")
    table.add_row(f"generation, batch {gen_batch} x {new_tokens} new", f"{results['generate_new_tokens_per_s']:,.0f} new tokens/s")
    if results["peak_gpu_memory_gb"] is not None:
        table.add_row("peak GPU memory", f"{results['peak_gpu_memory_gb']:.1f} GB")
    console.print(table)
