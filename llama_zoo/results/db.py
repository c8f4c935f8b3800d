"""Opening a results database: where it is, how SQLite is tuned, migrations, and clear errors.

One URL picks the database: ``--db`` on every command, else ``LLAMA_ZOO_DB``, else a SQLite file
in the user's data directory. A bare path means a SQLite file. Opening upgrades an older schema to
the latest revision; a file that is not a llama-zoo database is refused without being touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import zlib
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from llama_zoo.errors import LlamaZooError

ENV_VAR = "LLAMA_ZOO_DB"
SQLITE_BUSY_TIMEOUT_MS = 60_000


class DatabaseError(LlamaZooError):
    pass


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("llama-zoo")) / "results.db"


def resolve_url(db: str | None = None) -> str:
    """The database URL the user asked for: ``--db``, then ``$LLAMA_ZOO_DB``, then the default file."""
    url = db or os.environ.get(ENV_VAR)
    if not url:
        path = default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if "://" not in url:  # a plain path
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def display(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout makes concurrent writers wait for the lock instead of failing with
    # "database is locked". (WAL is set once the file is known to be ours: see use_wal.)
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine on ``url``; ``read_only``: on an existing database, through connections that cannot
    write (SQLite's read-only mode; PostgreSQL's read-only transactions)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"malformed database URL {url!r}; use sqlite:///PATH or postgresql://USER@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database
        file = Path(path).expanduser() if path and path != ":memory:" else None
        if file is not None:
            if not file.parent.is_dir():
                raise DatabaseError(f"cannot open database {display(url)}: directory {file.parent} does not exist")
            if file.is_dir():
                raise DatabaseError(f"cannot open database {display(url)}: {path} is a directory; give a database "
                                    f"file inside it, e.g. --db {Path(path) / 'results.db'}")
        if read_only and not (file is not None and file.is_file()):
            raise DatabaseError(f"cannot open database {display(url)}: no such file (give a database that "
                                "'llama-zoo eval' has written)")
        if file is not None and (read_only or _cannot_write(file)):
            # a read-only filesystem, or a file or directory this user may not write: opened read-only, or
            # SQLite would try to create its WAL index beside the file and refuse even to read
            engine = create_engine(parsed, creator=functools.partial(_read_only_connection, file),
                                   execution_options={READ_ONLY: True})
        else:
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect: dict[str, Any] = {"connect_timeout": 10}
        if read_only:  # added to the URL's own options (connect_args would replace them)
            connect["options"] = " ".join(filter(None, (parsed.query.get("options"), "-c default_transaction_read_only=on")))
        try:
            return create_engine(parsed, pool_pre_ping=True, connect_args=connect,
                                 execution_options={READ_ONLY: True} if read_only else {})
        except (NoSuchModuleError, ModuleNotFoundError):
            raise DatabaseError("PostgreSQL needs the psycopg driver: pip install 'llama-zoo[postgres]'") from None
    raise DatabaseError(f"unsupported database {backend!r} in {display(url)}; use sqlite:///PATH or postgresql://...")


def _cannot_write(path: Path) -> bool:
    """An existing database file this process may read but not change: the file itself, or its
    directory where SQLite would have to create its journal or WAL files there."""
    if not path.is_file():
        return False
    if not os.access(path, os.W_OK):
        return True
    beside = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    return not os.access(path.parent, os.W_OK) and not all(os.access(f, os.W_OK) for f in beside)


def _read_only_connection(path: Path) -> sqlite3.Connection:
    """``mode=ro`` reads a WAL database beside a writer, but only where SQLite finds or can create its
    shared-memory index (-shm); where it can do neither (a read-only filesystem), the file is read as
    immutable: as it stood when its last writer closed it."""
    timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout, check_same_thread=False)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return conn
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:  # immutable would skip what the WAL holds: refuse, not misread
            raise
        return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=timeout, check_same_thread=False)


READ_ONLY = "llama_zoo_read_only"  # an execution option: the engine was opened read-only


def opened_read_only(engine: Engine) -> bool:
    return bool(engine.get_execution_options().get(READ_ONLY))


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Database failures a user can cause, as one line."""
    try:
        yield
    except DatabaseError:
        raise
    except (DBAPIError, sqlite3.DatabaseError, SQLAlchemyError) as exc:
        original = getattr(exc, "orig", None) or exc
        reason = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
        if "readonly database" in reason:
            reason = "it is read-only here (the file or its directory); runs list, runs show and report still read it"
        raise DatabaseError(f"cannot use database {display(url)}: {reason}") from None


# --------------------------------------------------------------------------- migrations


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("llama_zoo.results") / "migrations"))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process at a time, so that writers started together on a new file agree."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # flock is independent of the POSIX locks SQLite itself takes on the file.
        with open(engine.url.database, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


# The newest migration's id (a test holds it equal to alembic's head): a database already there
# is recognised with one query, without importing alembic (a tenth of a second of every command).
SCHEMA_HEAD = "0004"


def _stored_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (DBAPIError, SQLAlchemyError):  # no such table yet
        return None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; returns (before, after). Refuses foreign databases."""
    if revision == "head" and _stored_revision(engine) == SCHEMA_HEAD:
        return SCHEMA_HEAD, SCHEMA_HEAD
    from alembic import command
    from alembic.script import ScriptDirectory

    config = _alembic_config()
    scripts = ScriptDirectory.from_config(config)
    target = scripts.get_current_head() if revision == "head" else revision
    before = current_revision(engine)
    if before == target:
        return before, before
    with _migration_lock(engine):
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(b"llama-zoo-migrate")})
            from alembic.runtime.migration import MigrationContext

            before = MigrationContext.configure(conn).get_current_revision()
            if before == target:
                return before, before
            if before is not None and before not in {s.revision for s in scripts.walk_revisions()}:
                raise DatabaseError(
                    f"database {display(str(engine.url))} is at schema revision {before}, newer than this "
                    "llama-zoo knows; upgrade llama-zoo")
            tables = set(inspect(conn).get_table_names())
            if before is None and tables:
                raise DatabaseError(
                    f"{display(str(engine.url))} is not a llama-zoo database (it has tables: "
                    f"{', '.join(sorted(tables)[:5])})")
            config.attributes["connection"] = conn
            command.upgrade(config, target)
    return before, target


def use_wal(engine: Engine) -> None:
    """WAL lets readers work beside one writer. It is a property of the file, so it is set only on
    a database already known to be llama-zoo's: a foreign file is never rewritten."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    with engine.connect() as conn:
        if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def open_engine(db: str | None = None, migrate: bool = True, read_only: bool = False) -> Engine:
    """An engine on the user's database, upgraded to the latest schema (``read_only``: never written,
    so neither created nor upgraded)."""
    url = resolve_url(db)
    engine = make_engine(url, read_only=read_only)
    with translate_errors(url):
        if opened_read_only(engine):  # readable as it is, or not at all: nothing may be migrated
            with engine.connect() as conn:  # a server that cannot be reached says so, not "no schema"
                conn.execute(text("SELECT 1"))
            stored = _stored_revision(engine)
            if stored is None:
                raise DatabaseError(f"cannot use database {display(url)}: it is read-only here and not a llama-zoo "
                                    "database (no schema revision in it)")
            if stored > SCHEMA_HEAD:
                raise DatabaseError(f"cannot use database {display(url)}: it is at schema revision {stored}, newer than "
                                    "this llama-zoo knows; upgrade llama-zoo")
            if stored != SCHEMA_HEAD:
                raise DatabaseError(f"cannot use database {display(url)}: it is read-only here and at schema revision "
                                    f"{stored}, not {SCHEMA_HEAD}; copy it somewhere writable so llama-zoo can upgrade it")
        elif migrate:
            upgrade(engine)
            use_wal(engine)
        else:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    return engine
