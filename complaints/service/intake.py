"""Intake and what a case file gathers: petitions with their petitioners, reception entries, groups.

* :func:`record_intake` (``INTAKE_GRANTS``) — :func:`complaints.intake.record_intake`: a new case is
  announced with ``CaseCreated`` (its first petition and reception included); a petition attached to
  an existing case with ``PetitionAdded`` (and ``ReceptionRecorded`` for its reception entry), then
  ``CaseUpdated`` naming ``confidential`` when it made the case confidential. A sealed identity typed
  in without ``identity_write`` is refused (:class:`~complaints.errors.IdentityAccessDenied`) after
  its audit row: the caller may commit to keep that row, nothing else was written.
* :func:`register_petitioner` (``INTAKE_GRANTS``) — a petitioner on its own; ``PetitionerRegistered``.
* :func:`add_petition` (``INTAKE_GRANTS``) — ``PetitionAdded`` (and ``CaseUpdated`` when a
  denunciation made the case confidential).
* :func:`add_reception` (``RECEPTION_GRANTS``: intake staff, the minutes' secretary) — "lần tiếp thứ
  n", with the caller as the officer; ``ReceptionRecorded``.
* :func:`record_delegation` (``INTAKE_GRANTS``) — a group and its representatives (LTCD Điều 29);
  ``DelegationRecorded``.

Each writes one audit row on the case (ids only) besides the rows the domain writes for sealed
identities, and its events, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.events import (
    CaseCreated,
    DelegationRecorded,
    PetitionAdded,
    PetitionerRegistered,
    ReceptionRecorded,
)

from .. import groups as _groups
from .. import intake as _intake
from .. import petitioners as _petitioners
from .. import petitions as _petitions
from ..cases import add_reception_entry, get_case
from ..enums import PetitionerRole, ReceptionForm, ReceptionOutcome, ReceptionType
from ..errors import InvalidInput
from ..tables import reception_entries
from ..workdays import local_date
from ._record import announce, announce_confidential, audit, not_after
from .caller import INTAKE_GRANTS, RECEPTION_GRANTS, Caller, require

__all__ = ["record_intake", "register_petitioner", "add_petition", "add_reception", "record_delegation"]


async def _announce_reception(conn: AsyncConnection, caller: Caller, case_id: str, nth: int, *,
                              now: datetime) -> None:
    row = (await conn.execute(select(reception_entries).where(reception_entries.c.case_id == case_id,
                                                              reception_entries.c.nth == nth))).mappings().one()
    await announce(conn, ReceptionRecorded(
        case=case_id, by=caller.label, reception=row["id"], nth=nth, received_on=row["received_on"],
        form=row["form"], reception_type=row["reception_type"], session=row["session_id"], occurred_at=now))


async def record_intake(conn: AsyncConnection, keyring: Keyring, caller: Caller, data: _intake.Intake, *,
                        now: datetime) -> _intake.IntakeResult:
    """Record a petition with its petitioner, respondent and reception entry, as a new case or attached
    to ``data.case_id`` (see the module docstring for what is announced)."""
    require(caller, INTAKE_GRANTS)
    result = await _intake.record_intake(conn, keyring, data, actor=caller.label, grants=caller.grants, now=now)
    await audit(conn, caller, "case.intake", result.case_id, now=now,
                detail={"petition": result.petition_id, "new_case": result.new_case})
    if result.new_case:
        case = await get_case(conn, result.case_id)
        await announce(conn, CaseCreated(case=case.id, by=caller.label, kind=case.kind.value, status=case.status.value,
                                         confidential=case.confidential, venue=case.venue, occurred_at=now))
        return result
    await announce(conn, PetitionAdded(case=result.case_id, by=caller.label, petition=result.petition_id,
                                       kind=data.petition.kind.value, source=data.petition.source.value,
                                       occurred_at=now))
    if result.reception_nth is not None:
        await _announce_reception(conn, caller, result.case_id, result.reception_nth, now=now)
    if result.became_confidential:
        await announce_confidential(conn, caller, result.case_id, was_confidential=False, now=now)
    return result


async def register_petitioner(conn: AsyncConnection, keyring: Keyring, caller: Caller,
                              data: _petitioners.NewPetitioner, *, now: datetime) -> str:
    """Register a petitioner (a sealed one needs ``identity_write``: the refusal is audited); returns its id."""
    require(caller, INTAKE_GRANTS)
    petitioner_id = await _petitioners.register_petitioner(conn, keyring, data, actor=caller.label,
                                                           grants=caller.grants, now=now)
    await audit(conn, caller, "petitioner.register", petitioner_id, target_kind="petitioner", now=now,
                detail={"sealed": data.sealed})
    await announce(conn, PetitionerRegistered(petitioner=petitioner_id, by=caller.label, sealed=data.sealed,
                                              occurred_at=now))
    return petitioner_id


async def add_petition(conn: AsyncConnection, keyring: Keyring, caller: Caller, case_id: str,
                       petition: _petitions.NewPetition, parties: Sequence[tuple[str, PetitionerRole]], *,
                       now: datetime) -> str:
    """Add a petition with its parties to a case; returns the petition id."""
    require(caller, INTAKE_GRANTS)
    not_after(petition.received_on, local_date(now), "petition.received_on", "Ngày nhận đơn")
    not_after(petition.written_on, local_date(now), "petition.written_on", "Ngày viết đơn")
    if petition.written_on and petition.written_on > petition.received_on:
        raise InvalidInput("Ngày viết đơn không được sau ngày nhận đơn.", field="petition.written_on")
    before = await get_case(conn, case_id)
    petition_id = await _petitions.add_petition(conn, case_id, petition, parties, now=now, keyring=keyring,
                                                actor=caller.label)
    await audit(conn, caller, "case.petition", case_id, now=now, detail={"petition": petition_id})
    await announce(conn, PetitionAdded(case=case_id, by=caller.label, petition=petition_id,
                                       kind=petition.kind.value, source=petition.source.value, occurred_at=now))
    await announce_confidential(conn, caller, case_id, was_confidential=before.confidential, now=now)
    return petition_id


async def add_reception(
    conn: AsyncConnection, keyring: Keyring, caller: Caller, case_id: str, *, received_on: date,
    reception_type: ReceptionType, form: ReceptionForm, now: datetime, with_petition: bool = False,
    petitioner_id: str | None = None, delegation_id: str | None = None, session_id: str | None = None,
    host: str | None = None, venue: str | None = None, outcome: ReceptionOutcome | None = None, notes: str = "",
) -> tuple[str, int]:
    """Record a reception entry (lượt tiếp) with the caller as its officer; returns (id, n) where n is
    "lần tiếp thứ n". Its petitioner goes through the confidentiality rule."""
    require(caller, RECEPTION_GRANTS)
    not_after(received_on, local_date(now), "received_on", "Ngày tiếp")
    before = await get_case(conn, case_id)
    entry_id, nth = await add_reception_entry(
        conn, case_id, received_on=received_on, reception_type=reception_type, form=form,
        with_petition=with_petition, now=now, keyring=keyring, actor=caller.label, petitioner_id=petitioner_id,
        delegation_id=delegation_id, session_id=session_id, host=host, venue=venue, officer=caller.name,
        outcome=outcome, notes=notes)
    await audit(conn, caller, "case.reception", case_id, now=now, detail={"reception": entry_id, "nth": nth})
    await announce(conn, ReceptionRecorded(
        case=case_id, by=caller.label, reception=entry_id, nth=nth, received_on=received_on, form=form.value,
        reception_type=reception_type.value, session=session_id, occurred_at=now))
    await announce_confidential(conn, caller, case_id, was_confidential=before.confidential, now=now)
    return entry_id, nth


async def record_delegation(conn: AsyncConnection, keyring: Keyring, caller: Caller, case_id: str, *,
                            member_ids: Sequence[str], representative_ids: Sequence[str], now: datetime,
                            appointment_document: str | None = None) -> str:
    """Record a lawful group (raises :class:`~complaints.errors.InvalidDelegation` otherwise); returns its id."""
    require(caller, INTAKE_GRANTS)
    before = await get_case(conn, case_id)
    delegation_id = await _groups.record_delegation(
        conn, case_id, member_ids=member_ids, representative_ids=representative_ids, keyring=keyring,
        actor=caller.label, now=now, appointment_document=appointment_document)
    headcount = len(set(member_ids))
    await audit(conn, caller, "case.delegation", case_id, now=now,
                detail={"delegation": delegation_id, "headcount": headcount})
    await announce(conn, DelegationRecorded(case=case_id, by=caller.label, delegation=delegation_id,
                                            headcount=headcount, occurred_at=now))
    await announce_confidential(conn, caller, case_id, was_confidential=before.confidential, now=now)
    return delegation_id
