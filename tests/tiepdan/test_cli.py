from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evidence import Keyring
from signaling.tokens import TokenOptions, TokenVerifier

pytestmark = pytest.mark.system


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TIEPDAN_DATA_DIR": str(data_dir), **env}
    return subprocess.run([sys.executable, "-m", "tiepdan.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=60)


def test_help_explains_every_command_in_a_sentence(tmp_path: Path) -> None:
    out = _run(["--help"], tmp_path).stdout
    for command in ("serve", "token", "user", "keys"):
        assert command in out
    assert "Start the server" in out and "signed JWT" in out


def test_token_command_prints_a_jwt_the_server_accepts(tmp_path: Path) -> None:
    result = _run(["token", "--role", "venue", "--room", "s1", "--venue", "tien-du", "--ttl", "120"], tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    ring = Keyring.load(tmp_path / "keys" / "keyring.json")
    claims = TokenVerifier(ring, TokenOptions()).verify(token)
    assert (claims.room, claims.venue, [r.value for r in claims.roles]) == ("s1", "tien-du", ["venue"])
    assert claims.exp - claims.iat == 120


def test_token_command_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = _run(["token", "--role", "superuser"], tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_keys_rotate_keeps_old_public_keys(tmp_path: Path) -> None:
    first = _run(["token", "--role", "chair"], tmp_path).stdout.strip()
    result = _run(["keys", "rotate"], tmp_path)
    assert result.returncode == 0, result.stderr
    ring = Keyring.load(tmp_path / "keys" / "keyring.json")
    assert len(ring.signing_keys()) == 2
    assert TokenVerifier(ring, TokenOptions()).verify(first).sub == "service:chair"


def test_production_start_refuses_dev_keys(tmp_path: Path) -> None:
    _run(["token", "--role", "chair"], tmp_path)  # generates a development keyring
    result = _run(["token", "--role", "chair"], tmp_path, TIEPDAN_MODE="production")
    assert result.returncode != 0
    assert "generated for development" in result.stderr


def test_audit_verify_names_the_first_bad_row_after_a_raw_edit(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from complaints.audit import append_audit
    from tiepdan.db import make_engine, prepare_database

    db = tmp_path / "tiepdan.db"

    async def fill() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        await prepare_database(engine)
        async with engine.begin() as conn:
            for i in range(4):
                await append_audit(conn, actor=f"u{i}", action="replay.segment", target_kind="segment",
                                   target_id=f"s{i}")
        await engine.dispose()

    asyncio.run(fill())
    ok = _run(["audit", "verify"], tmp_path)
    assert ok.returncode == 0 and "toàn vẹn" in ok.stdout, ok.stderr
    raw = sqlite3.connect(db)
    raw.execute("DROP TRIGGER audit_events_no_update")
    raw.execute("UPDATE audit_events SET target_id = 's9' WHERE id = 2")
    raw.commit()
    raw.close()
    bad = _run(["audit", "verify"], tmp_path)
    assert bad.returncode == 1
    assert "id=2" in bad.stderr


def test_keys_rotate_reseals_every_sealed_identity(tmp_path: Path) -> None:
    import asyncio
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from complaints.tables import identity_vault, petitioners
    from complaints.vault import Identity, new_handle, read_identity, seal_identity
    from signaling.grants import ROLE_GRANTS, Role
    from tiepdan.db import make_engine, prepare_database

    _run(["token", "--role", "chair"], tmp_path)  # makes the development keyring
    ring_path = tmp_path / "keys" / "keyring.json"
    db = f"sqlite+aiosqlite:///{tmp_path / 'tiepdan.db'}"
    pid = str(uuid.uuid4())

    async def seal() -> str:
        engine = make_engine(db)
        await prepare_database(engine)
        ring = Keyring.load(ring_path)
        async with engine.begin() as conn:
            await conn.execute(insert(petitioners).values(id=pid, kind="individual", handle=new_handle(), sealed=True,
                                                          created_at=datetime.now(UTC)))
            await seal_identity(conn, ring, pid, Identity(full_name="Lê Văn Tố", id_number="001088000111"),
                                actor="desk", grants=ROLE_GRANTS[Role.RECEPTION])
        await engine.dispose()
        return ring.active_data.kid

    old_kid = asyncio.run(seal())
    result = _run(["keys", "rotate"], tmp_path)
    assert result.returncode == 0 and "1 hồ sơ" in result.stdout, result.stdout + result.stderr

    async def check() -> tuple[str, str]:
        engine = make_engine(db)
        ring = Keyring.load(ring_path)
        async with engine.begin() as conn:
            kid = (await conn.execute(select(identity_vault.c.kid))).scalar_one()
            name = (await read_identity(conn, ring, pid, actor="chair", grants=ROLE_GRANTS[Role.CHAIR])).full_name
        await engine.dispose()
        return kid, name

    kid, name = asyncio.run(check())
    assert kid != old_kid and name == "Lê Văn Tố"
