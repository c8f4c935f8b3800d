"""``--executor ray``: each cell of a matrix is a Ray task asking for the GPUs it needs, on a
running cluster (``--ray-address``) or on a local one started for the run.

Workers write straight into the store, so every worker must reach the same database: a shared
PostgreSQL server is the setup for a cluster. A SQLite file (or a database on this host's
loopback address) is refused when any node of the cluster is another host. Workers need
llama-zoo and its extras installed as on the driver; the driver's ``LLAMA_ZOO_*`` and ``HF_*``
settings travel with each task.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.orchestration.loop import RunRequest
from llama_zoo.orchestration.matrix import Cell, run_cell_in_worker, stopped_at

CONNECT_TIMEOUT_S = 5.0
_PASSED_ON = ("LLAMA_ZOO_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_")


def connect(address: str | None, db_url: str):
    """``ray.init`` on ``address`` (``host:port``, ``ray://host:port`` or ``auto``), or a local
    cluster for this run, and the store checked against its nodes; an address that does not answer
    is one line, not Ray's minute of retries. Returns the ``ray`` module, connected."""
    try:
        import ray
    except ImportError:
        raise LlamaZooError("--executor ray needs Ray: pip install 'llama-zoo[ray]'") from None
    if address and address != "auto":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise LlamaZooError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
                                "(start one with 'ray start --head', or leave out --ray-address for a local one)") from None
    env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ON)}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": env} if env else None, configure_logging=False)
    except ConnectionError as exc:
        raise LlamaZooError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        check_store(db_url, ray.nodes(), address)
    except LlamaZooError:
        ray.shutdown()
        raise
    return ray


def _host_port(address: str) -> tuple[str, int]:
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise LlamaZooError(f"--ray-address {address!r}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    return host, int(port)


def other_hosts(nodes: Sequence[dict]) -> list[str]:
    """The hostnames of the cluster's live nodes that are not this machine."""
    here = socket.gethostname()
    return sorted({n["NodeManagerHostname"] for n in nodes if n.get("Alive") and n["NodeManagerHostname"] != here})


def check_store(db_url: str, nodes: Sequence[dict], address: str | None) -> None:
    """Refuse a store that workers on other hosts cannot reach, before any task starts."""
    from sqlalchemy.engine import make_url

    remote = other_hosts(nodes)
    if not remote:
        return
    url = make_url(db_url)
    where = f"the Ray cluster at {address or 'auto'} has workers on other hosts ({', '.join(remote)})"
    if url.get_backend_name() == "sqlite":
        raise LlamaZooError(f"--db {url.database} is a SQLite file on this host and {where}: "
                            "give a shared PostgreSQL store, --db postgresql://USER@HOST/DB")
    if url.host in (None, "", "localhost") or url.host.startswith("127.") or url.host == "::1":
        raise LlamaZooError(f"--db names this host's loopback address ({url.host or 'a local socket'}) and {where}: "
                            "give the database server's network address")


def run_on_ray(ray, cells: Sequence[Cell], request_for: Callable[[Cell], RunRequest], db_url: str, *,
               gpus_for: Callable[[Cell, bool], float], fail_fast: bool = False,
               on_done: Callable[[Cell], None] | None = None,
               headline_of: Callable[[str], str] | None = None) -> list[Cell]:
    """Every cell as a Ray task, results in the cells' order as they come back. Ctrl-C (or the
    first failure with ``fail_fast``) cancels the outstanding tasks; stored cells stay stored, and
    a run cut off mid-way is resumed by the next matrix. ``ray`` comes from ``connect``."""
    try:
        cluster_gpus = ray.cluster_resources().get("GPU", 0) > 0
        largest = max((n.get("Resources", {}).get("GPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        task = ray.remote(run_cell_in_worker)
        cells = list(cells)
        pending = {}
        for i, cell in enumerate(cells):
            try:  # a cell the cluster cannot hold fails here, alone, instead of waiting for ever
                gpus = gpus_for(cell, cluster_gpus)
                if cluster_gpus and gpus > largest:
                    raise LlamaZooError(f"needs {gpus} GPUs in one task; the cluster's largest node has {largest:g} "
                                        "(try --quantize, or vLLM's --tensor-parallel)")
            except Exception as exc:  # noqa: BLE001 - an unknown model, a model that fits nowhere
                cell.status, cell.error = "failed", str(exc) if isinstance(exc, LlamaZooError) else f"{type(exc).__name__}: {exc}"
                if on_done:
                    on_done(cell)
                if fail_fast:
                    raise stopped_at(cell) from None
                continue
            ref = task.options(num_cpus=1, num_gpus=gpus, max_retries=0, name=f"{cell.model} · {cell.suite}").remote(
                cell, request_for(cell), db_url, headline_of(cell.suite) if headline_of else None)
            pending[ref] = i
        interrupted = threading.Event()
        restore = _flag_sigint(interrupted)
        try:
            while pending:
                # Ctrl-C only sets a flag, read between short waits: a KeyboardInterrupt raised inside
                # Ray's own calls can be swallowed there (CI saw the matrix run on after one)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        cells[i] = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a worker that died (killed for memory) fails its cell
                        cells[i].status = "failed"
                        cells[i].error = f"Ray task failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    if on_done:
                        on_done(cells[i])
                    if fail_fast and cells[i].status == "failed":
                        _cancel(ray, pending, cells)
                        raise stopped_at(cells[i])
        except KeyboardInterrupt:
            _cancel(ray, pending, cells)
            raise
        finally:
            restore()
        return cells
    finally:
        ray.shutdown()


def _flag_sigint(event: threading.Event) -> Callable[[], None]:
    """Ctrl-C sets ``event`` instead of raising wherever the main thread is; returns what puts the
    previous handler back (nothing to do off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, lambda signum, frame: event.set())
    return lambda: signal.signal(signal.SIGINT, previous)


def _cancel(ray, pending, cells: list[Cell]) -> None:
    for ref, i in pending.items():
        ray.cancel(ref, force=True)
        cells[i].status = "cancelled"
