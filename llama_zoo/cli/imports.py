"""``llama-zoo import``: results made by other tools, stored as runs."""

from __future__ import annotations

from typing import Optional

import typer

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, print_json

app = typer.Typer(no_args_is_help=True, help="Bring results made by other tools into the store.")


@app.command("lm-eval")
def lm_eval_command(
    path: str = typer.Argument(..., help="lm-eval's --output_path: a directory (searched for results_*.json) or one results file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model the results are of (default: the pretrained= of their model_args; a checkpoint directory gets llama-zoo's id for it)."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table, or json."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """lm-evaluation-harness output (results_*.json, and the samples_<task>_*.jsonl that --log_samples writes)
    as runs of the same suites llama-zoo runs lm-eval tasks in: its metrics and stderr, every document as a
    sample (so 'compare' pairs it with llama-zoo's own run of the task), and its provenance (model args, git
    hash, versions). Importing the same output twice stores it once."""
    from rich.table import Table

    from llama_zoo.orchestration.lm_eval_import import import_output
    from llama_zoo.results.store import Store

    store = Store.open(db)
    runs = import_output(path, store, model)
    if fmt is TableOrJson.json:
        print_json([vars(r) for r in runs])
        return
    table = Table(title=f"{len(runs)} lm-eval task{'s' if len(runs) != 1 else ''} from {path}", title_justify="left",
                  header_style="bold")
    for col in ("task", "model", "run", "samples", "headline", "stored"):
        table.add_column(col, justify="right" if col == "samples" else "left")
    for r in runs:
        shown = f"{r.headline}={r.value:.4g}" if r.value is not None else "-"
        table.add_row(r.suite, r.model_id, r.run_id, str(r.samples), shown,
                      "already stored" if r.cached else "imported")
    console.print(table)


@app.command("meta-evals")
def meta_evals_command(
    dataset: str = typer.Argument(..., help="Meta's evals dataset, e.g. meta-llama/Llama-3.1-8B-Instruct-evals (found under "
                                  "$LLAMA_ZOO_DATA/<it>, else on the hub), or a local snapshot directory of it."),
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="The benchmark (its config <Model>-evals__<benchmark>__details): "
                                  "mmlu, mmlu_pro, gpqa or gpqa_diamond."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model the rows are of (default: the registry "
                                        "model whose hub id is the dataset's without -evals)."),
    dataset_file: Optional[str] = typer.Option(None, "--dataset-file", help="Read the rows from this parquet/jsonl/json "
                                               "file instead."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table, or json."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Meta's own per-sample results (its published evals datasets) as a completed run of the model they are of,
    weights source 'published': every row a sample keyed as llama-zoo's own run of the benchmark keys it, so
    'compare' pairs the two row by row. Importing the same rows twice stores them once."""
    from llama_zoo.orchestration.meta_evals_import import import_evals
    from llama_zoo.results.store import Store

    store = Store.open(db)
    run = import_evals(dataset, benchmark, store, model, dataset_file)
    if fmt is TableOrJson.json:
        print_json(vars(run))
        return
    shown = f"{run.headline}={run.value:.4g}" if run.value is not None else "-"
    console.print(f"{run.suite} of {run.model_id} from {run.dataset}: run {run.run_id}, {run.samples} samples, {shown} "
                  f"({'already stored' if run.cached else 'imported'})")
