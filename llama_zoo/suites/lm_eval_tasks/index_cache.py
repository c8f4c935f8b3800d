"""lm-eval's task index, kept on disk between processes.

``TaskManager`` parses every task YAML of every directory it is given (lm-eval's own are about
14,000 files): 10-20 s on a small machine, in every process that names a task outside the ones
llama-zoo ships, so in every run, every ``--parallel`` or Ray worker, and before any offline
error can be reported. The parsed index (``TaskIndex.build``'s ``{name: Entry}``) depends only on
those files: it is kept under the cache directory (``$LLAMA_ZOO_CACHE``, else the user's cache),
keyed by lm-eval's version and each directory's files (their paths, sizes and modification times:
task YAMLs, the templates they include, the code they name), so an edited, added or removed file
builds it again. The cache is the user's own directory: its pickles are trusted as the user's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Iterator

from llama_zoo.machine_cache import cache_root, write_atomically


def cache_dir() -> Path:
    return cache_root() / "lm-eval-index"


def fingerprint(paths: Iterable[Path]) -> str:
    from importlib.metadata import version

    digest = hashlib.sha256(f"lm-eval {version('lm-eval')} slim\n".encode())
    for root in paths:
        digest.update(f"root {Path(root).resolve()}\n".encode())
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            # every file: a task's YAML, the templates it includes (often without an extension,
            # _default_template_yaml) and the code it !function-includes
            for name in sorted(filenames):
                with contextlib.suppress(OSError):
                    stat = os.stat(os.path.join(dirpath, name))
                    digest.update(f"{dirpath}/{name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


@contextlib.contextmanager
def cached_builds() -> Iterator[None]:
    """While inside, ``TaskManager`` takes its index from the cache where it is there, and leaves it
    there where it builds one."""
    from lm_eval.tasks import manager

    original = manager.TaskIndex

    class CachedIndex(original):  # type: ignore[misc, valid-type]
        @staticmethod
        def build(paths, **kwargs) -> dict[str, Any]:
            paths = [Path(p) for p in paths]
            path = cache_dir() / f"{fingerprint(paths)}.pickle"
            with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
                index = pickle.loads(path.read_bytes())
                os.utime(path)  # in use: the last to be pruned
                return index
            built = slim(original.build(paths, **kwargs))
            _write(path, built)
            return built

    manager.TaskIndex = CachedIndex
    try:
        yield
    finally:
        manager.TaskIndex = original


def slim(index: dict[str, Any]) -> dict[str, Any]:
    """The index without the parsed YAML of entries lm-eval reads again from their file when it builds
    them (``_load_full_config`` uses ``cfg`` only where there is no ``yaml_path``): a tenth of the
    pickle, read in a fraction of the time. A group keeps its own, which ``leaf_tasks`` reads."""
    from lm_eval.tasks._index import Kind

    for entry in index.values():
        if entry.yaml_path is not None and entry.kind is not Kind.GROUP:
            entry.cfg = None
    return index


def _write(path: Path, index: dict[str, Any]) -> None:
    """Atomically: a process reading the cache never sees half a file (a cache that cannot be written
    is only a cache missed)."""
    with contextlib.suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        write_atomically(path, pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL))
        _prune(path.parent)


KEPT = 8  # indexes of other lm-eval versions and task directories (a few MB each)


def _prune(directory: Path) -> None:
    """Keeps the ``KEPT`` indexes used last: every lm-eval upgrade or edited task file writes a new one."""
    by_use = sorted(directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in by_use[KEPT:]:
        with contextlib.suppress(OSError):
            stale.unlink()
