"""Write transactions on the embedded SQLite default (``tiepdan.db.make_engine``).

A deferred SQLite transaction that has read holds a snapshot; when another connection commits before it
writes, its first write fails at once with "database is locked" (``SQLITE_BUSY_SNAPSHOT``: waiting cannot
help, so the busy timeout is not used). ``engine.begin()`` is how every package opens a write
transaction, so on SQLite it takes the write lock first (``BEGIN IMMEDIATE``) and waits its turn;
``engine.connect()`` stays a deferred read. These tests interleave real connections on a file database and
run many desks at once through the real service functions.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import date, datetime

import pytest
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import PetitionerType, PetitionKind, PetitionSource
from complaints.intake import Intake
from complaints.petitioners import NewPetitioner
from complaints.petitions import NewPetition
from complaints.tables import cases
from evidence import Keyring
from schedules import VIETNAM_TZ, VenueChoice, publish_session
from schedules.desk import DeskRegistration, Triage, register_at_desk
from schedules.tables import queue_tickets
from signaling.memory_bus import MemoryBus
from signaling.outbox import OutboxRelay
from tests.schedules.conftest import ACTOR, ADMIN, CALENDAR, DESK, FakeClock, add_venues, plan
from tiepdan.db import NestedWriteTransaction, _SQLiteConnection, make_engine, prepare_database

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 10)
ROOM = "phien-2026-12-10"
RING = Keyring.generate(dev=True)


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(sqlite_url)
    await prepare_database(eng)
    async with eng.begin() as conn:
        await conn.execute(text("CREATE TABLE probe (n INTEGER NOT NULL)"))
    yield eng
    await eng.dispose()


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM probe")) or 0)


async def test_a_transaction_that_reads_then_writes_is_not_undone_by_another_writer_in_between(
        engine: AsyncEngine, sqlite_url: str) -> None:
    """Another writer (here the CLI on the same file, its busy timeout 0 to show who waits) tries to commit
    between this transaction's read and its write: it is the one that must wait, not this one that fails."""
    other = sqlite3.connect(make_url(sqlite_url).database or "", timeout=0, isolation_level=None)
    try:
        async with engine.begin() as conn:
            async with conn.begin_nested():  # as the services do: a savepoint, a read, then a write
                seen = int(await conn.scalar(text("SELECT count(*) FROM probe")) or 0)
                try:
                    other.execute("INSERT INTO probe (n) VALUES (100)")
                    other_wrote_in_between = True
                except sqlite3.OperationalError as exc:
                    assert "database is locked" in str(exc)
                    other_wrote_in_between = False
                await conn.execute(text("INSERT INTO probe (n) VALUES (:n)"), {"n": seen + 1})
        assert not other_wrote_in_between
        other.execute("INSERT INTO probe (n) VALUES (100)")  # its turn
    finally:
        other.close()
    async with engine.connect() as conn:
        rows = sorted((await conn.execute(text("SELECT n FROM probe"))).scalars())
    assert rows == [1, 100]


async def test_a_rolled_back_transaction_loses_what_its_savepoints_wrote(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            async with conn.begin_nested():
                await conn.execute(text("INSERT INTO probe (n) VALUES (1)"))
            raise RuntimeError("the rest of the transaction failed")
    assert await count(engine) == 0


async def test_reads_run_beside_a_writer_and_see_the_last_commit(engine: AsyncEngine) -> None:
    async with engine.begin() as writer:
        await writer.execute(text("INSERT INTO probe (n) VALUES (1)"))
        async with asyncio.timeout(5):  # a deferred read never waits for the write lock (WAL)
            assert await count(engine) == 0
    assert await count(engine) == 1


async def test_a_nested_write_transaction_in_one_task_fails_at_once_instead_of_waiting_for_itself(
        engine: AsyncEngine) -> None:
    async with engine.begin() as outer:
        await outer.execute(text("INSERT INTO probe (n) VALUES (1)"))
        with pytest.raises(NestedWriteTransaction, match="already holds"):
            async with asyncio.timeout(5):
                async with engine.begin() as inner:
                    await inner.execute(text("INSERT INTO probe (n) VALUES (2)"))
    assert await count(engine) == 1
    # another task may wait for the lock: it gets it when the first commits
    async with engine.begin() as outer:
        await outer.execute(text("INSERT INTO probe (n) VALUES (3)"))
        waiting = asyncio.create_task(count_after_write(engine))
    assert await waiting == 3  # it waited for the commit, then wrote


async def count_after_write(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO probe (n) VALUES (4)"))
        return int(await conn.scalar(text("SELECT count(*) FROM probe")) or 0)


def registration(i: int) -> DeskRegistration:
    birth = date(1950 + i % 40, 1 + i % 12, 1 + i % 28)
    petition = NewPetition(source=PetitionSource.IN_PERSON, kind=PetitionKind.COMPLAINT, received_on=DAY,
                           content=f"Khiếu nại số {i} về bồi thường đất")
    petitioner = NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=f"Nguyễn Văn Thử {i}", birth_date=birth,
                               address_detail="Xã Tiên Du")
    return DeskRegistration(session_id=ROOM, venue="xa-tien-du" if i % 2 else "tru-so-tinh",
                            triage=Triage.PROPOSE_LEADER, birth_date=birth,
                            intake=Intake(petition=petition, petitioner=petitioner))


async def test_many_desks_registering_at_once_beside_the_outbox_relay_all_succeed(engine: AsyncEngine) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=VIETNAM_TZ))
    await add_venues(engine, clock)
    async with engine.begin() as conn:
        await plan(conn, clock, ROOM, DAY, venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
        await publish_session(conn, ROOM, calendar=CALENDAR, actor=ACTOR, grants=ADMIN, clock=clock)
    clock.set_local(DAY, 7)
    bus = MemoryBus()
    relay = OutboxRelay(engine, bus)
    desks_done = asyncio.Event()

    async def desk(i: int) -> int:
        async with engine.begin() as conn:
            result = await register_at_desk(conn, RING, registration(i), actor=ACTOR, grants=DESK, clock=clock)
        assert result.ticket is not None
        return result.ticket.ticket_no

    async def relaying() -> int:  # the embedded server's relay marks events sent between the desks' writes
        relayed = 0
        while not desks_done.is_set():
            relayed += await relay.relay_once()
            await asyncio.sleep(0)
        return relayed + await relay.relay_once()

    async def desks() -> list[int]:
        try:
            return list(await asyncio.gather(*(desk(i) for i in range(DESKS))))
        finally:
            desks_done.set()

    try:
        numbers, relayed = await asyncio.gather(desks(), relaying())
    finally:
        await relay.close()
        await bus.close()
    assert sorted(numbers) == list(range(1, DESKS + 1))  # every desk got a number: unique and gapless
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(cases)) == DESKS
        assert await conn.scalar(select(func.count()).select_from(queue_tickets)) == DESKS
    assert relayed >= 2 * DESKS  # case.created and ticket.issued of each desk reached the bus


DESKS = 12


@pytest.mark.unit
async def test_a_connection_stopped_while_it_closes_still_closes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLAlchemy force-stops a connection (``stop()``) while its graceful ``close()`` runs when a task is
    cancelled mid-query; aiosqlite 0.22.1's close then awaited a second stop for ever and the event loop's
    shutdown hung. The engine's connections finish both, in either order."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}")
    try:
        for stop_first in (True, False):
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                assert isinstance(driver, _SQLiteConnection)
                raw.detach()  # the test closes it; the pool forgets it
            closing = asyncio.ensure_future(driver.close())
            if stop_first:
                stopped = driver.stop()
            else:
                await asyncio.sleep(0)
                stopped = driver.stop()
            await asyncio.wait_for(closing, timeout=20)
            assert stopped is not None
            await asyncio.wait_for(stopped, timeout=20)
            assert driver.stop() is not None and driver._connection is None
            driver._thread.join(timeout=20)
            assert not driver._thread.is_alive()
    finally:
        await engine.dispose()
