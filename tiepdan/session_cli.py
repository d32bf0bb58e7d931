"""``tiepdan session open|close``: open or close a live reception session from the command line.

Until the scheduler exists, this is how an operator (or a test, or a rehearsal) opens the live room
of a session: the command writes ``SessionOpened`` / ``SessionClosed`` into the outbox of the
configured database, in one transaction; the running server's outbox relay publishes it on the bus
(within its poll interval), and the room server opens or closes the room. Nothing is sent when the
input is refused, and the command says why.

``--venue`` is ``id=Name`` (``tien-du=Tiên Du``), repeated in the session's order; the first one is
the main venue (the chair's venue) unless ``--main`` names another. ``--cap id=kbps`` caps each video
layer of that venue (a weak commune link); the others get ``TIEPDAN_MEDIA_VENUE_MAX_KBPS``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from signaling.events import SessionClosed, SessionOpened, VenueInfo
from signaling.outbox import add_to_outbox

from .db import make_engine, prepare_database
from .settings import Settings

__all__ = ["run_session_command", "parse_venues", "SessionInputError"]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_VENUES = 64


class SessionInputError(ValueError):
    """The command's input is refused (the message is in Vietnamese, for the operator)."""


def _check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise SessionInputError(f"{what} «{value}» không hợp lệ: chỉ chữ thường không dấu, số và dấu gạch ngang, "
                                "tối đa 64 ký tự")
    return value


def parse_caps(items: Sequence[str]) -> dict[str, int]:
    """``["tien-du=800"]`` → venue → kbps (the cap of each of its video layers)."""
    caps: dict[str, int] = {}
    for item in items:
        venue, sep, value = item.partition("=")
        venue = venue.strip()
        if not sep or not value.strip().isdigit():
            raise SessionInputError(f"«{item}»: cần dạng mã=kbps, ví dụ tien-du=800")
        kbps = int(value)
        if not 100 <= kbps <= 20000:
            raise SessionInputError(f"«{item}»: giới hạn băng thông phải từ 100 đến 20000 kbps")
        caps[_check_id(venue, "mã điểm cầu")] = kbps
    return caps


def parse_venues(items: Sequence[str], main: str | None = None,
                 caps: dict[str, int] | None = None) -> tuple[VenueInfo, ...]:
    """``["tinh=Tỉnh", "tien-du=Tiên Du"]`` → venues, the main one marked, with their caps (kbps);
    SessionInputError when refused."""
    if not items:
        raise SessionInputError("cần ít nhất một điểm cầu (--venue mã=Tên)")
    if len(items) > MAX_VENUES:
        raise SessionInputError(f"tối đa {MAX_VENUES} điểm cầu trong một phiên")
    pairs: list[tuple[str, str]] = []
    for item in items:
        venue, sep, name = item.partition("=")
        venue, name = venue.strip(), name.strip()
        if not sep or not name:
            raise SessionInputError(f"«{item}»: cần dạng mã=Tên điểm cầu")
        if len(name) > 200:
            raise SessionInputError(f"tên điểm cầu «{venue}» dài quá 200 ký tự")
        pairs.append((_check_id(venue, "mã điểm cầu"), name))
    ids = [v for v, _ in pairs]
    if len(set(ids)) != len(ids):
        raise SessionInputError("một điểm cầu được khai báo hai lần")
    chosen = main if main is not None else ids[0]
    if chosen not in ids:
        raise SessionInputError(f"điểm cầu chính «{chosen}» không có trong danh sách --venue")
    caps = caps or {}
    unknown = sorted(set(caps) - set(ids))
    if unknown:
        raise SessionInputError(f"--cap cho điểm cầu không có trong danh sách --venue: {', '.join(unknown)}")
    return tuple(VenueInfo(venue=v, name=n, main=v == chosen, max_kbps=caps.get(v)) for v, n in pairs)


async def run_session_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``session open`` / ``session close``; 0 when the event is in the outbox, 2 on refused input."""
    try:
        room = _check_id(args.room, "mã phiên")
        if args.session_command == "open":
            venues = parse_venues(args.venue or [], args.main, parse_caps(args.cap or []))
            event: SessionOpened | SessionClosed = SessionOpened(session=room, venues=venues)
        else:
            event = SessionClosed(session=room)
    except (SessionInputError, ValidationError) as exc:
        print(f"tiepdan: {exc}", file=sys.stderr)
        return 2
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        await prepare_database(engine)
        async with engine.begin() as conn:
            await add_to_outbox(conn, event)
    finally:
        await engine.dispose()
    what = "mở" if isinstance(event, SessionOpened) else "đóng"
    print(f"tiepdan: đã gửi lệnh {what} phiên «{room}»; máy chủ đang chạy sẽ thực hiện trong giây lát",
          file=sys.stderr)
    return 0
