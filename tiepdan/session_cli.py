"""``tiepdan session open|close``: the command-line front of the scheduler for a live session.

``open ROOM`` opens an ad hoc session at once, through :mod:`schedules.sessions` (state machine,
audit rows, outbox events in one transaction; the running server's outbox relay publishes them and the
room server opens the room):

* a session not planned yet becomes an ad hoc (đột xuất), online (trực tuyến) session today (in
  Vietnam), hosted by ``--host`` (a leader id) when given. Its venues are the ``--venue id=Name``
  options, in order, the first being the main venue unless ``--main`` names another; a venue id not in
  the venue table is added to it (the main one as the main venue, the others as communes) and the names
  given are the names announced to this session; it runs from now to the end of the day (23:59, when the
  timekeeper closes it if the chair has not). Without ``--venue``, the session takes every active
  venue of the venue table, the main venue first. ``--cap id=kbps`` caps each video layer of that venue
  for this session (else the venue's cap, else ``TIEPDAN_MEDIA_VENUE_MAX_KBPS``). It is planned,
  published (on the day itself, with the written reason that it is opened from the command line),
  opened and started: ``session.published``, ``session.opened``, ``session.started``;
* a session planned earlier (a calendar rule, the planning page) is published if it was not, opened
  and started with its own venues (``--venue``, ``--main``, ``--cap`` are refused: the plan has them);
* a session already under way, closed, postponed or cancelled is refused.

``close ROOM`` ends a session in progress (``session.closed``; refused while a case is being received).

Refused input exits with 2, a refusal of the scheduler with 1, both with the reason in Vietnamese and
nothing written. The database must exist (:func:`tiepdan.cli_database.open_server_database`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import ReceptionForm, ReceptionType
from complaints.workdays import default_calendar
from schedules import (
    MAX_SESSION_VENUES,
    InvalidArgument,
    SchedulesError,
    SessionState,
    UnknownSession,
    VenueChoice,
    VenueDraft,
    VenueLevel,
    close_session,
    ensure_venues,
    get_session,
    list_venues,
    local_day,
    plan_session,
    publish_session,
    start_session,
)
from schedules import sessions as scheduler
from schedules.session_hours import hours_from
from signaling.events import VenueInfo
from signaling.grants import Grant

from .cli_database import open_server_database
from .settings import Settings

__all__ = ["run_session_command", "parse_venues", "parse_caps", "SessionInputError", "CLI_ACTOR",
           "open_unless_known"]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_VENUES = MAX_SESSION_VENUES
#: Who the command acts as (audit rows, events' ``by``): the operator of the server's machine.
CLI_ACTOR = "service:cli"
_CLI_GRANTS = frozenset({Grant.MANAGE, Grant.CALL_QUEUE})
#: The written reason for publishing an ad hoc session on its own day (LTCD Điều 24 asks 5 working days).
OPENED_AT_ONCE_REASON = "Phiên đột xuất mở ngay bằng lệnh tiepdan session open"


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


def _now() -> datetime:
    return datetime.now(UTC)


async def _venues_from_table(conn: AsyncConnection, main: str | None,
                             caps: dict[str, int]) -> tuple[list[VenueChoice], str]:
    table = await list_venues(conn, active_only=True)
    if not table:
        raise SessionInputError("cần ít nhất một điểm cầu (--venue mã=Tên): bảng điểm cầu chưa có điểm cầu nào")
    if len(table) > MAX_VENUES:
        raise SessionInputError(f"bảng điểm cầu có {len(table)} điểm cầu đang hoạt động, quá {MAX_VENUES} cho một "
                                "phiên: chọn bằng --venue")
    ids = [v.id for v in table]
    unknown = sorted(set(caps) - set(ids))
    if unknown:
        raise SessionInputError(f"--cap cho điểm cầu không có trong bảng điểm cầu: {', '.join(unknown)}")
    if main is not None and main not in ids:
        raise SessionInputError(f"điểm cầu chính «{main}» không có trong bảng điểm cầu")
    chosen_main = main or next((v.id for v in table if v.level is VenueLevel.MAIN), ids[0])
    return [VenueChoice(v, max_kbps=caps.get(v)) for v in ids], chosen_main


async def _open(conn: AsyncConnection, args: argparse.Namespace, room: str, venues: tuple[VenueInfo, ...] | None,
                caps: dict[str, int]) -> tuple[str, ...]:
    """Plan (if needed), publish, open and start ``room``; returns the venue ids added to the table."""
    added: tuple[str, ...] = ()
    try:
        record = await get_session(conn, room)
    except UnknownSession:
        if venues is None:
            choices, main = await _venues_from_table(conn, args.main, caps)
        else:
            drafts = [VenueDraft(v.venue, v.name, VenueLevel.MAIN if v.main else VenueLevel.COMMUNE) for v in venues]
            added = await ensure_venues(conn, drafts, actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
            choices = [VenueChoice(v.venue, name=v.name, max_kbps=v.max_kbps) for v in venues]
            main = next(v.venue for v in venues if v.main)
        hours = hours_from(_now())
        record = await plan_session(
            conn, session_id=room, day=local_day(_now()), form=ReceptionForm.ONLINE, kind=ReceptionType.AD_HOC,
            venues_chosen=choices, main=main, host=args.host, opens_at=hours.opens_at, closes_at=hours.closes_at,
            track=getattr(args, "track", None), actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
    else:
        if venues is not None or caps or args.main is not None:
            raise SessionInputError(f"phiên «{room}» đã được lập lịch cùng các điểm cầu của nó: bỏ --venue, --main, "
                                    "--cap")
        if args.host is not None and args.host != record.host:
            raise SessionInputError(f"phiên «{room}» đã được lập lịch với người chủ trì của nó: bỏ --host")
        track = getattr(args, "track", None)
        if track is not None and track != record.track.value:
            raise SessionInputError(
                f"phiên «{room}» đã được lập lịch thuộc {record.track.label_vi.lower()}: bỏ --track")
    if record.state is SessionState.PLANNED:
        record = await publish_session(conn, room, calendar=default_calendar(), override_reason=OPENED_AT_ONCE_REASON,
                                       actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
    if record.state is SessionState.PUBLISHED:
        record = await scheduler.open_session(conn, room, actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
    await start_session(conn, room, actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
    return added


async def open_unless_known(conn: AsyncConnection, room: str, venues: tuple[VenueInfo, ...]) -> bool:
    """``session open ROOM --venue …`` for the composition root's own session (the demo), unless the scheduler
    already knows ``room`` (an earlier run's session stays as it is); True when it was opened now."""
    try:
        await get_session(conn, room)
    except UnknownSession:
        await _open(conn, argparse.Namespace(main=None, host=None), room, venues, {})
        return True
    return False


async def run_session_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``session open`` / ``session close``; 0 when the events are in the outbox, 2 on refused
    input, 1 when the scheduler refuses (see the module docstring)."""
    try:
        room = _check_id(args.room, "mã phiên")
        venues: tuple[VenueInfo, ...] | None = None
        caps: dict[str, int] = {}
        if args.session_command == "open":
            if args.host is not None:
                _check_id(args.host, "mã người chủ trì")
            caps = parse_caps(args.cap or [])
            if args.venue:
                venues = parse_venues(args.venue, args.main, caps)
    except (SessionInputError, ValidationError) as exc:
        print(f"tiepdan: {exc}", file=sys.stderr)
        return 2
    engine = await open_server_database(settings)
    try:
        async with engine.begin() as conn:
            if args.session_command == "open":
                added = await _open(conn, args, room, venues, caps)
            else:
                added = ()
                await close_session(conn, room, actor=CLI_ACTOR, grants=_CLI_GRANTS, clock=_now)
    except SessionInputError as exc:
        print(f"tiepdan: {exc}", file=sys.stderr)
        return 2
    except SchedulesError as exc:
        print(f"tiepdan: {exc.message_vi}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidArgument) else 1
    finally:
        await engine.dispose()
    if added:
        print(f"tiepdan: đã thêm vào bảng điểm cầu: {', '.join(added)}", file=sys.stderr)
    what = "mở" if args.session_command == "open" else "đóng"
    print(f"tiepdan: đã gửi lệnh {what} phiên «{room}»; máy chủ đang chạy sẽ thực hiện trong giây lát",
          file=sys.stderr)
    return 0
