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


def test_token_command_mints_for_the_live_room_unless_told_the_rest_api(tmp_path: Path) -> None:
    from signaling.errors import TokenError

    assert "--audience" in _run(["token", "--help"], tmp_path).stdout
    live = _run(["token", "--role", "chair", "--room", "s1"], tmp_path).stdout.strip()
    api = _run(["token", "--role", "follow_up", "--audience", "api"], tmp_path).stdout.strip()
    verifier = TokenVerifier(Keyring.load(tmp_path / "keys" / "keyring.json"), TokenOptions())
    assert verifier.verify(live).room == "s1" and verifier.verify(api, audience="api").sub == "service:follow_up"
    for token, audience in ((live, "api"), (api, "ws")):
        with pytest.raises(TokenError) as refused:
            verifier.verify(token, audience=audience)  # type: ignore[arg-type]
        assert refused.value.code == "token_audience"


def test_token_help_describes_every_option_and_a_chair_token_without_a_venue_comes_with_a_warning(
    tmp_path: Path,
) -> None:
    import argparse

    from tiepdan.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.option_strings[-1]: a.help for a in commands.choices["token"]._actions if a.option_strings}
    assert {"--audience", "--role", "--room", "--venue", "--unit", "--sub", "--name", "--ttl"} <= set(options)
    assert [name for name, text in options.items() if not text] == []
    assert "main venue" in " ".join(_run(["token", "--help"], tmp_path).stdout.split())

    bare = _run(["token", "--role", "chair", "--room", "s1", "--name", "Chủ trì"], tmp_path)
    placed = _run(["token", "--role", "chair", "--room", "s1", "--venue", "tinh"], tmp_path)
    assert bare.returncode == placed.returncode == 0
    assert "--venue" in bare.stderr and "--venue" not in placed.stderr
    claims = TokenVerifier(Keyring.load(tmp_path / "keys" / "keyring.json"), TokenOptions()).verify(bare.stdout.strip())
    assert (claims.name, claims.venue) == ("Chủ trì", None)


def test_token_command_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = _run(["token", "--role", "superuser"], tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def _make_database(data_dir: Path) -> None:
    """The server's database in ``data_dir``, as ``tiepdan serve`` leaves it on first start."""
    import asyncio

    from tiepdan.db import make_engine, prepare_database

    async def make() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'tiepdan.db'}")
        await prepare_database(engine)
        await engine.dispose()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(make())


def test_keys_rotate_keeps_old_public_keys(tmp_path: Path) -> None:
    _make_database(tmp_path)
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


REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_in(cwd: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``tiepdan <args>`` from ``cwd`` with none of the developer's TIEPDAN_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIEPDAN_")}
    return subprocess.run([sys.executable, "-m", "tiepdan.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**clean, "PYTHONPATH": str(REPO_ROOT), **env}, timeout=60)


def test_commands_run_where_there_is_no_database_say_so_and_create_nothing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "thu-muc-khac"
    elsewhere.mkdir()
    looked_for = str(elsewhere / "data" / "tiepdan.db")
    for args in (["session", "open", "phien-thu", "--venue", "tinh=Trụ sở tỉnh"], ["session", "close", "phien-thu"],
                 ["user", "disable", "ai-do"], ["audit", "verify"], ["keys", "rotate"]):
        result = _run_in(elsewhere, args)
        assert result.returncode == 1, (args, result.stderr)
        assert "không tìm thấy cơ sở dữ liệu của máy chủ tại" in result.stderr and looked_for in result.stderr, args
    assert list(elsewhere.iterdir()) == []  # no database, no data directory, no keyring


def test_a_missing_postgresql_database_is_named_without_its_password(tmp_path: Path, pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0].replace("://postgres@", "://postgres:bi-mat@") + "/tiepdan_khong_co_csdl_nay"
    result = _run_in(tmp_path, ["audit", "verify"], TIEPDAN_DATABASE_URL=url)
    assert result.returncode == 1
    assert "không kết nối được cơ sở dữ liệu" in result.stderr and "tiepdan_khong_co_csdl_nay" in result.stderr
    assert "bi-mat" not in result.stderr


def test_seed_and_serve_create_the_database_they_need(tmp_path: Path) -> None:
    import time

    import httpx

    from tests.harness import free_port

    seeded = tmp_path / "seeded"
    seeded.mkdir()
    result = _run_in(seeded, ["seed", "--cases", "3"])
    assert result.returncode == 0, result.stderr
    assert (seeded / "data" / "tiepdan.db").is_file() and "9 điểm cầu mẫu" in result.stderr
    opened = _run_in(seeded, ["session", "open", "phien-mau"])  # the venues of the venue table
    assert opened.returncode == 0 and "đã gửi lệnh mở phiên «phien-mau»" in opened.stderr, opened.stderr

    served = tmp_path / "served"
    served.mkdir()
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIEPDAN_")}
    with subprocess.Popen([sys.executable, "-m", "tiepdan.cli", "serve", "--port", str(port)], cwd=served,
                          env={**clean, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as server:
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            assert (served / "data" / "tiepdan.db").is_file()
        finally:
            server.terminate()
            server.wait(timeout=20)


def test_cases_seal_seals_confidential_cases_written_before_the_rule_and_announces_them(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, date, datetime

    from sqlalchemy import select

    from complaints.cases import create_case
    from complaints.enums import PetitionKind
    from complaints.tables import cases, petition_parties, petitioners, petitions
    from signaling.outbox import outbox
    from tiepdan.db import make_engine, prepare_database

    _run(["token", "--role", "chair"], tmp_path)  # makes the development keyring
    db = f"sqlite+aiosqlite:///{tmp_path / 'tiepdan.db'}"
    now = datetime.now(UTC)

    async def legacy() -> str:
        """A complaint case with a denunciation attached before the rule: open, its citizen in clear."""
        engine = make_engine(db)
        await prepare_database(engine)
        async with engine.begin() as conn:
            case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại về đất", now=now)
            await conn.execute(petitioners.insert().values(id="p-old", kind="individual", handle="NTC-OLDR-OW00",
                                                           sealed=False, full_name="Đỗ Thị Kín", created_at=now))
            await conn.execute(petitions.insert().values(
                id="pe-old", case_id=case.id, source="in_person", kind="denunciation", received_on=date(2026, 11, 1),
                content="Nội dung", content_norm="noi dung", created_at=now))
            await conn.execute(petition_parties.insert().values(petition_id="pe-old", petitioner_id="p-old",
                                                               role="signatory"))
        await engine.dispose()
        return case.id

    async def state() -> tuple[bool, bool, list[str]]:
        engine = make_engine(db)
        async with engine.begin() as conn:
            sealed = (await conn.execute(select(petitioners.c.sealed).where(petitioners.c.id == "p-old"))).scalar_one()
            confidential = (await conn.execute(select(cases.c.confidential))).scalar_one()
            kinds = [r[0] for r in await conn.execute(select(outbox.c.type).order_by(outbox.c.id))]
        await engine.dispose()
        return bool(sealed), bool(confidential), kinds

    asyncio.run(legacy())
    first = _run(["cases", "seal", "--batch", "1"], tmp_path)
    assert first.returncode == 0 and "cho 1 vụ việc; 1 hồ sơ" in first.stdout, first.stdout + first.stderr
    sealed, confidential, kinds = asyncio.run(state())
    assert sealed and confidential and kinds.count("case.updated") == 1
    again = _run(["cases", "seal"], tmp_path)
    assert again.returncode == 0 and "cho 0 vụ việc" in again.stdout
    assert asyncio.run(state())[2].count("case.updated") == 1
