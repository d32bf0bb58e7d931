"""The demo's minutes: the units a directive may go to, and the last check (``tiepdan demo --headless``) that
every called case of the session landed in the complaint database from its approved minutes.

A case has landed when the closing (:mod:`minutes.closing`, on ``case.closed`` and the chair's approval) wrote
its record (``minutes_case_records``) and, in the complaint database, the reception entry of this session,
the handling decision and at least one directive to an active unit with a deadline, and when the record or
the case's ``segment_refs`` refer to a recording segment of the case that the recording check
(:mod:`tiepdan.demo_recording`) found closed and verified. The closing and the segments' references are
written by bus consumers: the check waits a bounded time for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.directives import add_unit
from complaints.seed import UNITS
from complaints.tables import cases, directives, handling_decisions, reception_entries, segment_refs, units
from minutes.tables import minutes_approvals, minutes_case_records, minutes_drafts
from schedules import calls

__all__ = ["CasesCheck", "LandedCase", "check_cases", "ensure_units"]


@dataclass(frozen=True)
class LandedCase:
    ticket_no: int
    case_id: str
    tracking_code: str
    directives: int
    segments: tuple[str, ...]


@dataclass(frozen=True)
class CasesCheck:
    """``landed``: the called cases written completely; ``problems``: one Vietnamese line per case that is
    not (empty: the check passes)."""

    landed: tuple[LandedCase, ...]
    problems: tuple[str, ...]
    called: int


async def ensure_units(engine: AsyncEngine) -> int:
    """A database with no active unit (a fresh demo database) gets the sample province's units
    (:data:`complaints.seed.UNITS`), so that a directive has somewhere to go; how many were added."""
    async with engine.begin() as conn:
        if (await conn.execute(select(func.count()).select_from(units).where(units.c.active))).scalar_one():
            return 0
        known = set((await conn.execute(select(units.c.id))).scalars())
        added = 0
        for unit_id, name, track in UNITS:
            if unit_id not in known:
                await add_unit(conn, unit_id, name, track=track)
                added += 1
        return added


async def _called(conn: AsyncConnection, room: str) -> list[tuple[int, str]]:
    """(ticket number, case) of every ticket the session called, in the order of their last call."""
    state, _ = await calls.load_queue(conn, room)
    tickets = sorted((t for t in state.tickets if t.last_call_seq > 0), key=lambda t: t.last_call_seq)
    return [(t.ticket_no, t.case) for t in tickets]


async def _not_recorded(conn: AsyncConnection, room: str, case_id: str) -> str:
    draft = (await conn.execute(select(minutes_drafts.c.id, minutes_drafts.c.state).where(
        minutes_drafts.c.session_id == room, minutes_drafts.c.case_id == case_id))).first()
    if draft is None:
        return "không có biên bản (bản nháp chưa được mở khi gọi)"
    approval = (await conn.execute(select(minutes_approvals).where(minutes_approvals.c.draft_id == draft.id))
                ).mappings().first()
    why = "biên bản chưa được ghi vào cơ sở dữ liệu"
    if approval is None or approval["readback_sha256"] is None:
        return f"{why} (chưa đọc lại cho công dân)"
    if approval["confirmation"] is None:
        return f"{why} (công dân chưa xác nhận)"
    if approval["approved_sha256"] is None:
        listed = "; ".join(str(p.get("message", "")) for p in approval["problems"] or ())
        return f"{why} (chủ trì chưa phê duyệt{': ' + listed if listed else ''})"
    if approval["case_closed_at"] is None:
        return f"{why} (chưa nhận sự kiện kết thúc vụ việc)"
    listed = "; ".join(str(p.get("message", "")) for p in approval["problems"] or ())
    return f"{why}{': ' + listed if listed else ''}"


_NO_REFERENCE = "không có tham chiếu đoạn ghi hình"


async def _written(conn: AsyncConnection, room: str, case_id: str, record: Any,
                   verified: Collection[str] | None) -> list[str]:
    """What the complaint database lacks of the case's record (empty: complete)."""
    lacks: list[str] = []
    reception = (await conn.execute(select(reception_entries.c.id).where(
        reception_entries.c.id == record["reception_id"], reception_entries.c.case_id == case_id,
        reception_entries.c.session_id == room))).first()
    if reception is None:
        lacks.append("không có lượt tiếp trong sổ tiếp công dân")
    decision = (await conn.execute(select(handling_decisions.c.id).where(
        handling_decisions.c.id == record["decision_id"], handling_decisions.c.case_id == case_id))).first()
    if decision is None:
        lacks.append("không có quyết định hướng xử lý")
    ids = list(record["directives"] or ())
    rows = (await conn.execute(select(directives.c.id, directives.c.issued_on, directives.c.deadline)
                               .join(units, units.c.id == directives.c.unit_id)
                               .where(directives.c.id.in_(ids), directives.c.case_id == case_id, units.c.active))
            ).all() if ids else []
    if not rows or len(rows) != len(ids):
        lacks.append("không có ý kiến chỉ đạo giao đơn vị")
    elif any(r.deadline is None or r.deadline < r.issued_on for r in rows):
        lacks.append("ý kiến chỉ đạo không có thời hạn hợp lệ")
    if verified is None:  # the server does not record
        return lacks
    referenced = await _referenced(conn, case_id, record)
    if not referenced:
        lacks.append(_NO_REFERENCE)
    elif not set(referenced) & set(verified):
        lacks.append(f"đoạn ghi hình {', '.join(referenced)} chưa được kiểm tra toàn vẹn")
    return lacks


async def _referenced(conn: AsyncConnection, case_id: str, record: Any) -> list[str]:
    """The case's segments the complaint database refers to: those the closing found (``minutes_case_records``)
    and those referenced in ``segment_refs`` (a segment that closes after the case was written joins then)."""
    refs = (await conn.execute(select(segment_refs.c.segment_id).where(segment_refs.c.case_id == case_id))).scalars()
    return list(dict.fromkeys([*(record["segments"] or ()), *refs]))


async def _check_once(engine: AsyncEngine, room: str, verified: Mapping[str, Collection[str]] | None,
                      given: Sequence[tuple[int, str]] | None) -> tuple[list[LandedCase], list[str], int, bool]:
    """The landed cases, the problems, how many cases were called, and whether a problem may still go away
    (a record or a segment reference not written yet: both come from bus consumers)."""
    landed: list[LandedCase] = []
    problems: list[str] = []
    pending = False
    async with engine.connect() as conn:
        called = list(given) if given is not None else await _called(conn, room)
        for ticket_no, case_id in called:
            tracking = (await conn.execute(select(cases.c.tracking_code).where(cases.c.id == case_id))
                        ).scalar_one_or_none() or case_id
            record = (await conn.execute(select(minutes_case_records).where(
                minutes_case_records.c.session_id == room, minutes_case_records.c.case_id == case_id))
                      ).mappings().first()
            if record is None:
                pending = True
                problems.append(f"vụ việc số {ticket_no} ({tracking}): {await _not_recorded(conn, room, case_id)}")
                continue
            checked = None if verified is None else verified.get(case_id, ())
            lacks = await _written(conn, room, case_id, record, checked)
            if lacks:
                # a verified segment's reference may still be on its way; an unverified one will not verify
                pending = pending or (_NO_REFERENCE in lacks and bool(checked))
                problems.append(f"vụ việc số {ticket_no} ({tracking}): {'; '.join(lacks)}")
                continue
            landed.append(LandedCase(ticket_no, case_id, tracking, len(record["directives"]),
                                     tuple(record["segments"])))
    if not called:
        problems.append("phiên chưa gọi vụ việc nào")
    return landed, problems, len(called), pending or not called


async def check_cases(engine: AsyncEngine, room: str, *, verified: Mapping[str, Collection[str]] | None,
                      called: Sequence[tuple[int, str]] | None = None, timeout_s: float = 30.0) -> CasesCheck:
    """Wait (at most ``timeout_s``) until every case ``room`` called has landed (see the module docstring),
    then say what has not. ``verified``: case → its segments the recording check verified (None: the server
    does not record, and no segment is asked for); ``called``: (ticket number, case) of the cases to check
    (None: every ticket the session's queue called)."""
    deadline = time.monotonic() + timeout_s
    while True:
        landed, problems, count, pending = await _check_once(engine, room, verified, called)
        if not pending or time.monotonic() >= deadline:
            return CasesCheck(tuple(landed), tuple(problems), count)
        await asyncio.sleep(0.2)
