"""Real processes: one killed with SIGKILL mid-run, four writing at once to one SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llama_zoo.results.store import Store

WRITER = str(Path(__file__).with_name("writer.py"))


def spawn(db_url: str, tag: str, n: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WRITER, db_url, tag, str(n), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_stores_every_sample_once(db_url):
    n = 400
    writer = spawn(db_url, "crash", n, "--slow", "0.005", "--flush-every", "25")
    ready = writer.stdout.readline().split()
    assert ready[0] == "ready", writer.stderr.read()
    run_id = ready[1]
    store = Store.open(db_url)
    deadline = time.time() + 60
    while len(store.sample_indices(run_id)) < 100 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    stored = store.sample_indices(run_id)
    assert 100 <= len(stored) < n and stored == set(range(len(stored)))  # whole batches, in order

    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    assert store.list_runs()[0]["status"] == "interrupted"  # the next command that looks notices

    resumed = spawn(db_url, "crash", n)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert out.split()[:3] == ["ready", run_id, "True"]
    samples = list(store.iter_samples(run_id))
    assert [s["idx"] for s in samples] == list(range(n))
    run = store.get(run_id)
    assert run["status"] == "completed"
    assert run["metrics"][0]["value"] == pytest.approx(sum(i / 7 for i in range(n)))


@pytest.mark.slow
def test_four_processes_write_one_sqlite_file_at_once(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"  # a fresh file: the first opens also race to migrate it
    writers = [spawn(db_url, f"w{i}", 1000, "--flush-every", "50") for i in range(4)]
    results = [w.communicate(timeout=300) for w in writers]
    for writer, (out, err) in zip(writers, results):
        assert writer.returncode == 0, err
        assert "Traceback" not in err and out.strip().endswith("done")
    store = Store.open(db_url)
    runs = store.list_runs()
    assert len(runs) == 4 and {r["status"] for r in runs} == {"completed"}
    for run in runs:
        assert store.sample_indices(run["id"]) == set(range(1000))
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (4000,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
