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
    """Every cell in a pool of ``workers`` processes; results in the cells' order. Ctrl-C (or the
    first failure with ``fail_fast``) cancels the cells not yet started; those running finish
    their current batch only as far as the store has it, and a re-run resumes them."""
    gpus = visible_gpus()
    if gpus and workers > len(gpus):
        raise LlamaZooError(f"--parallel {workers} pins one GPU per process, and {len(gpus)} are visible "
                            f"({','.join(gpus)}); use --parallel {len(gpus)} or fewer")
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for i in range(workers):
        slots.put(gpus[i] if gpus else "")
    cells = list(cells)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pin, initargs=(slots,))
    pending = {pool.submit(run_cell_in_worker, cell, request_for(cell), db_url,
                           headline_of(cell.suite) if headline_of else None): i for i, cell in enumerate(cells)}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                try:
                    cells[i] = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died (killed for memory) fails its cell
                    cells[i].status, cells[i].error = "failed", f"worker process died: {type(exc).__name__}: {exc}"
                if on_done:
                    on_done(cells[i])
                if fail_fast and cells[i].status == "failed":
                    _cancel(pending, cells)
                    raise stopped_at(cells[i])
    except KeyboardInterrupt:
        _cancel(pending, cells)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return cells


def _cancel(pending, cells: list[Cell]) -> None:
    for future, i in pending.items():
        if future.cancel():
            cells[i].status = "cancelled"
