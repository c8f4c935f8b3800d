"""A matrix in ``--parallel`` worker processes stores what one process does, and a driver killed
mid-matrix (SIGKILL) leaves a run that the same command resumes with every sample stored once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.matrix_runs import cells as _cells, corpus as _corpus, driven as _driven, pids as _pids, stored as _stored


@pytest.mark.slow
def test_parallel_processes_store_what_one_process_does(zoo, tmp_path):
    args = ("eval", "--model", "llama-3.2-1b", "--model", "llama-2-7b", "--suite", "perplexity", "--shadow",
            "--limit", "3", "--format", "json")
    one = _cells(zoo(*args, db=tmp_path / "one.db"))
    two, driver = _driven(*args, "--parallel", "2", db=tmp_path / "two.db")
    assert two.returncode == 0, two.stderr
    both = _cells(two)
    assert [c["status"] for c in both] == ["completed", "completed"]
    assert driver not in _pids(tmp_path / "two.db", [c["run_id"] for c in both])  # worker processes ran them
    assert [c["value"] for c in both] == pytest.approx([c["value"] for c in one], rel=1e-6)


@pytest.mark.slow
def test_a_driver_killed_mid_matrix_resumes_with_each_sample_once(zoo, tmp_path):
    db, corpus = tmp_path / "r.db", _corpus(tmp_path / "docs.jsonl")
    # two 32K-vocabulary models: the output projection is most of a shadow's work
    args = ("eval", "--model", "llama-1-7b", "--model", "llama-2-7b", "--suite", "perplexity", "--shadow",
            "--context", "64", "--dataset", str(corpus), "--format", "json")
    driver = subprocess.Popen([sys.executable, "-m", "llama_zoo", *args, "--db", str(db)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it once the second cell has stored some samples, but not all
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = _stored(db) if db.exists() else []
            if len(rows) == 2 and rows[1]["status"] == "running" and 0 < rows[1]["samples"] < rows[1]["n"]:
                break
            if driver.poll() is not None:
                pytest.fail("the matrix finished before it could be killed: give it more work")
            time.sleep(0.05)
        else:
            pytest.fail("the second cell never stored a first batch")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = _stored(db)
    assert [r["status"] for r in before] == ["completed", "running"]

    again = zoo(*args, db=db)
    assert again.returncode == 0, again.stderr
    assert [c["status"] for c in _cells(again)] == ["cached", "completed"]
    after = _stored(db)
    assert [r["id"] for r in after] == [r["id"] for r in before]  # the killed run was resumed, not begun anew
    assert all(r["status"] == "completed" and r["samples"] == r["distinct"] == r["n"] for r in after)


@pytest.mark.slow
def test_ctrl_c_says_what_is_stored_and_the_same_command_resumes_it(zoo, tmp_path):
    """One run interrupted once it has stored a batch: one line names the run and how much of it
    is kept, and the same command then completes that run rather than starting anew."""
    db = tmp_path / "r.db"
    args = ("eval", "--model", "llama-2-7b", "--suite", "perplexity", "--shadow", "--context", "64", "--dataset",
            str(_corpus(tmp_path / "docs.jsonl", 720)), "--db", str(db))
    # as a terminal runs it: xdist's workers (and a shell's background jobs) ignore SIGINT, and a child
    # inherits that, so Python would never raise KeyboardInterrupt in it
    run = subprocess.Popen([sys.executable, "-m", "llama_zoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = _stored(db)
            if rows and 0 < rows[0]["samples"] < rows[0]["n"]:
                break
            if run.poll() is not None:
                pytest.fail(f"the run ended before it could be interrupted: {run.stderr.read()[-300:]}")
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    [row] = _stored(db)
    assert run.returncode == 2 and row["status"] == "interrupted", err[-3000:]
    assert err.strip() == (f"error: interrupted: run {row['id']} kept {row['samples']} of {row['n']} samples; the same "
                           "command resumes it"), err
    again = zoo(*args[:-2], "--format", "json", db=db)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] == row["id"] and json.loads(again.stdout)["resumed"] is True
