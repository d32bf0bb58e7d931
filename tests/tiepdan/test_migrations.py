"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import append_audit, verify_audit_log
from complaints.tables import is_search_shadow_table
from tiepdan.db import current_revision, make_engine, metadatas, prepare_database

pytestmark = pytest.mark.integration


def _include(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and is_search_shadow_table(name))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


async def test_upgrade_head_matches_the_declared_tables(engine: AsyncEngine) -> None:
    await prepare_database(engine)
    await prepare_database(engine)  # a second start finds nothing to do

    def diff(sync_conn: Connection) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True, "include_name": _include})
        return list(compare_metadata(context, metadatas()))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await current_revision(engine) is not None


async def test_migrated_audit_log_is_append_only_and_chained(engine: AsyncEngine) -> None:
    await prepare_database(engine)
    async with engine.begin() as conn:
        await append_audit(conn, actor="u1", action="identity.view", target_kind="petitioner", target_id="p1")
        await append_audit(conn, actor="u2", action="replay.segment", target_kind="segment", target_id="s1")
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM audit_events"))
    async with engine.connect() as conn:
        assert await verify_audit_log(conn) is None
