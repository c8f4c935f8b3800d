"""Where a matrix's cells run: one ``Executor`` protocol for this process (``Local``), worker
processes on this machine (``Processes``, ``--parallel N``) and a Ray cluster (``OnRay``,
``--executor ray``). A cell's identity is the loop's whichever runs it, so a matrix started on one
resumes on another. ``Scale`` is the typed set of flags that chooses one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option, declare, declared
from llama_zoo.orchestration.loop import EVAL, PLAN, RUN_OPTIONS, Progress, RunRequest
from llama_zoo.orchestration.matrix import Cell

LOCAL, RAY = "local", "ray"

RequestFor = Callable[[Cell], RunRequest]
OnDone = Callable[[Cell], None]
HeadlineOf = Callable[[str], str]


@runtime_checkable
class Executor(Protocol):
    """Runs every cell, each through the loop, and returns them in order with their outcomes.
    ``fail_fast`` stops at the first failed cell (raising its one line); ``on_done`` is called as
    each cell finishes; ``headline_of`` names a suite's headline metric."""

    @property
    def where(self) -> str: ...  # for the matrix's progress line: "", " in 4 processes", " on Ray"

    def run(self, cells: Sequence[Cell], request_for: RequestFor, *, fail_fast: bool = False,
            on_done: OnDone | None = None, headline_of: HeadlineOf | None = None) -> list[Cell]: ...


@dataclass(frozen=True)
class Local:
    """Cells one after another in this process, into the store it opened."""

    store: Any
    on_start: Callable[[Cell], None] | None = None
    progress: Progress | None = None

    @property
    def where(self) -> str:
        return ""

    def run(self, cells: Sequence[Cell], request_for: RequestFor, *, fail_fast: bool = False,
            on_done: OnDone | None = None, headline_of: HeadlineOf | None = None) -> list[Cell]:
        from llama_zoo.orchestration.matrix import run_matrix

        return run_matrix(cells, request_for, self.store, fail_fast=fail_fast, on_start=self.on_start,
                          on_done=on_done, progress=self.progress, headline_of=headline_of)


@dataclass(frozen=True)
class Processes:
    """``--parallel N``: cells in N spawned worker processes, each opening the store by URL."""

    db_url: str
    workers: int

    @property
    def where(self) -> str:
        return f" in {self.workers} processes"

    def run(self, cells: Sequence[Cell], request_for: RequestFor, *, fail_fast: bool = False,
            on_done: OnDone | None = None, headline_of: HeadlineOf | None = None) -> list[Cell]:
        from llama_zoo.orchestration.parallel import run_in_processes

        return run_in_processes(cells, lambda c: portable(request_for(c)), self.db_url, self.workers,
                                fail_fast=fail_fast, on_done=on_done, headline_of=headline_of)


@dataclass(frozen=True)
class OnRay:
    """``--executor ray``: a task per cell with the GPUs ``gpus_for`` gives; ``ray`` from ``on_ray.connect``."""

    ray: Any
    db_url: str
    gpus_for: Callable[[Cell, bool], float]

    @property
    def where(self) -> str:
        return " on Ray"

    def run(self, cells: Sequence[Cell], request_for: RequestFor, *, fail_fast: bool = False,
            on_done: OnDone | None = None, headline_of: HeadlineOf | None = None) -> list[Cell]:
        from llama_zoo.orchestration.on_ray import run_on_ray

        return run_on_ray(self.ray, cells, lambda c: portable(request_for(c)), self.db_url, gpus_for=self.gpus_for,
                          fail_fast=fail_fast, on_done=on_done, headline_of=headline_of)


def portable(request: RunRequest) -> RunRequest:
    """The request with every path in it absolute (the fields declared ``path``, and suite options
    naming an existing file), for a worker whose working directory is not ours."""

    def absolute(value):
        return str(Path(value).expanduser().resolve()) if value and Path(value).expanduser().exists() else value

    fields = {o.name: absolute(getattr(request, o.name)) for o in RUN_OPTIONS if o.path}
    options = {k: absolute(v) if isinstance(v, str) else v for k, v in request.suite_options.items()}
    return dataclasses.replace(request, model=absolute(request.model), suite_options=options, **fields)


def _gpu_help() -> str:
    from llama_zoo.registry.derive import GPUS

    return ("The GPU kind: what plan sizes cells for, and what a Ray task's GPUs are counted in: "
            f"{', '.join(GPUS)}.")


@dataclass(frozen=True)
class Scale:
    """How a matrix runs: the executor and its settings, as ``eval`` (and ``plan``: the GPU kind) take them."""

    executor: str = declare(Option(
        "executor", LOCAL, "Where a matrix's cells run: local (this machine; one after another, or --parallel N "
        "processes) or ray (each cell a Ray task asking for the GPUs 'llama-zoo plan' says it needs; needs the ray "
        "extra).", choices=(LOCAL, RAY), commands=(EVAL,), identity=False, panel="scale"))
    ray_address: str | None = declare(Option(
        "ray_address", None, "A running Ray cluster (HOST:PORT, ray://HOST:PORT or auto; default: a local cluster "
        "started for the run). Workers on other hosts need a shared store: --db postgresql://USER@HOST/DB.", type=str,
        metavar="HOST:PORT", commands=(EVAL,), identity=False, panel="scale"))
    parallel: int = declare(Option(
        "parallel", 1, "Local executor: cells in N worker processes at once, each pinned to one GPU where there are "
        "GPUs.", minimum=1, commands=(EVAL,), identity=False, panel="scale"))
    gpu: str = declare(Option("gpu", "H100-80GB", _gpu_help(), commands=(EVAL, PLAN), identity=False, panel="scale"))

    def checked(self) -> "Scale":
        """The GPU kind as the registry spells it; flags that contradict each other refused in one line."""
        from llama_zoo.orchestration.sizing import gpu_kind

        gpu = gpu_kind(self.gpu)  # a GPU kind the registry does not know is one line, at once
        if self.ray_address is not None and self.executor != RAY:
            raise LlamaZooError("--ray-address is for --executor ray")
        if self.parallel > 1 and self.executor == RAY:
            raise LlamaZooError("--parallel is for --executor local; Ray runs as many cells at once as the cluster has room for")
        return dataclasses.replace(self, gpu=gpu)

    @property
    def spread(self) -> bool:
        """Whether cells leave this process (even a single one)."""
        return self.executor == RAY or self.parallel > 1


SCALE_OPTIONS = declared(Scale)
