"""Sealed identities of denouncers (LTC Điều 9, 47, 56; QĐ 774: level "Mật").

A denouncer's identity (name, ID number, birth date, address, phone) is stored only in
``identity_vault``, sealed with AES-GCM under the keyring's active data key, with the petitioner id as
authenticated context (a sealed value moved to another row does not open). The ``petitioners`` row
keeps a pseudonymous handle and an HMAC blind index of the ID number (exact-ID duplicate check
without decrypting). Reading needs the ``identity_read`` grant, writing ``identity_write``; every
view, change and refused attempt is an audit event. :func:`rekey_identities` re-seals every row
under the active key after ``tiepdan keys rotate``.

Sealing what is already on file (:func:`seal_in_place`, :func:`sealed_copy`) is the protection that
:mod:`complaints.confidentiality` applies to every party of a confidential case; it needs no grant
(it discloses nothing) and is audited as ``identity.seal``. A sealed copy keeps the id of the record
it was made from only inside its sealed identity (``Identity.linked_to``): nothing outside the vault
links a case's handle to the person's other records. :func:`handle_origin` reads that link for the
confidentiality rule alone (one handle per person and case); it is never shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import DecryptionFailed, Keyring
from signaling.grants import Grant

from .audit import append_audit
from .errors import IdentityAccessDenied, IdentityKeyError, NotFound
from .tables import identity_vault, petitioner_keys, petitioners

__all__ = ["Identity", "seal_identity", "read_identity", "rekey_identities", "blind_index", "new_handle",
           "seal_in_place", "sealed_copy", "handle_origin"]

_HANDLE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class Identity:
    full_name: str
    id_number: str | None = None
    id_kind: str | None = None
    birth_date: str | None = None          # ISO date
    address_detail: str | None = None
    commune_code: str | None = None
    phone: str | None = None
    organisation_name: str | None = None
    old_province_code: str | None = None
    old_district_code: str | None = None
    old_commune_code: str | None = None
    linked_to: str | None = None           # a sealed copy: the petitioner record it was made from


def new_handle() -> str:
    """A pseudonymous handle shown instead of a sealed identity, e.g. ``NTC-7KQ2-M9XD``."""
    body = "".join(secrets.choice(_HANDLE_ALPHABET) for _ in range(8))
    return f"NTC-{body[:4]}-{body[4:]}"


def _normalise_id(id_number: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", id_number).upper() if ch.isalnum())


def blind_index(keyring: Keyring, id_number: str) -> str:
    """HMAC-SHA256 of the normalised ID number under the active data key (hex)."""
    key = keyring.active_data.secret
    return hmac.new(key, b"id-index:" + _normalise_id(id_number).encode("ascii", "ignore"), hashlib.sha256).hexdigest()


def _context(petitioner_id: str) -> bytes:
    return f"identity:{petitioner_id}".encode()


async def seal_identity(
    conn: AsyncConnection,
    keyring: Keyring,
    petitioner_id: str,
    identity: Identity,
    *,
    actor: str,
    grants: Collection[Grant],
    now: datetime | None = None,
) -> None:
    """Store (or replace) the sealed identity of a petitioner whose row is marked ``sealed``."""
    if Grant.IDENTITY_WRITE not in grants:
        await append_audit(conn, actor=actor, action="identity.write_refused", target_kind="petitioner",
                           target_id=petitioner_id, at=now)
        raise IdentityAccessDenied("Bạn không có quyền ghi thông tin người tố cáo.")
    row = (await conn.execute(select(petitioners.c.sealed).where(petitioners.c.id == petitioner_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy công dân.")
    stamp = now or datetime.now(UTC)
    action = await _store(conn, keyring, petitioner_id, identity, stamp)
    await append_audit(conn, actor=actor, action=action, target_kind="petitioner", target_id=petitioner_id,
                       at=stamp)


async def _store(conn: AsyncConnection, keyring: Keyring, petitioner_id: str, identity: Identity,
                 stamp: datetime) -> str:
    """Write the vault row and the blind index; returns the audit action (created or changed)."""
    sealed = keyring.seal(json.dumps(asdict(identity), ensure_ascii=False).encode("utf-8"),
                          context=_context(petitioner_id))
    values = {"kid": keyring.active_data.kid, "sealed": sealed, "updated_at": stamp}
    exists = (await conn.execute(
        select(identity_vault.c.petitioner_id).where(identity_vault.c.petitioner_id == petitioner_id)
    )).first()
    if exists:
        await conn.execute(update(identity_vault).where(identity_vault.c.petitioner_id == petitioner_id)
                           .values(**values))
        action = "identity.change"
    else:
        await conn.execute(identity_vault.insert().values(petitioner_id=petitioner_id, **values))
        action = "identity.create"
    index = blind_index(keyring, identity.id_number) if identity.id_number else None
    await conn.execute(update(petitioners).where(petitioners.c.id == petitioner_id)
                       .values(sealed=True, id_blind_index=index))
    return action


# The clear columns a sealed row never keeps (sex, province and kind stay, as for a denouncer
# registered sealed: coarse facts the reports count).
_CLEARED = ("full_name", "name_norm", "birth_date", "id_kind", "id_number", "phone", "address_detail",
            "address_norm", "commune_code", "old_province_code", "old_district_code", "old_commune_code",
            "organisation_name")


async def _petitioner(conn: AsyncConnection, petitioner_id: str) -> Any:
    row = (await conn.execute(select(petitioners).where(petitioners.c.id == petitioner_id))).mappings().first()
    if row is None:
        raise NotFound("Không tìm thấy công dân.")
    return row


async def _identity_on_file(conn: AsyncConnection, keyring: Keyring, row: Any) -> Identity:
    """The identity of a petitioner row: from the clear columns of an open row, from the vault of a
    sealed one (opened without a grant: the caller only moves it, nothing is shown)."""
    if row["sealed"]:
        return await _open(conn, keyring, row["id"])
    return Identity(
        full_name=row["full_name"] or "", id_number=row["id_number"], id_kind=row["id_kind"],
        birth_date=row["birth_date"].isoformat() if row["birth_date"] else None,
        address_detail=row["address_detail"], commune_code=row["commune_code"], phone=row["phone"],
        organisation_name=row["organisation_name"], old_province_code=row["old_province_code"],
        old_district_code=row["old_district_code"], old_commune_code=row["old_commune_code"],
    )


async def _open(conn: AsyncConnection, keyring: Keyring, petitioner_id: str) -> Identity:
    row = (await conn.execute(
        select(identity_vault.c.sealed).where(identity_vault.c.petitioner_id == petitioner_id)
    )).first()
    if row is None:
        raise NotFound("Không có thông tin danh tính được niêm phong cho công dân này.")
    try:
        clear = keyring.open(row.sealed, context=_context(petitioner_id))
    except DecryptionFailed as exc:
        raise IdentityKeyError(
            "Không mở được thông tin danh tính: khóa không đúng hoặc dữ liệu đã bị thay đổi."
        ) from exc
    return Identity(**json.loads(clear))


async def seal_in_place(
    conn: AsyncConnection, keyring: Keyring, petitioner_id: str, *, actor: str, case_id: str, cause: str,
    now: datetime,
) -> None:
    """Seal an open petitioner where it stands: its identity moves to the vault, its clear columns
    and duplicate keys go, its id and handle stay. For a record that only the case being sealed uses.
    No grant needed (protection, not disclosure); audited as ``identity.seal``."""
    row = await _petitioner(conn, petitioner_id)
    if row["sealed"]:
        return
    identity = await _identity_on_file(conn, keyring, row)
    await conn.execute(update(petitioners).where(petitioners.c.id == petitioner_id)
                       .values(sealed=True, **dict.fromkeys(_CLEARED)))
    await conn.execute(delete(petitioner_keys).where(petitioner_keys.c.petitioner_id == petitioner_id))
    await _store(conn, keyring, petitioner_id, identity, now)
    await append_audit(conn, actor=actor, action="identity.seal", target_kind="petitioner", target_id=petitioner_id,
                       detail={"case_id": case_id, "cause": cause, "how": "in_place"}, at=now)


async def sealed_copy(
    conn: AsyncConnection, keyring: Keyring, petitioner_id: str, *, actor: str, case_id: str, cause: str,
    now: datetime,
) -> str:
    """A new sealed petitioner (new id, new handle) holding the identity of ``petitioner_id`` (open or
    sealed), for one case; returns its id. The source id is kept only inside the sealed identity
    (``linked_to``: the first record of the chain). No grant needed; audited as ``identity.seal``
    on the new row, without the source."""
    row = await _petitioner(conn, petitioner_id)
    identity = await _identity_on_file(conn, keyring, row)
    origin = identity.linked_to or petitioner_id
    pid = str(uuid.uuid4())
    await conn.execute(petitioners.insert().values(
        id=pid, kind=row["kind"], handle=new_handle(), sealed=True, sex=row["sex"],
        province_code=row["province_code"], created_at=now,
    ))
    await _store(conn, keyring, pid, replace(identity, linked_to=origin), now)
    await append_audit(conn, actor=actor, action="identity.seal", target_kind="petitioner", target_id=pid,
                       detail={"case_id": case_id, "cause": cause, "how": "copy"}, at=now)
    return pid


async def handle_origin(conn: AsyncConnection, keyring: Keyring, petitioner_id: str) -> str:
    """The record a petitioner stands for: its own id, or for a sealed copy the record it was made
    from. For the confidentiality rule only (one handle per person and case): never shown."""
    row = (await conn.execute(
        select(petitioners.c.sealed, identity_vault.c.petitioner_id.label("in_vault"))
        .select_from(petitioners.outerjoin(identity_vault, identity_vault.c.petitioner_id == petitioners.c.id))
        .where(petitioners.c.id == petitioner_id))).first()
    if row is None or not row.sealed or row.in_vault is None:
        return petitioner_id
    return (await _open(conn, keyring, petitioner_id)).linked_to or petitioner_id


async def read_identity(
    conn: AsyncConnection,
    keyring: Keyring,
    petitioner_id: str,
    *,
    actor: str,
    grants: Collection[Grant],
    purpose: str = "",
    now: datetime | None = None,
) -> Identity:
    """Open a sealed identity for a holder of ``identity_read``; the view is audited either way."""
    if Grant.IDENTITY_READ not in grants:
        await append_audit(conn, actor=actor, action="identity.view_refused", target_kind="petitioner",
                           target_id=petitioner_id, at=now)
        raise IdentityAccessDenied("Bạn không có quyền xem thông tin người tố cáo.")
    identity = await _open(conn, keyring, petitioner_id)
    await append_audit(conn, actor=actor, action="identity.view", target_kind="petitioner",
                       target_id=petitioner_id, detail={"purpose": purpose[:200]} if purpose else {}, at=now)
    return identity


async def rekey_identities(conn: AsyncConnection, keyring: Keyring, *, actor: str = "system:keys-rotate") -> int:
    """Re-seal every identity not sealed under the active data key, and refresh blind indexes.

    Returns how many rows were re-sealed. Runs in the caller's transaction: all or nothing.
    """
    active = keyring.active_data.kid
    rows = (await conn.execute(select(identity_vault))).mappings().all()
    count = 0
    for row in rows:
        pid = row["petitioner_id"]
        try:
            clear = keyring.open(row["sealed"], context=_context(pid))
        except DecryptionFailed as exc:
            raise IdentityKeyError(
                "Không mở được một bản ghi danh tính khi đổi khóa: khóa cũ không có trong bộ khóa."
            ) from exc
        identity = Identity(**json.loads(clear))
        index = blind_index(keyring, identity.id_number) if identity.id_number else None
        await conn.execute(update(petitioners).where(petitioners.c.id == pid).values(id_blind_index=index))
        if row["kid"] == active:
            continue
        await conn.execute(
            update(identity_vault).where(identity_vault.c.petitioner_id == pid)
            .values(kid=active, sealed=keyring.seal(clear, context=_context(pid)), updated_at=datetime.now(UTC))
        )
        count += 1
    if count:
        await append_audit(conn, actor=actor, action="identity.rekey", target_kind="identity_vault",
                           target_id="*", detail={"count": count, "kid": active})
    return count
