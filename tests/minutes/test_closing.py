"""Closing on SQLite and PostgreSQL: ``case.closed`` + the chair's approval (in either order) write the case once
through the complaint service (status, reception entry with the minutes' hash, handling decision, directives,
segment references) with ``case.recorded`` in the outbox; replays and a second approval write nothing twice;
missing fields, a past deadline, a deadline on a day off and an unknown unit are listed and nothing is written."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import verify_audit_log
from complaints.cases import get_case
from complaints.enums import CaseStatus, ReceptionForm, ReceptionType
from complaints.tables import directives, handling_decisions, reception_entries, recording_segments, units
from evidence import Keyring
from minutes.approval import approval_state, approve, confirm_verbally, request_readback
from minutes.closing import content_sha256, missing_fields
from minutes.closing_consumer import closing_handler
from minutes.drafts import DraftClosed, SessionReception, open_draft
from minutes.drafts_content import MinutesContent
from minutes.tables import minutes_case_records, minutes_drafts
from signaling.events import CaseClosed
from signaling.outbox import outbox

from ._approvals import CAL, CHAIR, COMPLETE, SECRETARY, save
from ._drafts import NOW, SESSION, VENUE, register_case

pytestmark = pytest.mark.integration
LATER = NOW + timedelta(minutes=30)
#: An ad hoc session hosted by the chairman of the provincial People's Committee: the reception entry says so.
RECEPTION = SessionReception(ReceptionType.AD_HOC, ReceptionForm.ONLINE, "chu-tich-ubnd-tinh")


async def _drafted(engine: AsyncEngine, keyring: Keyring, content: dict[str, Any]) -> str:
    async with engine.begin() as conn:
        case_id = await register_case(conn, keyring)
        await open_draft(conn, session_id=SESSION, case_id=case_id, call_seq=1, venue=VENUE,
                         reception=RECEPTION, calendar=CAL, now=NOW)
        await conn.execute(recording_segments.insert().values(
            segment=f"c1-{case_id}", session=SESSION, case_id=case_id, call_seq=1, confidential=False,
            files_json="[]", speakers_json="[]", gaps_json="[]", opened_at=NOW))
    await save(engine, keyring, case_id, 1, content)
    return case_id


async def _confirmed(engine: AsyncEngine, case_id: str) -> str:
    async with engine.begin() as conn:
        state = await request_readback(conn, session_id=SESSION, case_id=case_id, version=2, author=SECRETARY,
                                       now=NOW + timedelta(minutes=10))
        assert state.readback_sha256 is not None
        await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=state.readback_sha256,
                               media_time="12:05", author=SECRETARY, now=NOW + timedelta(minutes=11))
    return state.readback_sha256


async def _approve(engine: AsyncEngine, keyring: Keyring, case_id: str, digest: str, now: Any = LATER) -> Any:
    async with engine.begin() as conn:
        return await approve(conn, session_id=SESSION, case_id=case_id, confirmed_sha256=digest, author=CHAIR,
                             name="Đồng chí Bí thư", keyring=keyring, calendar=CAL, now=now)


async def _count(engine: AsyncEngine, table: Any, case_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table)
                                       .where(table.c.case_id == case_id))).scalar_one())


async def _recorded_events(engine: AsyncEngine, case_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.type == "case.recorded", outbox.c.aggregate == f"case:{case_id}"))).scalar_one())


def _closed(case_id: str, call_seq: int = 1) -> CaseClosed:
    return CaseClosed(session=SESSION, case=case_id, ticket_no=3, venue=VENUE, call_seq=call_seq, by="user:chutri")


async def test_approval_then_case_closed_writes_the_case_once_through_the_service(engine: AsyncEngine,
                                                                                 keyring: Keyring) -> None:
    markup = '<script>alert("x")</script>'
    content = {**COMPLETE, "conclusion": COMPLETE["conclusion"] + markup,
               "directives": [{**COMPLETE["directives"][0], "content": "Kiểm tra " + markup}]}
    case_id = await _drafted(engine, keyring, content)
    digest = await _confirmed(engine, case_id)
    approved = await _approve(engine, keyring, case_id, digest)
    assert approved.state == "approved" and not approved.case_closed and approved.record is None
    assert await _count(engine, reception_entries, case_id) == 0  # not before case.closed

    handle = closing_handler(engine, keyring, CAL, clock=lambda: LATER)
    event = _closed(case_id)
    await handle(event)
    await handle(event)                                              # redelivered
    await handle(event.model_copy(update={"event_id": "replayed"}))  # the outbox publishing again: same key
    await handle(_closed(case_id, call_seq=2))                       # a recalled case closing again: new key

    assert await _count(engine, reception_entries, case_id) == 1
    assert await _count(engine, handling_decisions, case_id) == 1
    assert await _count(engine, directives, case_id) == 1
    assert await _count(engine, minutes_case_records, case_id) == 1
    assert await _recorded_events(engine, case_id) == 1
    async with engine.connect() as conn:
        entry = (await conn.execute(select(reception_entries).where(reception_entries.c.case_id == case_id))
                 ).mappings().one()
        assert entry["session_id"] == SESSION and entry["venue"] == VENUE and entry["outcome"] == "assigned_to_unit"
        assert entry["officer"] == "Đồng chí Bí thư" and digest in entry["notes"]
        assert (entry["reception_type"], entry["form"], entry["host"]) == ("ad_hoc", "online", "chu-tich-ubnd-tinh")
        directive = (await conn.execute(select(directives).where(directives.c.case_id == case_id))).mappings().one()
        assert directive["content"] == "Kiểm tra " + markup  # kept as typed: whoever shows it escapes it
        assert directive["unit_id"] == "ubnd-tien-du" and directive["deadline"] == date(2026, 12, 24)
        decision = (await conn.execute(select(handling_decisions).where(handling_decisions.c.case_id == case_id))
                    ).mappings().one()
        assert decision["direction"] == "guide"
        assert (await get_case(conn, case_id)).status is CaseStatus.IN_HANDLING
        record = (await conn.execute(select(minutes_case_records))).mappings().one()
        assert record["content_sha256"] == digest and record["segments"] == [f"c1-{case_id}"]
        assert record["directives"] == [directive["id"]] and record["reception_id"] == entry["id"]
        assert (await conn.execute(select(minutes_drafts.c.state))).scalar_one() == "closed"
        types = set((await conn.execute(select(outbox.c.type).where(outbox.c.aggregate == f"case:{case_id}")))
                    .scalars())
        assert {"case.reception_recorded", "case.handling_decision_recorded", "case.directive_issued",
                "case.updated", "case.recorded"} <= types
        assert await verify_audit_log(conn) is None
        state = await approval_state(conn, session_id=SESSION, case_id=case_id, author=SECRETARY)
    assert state.state == "recorded" and state.record is not None and state.verbal_time == "12:05"

    with pytest.raises(DraftClosed):  # a second approval writes nothing
        await _approve(engine, keyring, case_id, digest)
    assert await _count(engine, reception_entries, case_id) == 1 and await _recorded_events(engine, case_id) == 1


async def test_case_closed_first_then_the_approval_closes_and_missing_fields_are_listed(
        engine: AsyncEngine, keyring: Keyring) -> None:
    case_id = await _drafted(engine, keyring, {"discussion": "Trao đổi", "directives": [
        {"unit": "", "content": "", "working_days": None}], "answer": "directed", "citizen_request": ""})
    await closing_handler(engine, keyring, CAL, clock=lambda: LATER)(_closed(case_id))
    digest = await _confirmed(engine, case_id)
    refused = await _approve(engine, keyring, case_id, digest)
    fields = [e["field"] for e in refused.problems]
    assert fields == ["citizen_request", "conclusion", "handling_direction", "outcome", "directives.0.unit",
                      "directives.0.content", "directives.0.working_days"]
    assert "Chưa có kết luận của chủ trì." in [e["message"] for e in refused.problems]
    assert refused.state == "confirmed" and refused.approved_sha256 is None
    assert await _count(engine, reception_entries, case_id) == 0 and await _recorded_events(engine, case_id) == 0
    async with engine.connect() as conn:
        state = await approval_state(conn, session_id=SESSION, case_id=case_id, author=CHAIR)
    assert state.draft_state == "open" and state.case_closed and state.approved_sha256 is None
    assert [p["field"] for p in state.problems] == fields  # the pages list them

    # nothing typed is lost: the draft goes on; completed, read back, confirmed and approved, it closes at once
    version = await save(engine, keyring, case_id, 2, COMPLETE, minutes=15)
    async with engine.begin() as conn:
        again = await request_readback(conn, session_id=SESSION, case_id=case_id, version=version,
                                       author=SECRETARY, now=NOW + timedelta(minutes=16))
        assert again.readback_sha256 is not None
        await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=again.readback_sha256,
                               media_time="1:02:03", author=SECRETARY, now=NOW + timedelta(minutes=17))
    closed = await _approve(engine, keyring, case_id, again.readback_sha256)
    assert closed.state == "recorded" and closed.draft_state == "closed" and closed.problems == ()
    assert await _count(engine, reception_entries, case_id) == 1 and await _recorded_events(engine, case_id) == 1


async def test_a_save_after_the_approval_keeps_the_case_from_being_written(engine: AsyncEngine,
                                                                          keyring: Keyring) -> None:
    case_id = await _drafted(engine, keyring, COMPLETE)
    digest = await _confirmed(engine, case_id)
    await _approve(engine, keyring, case_id, digest)
    await save(engine, keyring, case_id, 2, {**COMPLETE, "discussion": "Bổ sung sau phê duyệt"}, minutes=20)
    await closing_handler(engine, keyring, CAL, clock=lambda: LATER)(_closed(case_id))
    assert await _count(engine, reception_entries, case_id) == 0 and await _recorded_events(engine, case_id) == 0
    async with engine.connect() as conn:
        state = await approval_state(conn, session_id=SESSION, case_id=case_id, author=SECRETARY)
    assert state.draft_state == "open" and "sau khi chủ trì phê duyệt" in state.problems[0]["message"]
    assert state.draft_sha256 != digest


async def test_a_past_deadline_a_day_off_and_an_unknown_unit_are_refused(engine: AsyncEngine,
                                                                        keyring: Keyring) -> None:
    case_id = await _drafted(engine, keyring, {**COMPLETE, "directives": [
        {"unit": "ubnd-tien-du", "content": "Một", "working_days": 1},
        {"unit": "so-tnmt", "content": "Hai", "working_days": 2},
        {"unit": "ubnd-tien-du", "content": "Ba", "working_days": 3}]})
    async with engine.begin() as conn:  # the third deadline set by hand to a Saturday; a unit closed since
        row = (await conn.execute(select(minutes_drafts))).mappings().one()
        content = dict(row["content"])
        content["directives"][2]["deadline"] = "2026-12-26"
        await conn.execute(update(minutes_drafts).values(content=content))
        await conn.execute(update(units).where(units.c.id == "so-tnmt").values(active=False))
    digest = await _confirmed(engine, case_id)
    # two weeks later: the first deadlines (11/12, 14/12) are past
    refused = await _approve(engine, keyring, case_id, digest, now=NOW + timedelta(days=14))
    assert refused.approved_sha256 is None
    errors = {e["field"]: e["message"] for e in refused.problems}
    assert set(errors) == {"directives.0.deadline", "directives.1.unit", "directives.1.deadline",
                           "directives.2.deadline"}
    assert "đã qua" in errors["directives.0.deadline"] and "11/12/2026" in errors["directives.0.deadline"]
    assert "không tìm thấy đơn vị" in errors["directives.1.unit"]
    assert "ngày không làm việc" in errors["directives.2.deadline"]
    assert await _count(engine, directives, case_id) == 0


def test_missing_fields_and_the_content_hash_are_pure_and_stable() -> None:
    content = MinutesContent.model_validate(COMPLETE)
    assert missing_fields(content, issued_on=date(2026, 12, 10), today=date(2026, 12, 10), calendar=CAL,
                          known_units=frozenset({"ubnd-tien-du"})) == []
    assert content_sha256(content) == content_sha256(MinutesContent.model_validate(dict(reversed(COMPLETE.items()))))
    assert content_sha256(content) != content_sha256(content.model_copy(update={"discussion": " "}))
