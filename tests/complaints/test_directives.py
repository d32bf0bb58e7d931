"""Directives and their follow-up, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.cases import create_case
from complaints.deadlines import DeadlineKind, DueStatus
from complaints.directives import (
    MAX_DEADLINE_DAYS,
    add_unit,
    directive_deadline_kinds,
    follow_up,
    get_directive,
    issue_directive,
    report_on_directive,
    resolve_deadline,
)
from complaints.enums import PetitionKind
from complaints.errors import DeadlineError, InvalidInput, NotFound, StaleVersion
from complaints.tables import metadata
from complaints.workdays import default_calendar
from tiepdan.db import make_engine

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CAL = default_calendar()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await add_unit(conn, "so-tnmt", "Sở Nông nghiệp và Môi trường", track="state")
        await add_unit(conn, "ubnd-tien-du", "UBND xã Tiên Du", track="state")
    yield eng
    await eng.dispose()


async def _case(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        return (await create_case(conn, kind=PetitionKind.COMPLAINT, summary="đất đai", now=NOW)).id


async def test_follow_up_sorts_overdue_due_soon_and_done(engine: AsyncEngine) -> None:
    case_id = await _case(engine)
    async with engine.begin() as conn:
        late = await issue_directive(conn, case_id, unit_id="so-tnmt", content="Kiểm tra, báo cáo",
                                     issued_on=date(2026, 10, 1), deadline=date(2026, 11, 2),
                                     issued_by="chair", calendar=CAL)
        soon = await issue_directive(conn, case_id, unit_id="ubnd-tien-du", content="Giải quyết dứt điểm",
                                     issued_on=date(2026, 11, 1), deadline=date(2026, 11, 25),
                                     issued_by="chair", calendar=CAL)
        done = await issue_directive(conn, case_id, unit_id="ubnd-tien-du", content="Trả lời công dân",
                                     issued_on=date(2026, 11, 1), deadline=date(2026, 12, 15),
                                     issued_by="chair", calendar=CAL)
        await report_on_directive(conn, done, expected_version=1, reported_on=date(2026, 11, 19),
                                  content="Đã trả lời bằng văn bản", reported_by="unit", completed=True, now=NOW)
    async with engine.connect() as conn:
        views = {v.id: v.status for v in await follow_up(conn, today=NOW.date(), calendar=CAL)}
        tien_du = await follow_up(conn, today=NOW.date(), calendar=CAL, unit_id="ubnd-tien-du")
        overdue = await follow_up(conn, today=NOW.date(), calendar=CAL, only=frozenset({DueStatus.OVERDUE}))
    assert views == {late: DueStatus.OVERDUE, soon: DueStatus.DUE_SOON, done: DueStatus.DONE_ON_TIME}
    assert {v.id for v in tien_du} == {soon, done}
    assert [v.id for v in overdue] == [late]


async def test_deadline_on_a_holiday_is_refused_with_the_next_working_day(engine: AsyncEngine) -> None:
    case_id = await _case(engine)
    with pytest.raises(DeadlineError, match="ngày làm việc kế tiếp là 03/09/2026") as info:
        async with engine.begin() as conn:
            await issue_directive(conn, case_id, unit_id="so-tnmt", content="x", issued_on=date(2026, 8, 1),
                                  deadline=date(2026, 9, 2), issued_by="chair", calendar=CAL)
    assert info.value.code == "deadline_on_day_off"
    with pytest.raises(DeadlineError):
        async with engine.begin() as conn:
            await issue_directive(conn, case_id, unit_id="so-tnmt", content="x", issued_on=date(2026, 8, 1),
                                  deadline=date(2026, 7, 1), issued_by="chair", calendar=CAL)
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await issue_directive(conn, case_id, unit_id="no-such-unit", content="x", issued_on=date(2026, 8, 1),
                                  deadline=date(2026, 9, 3), issued_by="chair", calendar=CAL)


async def test_a_stale_report_is_refused(engine: AsyncEngine) -> None:
    case_id = await _case(engine)
    async with engine.begin() as conn:
        d = await issue_directive(conn, case_id, unit_id="so-tnmt", content="x", issued_on=date(2026, 11, 2),
                                  deadline=date(2026, 12, 1), issued_by="chair", calendar=CAL)
        assert await report_on_directive(conn, d, expected_version=1, reported_on=date(2026, 11, 10),
                                         content="đang làm", reported_by="unit", completed=False, now=NOW) == 2
    with pytest.raises(StaleVersion):
        async with engine.begin() as conn:
            await report_on_directive(conn, d, expected_version=1, reported_on=date(2026, 11, 11),
                                      content="xong", reported_by="unit", completed=True, now=NOW)


async def test_an_impossible_deadline_is_refused_with_its_reason(engine: AsyncEngine) -> None:
    case_id = await _case(engine)
    cases = [
        (date(2027, 12, 1), "deadline_too_far", "hơn 366 ngày"),       # a year typed wrong
        (date(2026, 11, 19), "deadline_before_issue", "trước ngày chỉ đạo"),
        (date(2026, 11, 22), "deadline_on_day_off", "23/11/2026"),       # a Sunday
    ]
    for deadline, code, words in cases:
        with pytest.raises(DeadlineError, match=words) as info:
            async with engine.begin() as conn:
                await issue_directive(conn, case_id, unit_id="so-tnmt", content="Kiểm tra", issued_on=NOW.date(),
                                      deadline=deadline, issued_by="chair", calendar=CAL)
        assert info.value.code == code
    for content, words in [("   ", "phải có nội dung"), ("x" * 5001, "tối đa 5000")]:
        with pytest.raises(InvalidInput, match=words):
            async with engine.begin() as conn:
                await issue_directive(conn, case_id, unit_id="so-tnmt", content=content, issued_on=NOW.date(),
                                      deadline=date(2026, 12, 1), issued_by="chair", calendar=CAL)
    async with engine.connect() as conn:
        assert await follow_up(conn, today=NOW.date(), calendar=CAL) == []


async def test_a_directive_names_its_case_and_unit(engine: AsyncEngine) -> None:
    case_id = await _case(engine)
    async with engine.begin() as conn:
        d = await issue_directive(conn, case_id, unit_id="ubnd-tien-du", content="x", issued_on=NOW.date(),
                                  deadline=date(2026, 12, 1), issued_by="chair", calendar=CAL)
        ref = await get_directive(conn, d)
    assert (ref.case_id, ref.unit_id, ref.version) == (case_id, "ubnd-tien-du", 1)
    with pytest.raises(NotFound, match="ý kiến chỉ đạo"):
        async with engine.connect() as conn:
            await get_directive(conn, "nope")


@pytest.mark.unit
def test_deadline_from_working_days_or_a_legal_period() -> None:
    friday = date(2026, 11, 20)
    # 10 working days: weekends and 24/11 (Ngày Văn hóa Việt Nam) are not counted.
    assert resolve_deadline(friday, CAL, working_days=10) == date(2026, 12, 7)
    assert resolve_deadline(friday, CAL, on=date(2026, 12, 1)) == date(2026, 12, 1)
    # 10 working days (Luật Tiếp công dân Điều 28) and 30 days moved off a Sunday (BLDS Điều 148).
    assert resolve_deadline(friday, CAL, legal=DeadlineKind.NOTIFY_RECEPTION_OUTCOME) == date(2026, 12, 7)
    assert resolve_deadline(friday, CAL, legal=DeadlineKind.RESOLVE_FIRST_COMPLAINT) == date(2026, 12, 21)
    assert DeadlineKind.PUBLISH_SCHEDULE not in directive_deadline_kinds()
    for kwargs, code in [({}, "deadline_choice"), ({"working_days": 3, "on": friday}, "deadline_choice"),
                         ({"working_days": 0}, "deadline_working_days"),
                         ({"working_days": 251}, "deadline_working_days"),
                         ({"legal": DeadlineKind.PUBLISH_SCHEDULE}, "deadline_rule")]:
        with pytest.raises(DeadlineError) as info:
            resolve_deadline(friday, CAL, **kwargs)  # type: ignore[arg-type]
        assert info.value.code == code, kwargs
    assert MAX_DEADLINE_DAYS == 366
