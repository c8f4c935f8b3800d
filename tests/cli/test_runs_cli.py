"""``llama-zoo runs`` and ``llama-zoo db`` as a user runs them, including every way to get it wrong."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import MetricValue, Store


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "results.db"
    store = Store.open(str(path))
    ids = []
    for model, n in (("llama-3.1-8b", 5), ("code-llama-7b", 3)):
        config = RunConfig(model_id=model, spec_hash="s", suite="perplexity", suite_version="1", backend="hf",
                           weights_source="shadow", dataset_name="stdlib-docs")
        with store.begin(config) as run:
            for i in range(n):
                run.add(i, input=f"doc {i}", output="", scores={"nll": i + 0.5, "tokens": 10})
            run.complete([MetricValue("word_perplexity", 12.5 if n == 5 else 20.0, ci_low=11.0, ci_high=14.0, n=n)])
        ids.append(run.run_id)
    store.close()
    return path, ids


def test_list_show_export(zoo, filled, tmp_path):
    path, (first, second) = filled
    listed = json.loads(zoo("runs", "list", "--db", str(path), "--format", "json").stdout)
    assert [r["id"] for r in listed] == [second, first]
    assert listed[1]["metrics"] == {"word_perplexity": 12.5}
    only = json.loads(zoo("runs", "list", "--db", str(path), "--model", "code-llama-7b", "--format", "json").stdout)
    assert [r["id"] for r in only] == [second]
    rows = list(csv.DictReader(io.StringIO(zoo("runs", "list", "--db", str(path), "--format", "csv").stdout)))
    assert rows[0]["metric.word_perplexity"] == "20.0"

    shown = zoo("runs", "show", first[:6], "--db", str(path))
    assert shown.returncode == 0 and "word_perplexity" in shown.stdout and "[11, 14]" in shown.stdout
    data = json.loads(zoo("runs", "show", first, "--db", str(path), "--format", "json", "--samples", "2").stdout)
    assert data["samples_stored"] == 5 and [s["idx"] for s in data["samples"]] == [0, 1]

    lines = zoo("runs", "export", first, "--db", str(path)).stdout.splitlines()
    assert [json.loads(line)["scores"]["nll"] for line in lines] == [0.5, 1.5, 2.5, 3.5, 4.5]
    table = list(csv.DictReader(io.StringIO(zoo("runs", "export", first, "--db", str(path), "--format", "csv").stdout)))
    assert table[2]["scores.nll"] == "2.5"
    out = tmp_path / "run.parquet"
    assert zoo("runs", "export", first, "--db", str(path), "--format", "parquet", "-o", str(out)).returncode == 0
    import pandas as pd

    frame = pd.read_parquet(out)
    assert list(frame["idx"]) == list(range(5)) and list(frame["scores.tokens"]) == [10] * 5


def test_env_var_picks_the_database(zoo, filled):
    path, ids = filled
    listed = json.loads(zoo("runs", "list", "--format", "json", env={"LLAMA_ZOO_DB": str(path)}).stdout)
    assert {r["id"] for r in listed} == set(ids)


def test_rm_and_gc(zoo, filled):
    path, (first, second) = filled
    result = zoo("runs", "rm", first, "nonexistent", "--db", str(path))
    assert result.returncode == 2 and "no run 'nonexistent'" in result.stderr
    assert len(json.loads(zoo("runs", "list", "--db", str(path), "--format", "json").stdout)) == 2  # nothing removed
    assert zoo("runs", "rm", first, "--db", str(path)).returncode == 0
    assert [r["id"] for r in json.loads(zoo("runs", "list", "--db", str(path), "--format", "json").stdout)] == [second]
    assert "removed 0 runs" in zoo("runs", "gc", "--db", str(path)).stdout


def test_db_upgrade_and_info(zoo, tmp_path):
    from llama_zoo.results.db import head_revision

    head = head_revision()
    path = tmp_path / "new.db"
    first = zoo("db", "upgrade", "--db", str(path))
    assert first.returncode == 0 and f"from an empty database to {head}" in first.stdout
    assert "latest schema revision" in zoo("db", "upgrade", "--db", str(path)).stdout
    info = zoo("db", "info", "--db", str(path)).stdout
    assert f"revision  {head} (latest {head})" in info and "runs      0" in info


@pytest.mark.parametrize("url,message", [
    ("postgresql://nobody@127.0.0.1:1/none", "cannot use database postgresql://nobody@127.0.0.1:1/none"),
    ("postgresql://user:secret@127.0.0.1:1/none", "postgresql://user:***@127.0.0.1:1/none"),
    ("mysql://localhost/x", "unsupported database 'mysql'"),
    ("://nonsense", "malformed database URL"),
    ("sqlite:////no/such/directory/x.db", "directory /no/such/directory does not exist"),
])
def test_bad_database_urls_are_one_line(zoo, url, message):
    result = zoo("runs", "list", "--db", url)
    assert result.returncode == 2
    assert message in result.stderr and "secret" not in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_non_database_and_foreign_files_are_refused_untouched(zoo, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    for path, message in ((text_file, "file is not a database"), (foreign, "not a llama-zoo database")):
        before = path.read_bytes()
        for args in (("runs", "list"), ("db", "upgrade"), ("runs", "gc")):
            result = zoo(*args, "--db", str(path))
            assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
            assert "Traceback" not in result.stderr
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]


def test_unknown_run_id_changes_nothing(zoo, filled):
    path, ids = filled
    for args in (("runs", "show", "zzzz"), ("runs", "rm", "zzzz"), ("runs", "export", "zzzz")):
        result = zoo(*args, "--db", str(path))
        assert result.returncode == 2 and "no run 'zzzz'" in result.stderr and "Traceback" not in result.stderr
    assert {r["id"] for r in json.loads(zoo("runs", "list", "--db", str(path), "--format", "json").stdout)} == set(ids)
