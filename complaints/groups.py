"""Group petitions (đoàn đông người) of a case: members and representatives, checked against
LTCD Điều 29 (:func:`complaints.delegation.check_delegation`) before anything is written. The members
go through the confidentiality rule (:mod:`complaints.confidentiality`) like any party of the case."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring

from .confidentiality import enforce_confidentiality
from .delegation import check_delegation
from .errors import NotFound
from .tables import cases, delegation_members, delegations, petitioners

__all__ = ["record_delegation"]


async def record_delegation(
    conn: AsyncConnection,
    case_id: str,
    *,
    member_ids: Sequence[str],
    representative_ids: Sequence[str],
    keyring: Keyring,
    actor: str,
    now: datetime,
    appointment_document: str | None = None,
) -> str:
    """Store a lawful delegation; raises :class:`InvalidDelegation` otherwise. Returns its id."""
    check_delegation(member_ids, representative_ids)
    if (await conn.execute(select(cases.c.id).where(cases.c.id == case_id))).first() is None:
        raise NotFound("Không tìm thấy vụ việc.")
    members = set(member_ids)
    known = {r[0] for r in await conn.execute(select(petitioners.c.id).where(petitioners.c.id.in_(members)))}
    if known != members:
        raise NotFound(f"Không tìm thấy {len(members - known)} thành viên của đoàn.")
    delegation_id = str(uuid.uuid4())
    await conn.execute(delegations.insert().values(id=delegation_id, case_id=case_id, headcount=len(members),
                                                   appointment_document=appointment_document))
    representatives = set(representative_ids)
    await conn.execute(delegation_members.insert(), [
        {"delegation_id": delegation_id, "petitioner_id": pid, "representative": pid in representatives}
        for pid in sorted(members)
    ])
    await enforce_confidentiality(conn, keyring, case_id, actor=actor, now=now, cause="delegation")
    return delegation_id
