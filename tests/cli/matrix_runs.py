"""Running a matrix in processes of its own and reading what it stored, for the scale tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def driven(*args: str, db) -> tuple[subprocess.CompletedProcess, int]:
    """The command in a driver process of its own, also giving the driver's pid (which must not be
    the pid of a stored run: workers ran them). Ray stays out of the test process: ``ray.init``
    would hold it."""
    env = {**os.environ, "LLAMA_ZOO_DB": str(db)}
    proc = subprocess.Popen([sys.executable, "-m", "llama_zoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def pids(db, run_ids: list[str]) -> set[int]:
    from llama_zoo.results.store import Store

    store = Store.open(str(db))
    return {store.get(run_id)["pid"] for run_id in run_ids}


def cells(out: subprocess.CompletedProcess) -> list[dict]:
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout)


def stored(db) -> list[dict]:
    """Each run of the store (a SQLite path or a URL) with its expected, stored and distinct samples,
    read while a writer may still be creating it."""
    from sqlalchemy import inspect, text

    from llama_zoo.results.db import make_engine, resolve_url

    engine = make_engine(resolve_url(str(db)))
    try:
        if not inspect(engine).has_table("samples"):
            return []  # the store is being created
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT runs.id, runs.status, runs.n_samples, COUNT(samples.idx), COUNT(DISTINCT samples.idx) "
                "FROM runs LEFT JOIN samples ON samples.run_id = runs.id GROUP BY runs.id ORDER BY runs.created_at"))
            return [dict(zip(("id", "status", "n", "samples", "distinct"), r)) for r in rows]
    finally:
        engine.dispose()


def corpus(path: Path, documents: int = 360) -> Path:
    """Short documents (360: several chunks of samples per cell), so a stop lands between two chunks."""
    path.write_text("".join(json.dumps({"text": f"Document {i}: " + "the quick brown fox jumps over the lazy dog. " * 3})
                            + "\n" for i in range(documents)))
    return path
