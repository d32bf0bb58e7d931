"""The database engine (created by the composition root, never at import) and the schema.

Every package defines its tables on its own ``MetaData``; :data:`METADATAS` lists them for
migrations. ``prepare_database`` brings a database to the current schema.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["make_engine", "prepare_database", "metadatas"]


def metadatas() -> list[MetaData]:
    """The MetaData of every package with tables, in creation order."""
    from complaints.tables import metadata as complaints_md
    from room_console.tables import metadata as console_md
    from signaling.outbox import metadata as outbox_md

    return [outbox_md, console_md, complaints_md]


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


async def prepare_database(engine: AsyncEngine) -> None:
    """Create the schema where it is missing."""
    async with engine.begin() as conn:
        for md in metadatas():
            await conn.run_sync(md.create_all)
