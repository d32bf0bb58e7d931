"""Closing a case's minutes: the approved minutes written into the complaint database, once.

Theory of operation
-------------------
A case is written when two things have happened, in either order: the scheduler announced ``case.closed``
(the bus consumer :mod:`minutes.closing_consumer` notes it on the draft's approval row) and the chair approved
the confirmed read-back (:func:`minutes.approval.approve`). Whichever comes second calls
:func:`close_if_ready`, which runs :func:`close_case` inside a savepoint:

1. the draft row is locked (PostgreSQL) and a record already written for it is returned as it is: a
   replayed ``case.closed``, a second approval or a race of both writes nothing twice;
2. the approval must still hold: the draft's content hash is the approved one (a save after the approval
   breaks it; the secretary reads back again);
3. the content is checked (:func:`check_content`): the citizen's request, the chair's conclusion, the
   handling direction and the reception outcome are required; each directive needs a known, active unit, a
   content and a deadline on a working day not before today; an answer "directed to units" needs a directive.
   Every problem is listed (field, Vietnamese message) and nothing is written
   (:class:`CaseIncomplete`);
4. in the caller's one transaction, through :mod:`complaints.service`: the case's status follows the
   outcome (``update_case``), the reception entry (``add_reception``: the session's loại tiếp, hình thức tiếp
   and host as the draft recorded them when the case was called; its note names the minutes' SHA-256),
   the handling decision, each directive (``issue_directive``), then the references to the case's recording
   segments of the session (``reference_segments``: ``segment_refs`` with each complete segment's files and
   manifest SHA-256; a segment still open is referenced by the recordings consumer when its row completes,
   see :mod:`complaints.service.segments`), the record row (``minutes_case_records``; its ``segments``: every
   segment of the case in the session at closing, open ones included), the draft marked closed, the audit
   row ``minutes.case_recorded`` and ``case.recorded`` into the outbox.

On a refusal :func:`close_if_ready` rolls the savepoint back, keeps the problems on the approval row (the
secretary's and the chair's pages list them) and leaves the draft open and editable: nothing typed is lost.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints import service
from complaints.audit import append_audit
from complaints.cases import get_case
from complaints.directives import known_active_units
from complaints.enums import CaseStatus, ReceptionForm, ReceptionOutcome, ReceptionType
from complaints.errors import ComplaintsError, InvalidInput, NotFound, StaleVersion
from complaints.recordings import segments_of_session
from complaints.workdays import WorkCalendar
from evidence import Keyring
from signaling.events import CaseRecorded
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from .drafts import VIETNAM_TZ
from .drafts_content import FIELD_LABELS_VI, MinutesContent
from .tables import minutes_approvals, minutes_case_records, minutes_drafts

__all__ = ["CaseIncomplete", "CaseRecord", "MINUTES_WRITER", "WRITER_GRANTS", "content_sha256", "missing_fields",
           "check_content", "close_case", "close_if_ready", "load_record", "writer_caller"]

MINUTES_WRITER = "service:minutes"
WRITER_GRANTS = frozenset({Grant.MINUTES, Grant.APPROVE, Grant.DIRECTIVES})

REQUIRED_FIELDS: tuple[str, ...] = ("citizen_request", "conclusion", "handling_direction", "outcome")

# The case's status once the reception's outcome is recorded.
_STATUS_OF: dict[ReceptionOutcome, CaseStatus] = {
    ReceptionOutcome.ACCEPT_FOR_RESOLUTION: CaseStatus.ACCEPTED,
    ReceptionOutcome.RETURN_WITH_GUIDANCE: CaseStatus.GUIDED,
    ReceptionOutcome.FORWARD_TO_COMPETENT_BODY: CaseStatus.FORWARDED,
    ReceptionOutcome.ANSWERED_ON_THE_SPOT: CaseStatus.RESOLVED,
    ReceptionOutcome.PENDING: CaseStatus.IN_HANDLING,
    ReceptionOutcome.ASSIGNED_TO_UNIT: CaseStatus.IN_HANDLING,
    ReceptionOutcome.MEET_LEADER: CaseStatus.RECEIVED,
    ReceptionOutcome.MORE_INFORMATION: CaseStatus.RECEIVED,
    ReceptionOutcome.REFUSED: CaseStatus.FILED,
}


class CaseIncomplete(InvalidInput):
    """The minutes cannot be written yet; ``errors``: every problem (``field``, Vietnamese ``message``)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        fields = "; ".join(e["message"] for e in errors[:3]) + ("…" if len(errors) > 3 else "")
        super().__init__(f"Chưa ghi được vụ việc vào cơ sở dữ liệu: {fields}", code="minutes_incomplete",
                         field=errors[0]["field"] if errors else None)
        self.errors = errors


@dataclass(frozen=True)
class CaseRecord:
    draft_id: str
    case_id: str
    session_id: str
    content_sha256: str
    draft_version: int
    reception_id: str
    decision_id: str
    directives: tuple[str, ...]
    segments: tuple[str, ...]
    recorded_by: str
    recorded_at: datetime
    created: bool   # False: written before (a replay, a second approval)


def content_sha256(content: MinutesContent) -> str:
    """The SHA-256 of the minutes' content as canonical JSON (sorted keys, UTF-8): what is read back,
    confirmed, approved and recorded."""
    text = json.dumps(content.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _missing(field: str, what: str) -> dict[str, str]:
    return {"field": field, "message": f"Chưa có {what}."}


def missing_fields(content: MinutesContent, *, issued_on: date, today: date, calendar: WorkCalendar,
                   known_units: frozenset[str]) -> list[dict[str, str]]:
    """Every reason the minutes cannot be written yet, in the order of the form (pure)."""
    errors: list[dict[str, str]] = []
    if not content.citizen_request.strip():
        errors.append(_missing("citizen_request", "nội dung công dân trình bày, đề nghị"))
    if not content.conclusion.strip():
        errors.append(_missing("conclusion", "kết luận của chủ trì"))
    if content.handling_direction is None:
        errors.append(_missing("handling_direction", "hướng xử lý"))
    if content.outcome is None:
        errors.append(_missing("outcome", "kết quả tiếp"))
    if content.answer == "directed" and not content.directives:
        errors.append({"field": "directives", "message": "Đã chọn giao đơn vị xử lý nhưng chưa có ý kiến chỉ đạo."})
    for i, d in enumerate(content.directives):
        label = f"Ý kiến chỉ đạo {i + 1}"
        if not d.unit:
            errors.append({"field": f"directives.{i}.unit", "message": f"{label}: chưa chọn đơn vị được giao."})
        elif d.unit not in known_units:
            errors.append({"field": f"directives.{i}.unit",
                           "message": f"{label}: không tìm thấy đơn vị được giao (hoặc đơn vị đã ngừng hoạt động)."})
        if not d.content.strip():
            errors.append({"field": f"directives.{i}.content", "message": f"{label}: chưa có nội dung chỉ đạo."})
        due = _deadline(d.deadline, d.working_days, issued_on, calendar)
        if due is None:
            errors.append({"field": f"directives.{i}.working_days", "message": f"{label}: chưa có thời hạn."})
        elif due < today:
            errors.append({"field": f"directives.{i}.deadline",
                           "message": f"{label}: thời hạn {due:%d/%m/%Y} đã qua (hôm nay {today:%d/%m/%Y})."})
        elif not calendar.is_working_day(due):
            reason = calendar.day_off_reason_vi(due) or "ngày nghỉ"
            errors.append({"field": f"directives.{i}.deadline",
                           "message": f"{label}: thời hạn {due:%d/%m/%Y} rơi vào ngày không làm việc ({reason})."})
    return errors


def _deadline(stored: date | None, working_days: int | None, issued_on: date, calendar: WorkCalendar) -> date | None:
    if stored is not None:
        return stored
    return calendar.add_working_days(issued_on, working_days) if working_days else None


async def check_content(conn: AsyncConnection, content: MinutesContent, *, issued_on: date, today: date,
                        calendar: WorkCalendar) -> list[dict[str, str]]:
    """:func:`missing_fields` with the active units read from the database."""
    known = await known_active_units(conn, (d.unit for d in content.directives if d.unit))
    return missing_fields(content, issued_on=issued_on, today=today, calendar=calendar, known_units=known)


def writer_caller(name: str) -> service.Caller:
    """The complaint database's caller for the closing writes: the minutes service, recording the approving
    chair's ``name`` as the officer of the reception and the issuer of the directives."""
    return service.Caller(label=MINUTES_WRITER, name=name, grants=WRITER_GRANTS)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _record_of(row: Any, *, created: bool) -> CaseRecord:
    return CaseRecord(
        draft_id=row["draft_id"], case_id=row["case_id"], session_id=row["session_id"],
        content_sha256=row["content_sha256"], draft_version=row["draft_version"], reception_id=row["reception_id"],
        decision_id=row["decision_id"], directives=tuple(row["directives"]), segments=tuple(row["segments"]),
        recorded_by=row["recorded_by"], recorded_at=_aware(row["recorded_at"]), created=created)


async def load_record(conn: AsyncConnection, draft_id: str) -> CaseRecord | None:
    row = (await conn.execute(select(minutes_case_records).where(minutes_case_records.c.draft_id == draft_id))
           ).mappings().first()
    return None if row is None else _record_of(row, created=False)


async def _locked_draft(conn: AsyncConnection, session_id: str, case_id: str) -> Any:
    query = select(minutes_drafts).where(minutes_drafts.c.session_id == session_id,
                                         minutes_drafts.c.case_id == case_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound("Chưa có biên bản của vụ việc này trong phiên: vụ việc chưa được gọi.")
    return row


async def close_case(conn: AsyncConnection, caller: service.Caller, session_id: str, case_id: str, *,
                     keyring: Keyring, calendar: WorkCalendar, now: datetime) -> CaseRecord:
    """Write the approved minutes of ``case_id`` in ``session_id`` into the complaint database (see the module
    doc). Refusals: :class:`NotFound`, :class:`StaleVersion` (not approved, or changed since the approval),
    :class:`CaseIncomplete`, and the service's own errors; the caller's transaction then holds no write of it."""
    now = now.astimezone(UTC)
    draft = await _locked_draft(conn, session_id, case_id)
    existing = await load_record(conn, draft["id"])
    if existing is not None:
        return existing
    approval = (await conn.execute(select(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"]))
                ).mappings().first()
    if approval is None or approval["approved_sha256"] is None:
        raise StaleVersion("Biên bản chưa được chủ trì phê duyệt.", code="not_approved")
    content = MinutesContent.model_validate(draft["content"])
    digest = content_sha256(content)
    if digest != approval["approved_sha256"]:
        raise StaleVersion("Biên bản đã được sửa sau khi chủ trì phê duyệt; cần đọc lại, xác nhận và phê duyệt "
                           "lại bản mới.", code="changed_after_approval")
    issued_on = _aware(draft["opened_at"]).astimezone(VIETNAM_TZ).date()
    today = now.astimezone(VIETNAM_TZ).date()
    problems = await check_content(conn, content, issued_on=issued_on, today=today, calendar=calendar)
    if problems:
        raise CaseIncomplete(problems)
    assert content.outcome is not None and content.handling_direction is not None
    case = await get_case(conn, case_id)
    status = _STATUS_OF[content.outcome]
    if case.status is not status:
        await service.update_case(conn, keyring, caller, case_id, expected_version=case.version,
                                  changes={"status": status.value}, now=now)
    reception_id, _nth = await service.add_reception(
        conn, keyring, caller, case_id, received_on=issued_on,
        reception_type=ReceptionType.parse(draft["reception_type"]), form=ReceptionForm.parse(draft["reception_form"]),
        now=now, session_id=session_id, host=draft["host"], venue=draft["venue"], outcome=content.outcome,
        notes=f"Biên bản tiếp công dân, mã SHA-256: {digest}")
    decision_id = await service.record_handling_decision(conn, caller, case_id, direction=content.handling_direction,
                                                         decided_on=issued_on, now=now)
    directive_ids: list[str] = []
    for d in content.directives:
        due = _deadline(d.deadline, d.working_days, issued_on, calendar)
        directive_id, _due = await service.issue_directive(conn, caller, case_id, unit_id=d.unit,
                                                           content=d.content.strip(), issued_on=issued_on,
                                                           calendar=calendar, now=now, deadline=due)
        directive_ids.append(directive_id)
    segments = [s.segment for s in await segments_of_session(conn, session_id)
                if s.case_id == case_id or (s.segment.startswith("c") and s.segment.endswith(f"-{case_id}"))]
    referenced = await service.reference_segments(conn, caller, case_id, session_id, now=now, segments=segments)
    await conn.execute(minutes_case_records.insert().values(
        draft_id=draft["id"], case_id=case_id, session_id=session_id, content_sha256=digest,
        draft_version=draft["version"], reception_id=reception_id, decision_id=decision_id, directives=directive_ids,
        segments=segments, recorded_by=caller.label, recorded_at=now))
    await conn.execute(update(minutes_drafts).where(minutes_drafts.c.id == draft["id"]).values(state="closed"))
    await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"])
                       .values(problems=None, updated_at=now))
    await append_audit(conn, actor=caller.label, action="minutes.case_recorded", target_kind="case", target_id=case_id,
                       detail={"session": session_id, "draft": draft["id"], "sha256": digest,
                               "reception": reception_id, "directives": len(directive_ids),
                               "segments": len(segments), "referenced": len(referenced)}, at=now)
    await add_to_outbox(conn, CaseRecorded(case=case_id, session=session_id, event_id=uuid.uuid4().hex,
                                           occurred_at=now))
    record = await load_record(conn, draft["id"])
    assert record is not None
    return CaseRecord(**{**record.__dict__, "created": True})


def _problems_of(exc: ComplaintsError) -> list[dict[str, str]]:
    if isinstance(exc, CaseIncomplete):
        return exc.errors
    field = getattr(exc, "field", None) or ""
    label = FIELD_LABELS_VI.get(field.split(".")[0], "")
    return [{"field": field, "message": f"{label + ': ' if label else ''}{exc.message_vi}"}]


async def close_if_ready(conn: AsyncConnection, session_id: str, case_id: str, *, keyring: Keyring,
                         calendar: WorkCalendar, now: datetime) -> CaseRecord | None:
    """Close the case when its ``case.closed`` was seen and the chair approved; None when not both yet, or
    when refused — then the problems are kept on the approval row and nothing else is written."""
    draft_id = (await conn.execute(select(minutes_drafts.c.id).where(
        minutes_drafts.c.session_id == session_id, minutes_drafts.c.case_id == case_id))).scalar_one_or_none()
    if draft_id is None:
        return None
    approval = (await conn.execute(select(minutes_approvals).where(minutes_approvals.c.draft_id == draft_id))
                ).mappings().first()
    if approval is None or approval["case_closed_at"] is None or approval["approved_sha256"] is None:
        return await load_record(conn, draft_id)
    caller = writer_caller(approval["approved_name"] or approval["approved_by"])
    try:
        async with conn.begin_nested():
            return await close_case(conn, caller, session_id, case_id, keyring=keyring, calendar=calendar, now=now)
    except ComplaintsError as exc:
        await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft_id)
                           .values(problems=_problems_of(exc), updated_at=now.astimezone(UTC)))
        return None
