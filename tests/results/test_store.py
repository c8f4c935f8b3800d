"""The store's behaviour on SQLite and on a real PostgreSQL server alike."""

from __future__ import annotations

import dataclasses

import pytest

from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import MetricValue, RunBusyError, RunNotFoundError, Store

CONFIG = RunConfig(model_id="llama-3.1-8b", spec_hash="abc", suite="perplexity", suite_version="1",
                   backend="hf", weights_source="shadow", weights_hash="seed=0", dtype="float32",
                   dataset_name="wikitext", dataset_revision="r1", dataset_hash="d1",
                   options={"protocol": "rolling", "context": 2048}, seed=0)


@pytest.fixture
def store(db_url):
    store = Store.open(db_url)
    yield store
    store.close()


def write(store, config=CONFIG, n=10, complete=True, **kwargs):
    with store.begin(config, **kwargs) as run:
        for i in range(n):
            run.add(i, input=f"text {i}", output=f"out {i}", target=f"t {i}", scores={"nll": float(i)})
        if complete:
            run.complete([MetricValue("word_perplexity", 8.79, ci_low=8.5, ci_high=9.1, n=n),
                          MetricValue("bits_per_byte", 0.71)], tokens_per_s=1234.5)
    return run


def test_config_hash_covers_what_changes_a_result():
    assert CONFIG.config_hash() == dataclasses.replace(CONFIG).config_hash()
    for change in ({"seed": 1}, {"options": {"protocol": "gptq", "context": 2048}}, {"dataset_hash": "d2"},
                   {"weights_revision": "abc123"}, {"suite_version": "2"}, {"dtype": "bfloat16"}):
        assert dataclasses.replace(CONFIG, **change).config_hash() != CONFIG.config_hash(), change


def test_completed_run_is_stored_with_provenance(store):
    run = write(store)
    data = store.get(run.run_id)
    assert data["status"] == "completed" and data["samples_stored"] == 10
    assert data["model_id"] == "llama-3.1-8b" and data["options"] == {"protocol": "rolling", "context": 2048}
    assert data["versions"]["llama-zoo"] and data["device"]["cpu_count"] >= 1
    assert data["weights_source"] == "shadow" and data["tokens_per_s"] == 1234.5
    assert data["wall_time_s"] >= 0 and data["finished_at"] is not None and data["pid"] > 0
    assert {m["name"]: (m["value"], m["ci_low"], m["ci_high"], m["n"]) for m in data["metrics"]} == {
        "word_perplexity": (8.79, 8.5, 9.1, 10), "bits_per_byte": (0.71, None, None, None)}
    samples = list(store.iter_samples(run.run_id))
    assert [s["idx"] for s in samples] == list(range(10))
    assert samples[3]["scores"] == {"nll": 3.0} and samples[3]["target"] == "t 3"


def test_same_config_completed_is_a_cache_hit_unless_forced(store):
    first = write(store)
    again = store.begin(CONFIG)
    assert again.cached and again.run_id == first.run_id
    with pytest.raises(Exception, match="cached"):
        again.add(0, output="x")
    forced = write(store, force=True)
    assert forced.run_id != first.run_id
    assert len(store.list_runs()) == 2  # the earlier run is kept


def test_interrupted_run_resumes_and_stores_each_sample_once(store):
    with pytest.raises(KeyboardInterrupt):
        with store.begin(CONFIG, flush_every=4) as run:
            for i in range(6):
                run.add(i, output=str(i))
            raise KeyboardInterrupt
    assert store.get(run.run_id)["status"] == "interrupted"
    resumed = store.begin(CONFIG)
    assert resumed.resumed and resumed.run_id == run.run_id and resumed.done == set(range(6))
    with resumed:
        for i in range(10):
            resumed.add(i, output=str(i))  # indices already stored are skipped
        resumed.complete([MetricValue("n", 10)])
    assert [s["idx"] for s in store.iter_samples(run.run_id)] == list(range(10))
    assert store.get(run.run_id)["status"] == "completed"


def test_ctrl_c_inside_a_batch_write_lands_once_the_batch_is_stored(store):
    """A KeyboardInterrupt raised inside a SQLite write could leave its connection holding the write
    lock: recording the interruption then failed with "database is locked" after a minute."""
    import os
    import signal

    from sqlalchemy import event

    def ctrl_c(_conn, _cursor, statement, *_):
        if statement.startswith("INSERT INTO samples"):
            os.kill(os.getpid(), signal.SIGINT)

    event.listen(store.engine, "before_cursor_execute", ctrl_c)
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal runs it, not xdist
    try:
        with pytest.raises(KeyboardInterrupt):
            with store.begin(CONFIG, flush_every=2) as run:
                for i in range(4):
                    run.add(i, output=str(i))
    finally:
        signal.signal(signal.SIGINT, ignored)
        event.remove(store.engine, "before_cursor_execute", ctrl_c)
    data = store.get(run.run_id)
    assert data["status"] == "interrupted" and data["samples_stored"] == 2


def test_failure_is_recorded_with_its_error(store):
    with pytest.raises(ValueError):
        with store.begin(CONFIG) as run:
            run.add(0, output="x")
            raise ValueError("tokenizer mismatch")
    data = store.get(run.run_id)
    assert data["status"] == "failed" and data["error"] == "ValueError: tokenizer mismatch"
    assert data["samples_stored"] == 1  # what was written before the failure is kept


def test_a_running_run_blocks_a_second_writer(store):
    run = store.begin(CONFIG)
    with pytest.raises(RunBusyError, match="running"):
        store.begin(CONFIG)
    run.complete()


def test_dead_process_is_seen_as_interrupted(store):
    from sqlalchemy import update

    from llama_zoo.results.orm import Run

    run = store.begin(CONFIG)
    run._stop_heartbeat()
    with store.engine.begin() as conn:  # as if written by a process that has since died
        conn.execute(update(Run).where(Run.id == run.run_id).values(pid=2**22 + 12345))
    assert store.list_runs()[0]["status"] == "interrupted"


def test_lookup_by_prefix_and_clear_errors(store):
    run = write(store)
    assert store.get(run.run_id[:5])["id"] == run.run_id
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        store.get("nope")
    with pytest.raises(RunNotFoundError):
        store.get("")


def test_list_filters(store):
    write(store)
    other = dataclasses.replace(CONFIG, model_id="llama-3.2-1b", suite="humaneval")
    write(store, other)
    assert {r["model_id"] for r in store.list_runs(model="llama-3.2-1b")} == {"llama-3.2-1b"}
    assert [r["suite"] for r in store.list_runs(suite="perplexity")] == ["perplexity"]
    assert store.list_runs(status="failed") == []
    rows = store.list_runs(limit=1)
    assert len(rows) == 1 and rows[0]["metrics"]["word_perplexity"] == 8.79


def test_delete_removes_samples_and_metrics(store):
    keep, gone = write(store), write(store, dataclasses.replace(CONFIG, seed=7))
    store.delete(gone.run_id)
    assert [r["id"] for r in store.list_runs()] == [keep.run_id]
    assert store.sample_indices(gone.run_id) == set()
    assert len(list(store.iter_samples(keep.run_id))) == 10


def test_gc_removes_failed_runs_only_unless_asked(store):
    ok = write(store)
    with pytest.raises(RuntimeError):
        with store.begin(dataclasses.replace(CONFIG, seed=1)) as failed:
            failed.add(0)
            raise RuntimeError("boom")
    interrupted = store.begin(dataclasses.replace(CONFIG, seed=2))
    interrupted.fail("stopped", status="interrupted")
    assert store.gc(dry_run=True)["runs"] == 1
    assert store.gc() == {"runs": 1, "orphaned_samples": 0, "orphaned_metrics": 0}
    assert {r["id"] for r in store.list_runs()} == {ok.run_id, interrupted.run_id}
    assert store.gc(include_interrupted=True)["runs"] == 1
    assert [r["id"] for r in store.list_runs()] == [ok.run_id]


def test_completed_runs_carry_their_metrics_and_counts_add_up(store):
    first = write(store)
    write(store, dataclasses.replace(CONFIG, model_id="llama-3.2-1b"))
    with store.begin(dataclasses.replace(CONFIG, model_id="unfinished")) as run:
        run.add(0, scores={"x": 1})
    run.fail("stopped")
    runs = store.completed_runs()
    assert [r["model_id"] for r in runs] == ["llama-3.2-1b", "llama-3.1-8b"]  # newest first, completed only
    assert runs[1]["id"] == first.run_id and runs[1]["metrics"]["word_perplexity"]["ci_low"] == 8.5
    assert [r["model_id"] for r in store.completed_runs(model="llama-3.1-8b")] == ["llama-3.1-8b"]
    assert store.completed_runs(suite="humaneval") == []
    counts = store.counts()
    assert counts["runs"] == 3 and counts["metrics"] == sum(len(r["metrics"]) for r in runs)
