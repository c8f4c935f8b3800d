"""``llama-zoo runs`` and ``llama-zoo db``: what the results store holds, and its schema."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.panel import Panel
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, Format, TableOrJson, console, emit, print_json
from llama_zoo.errors import LlamaZooError

app = typer.Typer(help="Stored runs: list, inspect, export and remove them.", no_args_is_help=True,
                  rich_markup_mode="rich")
db_app = typer.Typer(help="The results database itself: where it is, its schema revision, upgrades.",
                     no_args_is_help=True, rich_markup_mode="rich")


class Status(str, Enum):
    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


def _store(db: str | None):
    from llama_zoo.results.store import Store

    return Store.open(db)


LIST_COLUMNS = {"id": "run", "model_id": "model", "suite": "suite", "dataset_name": "dataset",
                "weights_source": "weights", "status": "status", "created_at": "created", "wall_time_s": "wall s",
                "metrics": "metrics"}


def _list_cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "created_at":
        return value.strftime("%Y-%m-%d %H:%M")
    if column == "wall_time_s":
        return f"{value:.1f}"
    if column == "metrics":
        shown = [f"{k}={v:.4g}" for k, v in list(value.items())[:3]]
        return ", ".join(shown) + (" …" if len(value) > 3 else "")
    return str(value)


@app.command("list")
def list_runs(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only runs of this registry model id."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Only runs of this suite."),
    status: Optional[Status] = typer.Option(None, "--status", help="Only runs in this state."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="At most this many (newest first)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Runs, newest first, with their metrics."""
    store = _store(db)
    rows = store.list_runs(model=model, suite=suite, status=status.value if status else None, limit=limit)
    if fmt is Format.csv:  # one column per metric, for spreadsheets
        for r in rows:
            r.update({f"metric.{k}": v for k, v in r.pop("metrics").items()})
    emit(rows, fmt, LIST_COLUMNS, title=f"{len(rows)} runs in {store.engine.url.render_as_string()}",
         cell=_list_cell)


def _provenance_table(run: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, title="Provenance", title_justify="left", title_style="bold")
    table.add_column(style="cyan")
    table.add_column()
    skip = {"metrics", "error"}
    for key, value in run.items():
        if key in skip or value in (None, {}, ""):
            continue
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    return table


@app.command()
def show(
    run: str = typer.Argument(..., help="Run id, or a unique prefix of one."),
    samples: int = typer.Option(5, "--samples", help="How many samples to show."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """One run: provenance, metrics and its first samples."""
    store = _store(db)
    data = store.get(run)
    first = list(store.iter_samples(data["id"], limit=samples)) if samples else []
    if fmt is not TableOrJson.table:
        print_json({**data, "samples": first})
        return
    title = f"[bold]run {data['id']}[/bold]  {data['model_id']} · {data['suite']} · [bold]{data['status']}[/bold]"
    console.print(Panel(_provenance_table(data), title=title, title_align="left"))
    if data.get("error"):
        console.print(Panel(data["error"], title="error", border_style="red"))
    metrics = Table(title="Metrics", title_justify="left", title_style="bold", header_style="bold")
    for col in ("name", "value", "95% CI", "stderr", "n"):
        metrics.add_column(col, justify="left" if col == "name" else "right")
    for m in data["metrics"]:
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None else "-"
        metrics.add_row(m["name"], f"{m['value']:.6g}", ci,
                        "-" if m["stderr"] is None else f"{m['stderr']:.3g}", "-" if m["n"] is None else str(m["n"]))
    console.print(metrics)
    if first:
        table = Table(title=f"First {len(first)} of {data['samples_stored']} samples", title_justify="left",
                      title_style="bold", header_style="bold")
        for col in ("idx", "input", "output", "target", "scores"):
            table.add_column(col, overflow="ellipsis", max_width=48 if col != "idx" else None)
        for s in first:
            text = s["input"] if s["input"] is not None else s["input_ref"]
            table.add_row(str(s["idx"]), *(("-" if v is None else str(v)[:200])
                                           for v in (text, s["output"], s["target"], s["scores"])))
        console.print(table)


@app.command("rm")
def remove(
    runs: list[str] = typer.Argument(..., help="Run ids (or unique prefixes) to delete with their samples and metrics."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Delete runs, with their metrics and samples."""
    store = _store(db)
    full = [store.resolve(r) for r in runs]  # all or nothing: resolve every id before deleting any
    for run_id in full:
        store.delete(run_id)
        console.print(f"removed run {run_id}")


@app.command()
def export(
    run: str = typer.Argument(..., help="Run id, or a unique prefix of one."),
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", help="jsonl, csv or parquet."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: standard output; parquet needs a file)."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """A run's samples, one row each (scores flattened to columns in csv and parquet)."""
    store = _store(db)
    run_id = store.resolve(run)
    if fmt is ExportFormat.parquet and output is None:
        raise LlamaZooError("parquet export needs --output FILE")
    if output is not None and not output.parent.is_dir():
        raise LlamaZooError(f"directory {output.parent} does not exist")
    samples = store.iter_samples(run_id)
    if fmt is ExportFormat.jsonl:
        handle = open(output, "w") if output else sys.stdout
        try:
            for s in samples:
                handle.write(json.dumps(s, default=str) + "\n")
        finally:
            if output:
                handle.close()
    else:
        import pandas as pd

        frame = pd.json_normalize([{k: v for k, v in s.items()} for s in samples], sep=".")
        if fmt is ExportFormat.csv:
            frame.to_csv(output if output else sys.stdout, index=False)
        else:
            try:
                frame.to_parquet(output, index=False)
            except ImportError:
                raise LlamaZooError("parquet export needs pyarrow: pip install 'llama-zoo[parquet]'") from None
    if output:
        console.print(f"wrote run {run_id} to {output}", highlight=False)


@app.command()
def gc(
    interrupted: bool = typer.Option(False, "--interrupted", help="Also remove interrupted runs (they could otherwise resume)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Remove failed runs, and samples or metrics that belong to no run."""
    counts = _store(db).gc(include_interrupted=interrupted, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {counts['runs']} runs, {counts['orphaned_samples']} orphaned samples, "
                  f"{counts['orphaned_metrics']} orphaned metrics")


@db_app.command()
def upgrade(db: Optional[str] = DB_OPTION) -> None:
    """Upgrade the database schema to this llama-zoo's latest revision (opening does it too)."""
    from llama_zoo.results.db import make_engine, resolve_url, translate_errors, use_wal
    from llama_zoo.results.db import upgrade as run_upgrade

    url = resolve_url(db)
    engine = make_engine(url)
    with translate_errors(url):
        before, after = run_upgrade(engine)
        use_wal(engine)
    shown = engine.url.render_as_string()
    if before == after:
        console.print(f"{shown} is at the latest schema revision ({after})", highlight=False)
    else:
        console.print(f"upgraded {shown} from {before or 'an empty database'} to {after}", highlight=False)


@db_app.command()
def info(db: Optional[str] = DB_OPTION) -> None:
    """Where the database is, its schema revision, and how much it holds."""
    from llama_zoo.results.db import current_revision, head_revision, translate_errors

    store = _store(db)
    counts = store.counts()
    with translate_errors(store.url):
        revision = current_revision(store.engine)
    console.print(f"database  {store.engine.url.render_as_string()}\n"
                  f"revision  {revision} (latest {head_revision()})\n"
                  + "\n".join(f"{name:<9} {count:,}" for name, count in counts.items()), highlight=False)
