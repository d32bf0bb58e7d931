"""Sealed identities of denouncers (LTC Điều 9, 47, 56; QĐ 774: level "Mật").

A denouncer's identity (name, ID number, birth date, address, phone) is stored only in
``identity_vault``, sealed with AES-GCM under the keyring's active data key, with the petitioner id as
authenticated context (a sealed value moved to another row does not open). The ``petitioners`` row
keeps a pseudonymous handle and an HMAC blind index of the ID number (exact-ID duplicate check
without decrypting). Reading needs the ``identity_read`` grant, writing ``identity_write``; every
view, change and refused attempt is an audit event. :func:`rekey_identities` re-seals every row
under the active key after ``tiepdan keys rotate``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import DecryptionFailed, Keyring
from signaling.grants import Grant

from .audit import append_audit
from .errors import IdentityAccessDenied, IdentityKeyError, NotFound
from .tables import identity_vault, petitioners

__all__ = ["Identity", "seal_identity", "read_identity", "rekey_identities", "blind_index", "new_handle"]

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
    await append_audit(conn, actor=actor, action=action, target_kind="petitioner", target_id=petitioner_id,
                       at=stamp)


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
    await append_audit(conn, actor=actor, action="identity.view", target_kind="petitioner",
                       target_id=petitioner_id, detail={"purpose": purpose[:200]} if purpose else {}, at=now)
    return Identity(**json.loads(clear))


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
