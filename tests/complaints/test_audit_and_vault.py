"""The sealed identity vault and the append-only, hash-chained audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import subprocess
import unicodedata
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.audit import append_audit, verify_audit_log
from complaints.errors import IdentityAccessDenied, IdentityKeyError
from complaints.tables import audit_events, identity_vault, metadata, petitioners
from complaints.vault import Identity, blind_index, new_handle, read_identity, rekey_identities, seal_identity
from evidence import Keyring
from signaling.grants import ROLE_GRANTS, Role
from tiepdan.db import make_engine

from ..conftest import pg_schema_of

pytestmark = pytest.mark.integration

NAME = "Đặng Thị Hồng Nhung"
ID_NUMBER = "001188012345"
CHAIR = ROLE_GRANTS[Role.CHAIR]
SECRETARY = ROLE_GRANTS[Role.SECRETARY]
RECEPTION = ROLE_GRANTS[Role.RECEPTION]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def _sealed_petitioner(engine: AsyncEngine, ring: Keyring) -> str:
    pid = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(insert(petitioners).values(
            id=pid, kind="individual", handle=new_handle(), sealed=True, created_at=datetime.now(UTC)))
        await seal_identity(conn, ring, pid, Identity(full_name=NAME, id_number=ID_NUMBER,
                                                      address_detail="Thôn Đông, xã Tiên Du"),
                            actor="u-desk", grants=RECEPTION)
    return pid


async def test_identity_opens_only_with_the_grant_and_every_attempt_is_audited(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    pid = await _sealed_petitioner(engine, ring)
    async with engine.begin() as conn:
        ident = await read_identity(conn, ring, pid, actor="u-chair", grants=CHAIR, purpose="phiên 12/2026")
    assert ident.full_name == NAME and ident.id_number == ID_NUMBER
    with pytest.raises(IdentityAccessDenied):
        async with engine.begin() as conn:
            await read_identity(conn, ring, pid, actor="u-secretary", grants=SECRETARY)
    # A caller that catches the refusal commits its audit row.
    async with engine.begin() as conn:
        try:
            await read_identity(conn, ring, pid, actor="u-secretary", grants=SECRETARY)
        except IdentityAccessDenied:
            pass
    async with engine.connect() as conn:
        actions = [r.action for r in await conn.execute(select(audit_events.c.action).order_by(audit_events.c.id))]
        assert await verify_audit_log(conn) is None
    assert actions == ["identity.create", "identity.view", "identity.view_refused"]


async def test_no_identity_in_clear_in_the_database(engine: AsyncEngine, database_url: str) -> None:
    ring = Keyring.generate(dev=True)
    pid = await _sealed_petitioner(engine, ring)
    async with engine.connect() as conn:
        row = (await conn.execute(select(petitioners).where(petitioners.c.id == pid))).mappings().one()
    assert row["full_name"] is None and row["id_number"] is None
    assert row["id_blind_index"] == blind_index(ring, ID_NUMBER)
    if database_url.startswith("sqlite"):
        await engine.dispose()
        path = database_url.split("///", 1)[1]
        raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())
    else:
        dbname = database_url.rsplit("/", 1)[1]
        raw = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-n", pg_schema_of(database_url),
                              dbname], capture_output=True, check=True, timeout=60).stdout
    for needle in _forms(NAME) + _forms(ID_NUMBER) + _forms("Tiên Du"):
        assert needle not in raw, needle


def _forms(text_value: str) -> list[bytes]:
    forms = []
    for norm in ("NFC", "NFD"):
        encoded = unicodedata.normalize(norm, text_value).encode("utf-8")
        forms += [encoded, base64.b64encode(encoded), base64.urlsafe_b64encode(encoded).rstrip(b"=")]
    forms.append(text_value.encode("utf-16-le"))
    return forms


async def test_rotation_reseals_identities_and_the_old_keyring_alone_cannot_open_them(engine: AsyncEngine) -> None:
    ring = Keyring.generate(dev=True)
    pid = await _sealed_petitioner(engine, ring)
    ring.rotate()
    async with engine.begin() as conn:
        assert await rekey_identities(conn, ring) == 1
    async with engine.connect() as conn:
        kid = (await conn.execute(select(identity_vault.c.kid))).scalar_one()
        index = (await conn.execute(select(petitioners.c.id_blind_index))).scalar_one()
    assert kid == ring.active_data.kid and index == blind_index(ring, ID_NUMBER)
    async with engine.begin() as conn:
        assert (await read_identity(conn, ring, pid, actor="u-chair", grants=CHAIR)).full_name == NAME
        assert await rekey_identities(conn, ring) == 0
    with pytest.raises(IdentityKeyError, match="khóa không đúng"):
        async with engine.begin() as conn:
            await read_identity(conn, Keyring.generate(dev=True), pid, actor="u-chair", grants=CHAIR)


async def test_audit_log_refuses_update_and_delete(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await append_audit(conn, actor="u1", action="replay.segment", target_kind="segment", target_id="s1")
    for stmt in ("UPDATE audit_events SET actor = 'someone'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(stmt))
    async with engine.connect() as conn:
        assert (await conn.execute(select(audit_events.c.actor))).scalar_one() == "u1"


async def test_verify_names_the_first_row_edited_behind_the_triggers_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for i in range(5):
            await append_audit(conn, actor=f"u{i}", action="identity.view", target_kind="petitioner",
                               target_id=f"p{i}")
    async with engine.begin() as conn:
        dialect = conn.dialect.name
        # A superuser's raw edit: drop the trigger, change row 3, put the trigger back.
        if dialect == "sqlite":
            await conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"))
        await conn.execute(text("UPDATE audit_events SET actor = 'u-forged' WHERE id = 3"))
    async with engine.connect() as conn:
        bad = await verify_audit_log(conn)
    assert bad is not None and bad.record_id == 3 and "altered" in bad.reason


async def test_concurrent_appends_never_fork_the_chain(engine: AsyncEngine) -> None:
    import asyncio

    async def one(i: int) -> None:
        async with engine.begin() as conn:
            await append_audit(conn, actor=f"u{i}", action="case.view", target_kind="case", target_id=str(i))

    await asyncio.gather(*(one(i) for i in range(20)))
    async with engine.connect() as conn:
        assert await verify_audit_log(conn) is None
        assert len((await conn.execute(select(audit_events.c.id))).all()) == 20
