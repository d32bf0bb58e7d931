"""The database engine (created by the composition root, never at import) and the schema.

Every package defines its tables on its own ``MetaData``; :data:`METADATAS` lists them for
migrations. ``prepare_database`` brings a database to the current schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, event, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["NestedWriteTransaction", "make_engine", "prepare_database", "metadatas", "current_revision"]


def metadatas() -> list[MetaData]:
    """The MetaData of every package with tables, in creation order."""
    from complaints.tables import metadata as complaints_md
    from minutes.tables import metadata as minutes_md
    from room_console.tables import metadata as console_md
    from schedules.tables import metadata as schedules_md
    from signaling.outbox import metadata as outbox_md

    return [outbox_md, console_md, complaints_md, schedules_md, minutes_md]


#: Execution option marking a connection opened by ``engine.begin()`` on SQLite (see :class:`_SQLiteEngine`).
_WRITE = "tiepdan_sqlite_write"


class NestedWriteTransaction(RuntimeError):
    """A task that holds SQLite's write lock (inside ``engine.begin()``) opened a second ``engine.begin()``
    on the same engine: the second would wait for the first, which waits for it, until the busy timeout."""


class _SQLiteEngine(AsyncEngine):
    """The async engine on a SQLite file, where ``begin()`` means "I will write".

    SQLite allows one writer. A deferred transaction that has read holds a snapshot; when another
    connection commits before it writes, its first write fails at once with "database is locked"
    (``SQLITE_BUSY_SNAPSHOT``: waiting cannot help, so the busy timeout is not used). So a transaction
    opened with ``begin()`` takes the write lock first (``BEGIN IMMEDIATE``), waiting up to the busy
    timeout behind other writers; ``connect()`` opens a deferred read (``BEGIN``) that never waits for
    writers (WAL) — a connection opened that way that writes must write first or end its read before.
    Python's sqlite3 would otherwise BEGIN only before INSERT/UPDATE/DELETE (its legacy transaction
    control), leaving a SAVEPOINT to open, and its RELEASE to commit, a transaction of its own:
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#sqlite-transactions
    """

    __slots__ = ("_writers",)

    def __init__(self, sync_engine: Engine) -> None:
        super().__init__(sync_engine)
        #: tasks inside ``begin()`` on this engine (they hold the write lock)
        self._writers: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        task = asyncio.current_task()
        if task is not None and task in self._writers:
            raise NestedWriteTransaction(
                "this task already holds the SQLite write lock in engine.begin(); a second engine.begin() "
                "would wait for it until the busy timeout: pass the connection down instead")
        async with self.connect() as conn:
            await conn.execution_options(**{_WRITE: True})
            async with conn.begin():
                if task is None:
                    yield conn
                    return
                self._writers.add(task)
                try:
                    yield conn
                finally:
                    self._writers.discard(task)


class _SQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection whose :meth:`stop` may be called twice.

    aiosqlite 0.22.1 stops its worker thread with a sentinel queued by ``stop()``; a second ``stop()``
    queues a second sentinel that no thread will ever run, and ``close()`` awaits it for ever. SQLAlchemy
    does exactly that when a task is cancelled while it uses a connection: the pool invalidates the
    connection, ``terminate()`` starts a graceful ``close()`` in a shielded task and, cancelled again,
    force-stops it with ``stop()``; the graceful close then ends with its own ``stop()`` and never returns.
    The task was left pending, and the event loop's shutdown waited on it for good (seen as a 120-s
    teardown timeout). Here only the first ``stop()`` queues the sentinel; later calls get a future
    that completes with it.
    """

    _stop_future: asyncio.Future[Any] | None
    _stop_queued: bool = False

    def stop(self) -> asyncio.Future[Any] | None:
        if not self._stop_queued:
            self._stop_queued = True
            self._stop_future = super().stop()
            return self._stop_future
        try:
            later: asyncio.Future[Any] = asyncio.get_event_loop().create_future()
        except RuntimeError:
            return None
        first = self._stop_future
        def follow(_first: asyncio.Future[Any]) -> None:
            if not later.done():
                later.set_result(None)

        if first is None or first.done() or first.get_loop() is not later.get_loop():
            later.set_result(None)
        else:
            first.add_done_callback(follow)
        return later


def _sqlite_creator(path: str) -> Any:
    """SQLAlchemy's ``async_creator`` for SQLite: an awaited :class:`_SQLiteConnection` (daemon thread)."""

    async def connect() -> aiosqlite.Connection:
        connection = _SQLiteConnection(functools.partial(sqlite3.connect, path, timeout=30, check_same_thread=False),
                                       iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for its own: a stuck query never blocks exit
        return await connection

    return connect


def make_engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = _SQLiteEngine(create_async_engine(url, async_creator=_sqlite_creator(path or ":memory:")).sync_engine)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        dbapi_conn.isolation_level = None  # the driver emits no BEGIN of its own: _sqlite_begin does

    @event.listens_for(engine.sync_engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def prepare_database(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema revision (Alembic ``upgrade head``).

    Safe to call from several processes: PostgreSQL takes an advisory lock for the migration, and
    SQLite serialises writers.
    """

    def upgrade(sync_conn: Connection) -> None:
        if sync_conn.dialect.name == "postgresql":
            sync_conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7217001)")
        command.upgrade(_alembic_config(sync_conn), "head")

    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
        return
    # Two processes starting on one SQLite file (server and CLI) migrate one after the other.
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as lock_file:
        await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(sync_conn: Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
