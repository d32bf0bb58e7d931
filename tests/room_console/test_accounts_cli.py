"""``tiepdan user add|disable`` (in-process, through ``tiepdan.cli.main``)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from room_console.accounts import get_user_by_username
from tiepdan.cli import main
from tiepdan.db import make_engine, prepare_database

from ._helpers import PASSWORD, outbox_texts

pytestmark = pytest.mark.system


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data directory of a server that has started once (its database exists: ``user`` needs it)."""
    for name in ("TIEPDAN_DATABASE_URL", "TIEPDAN_REDIS_URL", "TIEPDAN_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIEPDAN_DATA_DIR", str(tmp_path / "data"))

    async def create() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tiepdan.db'}")
        await prepare_database(engine)
        await engine.dispose()

    (tmp_path / "data").mkdir()
    asyncio.run(create())
    return tmp_path / "data"


def _user(data_dir: Path, username: str):  # type: ignore[no-untyped-def]
    async def read():  # type: ignore[no-untyped-def]
        engine = make_engine(f"sqlite+aiosqlite:///{(data_dir / 'tiepdan.db').resolve()}")
        try:
            async with engine.connect() as conn:
                return await get_user_by_username(conn, username), await outbox_texts(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _run(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def test_user_add_reads_the_password_from_stdin_and_disable_ends_the_account(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    code = _run(monkeypatch, ["user", "add", "DiemCau", "--name", "Phạm Văn Điểm", "--role", "venue",
                              "--venue", "tien-du", "--password-stdin"], PASSWORD + "\n")
    assert code == 0 and "Đã thêm tài khoản diemcau." in capsys.readouterr().out
    user, _ = _user(data_dir, "diemcau")
    assert user is not None and user.venue == "tien-du" and not user.disabled

    assert _run(monkeypatch, ["user", "disable", "diemcau"]) == 0
    assert "Đã khóa tài khoản diemcau" in capsys.readouterr().out
    user, outbox = _user(data_dir, "diemcau")
    assert user is not None and user.disabled
    assert any("account.user_disabled" in row and user.id in row for row in outbox)


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["user", "add", "a b", "--name", "X", "--role", "chair", "--password-stdin"], PASSWORD, "Tên đăng nhập chỉ gồm"),
    (["user", "add", "ngan", "--name", "X", "--role", "chair", "--password-stdin"], "ngan", "từ 10 đến 256 ký tự"),
    (["user", "add", "thieu-diem", "--name", "X", "--role", "chair", "--venue", "../x", "--password-stdin"],
     PASSWORD, "mã điểm cầu"),
    (["user", "disable", "khong-co-ai"], "", "Không tìm thấy tài khoản."),
])
def test_bad_input_is_refused_with_a_vietnamese_message_and_exit_code_2(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], stdin: str, message: str,
) -> None:
    assert _run(monkeypatch, args, stdin) == 2
    assert message in capsys.readouterr().err


def test_adding_an_existing_username_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["user", "add", "thuky", "--name", "Lê Thị Thư", "--role", "secretary", "--password-stdin"]
    assert _run(monkeypatch, args, PASSWORD) == 0
    assert _run(monkeypatch, args, PASSWORD) == 2
    assert "đã được sử dụng" in capsys.readouterr().err
