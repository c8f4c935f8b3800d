"""Scaling a matrix out on Ray: a real local cluster (``ray start --head`` on 127.0.0.1) with a real
PostgreSQL store. ``--parallel`` and a driver killed mid-matrix are in ``test_resume.py``: apart,
they run on another xdist worker while this file's cluster is up (two clusters cannot: ``ray stop
--force`` stops every node on the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.matrix_runs import cells as _cells, corpus as _corpus, driven as _driven, pids as _pids, stored as _stored
from tests.pg import free_port, new_pg_database

VISION = ("llama-3.2-11b-vision-instruct", "llama-4-scout-17b-16e-instruct")  # Mllama and Llama 4
MATRIX = ("eval", *(a for m in VISION for a in ("--model", m)), "--suite", "perplexity", "--suite", "vqa",
          "--shadow", "--limit", "2", "--format", "json")


def _ray(*args: str) -> subprocess.CompletedProcess:
    ray = Path(sys.executable).with_name("ray")
    # Ray starts its workers at nice 15, below the raylet. Beside the other xdist workers they then
    # get the CPU last: this file's matrix took 98 s beside one other worker and 390 s beside three.
    # At nice 0 they share the cores as a cluster's workers do on a machine of their own.
    env = {**os.environ, "RAY_worker_niceness": "0"}
    return subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def ray_cluster():
    """A real head node on 127.0.0.1 for this module's tests, stopped after them. Token
    authentication off for it and its drivers alike: a token Ray left in ~/.ray from an earlier
    local cluster would otherwise switch it on for the head only."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'llama-zoo[ray]')")
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    port = free_port()
    started = _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                   "--include-dashboard=false", "--disable-usage-stats")
    if started.returncode != 0:
        pytest.skip(f"no local Ray cluster could be started: {started.stderr.strip()[-300:]}")
    yield f"127.0.0.1:{port}"
    _ray("stop", "--force")
    if before is None:
        del os.environ["RAY_AUTH_MODE"]
    else:
        os.environ["RAY_AUTH_MODE"] = before


@pytest.mark.slow
def test_a_matrix_on_ray_into_postgresql(zoo, ray_cluster, pg_admin_url):
    db = new_pg_database(pg_admin_url)
    on_ray = ("--executor", "ray", "--ray-address", ray_cluster)
    first, driver = _driven(*MATRIX, *on_ray, db=db)
    assert first.returncode == 0, first.stderr
    cells = _cells(first)
    assert [(c["model"], c["suite"]) for c in cells] == [(m, s) for m in VISION for s in ("perplexity", "vqa")]
    assert [c["status"] for c in cells] == ["completed"] * 4
    runs = _cells(zoo("runs", "list", "--format", "json", db=db))
    assert sorted(r["id"] for r in runs) == sorted(c["run_id"] for c in cells)  # four runs, each once
    assert all(r["status"] == "completed" for r in runs)
    assert driver not in _pids(db, [r["id"] for r in runs])  # Ray's workers ran them, not the driver

    # the same matrix again with a text-only model added: the stored cells are cache hits on the same
    # runs, the new model's vqa cell is refused and reported, its perplexity cell is stored
    wider, _ = _driven(*MATRIX, "--model", "llama-3.2-1b", *on_ray, db=db)
    assert wider.returncode == 1, wider.stderr
    status = {(c["model"], c["suite"]): c for c in _cells(wider)}
    assert status[("llama-3.2-1b", "vqa")]["status"] == "failed"
    assert "text-only model" in status[("llama-3.2-1b", "vqa")]["error"]
    assert status[("llama-3.2-1b", "perplexity")]["status"] == "completed"
    again = [status[(c["model"], c["suite"])] for c in cells]
    assert [c["status"] for c in again] == ["cached"] * 4
    assert [c["run_id"] for c in again] == [c["run_id"] for c in cells]
    assert len(_cells(zoo("runs", "list", "--format", "json", db=db))) == 5


def _interrupted(args: tuple[str, ...], db: str) -> tuple[int, str]:
    """The matrix started, Ctrl-C once both cells have stored some samples: its exit code and stderr."""
    driver = subprocess.Popen([sys.executable, "-m", "llama_zoo", *args, "--db", db], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # both cells at work, some samples of each stored
            rows = _stored(db)
            if len(rows) == 2 and all(0 < r["samples"] < r["n"] for r in rows):
                break
            if driver.poll() is not None:
                pytest.fail(f"the matrix ended before it could be interrupted: {driver.stderr.read()[-300:]}")
            time.sleep(0.1)
        else:
            pytest.fail("the cells never stored a first batch")
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)  # cancelling and shutting Ray down under load takes a while
    finally:
        if driver.poll() is None:
            driver.kill()
    return driver.returncode, err


@pytest.mark.slow
def test_ctrl_c_on_ray_cancels_the_tasks_and_the_same_command_resumes(ray_cluster, pg_admin_url, tmp_path):
    # On a fast, idle machine both cells may finish between the first stored batch and the interrupt
    # (CI saw it once, and a loaded machine can start one cell late): then again, in a fresh database,
    # with four times the documents.
    for documents in (240, 1440):
        db = new_pg_database(pg_admin_url)
        # two 32K-vocabulary models: the output projection is most of a shadow's work
        args = ("eval", "--model", "llama-1-7b", "--model", "llama-2-7b", "--suite", "perplexity", "--shadow",
                "--context", "64", "--dataset", str(_corpus(tmp_path / f"docs-{documents}.jsonl", documents)),
                "--executor", "ray", "--ray-address", ray_cluster, "--format", "json")
        code, err = _interrupted(args, db)
        if not (code == 0 and all(r["samples"] == r["n"] for r in _stored(db))):
            break
    assert code == 2 and err.strip().startswith("error: interrupted: 0 of 2 cells stored"), err
    cut = _stored(db)
    time.sleep(3)  # cancelled tasks store nothing more
    assert [r["samples"] for r in _stored(db)] == [r["samples"] for r in cut]
    assert all(r["samples"] < r["n"] for r in cut)

    again, _ = _driven(*args, db=db)
    assert again.returncode == 0, again.stderr
    assert [c["status"] for c in _cells(again)] == ["completed", "completed"]
    after = _stored(db)
    assert [r["id"] for r in after] == [r["id"] for r in cut]  # resumed, not begun anew
    assert all(r["status"] == "completed" and r["samples"] == r["distinct"] == r["n"] for r in after)


@pytest.mark.slow
def test_an_unreachable_ray_address_is_one_line(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'llama-zoo[ray]')")
    out, _ = _driven("eval", "--model", "llama-3.2-1b", "--shadow", "--executor", "ray", "--ray-address",
                     f"127.0.0.1:{free_port()}", db=tmp_path / "r.db")
    assert out.returncode == 2 and out.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:")
    assert len(out.stderr.strip().splitlines()) == 1 and not out.stdout.strip()


@pytest.mark.parametrize("args,message", [
    (("--ray-address", "127.0.0.1:6379"), "--ray-address is for --executor ray"),
    (("--executor", "ray", "--parallel", "2"), "--parallel is for --executor local"),
])
def test_scale_options_that_do_not_go_together(zoo, args, message, tmp_path):
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", *args, db=tmp_path / "r.db")
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sqlite_is_refused_when_a_worker_is_on_another_host(zoo, ray_cluster, tmp_path):
    """A second node whose hostname differs (a UTS namespace: another host as far as a store's path
    is concerned) joins the cluster; a SQLite store, or a PostgreSQL one on loopback, is refused."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a node with another hostname needs root and unshare (a UTS namespace)")
    ray = Path(sys.executable).with_name("ray")
    joined = subprocess.run(["unshare", "--uts", "sh", "-c", f'hostname zoo-other-host && "{ray}" start '
                             f"--address={ray_cluster} --num-cpus=1 --disable-usage-stats"],
                            capture_output=True, text=True, timeout=180)
    if joined.returncode != 0:
        pytest.skip(f"a second node could not join: {joined.stderr.strip()[-300:]}")
    db = tmp_path / "r.db"
    out, _ = _driven("eval", "--model", "llama-3.2-1b", "--model", "llama-2-7b", "--shadow", "--executor", "ray",
                     "--ray-address", ray_cluster, db=db)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"error: --db {db} is a SQLite file on this host and the Ray cluster at {ray_cluster} "
                                  "has workers on other hosts (zoo-other-host): give a shared PostgreSQL store, "
                                  "--db postgresql://USER@HOST/DB")
    assert not db.exists() or not _cells(zoo("runs", "list", "--format", "json", db=db))
