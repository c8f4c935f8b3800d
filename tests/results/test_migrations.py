"""Schema revisions: the first one upgrades to the latest, and the migrations build the ORM's schema."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, text

from llama_zoo.results.db import DatabaseError, current_revision, head_revision, make_engine, upgrade
from llama_zoo.results.orm import Base
from llama_zoo.results.store import Store


def test_first_revision_opens_and_upgrades_keeping_its_runs(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "heartbeat_at" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    with engine.begin() as conn:  # a run written by the first release
        conn.execute(text(
            "INSERT INTO runs (id, config_hash, status, model_id, spec_hash, suite, suite_version, options, "
            "weights_source, backend, device, versions, created_at) VALUES ('old1', 'h', 'completed', "
            "'llama-2-7b', 's', 'perplexity', '1', '{}', 'hub', 'hf', '{}', '{}', :now)"), {"now": dt.datetime(2025, 1, 1)})
        conn.execute(text("INSERT INTO samples (run_id, idx, output) VALUES ('old1', 0, 'kept')"))
    engine.dispose()

    store = Store.open(db_url)  # opening upgrades
    assert current_revision(store.engine) == head_revision() != "0001"
    run = store.get("old1")
    assert run["model_id"] == "llama-2-7b" and run["heartbeat_at"] is None
    assert [s["output"] for s in store.iter_samples("old1")] == ["kept"]


def test_migrations_build_exactly_the_orm_schema(db_url):
    from alembic.autogenerate import compare_metadata  # not at collection: 0.4 s to import
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_a_foreign_database_is_refused_untouched(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="not a llama-zoo database"):
        Store.open(str(path))
    assert path.read_bytes() == before


def test_the_fast_path_knows_the_newest_migration():
    """A database at SCHEMA_HEAD is recognised without alembic; the constant must follow new migrations."""
    from llama_zoo.results.db import SCHEMA_HEAD

    assert SCHEMA_HEAD == head_revision()
