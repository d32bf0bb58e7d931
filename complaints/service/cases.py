"""Cases: who may see one, reading a case file (audited), editing it, its handling decisions, and
applying the confidentiality rule to cases written before it (``tiepdan cases seal``).

* :func:`ensure_case_visible` — the read rule: a caller without a case-viewing grant is refused; a
  unit's officer sees only the cases directed to the unit (any other is "not found", so a unit learns
  nothing of cases it does not handle).
* :func:`record_case_view` — the audit row of a read of a case file (``case.view``).
* :func:`update_case` — an optimistic-locked edit (``CASE_EDIT_GRANTS``); its audit row ``case.update``
  (the fields sent, the version they were sent for) is written before the edit, so the sealing the
  edit may cause (``case.confidential``) follows it, in the order things happen; a real change is
  announced with ``CaseUpdated``, an edit that changes no value announces nothing.
* :func:`record_handling_decision` — ``DECISION_GRANTS``; ``HandlingDecisionRecorded``.
* :func:`seal_pending` — the backfill of :func:`complaints.confidentiality.seal_pending_cases`; a case
  that becomes confidential is announced with ``CaseUpdated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.events import CaseUpdated, HandlingDecisionRecorded

from .. import cases as _cases
from .. import handling as _handling
from ..confidentiality import Sealing, seal_pending_cases
from ..enums import HandlingDirection
from ..errors import NotAuthorized, NotFound
from ..tables import cases, directives
from ._record import announce, announce_confidential, audit
from .caller import CASE_EDIT_GRANTS, DECISION_GRANTS, Caller, require

__all__ = ["ensure_case_visible", "record_case_view", "update_case", "record_handling_decision", "seal_pending"]


async def ensure_case_visible(conn: AsyncConnection, caller: Caller, case_id: str) -> None:
    """Refuse (:class:`NotAuthorized`) a caller without a case-viewing grant; a unit's officer gets
    :class:`NotFound` for a case not directed to the unit."""
    if not caller.may_view_cases:
        raise NotAuthorized("Bạn không có quyền xem vụ việc.")
    scope = caller.unit_scope
    if scope is None:
        return
    found = (await conn.execute(select(directives.c.id).where(directives.c.case_id == case_id,
                                                               directives.c.unit_id == scope).limit(1))).first()
    if found is None:
        raise NotFound("Không tìm thấy vụ việc.")


async def record_case_view(conn: AsyncConnection, caller: Caller, case_id: str, *, via: str, now: datetime) -> None:
    """The audit row of a read of a case file (who, which case, when, through what)."""
    await audit(conn, caller, "case.view", case_id, detail={"via": via}, now=now)


async def update_case(conn: AsyncConnection, keyring: Keyring, caller: Caller, case_id: str, *, expected_version: int,
                      changes: Mapping[str, Any], now: datetime) -> _cases.CaseChange:
    """:func:`complaints.cases.update_case` for a caller holding ``CASE_EDIT_GRANTS`` (a case that
    becomes confidential has its parties sealed); a real change is announced with ``CaseUpdated``."""
    require(caller, CASE_EDIT_GRANTS)
    # The case row first, then the audit log's head, as every other write takes them (the reverse order
    # could deadlock two transactions on PostgreSQL); a stale or unknown case is refused by the domain.
    claimed = await conn.execute(update(cases).where(cases.c.id == case_id, cases.c.version == expected_version)
                                 .values(version=cases.c.version))
    await ensure_case_visible(conn, caller, case_id)
    if claimed.rowcount == 1:
        await audit(conn, caller, "case.update", case_id, now=now,
                    detail={"fields": sorted(changes), "version": expected_version})
    change = await _cases.update_case(conn, case_id, expected_version=expected_version, changes=changes, now=now,
                                      keyring=keyring, actor=caller.label)
    if change.changed:
        after = change.after
        await announce(conn, CaseUpdated(
            case=after.id, by=caller.label, case_version=after.version, changed=change.changed,
            kind=after.kind.value, status=after.status.value, subject_area=after.subject_area,
            previous_status=change.before.status.value if "status" in change.changed else None,
            confidential=after.confidential, occurred_at=now))
    return change


async def record_handling_decision(
    conn: AsyncConnection, caller: Caller, case_id: str, *, direction: HandlingDirection, decided_on: date,
    now: datetime, petition_id: str | None = None, forwarded_to: str | None = None, notes: str = "",
) -> str:
    """Record a handling decision (``DECISION_GRANTS``; decided by the caller's name) and announce it
    (``HandlingDecisionRecorded``); returns its id."""
    require(caller, DECISION_GRANTS)
    decision_id = await _handling.record_handling_decision(
        conn, case_id, direction=direction, decided_on=decided_on, decided_by=caller.name, now=now,
        petition_id=petition_id, forwarded_to=forwarded_to, notes=notes)
    await audit(conn, caller, "case.handling_decision", case_id, now=now,
                detail={"decision": decision_id, "direction": direction.value})
    await announce(conn, HandlingDecisionRecorded(
        case=case_id, by=caller.label, decision=decision_id, direction=direction.value, decided_on=decided_on,
        petition=petition_id, occurred_at=now))
    return decision_id


async def seal_pending(conn: AsyncConnection, keyring: Keyring, caller: Caller, *, now: datetime, after: str = "",
                       limit: int = 100) -> list[tuple[str, Sealing]]:
    """Apply the confidentiality rule to the next ``limit`` cases written before it (after the id
    ``after``); each sealing is audited by the rule, a case that became confidential is announced.
    Needs nothing but a system caller: sealing protects, it discloses nothing."""
    if not caller.label.startswith("system:"):
        raise NotAuthorized("Chỉ chương trình quản trị (tiepdan cases seal) áp dụng lại quy tắc bảo mật.")
    batch = await seal_pending_cases(conn, keyring, actor=caller.label, now=now, after=after, limit=limit)
    for case_id, sealing in batch:
        await announce_confidential(conn, caller, case_id, was_confidential=not sealing.became_confidential,
                                    now=now)
    return batch
