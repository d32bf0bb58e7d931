"""The database engine (created by the composition root, never at import) and the schema.

Every package defines its tables on its own ``MetaData``; :data:`METADATAS` lists them for
migrations. ``prepare_database`` brings a database to the current schema.
"""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["make_engine", "prepare_database", "metadatas", "current_revision"]


def metadatas() -> list[MetaData]:
    """The MetaData of every package with tables, in creation order."""
    from complaints.tables import metadata as complaints_md
    from room_console.tables import metadata as console_md
    from schedules.tables import metadata as schedules_md
    from signaling.outbox import metadata as outbox_md

    return [outbox_md, console_md, complaints_md, schedules_md]


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


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
