"""``tiepdan session open|close``: the scheduler's front on the command line (in-process on SQLite) and
against a running server (the room opens and closes through the outbox); refused input changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from complaints.enums import ReceptionType
from schedules import (
    SessionState,
    UnknownSession,
    VenueChoice,
    get_session,
    install_sample_venues,
    list_venues,
    local_day,
)
from schedules import sessions as scheduler
from signaling.events import AnyEvent, SessionClosed, SessionOpened, SessionPublished, SessionStarted, parse_event
from signaling.grants import Grant
from signaling.outbox import outbox
from tests.harness import LiveServer
from tiepdan.cli import main
from tiepdan.db import make_engine, prepare_database
from tiepdan.session_cli import CLI_ACTOR, SessionInputError, parse_caps, parse_venues


@pytest.mark.unit
def test_parse_venues_marks_the_main_venue() -> None:
    venues = parse_venues(["tinh=Trụ sở tỉnh", "tien-du=Tiên Du"])
    assert [(v.venue, v.name, v.main) for v in venues] == [("tinh", "Trụ sở tỉnh", True),
                                                           ("tien-du", "Tiên Du", False)]
    assert [v.main for v in parse_venues(["a=A", "b=B"], main="b")] == [False, True]


@pytest.mark.unit
@pytest.mark.parametrize("items, main, words", [
    ([], None, "ít nhất một"),
    (["tinh"], None, "mã=Tên"),
    (["tinh="], None, "mã=Tên"),
    (["Tỉnh=Tỉnh"], None, "không hợp lệ"),
    (["a=A", "a=B"], None, "hai lần"),
    (["a=A"], "b", "không có trong danh sách"),
    ([f"v{i}=V" for i in range(65)], None, "tối đa 64"),
    (["a=" + "x" * 201], None, "200"),
])
def test_parse_venues_refuses_bad_input(items: list[str], main: str | None, words: str) -> None:
    with pytest.raises(SessionInputError, match=words):
        parse_venues(items, main)


@pytest.mark.unit
def test_caps_attach_to_their_venues_and_bad_caps_are_refused() -> None:
    venues = parse_venues(["tinh=Tỉnh", "que-vo=Quế Võ"], caps=parse_caps(["que-vo=600"]))
    assert [v.max_kbps for v in venues] == [None, 600]
    for bad, words in (("que-vo", "mã=kbps"), ("que-vo=nhanh", "mã=kbps"), ("que-vo=50", "từ 100"),
                       ("que-vo=-5", "mã=kbps")):
        with pytest.raises(SessionInputError, match=words):
            parse_caps([bad])
    with pytest.raises(SessionInputError, match="không có trong danh sách"):
        parse_venues(["tinh=Tỉnh"], caps={"que-vo": 600})


@pytest.mark.integration
def test_open_and_close_a_session_on_the_running_server(live_server: LiveServer) -> None:
    room = "thu-lenh-phien"
    assert live_server._room_status(room) == 404
    live_server.open_session(room, [("main", "Trụ sở tiếp công dân tỉnh"), ("tien-du", "Tiên Du")])
    live_server.close_session(room)
    refused = live_server.cli("session", "open", "Phiên 2", "--venue", "main=Tỉnh")
    assert refused.returncode == 2 and "không hợp lệ" in refused.stderr
    refused = live_server.cli("session", "open", room)  # closed: not opened again
    assert refused.returncode == 1 and "Đã kết thúc" in refused.stderr
    assert live_server._room_status(room) == 410


# -- in process, on the embedded database ----------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A server's data directory whose database exists, with the sample venues."""
    for name in ("TIEPDAN_DATABASE_URL", "TIEPDAN_REDIS_URL", "TIEPDAN_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIEPDAN_DATA_DIR", str(tmp_path / "data"))

    async def create() -> None:
        engine = make_engine(_url(tmp_path / "data"))
        await prepare_database(engine)
        async with engine.begin() as conn:
            await install_sample_venues(conn, actor="service:seed", grants={Grant.MANAGE},
                                        clock=lambda: datetime.now(UTC))
        await engine.dispose()

    (tmp_path / "data").mkdir()
    asyncio.run(create())
    return tmp_path / "data"


def _url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'tiepdan.db'}"


def _read(data_dir: Path, room: str):  # type: ignore[no-untyped-def]
    """(the session, its events in the outbox, the venue ids of the venue table)."""
    async def read():  # type: ignore[no-untyped-def]
        engine = make_engine(_url(data_dir))
        try:
            async with engine.connect() as conn:
                events: list[AnyEvent] = [parse_event(p) for p in (await conn.execute(
                    select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()]
                return (await get_session(conn, room), [e for e in events if getattr(e, "session", None) == room],
                        [v.id for v in await list_venues(conn)])
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.system
def test_open_without_venues_takes_the_venue_table_then_close_ends_the_session(
    data_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["session", "open", "phien-dot-xuat", "--host", "bi-thu-tinh-uy", "--cap", "xa-luong-tai=600"]) == 0
    assert "đã gửi lệnh mở phiên «phien-dot-xuat»" in capsys.readouterr().err
    record, events, _ = _read(data_dir, "phien-dot-xuat")
    assert (record.state, record.session.kind, record.host, record.day) == (
        SessionState.IN_PROGRESS, ReceptionType.AD_HOC, "bi-thu-tinh-uy", local_day(datetime.now(UTC)))
    assert [type(e) for e in events] == [SessionPublished, SessionOpened, SessionStarted]
    published, opened = events[0], events[1]
    assert isinstance(published, SessionPublished) and published.late and published.by == CLI_ACTOR
    assert isinstance(opened, SessionOpened) and len(opened.venues) == 9
    assert (opened.venues[0].venue, opened.venues[0].main) == ("tru-so-tinh", True)
    assert [v.max_kbps for v in opened.venues if v.venue == "xa-luong-tai"] == [600]

    assert main(["session", "close", "phien-dot-xuat"]) == 0
    record, events, _ = _read(data_dir, "phien-dot-xuat")
    assert record.state is SessionState.CLOSED and isinstance(events[-1], SessionClosed)
    assert main(["session", "open", "phien-dot-xuat"]) == 1  # a closed session is not opened again
    assert "Đã kết thúc" in capsys.readouterr().err
    assert len(_read(data_dir, "phien-dot-xuat")[1]) == 4


@pytest.mark.system
def test_venues_given_on_the_command_line_join_the_venue_table(data_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["session", "open", "phien-hai-diem", "--venue", "tru-so-tinh=Hội trường tỉnh",
                 "--venue", "xa-moi=Xã Mới", "--cap", "xa-moi=700"]) == 0
    assert "đã thêm vào bảng điểm cầu: xa-moi" in capsys.readouterr().err
    _, events, table = _read(data_dir, "phien-hai-diem")
    opened = events[1]
    assert isinstance(opened, SessionOpened)
    assert [(v.venue, v.name, v.main, v.max_kbps) for v in opened.venues] == [
        ("tru-so-tinh", "Hội trường tỉnh", True, None), ("xa-moi", "Xã Mới", False, 700)]
    assert "xa-moi" in table and len(table) == 10


@pytest.mark.system
def test_a_session_planned_earlier_opens_with_its_own_venues(data_dir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    async def plan_today() -> None:
        engine = make_engine(_url(data_dir))
        async with engine.begin() as conn:
            await scheduler.plan_session(
                conn, session_id="phien-da-len-lich", day=local_day(datetime.now(UTC)), form="in_person",
                kind=ReceptionType.PERIODIC, venues_chosen=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")],
                host="bi-thu-tinh-uy", actor="user:ban-noi-chinh", grants={Grant.MANAGE},
                clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
        await engine.dispose()

    asyncio.run(plan_today())
    assert main(["session", "open", "phien-da-len-lich", "--venue", "a=A"]) == 2
    assert "đã được lập lịch" in capsys.readouterr().err
    assert main(["session", "open", "phien-da-len-lich"]) == 0
    record, events, _ = _read(data_dir, "phien-da-len-lich")
    assert record.state is SessionState.IN_PROGRESS and record.session.kind is ReceptionType.PERIODIC
    opened = events[1]
    assert isinstance(opened, SessionOpened) and [v.venue for v in opened.venues] == ["tru-so-tinh", "xa-tien-du"]
    assert main(["session", "open", "phien-da-len-lich"]) == 1  # already under way: nothing more is sent
    assert len(_read(data_dir, "phien-da-len-lich")[1]) == 3


@pytest.mark.system
def test_with_no_venue_anywhere_the_command_asks_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("TIEPDAN_DATABASE_URL", "TIEPDAN_REDIS_URL", "TIEPDAN_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIEPDAN_DATA_DIR", str(tmp_path))

    async def create() -> None:  # a database whose venue table is empty
        engine = make_engine(_url(tmp_path))
        await prepare_database(engine)
        await engine.dispose()

    asyncio.run(create())
    assert main(["session", "open", "phien-2"]) == 2
    assert "ít nhất một điểm cầu" in capsys.readouterr().err
    with pytest.raises(UnknownSession):  # nothing was planned
        _read(tmp_path, "phien-2")
