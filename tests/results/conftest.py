"""Databases for the store tests: a SQLite file, and a database on the real PostgreSQL server of
``tests/pg.py`` (started once for the session)."""

from __future__ import annotations

import pytest

from tests.pg import new_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return new_pg_database(request.getfixturevalue("pg_admin_url"))
