from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from complaints.seed import database_is_empty, seed_province
from complaints.tables import cases, identity_vault, metadata, petitioners, reception_entries
from evidence import Keyring
from signaling.outbox import metadata as signaling_metadata
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration


async def test_seed_fills_an_empty_database_with_varied_cases(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(signaling_metadata.create_all)  # the seed announces what it writes
    assert await database_is_empty(engine)
    report = await seed_province(engine, Keyring.generate(dev=True), cases_count=60, today=date(2026, 11, 20))
    async with engine.connect() as conn:
        kinds = {r[0] for r in await conn.execute(select(cases.c.kind).distinct())}
        vault = (await conn.execute(select(func.count()).select_from(identity_vault))).scalar_one()
        sealed_rows = (await conn.execute(
            select(func.count()).select_from(petitioners).where(petitioners.c.sealed))).scalar_one()
        repeat = (await conn.execute(select(func.max(reception_entries.c.nth)))).scalar_one()
        assert not await database_is_empty(engine)
    await engine.dispose()
    assert report.cases > 40 and report.directives > 5
    assert kinds == {"complaint", "denunciation", "proposal_feedback"}
    assert vault == sealed_rows == report.sealed > 0
    assert repeat >= 2  # some citizens come back: "lần tiếp thứ n"
