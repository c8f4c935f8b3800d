"""Databases for the store tests: a SQLite file, and a database on the real PostgreSQL server of
``tests/pg.py`` (started once for the session)."""

from __future__ import annotations

import pytest

from tests.pg import new_pg_database


# PostgreSQL's cases on the worker that runs the server (see SERVICE_GROUPS in tests/conftest.py),
# outside the quick tier as every test of a server is
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.xdist_group("postgresql"), pytest.mark.slow])])
def db_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return new_pg_database(request.getfixturevalue("pg_admin_url"))
