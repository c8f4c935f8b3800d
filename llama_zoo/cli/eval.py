"""``llama-zoo eval``: run a suite on a model and store the run.

The command's flags are the loop's own plus, in a panel per suite, the options each registered
suite declares (plug-ins included): a new suite brings its flags with it.
"""

from __future__ import annotations

import inspect
import sys
import time
from typing import Any, Callable, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, interrupted_said, print_json
from llama_zoo.cli.options import EVAL, SELECTION, alias_parameter, for_command, names, note, parameter, parameters, take
from llama_zoo.errors import LlamaZooError
from llama_zoo.suites import DEFAULT_SUITE
from llama_zoo.orchestration.executors import RAY, SCALE_OPTIONS, Executor, Scale
from llama_zoo.orchestration.loop import RUN_OPTIONS


def _declared(table) -> Iterator[tuple[str, Any]]:
    """(plug-in name, option) for every option each suite or backend of ``table`` declares; a broken
    plug-in is passed over, so it does not take the whole command down (asking for it names it)."""
    for name in table.names():
        try:
            info = table.get(name).info
        except (LlamaZooError, AttributeError):
            continue
        for option in info.options:
            yield name, option


def _suite_options() -> dict[str, tuple[Any, list[str], list[tuple[str, Any]]]]:
    """Every option some suite declares: name -> (the first declaration, the suites that take it,
    each distinct declaration with its suite). Suites may share a flag name when the values have one
    type (two suites' ``--subset``, say); each suite checks its own choices."""
    from llama_zoo.suites import SUITES

    found: dict[str, tuple[Any, list[str], list[tuple[str, Any]]]] = {}
    for name, option in _declared(SUITES):
        first = found.get(option.name)
        run = RUN.get(option.name)
        # a shared flag needs one value type; a shared switch, one default (the switch passes it on);
        # a run option's flag gives its value to the suites that declare it too (bench's --batch-size)
        clash = (run.value_type != option.value_type if run is not None else option.name in TAKEN or option.name in BACKEND_FLAGS) or first is not None and (
            first[0].value_type != option.value_type or option.value_type is bool and first[0].default != option.default)
        if clash:  # the first declaration (or the loop's own flag) keeps the name; say why the other has none
            print(f"warning: suite {name} declares option {option.flag}, which is taken; it is not offered",
                  file=sys.stderr)
            continue
        entry = found.setdefault(option.name, (option, [], []))
        entry[1].append(name)
        if all(option != other for _, other in entry[2]):
            entry[2].append((name, option))
    return found


def _backend_options() -> dict[str, tuple[Any, list[str]]]:
    """Every option some backend declares (``BackendInfo.options``): name -> (the first declaration,
    the backends that take it). The loop refuses one given to a backend that does not declare it."""
    from llama_zoo.backends import BACKENDS

    found: dict[str, tuple[Any, list[str]]] = {}
    for name, option in _declared(BACKENDS):
        if option.name in LOOP_FLAGS or (
                option.name in found and found[option.name][0].value_type != option.value_type):
            print(f"warning: backend {name} declares option {option.flag}, which is taken; it is not offered",
                  file=sys.stderr)
            continue
        found.setdefault(option.name, (option, []))[1].append(name)
    return found


def backend_parameters(helped: frozenset[str] = frozenset()) -> list[inspect.Parameter]:
    """A flag per backend option, in a panel per backend; unset (None) unless given, so that only
    what the user gave reaches the loop (which fills the backend's defaults). ``--help`` lists those
    of the backends in ``helped`` (all where it is empty)."""
    params = []
    for name, (option, owners) in BACKEND_FLAGS.items():
        kind = option.value_type
        flag = typer.Option(None, option.flag, help=_option_help(option),  # bounds: checked by the loop, in one line
                            hidden=bool(helped) and not helped & set(owners),
                            rich_help_panel=f"--backend {' / '.join(owners)} options")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind], default=flag))
    return params


def _option_help(option) -> str:
    choices = f" One of: {', '.join(map(str, option.choices))}." if option.choices else ""
    default = f" (default {option.default})" if option.default is not None and option.value_type is not bool else ""
    return f"{option.help}{choices}{default}"


def _suite_names() -> str:
    from llama_zoo.suites import SUITES

    return ", ".join(SUITES.names())


def _dataset_help(helped: frozenset[str] = frozenset()) -> str:
    from llama_zoo.suites import SUITES

    parts = []
    for name in SUITES.names():
        if helped and name not in helped:
            continue
        try:
            info = SUITES.get(name).info
        except LlamaZooError:
            continue
        if info.datasets:
            parts.append(f"{name}: {info.datasets}.")
    return " ".join(parts)


def eval_command(**kwargs: Any) -> None:
    """Run a suite on a model and store it: a completed identical run is reused, an interrupted one
    resumed. Several models and suites make a matrix: one run per cell, a failed cell recorded and
    the matrix going on."""
    from llama_zoo.orchestration.matrix import select_models
    from llama_zoo.results.db import resolve_url
    from llama_zoo.results.store import Store

    suites = list(dict.fromkeys(kwargs.pop("suite") or [DEFAULT_SUITE]))
    models = select_models(kwargs.pop("model") or [], kwargs.pop("models") or [], kwargs.pop("where"))
    if not models:
        raise LlamaZooError("missing option --model: a registry id or Hugging Face repo id (or --models GLOB, --where EXPR)")
    fmt, db, fail_fast = kwargs.pop("fmt"), kwargs.pop("db"), kwargs.pop("fail_fast")
    scale = Scale(**take(kwargs, EVAL_SCALE, EVAL)).checked()
    run = take(kwargs, EVAL_RUN, EVAL)
    declared = SUITE_FLAGS
    given = {name: run[name] if name in run else kwargs.pop(name) for name in declared}
    for name in declared:  # old spellings of suite flags (bench's --new-tokens)
        for alias in _suite_aliases(declared[name]):
            old = kwargs.pop(alias_parameter(alias))
            if old is not None and old is not False:
                note(f"--{alias.replace('_', '-')} is deprecated: use {declared[name][0].flag}")
                given[name] = old if given[name] is None else given[name]
    from llama_zoo.suites import SUITES
    from llama_zoo.orchestration.matrix import expand_suites

    suites = expand_suites(suites, given)  # a group of tasks as its tasks

    infos = {suite: SUITES.get(suite).info for suite in suites}
    for name, value in given.items():  # an option no suite of the run takes is a mistake, said at once
        option = declared[name][0]
        taken = name in run or any(name in {o.name for o in info.options} for info in infos.values())
        if not taken and value is not None and (option.value_type is not bool or value != option.default):
            raise LlamaZooError(f"{option.flag} is an option of {', '.join(declared[name][1])}, not of {', '.join(suites)}")
    backend_given = {name: kwargs.pop(name) for name in BACKEND_FLAGS}
    backend_given = {name: value for name, value in backend_given.items() if value is not None}
    store = Store.open(db)  # before anything loads: a bad --db fails at once

    def request_for(model: str, suite: str):
        from llama_zoo.orchestration import RunRequest

        mine = {o.name for o in infos[suite].options}
        # a flag the suite declares too (bench's --batch-size) is the suite's, and the run's field keeps its
        # default, as when the two had different names: `bench` itself sizes the runner's batch from both
        own = {name: RUN[name].default for name in mine if name in RUN}
        return RunRequest(model=model, suite=suite, suite_options={k: v for k, v in given.items() if k in mine},
                          backend_options=backend_given, **{**run, **own})

    quiet = fmt is TableOrJson.json
    if len(models) * len(suites) > 1 or scale.spread:
        # workers open the store the driver opened, password and all
        _matrix(models, suites, request_for, store, resolve_url(db), quiet=quiet, fail_fast=fail_fast, scale=scale)
        return
    model, suite = models[0], suites[0]
    outcome = _one(request_for(model, suite), store, quiet)
    if quiet:
        # the weights' source travels with the numbers: a shadow or random run measures no model
        print_json({"run_id": outcome.run_id, "model_id": outcome.model_id, "cached": outcome.cached, "resumed": outcome.resumed,
                    "weights_source": outcome.provenance.get("weights_source"), "warnings": outcome.warnings,
                    "metrics": {m["name"]: {k: m[k] for k in ("value", "ci_low", "ci_high", "n")} for m in outcome.metrics},
                    # this command's work (none on a cache hit): the model's share is the time in backend calls
                    "timing": {"wall_s": outcome.wall_s, "model_s": outcome.model_s, "tokens": outcome.scored_tokens}})
        return
    show_outcome(outcome, suite)


def progress_bar(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=quiet or not console.is_terminal)


def progress_callback(bar: Progress, task):
    """The loop's progress callback, drawing ``task``: samples done and the rate of tokens."""
    started = time.perf_counter()

    def progress(done: int, total: int, tokens: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f"{tokens / elapsed:,.0f} tok/s" if elapsed and tokens else ""
        bar.update(task, completed=done, total=total, rate=rate)

    return progress


def _one(request, store, quiet: bool):
    from llama_zoo.orchestration import evaluate

    with progress_bar(quiet) as bar:
        task = bar.add_task(f"{request.model} · {request.suite}", total=None, rate="")
        with interrupted_said():
            return evaluate(request, store, progress_callback(bar, task))


def _executor(scale: Scale, store, db_url: str, request_for, bar: Progress) -> Executor:
    """The one place an executor is chosen; a cluster that cannot be used is refused here, before the bars."""
    from llama_zoo.orchestration.executors import Local, OnRay, Processes

    if scale.executor == RAY:
        from llama_zoo.orchestration.on_ray import connect

        return OnRay(connect(scale.ray_address, db_url), db_url, _gpus_for(request_for, scale.gpu))
    if scale.parallel > 1:
        return Processes(db_url, scale.parallel)
    current = bar.add_task("", total=None, rate="")
    cell_progress = None  # the current cell's bar, its rate counted from the cell's start

    def on_start(cell) -> None:
        nonlocal cell_progress
        bar.reset(current, total=None, description=f"{cell.model} · {cell.suite}", rate="")
        cell_progress = progress_callback(bar, current)

    return Local(store, on_start=on_start, progress=lambda *a: cell_progress(*a))


def _gpus_for(request_for, gpu: str) -> Callable[[Any, bool], int]:
    """A Ray task's GPUs: none on a CPU cluster or with --device cpu, else ``sizing.gpus_for_request``
    (``gpu`` a kind ``Scale.checked`` has checked)."""
    from llama_zoo.orchestration.sizing import gpus_for_request

    def gpus_for(cell, cluster_has_gpus: bool) -> int:
        request = request_for(cell)
        if not cluster_has_gpus or request.device == "cpu":
            return 0
        return gpus_for_request(request, cell.suite, gpu)

    return gpus_for


def _matrix(models: list[str], suites: list[str], request_for, store, db_url: str, *, quiet: bool, fail_fast: bool,
            scale: Scale) -> None:
    """Every (model, suite) cell, one overall bar and the current cell's; a summary at the end."""
    from llama_zoo.suites import SUITES
    from llama_zoo.orchestration.matrix import Cell

    cells = [Cell(model, suite) for model in models for suite in suites]
    headline_of = lambda suite: SUITES.get(suite).info.headline  # noqa: E731
    bar = progress_bar(quiet)
    overall = bar.add_task("", total=len(cells), rate="")
    executor = _executor(scale, store, db_url, lambda c: request_for(c.model, c.suite), bar)
    bar.update(overall, description=f"{len(models)} models x {len(suites)} suites{executor.where}")
    with bar:

        finished: list = []  # cells come back as copies from worker processes: collect them

        def on_done(cell) -> None:
            finished.append(cell)
            bar.advance(overall)

        try:
            cells = executor.run(cells, lambda c: request_for(c.model, c.suite), fail_fast=fail_fast, on_done=on_done,
                                 headline_of=headline_of)
        except KeyboardInterrupt:
            stored = sum(c.status in ("completed", "cached") for c in finished)
            raise LlamaZooError(f"interrupted: {stored} of {len(cells)} cells stored; the same command resumes the "
                                "rest (a cell cut off mid-way from its stored samples)") from None
        bar.update(overall, completed=len(cells))
    failed = [c for c in cells if c.status == "failed"]
    if quiet:
        print_json([{k: getattr(c, k) for k in ("model", "suite", "status", "run_id", "headline", "value", "seconds",
                                                  "weights_source", "error")} for c in cells])
    else:
        table = Table(title=f"{len(cells)} cells · {len(cells) - len(failed)} stored · {len(failed)} failed",
                      title_justify="left", header_style="bold")
        for col in ("model", "suite", "status", "headline", "time", "run / why not"):
            table.add_column(col, justify="right" if col == "time" else "left")
        for c in cells:
            shown = f"{c.headline}={c.value:.4g}" if c.value is not None else "-"
            if c.weights_source in ("shadow", "random"):
                shown += f" ({c.weights_source})"
            table.add_row(c.model, c.suite, c.status, shown, f"{c.seconds:.1f} s", c.run_id or (c.error or ""))
        console.print(table)
        if any(c.weights_source in ("shadow", "random") for c in cells):
            console.print("[yellow]shadow: not a measurement of the real model (rows marked shadow or random).[/yellow]")
    if failed:
        raise typer.Exit(1)


def show_outcome(outcome, suite: str) -> None:
    model = outcome.model_id
    state = "cache hit: stored earlier" if outcome.cached else ("resumed and completed" if outcome.resumed else "completed")
    source = outcome.provenance.get("weights_source")
    label = f"{model} ({source})" if source in ("shadow", "random") else model
    if outcome.quantize:
        label += f" · {outcome.quantize} weights"
    table = Table(title=f"run {outcome.run_id} · {label} · {suite} · {state}", title_justify="left", header_style="bold")
    for col in ("metric", "value", "95% CI", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in outcome.metrics:
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None else "-"
        table.add_row(m["name"], f"{m['value']:.6g}", ci, "-" if m["n"] is None else str(m["n"]))
    console.print(table)
    for warning in outcome.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    if source in ("shadow", "random"):
        what = "a tiny model of its family" if source == "shadow" else "its architecture"
        console.print(f"[yellow]{source}: not a measurement of the real model ({source} weights: {what} with random "
                      f"weights); these numbers exercise the code path, they do not measure {model}.[/yellow]")
    if outcome.model_s and outcome.scored_tokens:
        console.print(f"{outcome.scored_tokens:,} tokens in {outcome.model_s:.1f} s of model time "
                      f"({outcome.scored_tokens / outcome.model_s:,.0f} tokens/s; {outcome.wall_s:.1f} s in all)",
                      highlight=False)


EVAL_RUN = for_command(RUN_OPTIONS, EVAL)
EVAL_SCALE = for_command(SCALE_OPTIONS, EVAL)
RUN = {o.name: o for o in EVAL_RUN}
# every name the command's own flags take (old spellings included): a suite option may not take one
LOOP_FLAGS = (*names(SELECTION), "fail_fast", *names(EVAL_SCALE), *names(EVAL_RUN), "fmt", "format", "db")
TAKEN = frozenset((*LOOP_FLAGS, *(a for o in (*SELECTION, *EVAL_SCALE, *EVAL_RUN) for a in o.aliases)))  # as flags


def _suite_aliases(entry) -> list[str]:
    """The old spellings of a suite flag, over every suite that declares it; none that some flag already takes."""
    option, _, variants = entry
    if option.name in RUN:
        return []  # the run option's own old spellings stand
    return [a for a in dict.fromkeys(a for _, o in variants for a in o.aliases) if a not in TAKEN]


def _parameters(helped: frozenset[str] = frozenset(), backends: frozenset[str] = frozenset()
                ) -> list[inspect.Parameter]:
    """The loop's flags, then each suite's, as typer reads them from a signature. ``--help`` lists
    the options of the suites in ``helped`` (those the command line names), the others hidden:
    every suite's options at once made the help hundreds of lines."""
    from llama_zoo.backends import BACKENDS

    helps = {"suite": f"The suite (default {DEFAULT_SUITE}): {_suite_names()}. Its own options: llama-zoo eval "
                      "--suite NAME --help.", "dataset": _dataset_help(helped),
             "backend": f"The engine: {', '.join(BACKENDS.names())}."}
    loop = [
        *parameters(SELECTION, EVAL, helps=helps),
        parameter("fail_fast", bool, typer.Option(False, "--fail-fast", help="In a matrix, stop at the first failed cell (default: record it and go on).")),
        *parameters(EVAL_SCALE, EVAL),
        *parameters(EVAL_RUN, EVAL, helps=helps),
        parameter("fmt", TableOrJson, typer.Option(TableOrJson.table, "--format", help="table, or json (run id, metrics, and timing: the run's seconds from loading the model to its last stored sample, those inside backend calls, and tokens).")),
        parameter("db", Optional[str], DB_OPTION),
    ]
    suites = []
    for name, (option, owners, variants) in SUITE_FLAGS.items():
        if name in RUN:
            continue  # the run option's flag carries it
        kind = option.value_type
        annotation = bool if kind is bool else Optional[kind]
        mine = [(suite, o) for suite, o in variants if suite in helped] or variants
        shown = _option_help(mine[0][1]) if len(mine) == 1 else " ".join(f"{suite}: {_option_help(o)}" for suite, o in mine)
        suites.append(parameter(name, annotation, typer.Option(
            option.default if kind is bool else None, option.flag, help=shown, hidden=not helped & set(owners),
            rich_help_panel=f"{', '.join(o for o in owners if o in helped)} options")))
        for alias in _suite_aliases((option, owners, variants)):
            suites.append(parameter(alias_parameter(alias), bool if kind is bool else Optional[kind], typer.Option(
                False if kind is bool else None, "--" + alias.replace("_", "-"), hidden=True)))
    return loop + backend_parameters(backends) + suites


# The plug-ins' flags as this process found them, read once: typer reads the signature once, so a
# plug-in installed later is offered from the next process on, and the command never expects a flag
# it did not offer.
BACKEND_FLAGS = _backend_options()
SUITE_FLAGS = _suite_options()
eval_command.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]


def help_for(argv: list[str]) -> None:
    """Before ``eval --help`` is drawn: show the options of the suites its command line names."""
    if "eval" not in argv or not {"--help", "-h"} & set(argv):
        return
    named = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--suite"}
    named |= {a.split("=", 1)[1] for a in argv if a.startswith("--suite=")}
    from llama_zoo.suites import SUITES

    known = set(SUITES.names())
    # a family's member (lm-eval:arc_easy) shows the family's options
    helped = frozenset(n if n in known else n.split(":", 1)[0] + ":TASK" for n in named)
    backends = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--backend"}
    backends |= {a.split("=", 1)[1] for a in argv if a.startswith("--backend=")}
    eval_command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        _parameters(helped, frozenset(backends) or frozenset({"hf"})))
