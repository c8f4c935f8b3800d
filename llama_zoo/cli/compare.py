"""``llama-zoo compare``: the difference between two runs, and whether it is real."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, console, emit, print_json
from llama_zoo.formatting import p_value


class CompareFormat(str, Enum):
    table = "table"
    json = "json"
    md = "md"
    csv = "csv"


COLUMNS = ("metric", "a", "b", "difference", "ci_low", "ci_high", "p_value", "n", "test")


def compare_command(
    a: str = typer.Argument(..., help="Run id (or prefix), or a model id for its newest completed run."),
    b: str = typer.Argument(..., help="The other run or model; differences are B minus A."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Which suite's runs, when a model has several."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", help="table, json, md (for papers) or csv."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Paired comparison on shared samples, by the test the suite declares (McNemar for pass/fail, a paired bootstrap for continuous scores)."""
    from llama_zoo.reports.compare import compare
    from llama_zoo.results.store import Store

    result = compare(Store.open(db), a, b, suite=suite, seed=seed)
    rows = result["rows"]
    if fmt is CompareFormat.json:
        print_json(result)
        return
    if fmt is CompareFormat.csv:
        from llama_zoo.cli.common import Format

        emit([{k: r[k] for k in COLUMNS} for r in rows], Format.csv, {}, "")
        return
    if fmt is CompareFormat.md:
        print(f"A = {result['a']['model_id']} (run {result['a']['id']}), B = {result['b']['model_id']} "
              f"(run {result['b']['id']}), {result['shared_samples']} shared samples\n")
        print("| metric | A | B | B − A | 95% CI | p |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['metric']} | {r['a']:.4g} | {r['b']:.4g} | {r['difference']:+.4g} | "
                  f"[{r['ci_low']:+.4g}, {r['ci_high']:+.4g}] | {p_value(r['p_value'], r['n'])} |")
        return
    title = (f"A = {result['a']['model_id']} ({result['a']['id']})  B = {result['b']['model_id']} ({result['b']['id']})"
             f"  · {result['a']['suite']} · {result['shared_samples']} shared samples")
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("metric", "A", "B", "B − A", "95% CI", "p", "test"):
        table.add_column(col, justify="left" if col in ("metric", "test") else "right")
    for r in rows:
        mark = "[bold green]" if r["significant"] else ""
        table.add_row(r["metric"], f"{r['a']:.4g}", f"{r['b']:.4g}", f"{mark}{r['difference']:+.4g}",
                      f"[{r['ci_low']:+.4g}, {r['ci_high']:+.4g}]", f"{mark}{p_value(r['p_value'], r['n'])}", r["test"])
    console.print(table)
    for about in (result["a"], result["b"]):
        if about["weights_source"] in ("shadow", "random"):
            console.print(f"[yellow]run {about['id']} used {about['weights_source']} weights: it does not measure {about['model_id']}.[/yellow]")
