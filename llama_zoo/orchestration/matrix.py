"""A model x suite matrix through the one loop: one run per cell, each cached and resumable on its
own; a cell that fails (a refused model, a missing dataset, out of memory) is recorded and the
matrix goes on, unless asked to stop at the first failure.

Models come as given (``--model``), from registry globs (``--models 'llama-3.1-*'``) and from a
``--where`` expression over the registry's facts (the same language as ``models list``); a glob
and ``--where`` together select the models matching both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.orchestration.loop import Kept, Outcome, Progress, RunRequest, evaluate


@dataclass
class Cell:
    model: str
    suite: str
    status: str = "pending"  # completed | cached | failed | interrupted | cancelled
    run_id: str | None = None
    headline: str | None = None  # the suite's headline metric's name
    value: float | None = None
    seconds: float = 0.0
    error: str | None = None
    weights_source: str | None = None


def select_models(named: Sequence[str], globs: Sequence[str], where: str | None) -> list[str]:
    """The models of a matrix, in order, each once: those named, then the registry's matches."""
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.query import parse_where, row

    chosen = list(dict.fromkeys(named))
    if not globs and not where:
        return chosen
    catalog = load_catalog()
    ids = [spec.id for spec in catalog]
    for pattern in globs:
        if not any(fnmatchcase(i, pattern) for i in ids):
            raise LlamaZooError(f"--models {pattern!r} matches no registry model (see 'llama-zoo models list')")
    candidates = [i for i in ids if any(fnmatchcase(i, p) for p in globs)] if globs else ids
    if where:
        rows = {spec.id: row(spec) for spec in catalog}
        predicate = parse_where(where, set().union(*(r.keys() for r in rows.values())))
        candidates = [i for i in candidates if predicate(rows[i])]
        if not candidates:
            scope = f" among --models {' '.join(globs)}" if globs else ""
            raise LlamaZooError(f"--where {where!r} matches no registry model{scope}")
    return list(dict.fromkeys([*chosen, *candidates]))


def expand_suites(names: Sequence[str], given: dict) -> list[str]:
    """Suites as given, a name that stands for several (an lm-eval group, say: the suite object
    offers ``expands(options)``) replaced by those, each once."""
    from llama_zoo.suites import SUITES

    out: list[str] = []
    for name in names:
        suite = SUITES.get(name)
        expands = getattr(suite, "expands", None)
        mine = {o.name for o in suite.info.options}
        more = expands(suite.info.resolve_options({k: v for k, v in given.items() if k in mine})) if expands else None
        out += more or [name]
    return list(dict.fromkeys(out))


def run_cell(cell: Cell, request: RunRequest, store, progress: Progress | None = None,
             headline: str | None = None, kept: Kept | None = None) -> Cell:
    """One cell through ``evaluate``, its outcome or its failure written into ``cell``. A failure is
    the cell's own (the loop has stored the run as failed where it had begun); Ctrl-C is not."""
    started = time.perf_counter()
    try:
        outcome = evaluate(request, store, progress, kept)
    except KeyboardInterrupt:
        cell.status, cell.error = "interrupted", "interrupted by the user"
        cell.seconds = time.perf_counter() - started
        raise
    except LlamaZooError as exc:  # refused, a missing dataset, a bad option for this model
        _failed(cell, str(exc), started)
    except Exception as exc:  # noqa: BLE001 - out of memory and the like belong to this cell alone
        _failed(cell, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", started)
    else:
        _completed(cell, outcome, headline, started)
    return cell


def run_matrix(cells: Sequence[Cell], request_for: Callable[[Cell], RunRequest], store, *, fail_fast: bool = False,
               on_start: Callable[[Cell], None] | None = None, on_done: Callable[[Cell], None] | None = None,
               progress: Progress | None = None, headline_of: Callable[[str], str] | None = None) -> list[Cell]:
    """Each cell in order, in this process (the local executor). Ctrl-C stops the matrix, and what
    is stored stays: the next run resumes. Consecutive cells of one model load it once."""
    kept = Kept()
    for cell in cells:
        if on_start:
            on_start(cell)
        run_cell(cell, request_for(cell), store, progress, headline_of(cell.suite) if headline_of else None, kept)
        if on_done:
            on_done(cell)
        if fail_fast and cell.status == "failed":
            raise stopped_at(cell)
    return list(cells)


def stopped_at(cell: Cell) -> LlamaZooError:
    """``--fail-fast``: the first failed cell's reason, as the command's one line."""
    return LlamaZooError(f"{cell.model} · {cell.suite}: {cell.error}")


_STORES: dict[str, object] = {}


def run_cell_in_worker(cell: Cell, request: RunRequest, db_url: str, headline: str | None) -> Cell:
    """A cell in a worker process (``--parallel``, Ray): the store opened once per process, by URL."""
    from llama_zoo.results.store import Store

    store = _STORES.get(db_url)
    if store is None:
        store = _STORES[db_url] = Store.open(db_url)
    return run_cell(cell, request, store, headline=headline)


def _failed(cell: Cell, error: str, started: float) -> None:
    cell.status, cell.error, cell.seconds = "failed", error, time.perf_counter() - started


def _completed(cell: Cell, outcome: Outcome, headline: str | None, started: float) -> None:
    cell.status = "cached" if outcome.cached else "completed"
    cell.run_id, cell.seconds = outcome.run_id, time.perf_counter() - started
    cell.weights_source = outcome.provenance.get("weights_source")
    values = {m["name"]: m["value"] for m in outcome.metrics}
    cell.headline = headline if headline in values else next(iter(values), None)
    cell.value = values.get(cell.headline) if cell.headline else None
