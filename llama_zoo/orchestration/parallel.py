"""``--parallel N``: a matrix's cells in N worker processes on this machine, each pinned to one GPU
(``CUDA_VISIBLE_DEVICES``) where there are GPUs. Workers start fresh (spawn), so no CUDA state
or open database connection crosses a fork; each opens the store by URL, and SQLite's WAL and
PostgreSQL both take writers from several processes.

A cell that needs more than one GPU belongs to the Ray executor or to one process with
``--device-map auto``: a worker here sees exactly one.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.orchestration.loop import RunRequest
from llama_zoo.orchestration.matrix import Cell, run_cell_in_worker, stopped_at


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g for g in given.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def _pin(slots) -> None:
    """Worker start: take a GPU slot (an empty name where the machine has none)."""
    gpu = slots.get()
    if gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def run_in_processes(cells: Sequence[Cell], request_for: Callable[[Cell], RunRequest], db_url: str, workers: int, *,
                     fail_fast: bool = False, on_done: Callable[[Cell], None] | None = None,
                     headline_of: Callable[[str], str] | None = None) -> list[Cell]:
    """Every cell in a pool of ``workers`` processes; results in the cells' order. At most
    ``workers`` cells are handed out at once, so Ctrl-C (or the first failure with ``fail_fast``)
    leaves nothing queued: the workers are stopped, what they stored stays, and the same command
    resumes. A worker that dies (killed for memory) breaks the pool: the cells in flight are handed
    to a fresh pool once more, and a cell that breaks it twice is failed."""
    gpus = visible_gpus()
    if gpus and workers > len(gpus):
        raise LlamaZooError(f"--parallel {workers} pins one GPU per process, and {len(gpus)} are visible "
                            f"({','.join(gpus)}); use --parallel {len(gpus)} or fewer")
    context = multiprocessing.get_context("spawn")
    cells = list(cells)
    waiting = list(range(len(cells)))
    tries = [0] * len(cells)
    pool, running = _pool(context, workers, gpus), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                i = waiting.pop(0)
                tries[i] += 1
                running[pool.submit(run_cell_in_worker, cells[i], request_for(cells[i]), db_url,
                                    headline_of(cells[i].suite) if headline_of else None)] = i
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                i = running.pop(future)
                try:
                    cells[i] = future.result()
                except BrokenProcessPool:
                    broken = True
                    if tries[i] < 2:
                        waiting.insert(0, i)
                        continue
                    cells[i].status, cells[i].error = "failed", "its worker process died twice (out of memory?)"
                if on_done:
                    on_done(cells[i])
                if fail_fast and cells[i].status == "failed":
                    _cancel(running, waiting, cells)
                    _terminate(pool)
                    raise stopped_at(cells[i])
            if broken:  # every future of a broken pool fails: those still counted as running go round again
                waiting[:0] = [running.pop(f) for f in list(running)]
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(context, workers, gpus)
    except KeyboardInterrupt:
        _cancel(running, waiting, cells)
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return cells


def _pool(context, workers: int, gpus: list[str]) -> ProcessPoolExecutor:
    slots = context.Queue()
    for i in range(workers):
        slots.put(gpus[i] if gpus else "")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pin, initargs=(slots,))


def _cancel(running, waiting: list[int], cells: list[Cell]) -> None:
    for i in running.values():
        cells[i].status = "interrupted"
    for i in waiting:
        cells[i].status = "cancelled"
    waiting.clear()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers at their cells (their runs resume from what they stored): the pool's own
    API can only wait for them to finish."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
