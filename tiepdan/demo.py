"""``tiepdan demo``: a real reception session on one machine, with bots for the main venue and the communes.

What it does, in order:

1. renders each venue's loop once into ``<data_dir>/demo/`` (:mod:`tiepdan.bots.loops`: 10 s at 15 fps, the
   venue's name and a clock burned in, a 640×360 and a 320×180 VP8 layer, a quiet Opus tone); later runs
   read the files back, so the bots only re-packetise;
2. starts the server in this process (uvicorn, the app of ``tiepdan serve``). ``--headless`` runs it on a
   temporary data directory (SQLite, development keyring; removed at the end) so that CI leaves nothing;
   otherwise it uses the settings as they are (``./data`` by default) and a session of its own per run
   (the demo sessions an earlier run left open are closed first);
3. plans, publishes, opens and starts an ad hoc session through the scheduler (``tiepdan session open``:
   the outbox relay announces ``session.opened`` and the room server opens the room): the main venue and
   ``--venues`` communes;
4. issues a token per venue with the app's real :class:`~signaling.tokens.TokenIssuer` (the main venue's bot
   is the chair) and starts a :class:`~tiepdan.bots.venue_bot.VenueBot` per venue: it joins, publishes both
   layers and the tone, and subscribes with two video slots and one audio slot (``DemoOptions``): the
   floor holder and the chair's venue;
5. a **desk bot** (a console account with the role ``reception``, signed in over HTTP like the desk
   officer's page: :mod:`tiepdan.bots.console`) registers a handful of made-up citizens (at least six, at
   least one per commune; one elderly and one disabled, so that the published order is not the ticket
   order) through ``/api/desk/registrations``, each from a chip ID card's QR string; the **chair bot** (a
   ``chair`` account, same way) records the roll call of the venues (``/api/sessions/{id}/roll-call``: every
   venue present, with its citizens; "call next" is refused without it), reads the published call order
   (``GET /api/sessions/{id}/queue``) and, for each ticket, presses "call next", lets the called commune
   hold the floor (``--headless``: what is left of ``--duration`` shared by the cases; otherwise
   ``--rotate`` seconds, 15 by default) and presses "end case": the room gives the floor to the called
   commune and back to the main venue. Interactive runs register a new batch when the queue is empty, and
   the chair bot stops calling once a person chairs the room (the console's chair page). While each case is
   heard, a **secretary bot** (a ``secretary`` account, same way: :mod:`tiepdan.bots.secretary_bot`) finds the
   draft the call opened on the minutes list, saves the minutes once (the request, the local report, the
   conclusion, the handling direction, the outcome and a directive to one of the units with a deadline in
   working days; a database with no unit gets the sample province's: :mod:`tiepdan.demo_minutes`), reads
   them back and marks them confirmed verbally with the time in the recording; the chair bot approves them
   through the chair's API, before "end case" for the 1st, 3rd … case and after it for the others (the
   closing writes the case when both the approval and ``case.closed`` are there, whichever comes second);
6. ``--headless``: prints per bot how many frames it decoded from each other venue (the decoded picture's
   centre colour names the venue) and checks, from the messages every page received (each venue bot's
   connection and the chair's), that every ticket was called in the published order, that every page saw
   each number, that the called venue got the floor and that each case ended with the floor back at the
   main venue (:func:`call_problems`), that every called case has a verified recording segment
   (:mod:`tiepdan.demo_recording`) and that every called case landed in the complaint database from its
   approved minutes: the record of the closing, the reception entry of the session, the handling decision,
   the directive to a unit with its deadline and the reference to its verified segment
   (:func:`tiepdan.demo_minutes.check_cases`); exits 0 only when every check passes. Otherwise prints the
   console's address and runs until Ctrl-C, then ends the case being heard and closes the session;
7. ``--headless``: issues the session's conclusion notice (thông báo kết luận) from the minutes of the called
   cases and checks with pyHanko's validator that the signed original and its public twin validate (against
   the local test CA of :mod:`tiepdan.dev_signer` when no signer is configured: :mod:`tiepdan.demo_documents`);
   exits 0 only when they do.

All bots and the SFU use loopback only (aioice never offers 127.0.0.1 by itself: the demo lets it), unless
``--lan`` (then venues on the network could reach the SFU).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import resource
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from schedules import VIETNAM_TZ, SchedulesError, calls, close_session, live_sessions
from schedules.call_order import is_elderly
from signaling.events import VenueInfo
from signaling.grants import Grant, Role

from .bots.console import ChairBot, ConsoleClient, ConsoleRefused, DemoCitizen, DeskBot, QueueTicket
from .bots.loops import PALETTE, LoopSpec, VenueLoop, render_tone, render_venue_loop
from .bots.media import Clip
from .bots.secretary_bot import SecretaryBot, TakenMinutes
from .bots.venue_bot import Message, RequestRefused, VenueBot
from .demo_minutes import check_cases, ensure_units
from .session_cli import open_unless_known
from .settings import Settings

__all__ = ["DemoOptions", "DEMO_VENUES", "run_demo", "Pair", "missing_pairs", "call_problems", "demo_citizens", "press",
           "QueueTicket"]

log = logging.getLogger("tiepdan.demo")

ROOM = "phien-trinh-dien"
#: the console account a person uses to chair the demo (interactive runs)
DEMO_CHAIR = "chutri-demo"
#: the console accounts of the bots: the desk officer, the chair's queue controls and the secretary
DEMO_DESK_BOT = "may-tiep-nhan-demo"
DEMO_CHAIR_BOT = "may-chu-tri-demo"
DEMO_SECRETARY_BOT = "may-thu-ky-demo"
#: who the demo acts as when it opens, records the roll call and closes the session itself
DEMO_ACTOR = "service:demo"
_DEMO_GRANTS = frozenset({Grant.MANAGE, Grant.CALL_QUEUE})
TOKEN_TTL_S = 12 * 3600
#: citizens registered per batch: at least this many, and at least one per commune
CITIZENS = 6
#: headless: a venue's media stopped this long counts as a lost link (see ``_server_settings``)
HEADLESS_LINK_LOST_AFTER_S = 20.0
#: how long the demo waits for a page to see what it is waiting for (the checks say what was missed)
_SEEN_WITHIN_S = 10.0
#: how long "end case" waits for the secretary's minutes of the case (confirmed 0–9 s after the call on a 2-core
#: machine at load 15: the draft opens on the bus)
_MINUTES_WITHIN_S = 20.0

#: the main venue first, then the communes (venue id, name)
DEMO_VENUES: tuple[tuple[str, str], ...] = (
    ("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh"),
    ("xa-tien-du", "Xã Tiên Du"),
    ("xa-que-vo", "Xã Quế Võ"),
    ("phuong-dinh-bang", "Phường Đình Bảng"),
    ("xa-phat-tich", "Xã Phật Tích"),
    ("xa-luong-tai", "Xã Lương Tài"),
    ("phuong-dong-ngan", "Phường Đông Ngàn"),
    ("xa-gia-binh", "Xã Gia Bình"),
    ("xa-thuan-thanh", "Xã Thuận Thành"),
)

#: made-up citizens (name, male, year of birth, disabled, what the petition is about); the third is elderly
#: and the fourth disabled: both are called before the others (schedules.call_order)
_PEOPLE: tuple[tuple[str, bool, int, bool, str], ...] = (
    ("Nguyễn Văn An", True, 1979, False, "Khiếu nại quyết định thu hồi đất nông nghiệp"),
    ("Trần Thị Bình", False, 1985, False, "Kiến nghị cấp giấy chứng nhận quyền sử dụng đất"),
    ("Lê Văn Cường", True, 1948, False, "Khiếu nại mức bồi thường khi giải phóng mặt bằng"),
    ("Phạm Thị Dung", False, 1990, True, "Kiến nghị về chế độ trợ cấp xã hội"),
    ("Hoàng Văn Đức", True, 1972, False, "Phản ánh việc xây dựng trái phép trên đất công"),
    ("Vũ Thị Giang", False, 1968, False, "Khiếu nại việc cấp phép xây dựng nhà xưởng"),
    ("Đặng Văn Hải", True, 1983, False, "Kiến nghị sửa chữa đường giao thông nông thôn"),
    ("Bùi Thị Lan", False, 1995, False, "Phản ánh ô nhiễm môi trường từ cơ sở sản xuất"),
)

MAIN_SUBTITLE = "Điểm cầu chính — chủ trì phiên tiếp công dân"
SUBTITLE = "Điểm cầu tiếp công dân trực tuyến"

#: what the demo tells a person (Vietnamese; one place)
MESSAGES: dict[str, str] = {
    "rendering": "tiepdan demo: đang dựng hình {count} đoạn lặp 10 giây vào {path} (chỉ lần đầu)…",
    "rendered": "tiepdan demo: hình đã sẵn sàng ({seconds:.1f} giây)",
    "server": "tiepdan demo: máy chủ chạy tại {url} (dữ liệu: {data})",
    "session": "tiepdan demo: bộ lập lịch đã mở phiên «{room}» với {count} điểm cầu",
    "joined": "tiepdan demo: {count} điểm cầu đã vào phiên «{room}» và đang gửi hình, tiếng",
    "roll_call": "tiepdan demo: chủ trì đã điểm danh {count} điểm cầu (lần điểm danh số {number})",
    "registered": "tiepdan demo: bàn tiếp nhận phát số {number} cho một công dân tại {name}{priority}",
    "order": "tiepdan demo: thứ tự gọi đã công bố: {order}",
    "called": "tiepdan demo: chủ trì gọi số {number} — {name} nhận quyền phát biểu",
    "ended": "tiepdan demo: kết thúc vụ việc số {number}, quyền phát biểu trở về điểm cầu chính",
    "resumed": "tiepdan demo: vụ việc số {number} đã bị tạm dừng (điểm cầu mất kết nối); chủ trì cho tiếp tục",
    "person_chairs": "tiepdan demo: đã có người chủ trì phiên: máy chủ trì của demo ngừng gọi số",
    "chair": "Trang của chủ trì: {url}/phien/{room}\n"
             "  đăng nhập bằng tài khoản «{username}», mật khẩu «{password}» (mật khẩu mới mỗi lần chạy demo).\n"
             "  Máy chủ trì của demo gọi lần lượt từng công dân đã đăng ký cho đến khi bạn vào phiên.",
    "stop": "Nhấn Ctrl-C để dừng.",
    "summary": "Số khung hình mỗi điểm cầu đã giải mã, theo điểm cầu gửi ({seconds:.0f} giây, CPU trung bình "
               "{cpu:.2f} nhân):",
    "ok": "tiepdan demo: đạt — mọi điểm cầu đã nhận hình của mọi điểm cầu khác",
    "missing": "tiepdan demo: KHÔNG ĐẠT — thiếu hình: {pairs}",
    "calls_ok": "tiepdan demo: đạt — {count} số được gọi đúng thứ tự đã công bố; mọi trang ({pages}) đã thấy "
                "từng số, điểm cầu được gọi nhận quyền phát biểu và quyền trở về điểm cầu chính",
    "calls_bad": "tiepdan demo: KHÔNG ĐẠT — {problem}",
    "closed": "tiepdan demo: đã đóng phiên «{room}»",
    "recording_ok": "tiepdan demo: đạt — {count} vụ việc đã gọi đều có đoạn ghi hình ({files} tệp), bản ghi hình "
                    "và biên bản toàn vẹn (chữ ký, mã băm)",
    "recording_bad": "tiepdan demo: KHÔNG ĐẠT — bản ghi hình: {problem}",
    "minutes": "tiepdan demo: thư ký ghi biên bản vụ việc số {number} (phiên bản {version}; chỉ đạo giao {unit}), "
               "đọc lại cho công dân; công dân xác nhận bằng lời tại {media} trong bản ghi hình",
    "approved": "tiepdan demo: chủ trì phê duyệt biên bản vụ việc số {number} {when}",
    "minutes_failed": "tiepdan demo: biên bản vụ việc số {number} chưa hoàn tất: {error}",
    "cases_ok": "tiepdan demo: đạt — {count} vụ việc đã gọi đều đã vào cơ sở dữ liệu từ biên bản được phê duyệt: "
                "lượt tiếp, hướng xử lý, {directives} ý kiến chỉ đạo giao đơn vị có thời hạn{recording}",
    "cases_bad": "tiepdan demo: KHÔNG ĐẠT — {problem}",
    "notice_ok": "tiepdan demo: đạt — thông báo kết luận của phiên đã được ký số ({number}, mã {id}); chữ ký của "
                 "bản gốc và bản công khai hợp lệ",
    "notice_bad": "tiepdan demo: KHÔNG ĐẠT — thông báo kết luận: {problem}",
    "failed": "tiepdan demo: lỗi: {error}",
    "stopping": "tiepdan demo: đang dừng…",
}


def say(key: str, **values: Any) -> None:
    print(MESSAGES[key].format(**values), file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DemoOptions:
    headless: bool = False
    duration: float = 20.0
    port: int | None = None
    venues: int = 8
    """communes besides the main venue (1..8)"""
    rotate_s: float | None = None
    """seconds a called case holds the floor (None: the rest of ``duration`` shared by the cases headless,
    else 15 s)"""
    lan: bool = False
    video_slots: int = 2
    """video slots per bot (floor holder and chair; every commune is called, so everyone is shown)"""
    audio_slots: int = 1


@dataclass(frozen=True)
class Pair:
    receiver: str
    source: str


def missing_pairs(counts: dict[str, dict[str, int]]) -> list[Pair]:
    """The (receiver, source) pairs with no decoded frame; ``counts``: receiver → source → frames."""
    return [Pair(receiver, source) for receiver in counts for source in counts
            if source != receiver and counts[receiver].get(source, 0) <= 0]


# -- the citizens and the checks --------------------------------------------------------------------------


def demo_citizens(communes: Sequence[tuple[str, str]], today: date, *, count: int | None = None,
                  digits: Callable[[], int] | None = None) -> list[DemoCitizen]:
    """``count`` made-up citizens (default: ``CITIZENS``, at least one per commune), the i-th registered at
    commune ``i mod len(communes)``; chip ID numbers of Bắc Ninh (027) with six random digits (``digits``),
    so that a new run's citizens are new people."""
    if not communes:
        raise ValueError("cần ít nhất một xã, phường")
    count = max(CITIZENS, len(communes)) if count is None else count
    if not 1 <= count <= len(_PEOPLE):
        raise ValueError(f"số công dân phải từ 1 đến {len(_PEOPLE)}")
    draw = digits or (lambda: secrets.randbelow(1_000_000))
    citizens: list[DemoCitizen] = []
    for i in range(count):
        name, male, year, disabled, content = _PEOPLE[i]
        venue, venue_name = communes[i % len(communes)]
        century = (0 if male else 1) + (2 if year >= 2000 else 0)
        citizens.append(DemoCitizen(
            venue=venue, id_number=f"027{century}{year % 100:02d}{draw():06d}", full_name=name,
            birth_date=date(year, 1 + i % 12, 10 + i), male=male, disabled=disabled, content=content,
            address=f"Thôn Đông, {venue_name[:1].lower()}{venue_name[1:]}, tỉnh Bắc Ninh"))
    if any(c.birth_date > today for c in citizens):
        raise ValueError("ngày sinh sau ngày hôm nay")
    return citizens


def _numbers(tickets: Sequence[QueueTicket] | Sequence[tuple[int, str]]) -> str:
    return ", ".join(str(t.ticket_no if isinstance(t, QueueTicket) else t[0]) for t in tickets) or "—"


def call_problems(issued: Sequence[QueueTicket], published: Sequence[QueueTicket],
                  pages: Mapping[str, Sequence[Message]], *, main: str) -> list[str]:
    """What went wrong in the session, judged by what each page received (``pages``: page → its server
    messages in order; empty when all is well):

    * the published order holds exactly the tickets the desk issued;
    * every page saw ``case.called`` for every ticket, in the published order, at its venue;
    * on every page, each called venue got the floor (``floor.changed``) before its case ended, the case
      ended (``case.ended``, ``closed``) and the floor went back to ``main`` before the next call."""
    problems: list[str] = []
    if sorted(t.ticket_no for t in published) != sorted(t.ticket_no for t in issued):
        problems.append(f"thứ tự công bố ({_numbers(published)}) không gồm đúng các số đã phát ({_numbers(issued)})")
    expected = [(t.ticket_no, t.venue) for t in published]
    for page, messages in pages.items():
        called = [(int(m["call"]["ticket_no"]), str(m["call"]["venue"])) for m in messages
                  if m.get("type") == "case.called"]
        if called != expected:
            problems.append(f"trang {page} thấy gọi các số {_numbers(called)} (đúng ra {_numbers(expected)}, "
                            "theo thứ tự đã công bố)")
        problems.extend(f"trang {page}: {p}" for p in _floor_problems(messages, main))
    return problems


def _floor_problems(messages: Sequence[Message], main: str) -> list[str]:
    """The floor of one page's log: each call gives it to the called venue, each end gives it back."""
    problems: list[str] = []
    call: dict[str, Any] | None = None  # the case being heard
    floor_given = False
    returned: int | None = None  # a case ended: waiting for the floor to come back to ``main``
    for message in messages:
        kind = message.get("type")
        if kind == "case.called":
            if returned is not None:
                problems.append(f"quyền phát biểu không trở về điểm cầu chính sau số {returned}")
            if call is not None:
                problems.append(f"số {call['ticket_no']} chưa kết thúc khi gọi số tiếp theo")
            call, floor_given, returned = dict(message["call"]), False, None
        elif kind == "floor.changed":
            if call is not None and message.get("venue") == call["venue"]:
                floor_given = True
            elif returned is not None and message.get("venue") == main:
                returned = None
        elif kind == "case.ended" and call is not None and message.get("call_seq") == call["call_seq"]:
            if not floor_given:
                problems.append(f"điểm cầu {call['venue']} không nhận quyền phát biểu khi gọi số {call['ticket_no']}")
            if message.get("outcome") != "closed":
                problems.append(f"số {call['ticket_no']} kết thúc với «{message.get('outcome')}», không phải "
                                "«closed»")
            returned, call = int(call["ticket_no"]), None
    if call is not None:
        problems.append(f"số {call['ticket_no']} không kết thúc")
    if returned is not None:
        problems.append(f"quyền phát biểu không trở về điểm cầu chính sau số {returned}")
    return problems


# -- rendering ------------------------------------------------------------------------------------


def _specs(count: int) -> list[LoopSpec]:
    return [LoopSpec(venue, name, PALETTE[i], subtitle=MAIN_SUBTITLE if i == 0 else SUBTITLE)
            for i, (venue, name) in enumerate(DEMO_VENUES[: count + 1])]


def _render_all(directory: Path, specs: Sequence[LoopSpec]) -> tuple[list[VenueLoop], Clip]:
    """Each venue's loop and the tone, rendering what is missing on up to two processes."""
    missing = [s for s in specs if not _cached(directory, s)]
    if missing:
        say("rendering", count=len(missing), path=directory)
        started = time.monotonic()
        workers = max(1, min(2, os.cpu_count() or 1, len(missing)))
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(render_venue_loop, [directory] * len(missing), missing))
        say("rendered", seconds=time.monotonic() - started)
    loops = [render_venue_loop(directory, s) for s in specs]
    return loops, render_tone(directory)


def _cached(directory: Path, spec: LoopSpec) -> bool:
    stem = f"{spec.venue}-{spec.digest}"
    return (directory / f"{stem}.high.ivf").exists() and (directory / f"{stem}.low.ivf").exists()


# -- the server -----------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo owns Ctrl-C and shuts the server down itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_settings(settings: Settings, options: DemoOptions, data_dir: Path | None) -> Settings:
    values = settings.model_dump()
    values.update(process_role="all", log_level="WARNING", log_json=settings.log_json)
    if data_dir is not None:  # headless: self-contained, nothing outside the temporary directory
        values.update(data_dir=data_dir, database_url=None, redis_url=None, keyring_path=None,
                      keyring_passphrase=None, mode="dev", host="127.0.0.1", public_url=None)
    if not options.lan:  # the SFU (and, in this process, the bots) offer only 127.0.0.1
        values["media_host_addresses"] = "127.0.0.1"
    if options.headless:
        # The bots and the SFU share this process's event loop: on a busy machine a stall of the loop stops
        # every venue's packets at once and reads as lost links (the scheduler would pause the case and hold
        # the venues' tickets). The check judges the session and the frames; no network is lost here.
        values["media_link_lost_after_s"] = max(settings.media_link_lost_after_s, HEADLESS_LINK_LOST_AFTER_S)
    if options.port is not None:
        values["port"] = options.port
    elif options.headless:
        values["port"] = _free_port()
    return Settings.model_validate(values)


# -- the run --------------------------------------------------------------------------------------


async def _start_server(settings: Settings) -> tuple[_Server, asyncio.Task[None], Any]:
    from .app import create_app

    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, lifespan="on",
                            ws_max_size=settings.ws_max_frame_bytes)
    server = _Server(config)

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits when it cannot listen; a task must not end the event loop
            raise RuntimeError(f"máy chủ không khởi động được trên {settings.host}:{settings.port} "
                               "(cổng đang bận? dùng --port)") from None

    task = asyncio.create_task(serve(), name="demo-uvicorn")
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                await task  # raises why it stopped
                raise RuntimeError("máy chủ dừng khi đang khởi động")
            await asyncio.sleep(0.05)
    return server, task, app


def _now() -> datetime:
    return datetime.now(UTC)


async def _open_session(app: Any, room: str, venues: Sequence[LoopSpec]) -> None:
    """Plan, publish, open and start ``room`` through the scheduler (its outbox announces
    ``session.opened``), then wait until the room server has the room open."""
    services = app.state.services
    infos = tuple(VenueInfo(venue=s.venue, name=s.name, main=i == 0) for i, s in enumerate(venues))
    async with services.engine.begin() as conn:
        await open_unless_known(conn, room, infos)
    services.outbox.notify()
    room_server = app.state.room_server
    async with asyncio.timeout(_SEEN_WITHIN_S):
        while room_server.room(room) is None:
            await asyncio.sleep(0.05)
    say("session", room=room, count=len(infos))


async def _close_session(app: Any, room: str) -> bool:
    """End the case being heard (if any) and close ``room`` through the scheduler; False when it refuses."""
    engine = app.state.services.engine
    try:
        async with engine.begin() as conn:
            state, _ = await calls.load_queue(conn, room)
            if state.current is not None:
                await calls.end_case(conn, room, actor=DEMO_ACTOR, grants=_DEMO_GRANTS, clock=_now)
            await close_session(conn, room, actor=DEMO_ACTOR, grants=_DEMO_GRANTS, clock=_now)
    except SchedulesError as exc:
        log.warning("demo session not closed", extra={"ctx": {"session": room, "code": exc.code}})
        return False
    app.state.services.outbox.notify()
    return True


async def _close_earlier_sessions(app: Any) -> None:
    """The demo sessions an earlier interactive run left live (its room died with that run's process)."""
    async with app.state.services.engine.connect() as conn:
        earlier = [s.id for s in await live_sessions(conn) if s.id.startswith(f"{ROOM}-")]
    for room in earlier:
        if await _close_session(app, room):
            say("closed", room=room)


async def _start_bots(app: Any, url: str, room: str, loops: Sequence[VenueLoop], tone: Clip,
                      options: DemoOptions) -> list[VenueBot]:
    issuer = app.state.services.issuer
    palette = {loop.spec.venue: loop.centre_yuv for loop in loops}
    bots: list[VenueBot] = []
    for i, loop in enumerate(loops):
        role = Role.CHAIR if i == 0 else Role.VENUE
        token = issuer.issue(f"demo:{loop.spec.venue}", roles=[role], room=room, venue=loop.spec.venue,
                             name=loop.spec.name, ttl_s=TOKEN_TTL_S)
        bots.append(VenueBot(url, token, name=loop.spec.venue, camera=loop.high, camera_low=loop.low, mic=tone,
                             palette=palette, history=False))
    for bot in bots:  # the chair first: the room is theirs
        await bot.connect()
    for bot in bots:
        await bot.publish()
    video_slots = min(options.video_slots, len(bots) - 1)
    audio_slots = min(options.audio_slots, len(bots) - 1)
    await asyncio.gather(*(bot.subscribe(video_slots=video_slots, audio_slots=audio_slots) for bot in bots))
    return bots


async def _demo_account(app: Any, username: str, display_name: str, role: str) -> str:
    """A console account of the demo (no venue), with a new random password each run; the password.
    Development data only."""
    from room_console.accounts import add_user, get_user_by_username, set_password

    from .wiring import console_options

    services = app.state.services
    options = console_options(services.settings)
    password = secrets.token_urlsafe(12)
    async with services.engine.connect() as conn:
        existing = await get_user_by_username(conn, username)
    if existing is None:
        await add_user(services.engine, username=username, display_name=display_name, roles=[role],
                       password=password, options=options, now=time.time())
    else:
        await set_password(services.engine, existing.id, password, options=options)
    return password


async def _signed_in(app: Any, base: str, username: str, display_name: str, role: str) -> ConsoleClient:
    client = ConsoleClient(base)
    try:
        await client.sign_in(username, await _demo_account(app, username, display_name, role))
    except BaseException:
        await client.close()
        raise
    return client


def _someone_else_chairs(chair: VenueBot) -> bool:
    """Whether a participant with the chair role other than the demo's chair bot is in the room."""
    return any(m["type"] == "presence.joined" and "chair" in m["participant"].get("roles", ())
               and m["participant"].get("participant") != chair.participant for m in chair.messages)


@dataclass
class _Session:
    """What the demo's session did: the tickets issued and the order published, batch after batch."""

    room: str
    main: str
    names: dict[str, str]
    issued: list[QueueTicket]
    published: list[QueueTicket]


async def _register(desk: DeskBot, session: _Session, communes: Sequence[tuple[str, str]]) -> None:
    today = datetime.now(VIETNAM_TZ).date()
    for citizen in demo_citizens(communes, today):
        ticket = await desk.register(session.room, citizen)
        session.issued.append(ticket)
        priority = (" (ưu tiên người cao tuổi)" if is_elderly(citizen.birth_date, today)
                    else " (ưu tiên người khuyết tật)" if citizen.disabled else "")
        say("registered", number=ticket.ticket_no, name=session.names.get(ticket.venue, ticket.venue),
            priority=priority)


async def _roll_call(chair: ChairBot, session: _Session, venues: Sequence[LoopSpec]) -> None:
    """The chair's roll call before the first call: every venue present (its bot is connected), with the
    citizens registered there."""
    citizens = {s.venue: sum(t.venue == s.venue for t in session.issued) for s in venues}
    number = await chair.roll_call(citizens)
    say("roll_call", count=len(venues), number=number)


async def _floor_at(bot: VenueBot, venue: str, since: int) -> None:
    """Until ``bot``'s page sees the floor at ``venue`` (pacing only: :func:`call_problems` judges)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        await bot.wait_for(lambda m: m["type"] == "floor.changed" and m.get("venue") == venue, since=since,
                           timeout=_SEEN_WITHIN_S)


async def press(chair: ChairBot, action: str, *, attempts: int = 3) -> dict[str, Any]:
    """A queue action as the chair would press it: when the queue changed under the page (409: the link of
    the called venue was lost for a while and the scheduler paused the case), reload it, resume a paused
    case and press again."""
    for attempt in range(1, attempts + 1):
        try:
            return await chair.act(action)
        except ConsoleRefused as exc:
            if exc.status != 409 or attempt == attempts:
                raise
            shown = await chair.queue()
            if shown["paused"] and shown["current"] is not None:
                say("resumed", number=shown["current"]["ticket_no"])
                await chair.act("resume")
    raise AssertionError("unreachable")


async def _minutes_of(task: asyncio.Task[TakenMinutes], number: int) -> TakenMinutes | None:
    """The secretary's minutes of case ``number`` once read back and confirmed (bounded); None, said, when
    they are not (the cases check names the case)."""
    try:
        taken = await asyncio.wait_for(task, timeout=_MINUTES_WITHIN_S)
    except (TimeoutError, ConsoleRefused, httpx.HTTPError, ConnectionError, KeyError, ValueError) as exc:
        say("minutes_failed", number=number, error=f"{type(exc).__name__}: {exc}")
        return None
    say("minutes", number=number, version=taken.version, unit=taken.unit_name, media=taken.media_time)
    return taken


async def _approve(chair: ChairBot, taken: TakenMinutes, number: int, *, ended: bool) -> None:
    try:
        await chair.approve(taken.case_id, taken.confirmed_sha256)
    except (ConsoleRefused, httpx.HTTPError) as exc:
        say("minutes_failed", number=number, error=f"{type(exc).__name__}: {exc}")
        return
    say("approved", number=number, when="sau khi kết thúc vụ việc" if ended else "trước khi kết thúc vụ việc")


async def _hear(chair: ChairBot, session: _Session, bots: Mapping[str, VenueBot], order: Sequence[QueueTicket],
                hold: float, stop: Callable[[], bool], secretary: SecretaryBot | None = None) -> None:
    """The chair calls each waiting ticket ("call next"), the called venue holds the floor ``hold`` seconds,
    then "end case"; until the queue is empty or ``stop()``. Meanwhile the ``secretary`` takes the case's
    minutes; "end case" waits for them (bounded), and the chair approves them before the end of every other
    case (the 1st, 3rd …) and after it for the rest."""
    for index, _ in enumerate(order):
        if stop():
            return
        marks = {venue: len(bot.messages) for venue, bot in bots.items()}
        answer = await press(chair, "call-next")
        called_at = time.monotonic()
        current = answer["current"]
        number, venue = int(current["ticket_no"]), str(current["venue"])
        say("called", number=number, name=session.names.get(venue, venue))
        minutes = None if secretary is None else asyncio.create_task(
            secretary.take_minutes(venue, session.names.get(venue, venue), called_at=called_at),
            name=f"demo-minutes-{number}")
        try:
            if venue in bots:
                await _floor_at(bots[venue], venue, marks[venue])
            await asyncio.sleep(hold)
            taken = None if minutes is None else await _minutes_of(minutes, number)
            approve_first = index % 2 == 0
            if taken is not None and approve_first:
                await _approve(chair, taken, number, ended=False)
            marks = {v: len(bot.messages) for v, bot in bots.items()}
            await press(chair, "end")
            say("ended", number=number)
            if taken is not None and not approve_first:
                await _approve(chair, taken, number, ended=True)
        finally:
            if minutes is not None and not minutes.done():
                minutes.cancel()
                await asyncio.gather(minutes, return_exceptions=True)
        await _floor_at(bots[session.main], session.main, marks[session.main])


async def _settle(bots: Sequence[VenueBot], session: _Session) -> None:
    """Until every page has received the last case's end and the floor's return (bounded: the messages are
    on their way; :func:`call_problems` judges what arrived)."""
    ends = len(session.published)
    if ends == 0:
        return

    def last_end(bot: VenueBot) -> int | None:
        ended = [i for i, m in enumerate(bot.messages) if m["type"] == "case.ended"]
        return ended[-1] if len(ended) >= ends else None

    async def settled(bot: VenueBot) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await bot.wait_for(lambda m: m["type"] == "case.ended" and last_end(bot) is not None,
                               timeout=_SEEN_WITHIN_S)
            index = last_end(bot)
            if index is not None:
                await _floor_at(bot, session.main, index)

    await asyncio.gather(*(settled(bot) for bot in bots))


def _session_id(headless: bool) -> str:
    """The headless run's session (a fresh database each time), else one of its own per run."""
    return ROOM if headless else f"{ROOM}-{datetime.now(VIETNAM_TZ):%Y%m%d-%H%M%S}"


async def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo (see the module docstring); the exit status."""
    if not 1 <= options.venues <= len(DEMO_VENUES) - 1:
        raise ValueError(f"--venues phải từ 1 đến {len(DEMO_VENUES) - 1}")
    if options.headless and options.duration <= 0:
        raise ValueError("--duration phải lớn hơn 0")
    if options.rotate_s is not None and options.rotate_s <= 0:
        raise ValueError("--rotate phải lớn hơn 0")
    specs = _specs(options.venues)
    loops, tone = await asyncio.to_thread(_render_all, settings.data_dir / "demo", specs)
    with contextlib.ExitStack() as cleanup:
        data_dir: Path | None = None
        if options.headless:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tiepdan-demo-")))
        server_settings = _server_settings(settings, options, data_dir)
        try:
            return await _run(server_settings, options, loops, tone)
        except (OSError, TimeoutError, ConnectionError, RequestRefused, RuntimeError, ConsoleRefused,
                SchedulesError, httpx.HTTPError) as exc:
            say("failed", error=f"{type(exc).__name__}: {getattr(exc, 'message_vi', None) or exc}")
            return 1


async def _run(settings: Settings, options: DemoOptions, loops: list[VenueLoop], tone: Clip) -> int:
    server, server_task, app = await _start_server(settings)
    base = f"http://{settings.host}:{settings.port}"
    local = f"http://127.0.0.1:{settings.port}"
    room = _session_id(options.headless)
    specs = [loop.spec for loop in loops]
    bots: list[VenueBot] = []
    clients: list[ConsoleClient] = []
    hearing: asyncio.Task[None] | None = None
    opened = False
    try:
        say("server", url=base, data=settings.data_dir)
        if not options.headless:
            await _close_earlier_sessions(app)
        await _open_session(app, room, specs)
        opened = True
        started, cpu_started = time.monotonic(), _cpu_seconds()
        bots = await _start_bots(app, f"ws://127.0.0.1:{settings.port}/ws?room={room}", room, loops, tone, options)
        say("joined", count=len(bots), room=room)
        desk_client = await _signed_in(app, local, DEMO_DESK_BOT, "Cán bộ tiếp nhận (máy demo)", "reception")
        clients.append(desk_client)
        chair_client = await _signed_in(app, local, DEMO_CHAIR_BOT, "Chủ trì (máy demo)", "chair")
        clients.append(chair_client)
        await ensure_units(app.state.services.engine)
        secretary_client = await _signed_in(app, local, DEMO_SECRETARY_BOT, "Thư ký (máy demo)", "secretary")
        clients.append(secretary_client)
        secretary = SecretaryBot(secretary_client, room, main=specs[0].venue)
        session = _Session(room, specs[0].venue, {s.venue: s.name for s in specs}, [], [])
        desk, chair = DeskBot(desk_client), ChairBot(chair_client, room)
        communes = [(s.venue, s.name) for s in specs[1:]]
        by_venue = {bot.name: bot for bot in bots}
        if options.headless:
            await _register(desk, session, communes)
            await _roll_call(chair, session, specs)
            order = await chair.published_order()
            session.published.extend(order)
            say("order", order=_numbers(order))
            left = options.duration - (time.monotonic() - started)
            hold = options.rotate_s or max(1.0, left / max(1, len(order)))
            await _hear(chair, session, by_venue, order, hold, stop=lambda: server_task.done(), secretary=secretary)
            await _settle(bots, session)
            if server_task.done():
                raise RuntimeError("the server stopped during the demo")
            status = _report(bots, loops, session, time.monotonic() - started, _cpu_seconds() - cpu_started)
            recorded, verified = await _check_recordings(app, settings, room, bots[0])
            status = max(status, recorded, await _check_cases(app, room, verified))
            return max(status, await _check_notice(app, room))
        password = await _demo_account(app, DEMO_CHAIR, "Chủ trì phiên trình diễn", "chair")
        say("chair", url=base, room=room, username=DEMO_CHAIR, password=password)
        say("stop")
        hearing = asyncio.create_task(_keep_hearing(desk, chair, secretary, session, by_venue, specs, bots[0],
                                                    options.rotate_s or 15.0), name="demo-hearing")
        await _wait_for_stop(server_task)
        say("stopping")
        return 0
    finally:
        if hearing is not None:
            hearing.cancel()
            await asyncio.gather(hearing, return_exceptions=True)
        if opened and not options.headless and not server_task.done() and await _close_session(app, room):
            say("closed", room=room)
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        await asyncio.gather(*(bot.close() for bot in bots), return_exceptions=True)
        server.should_exit = True
        await asyncio.gather(server_task, return_exceptions=True)


async def _keep_hearing(desk: DeskBot, chair: ChairBot, secretary: SecretaryBot, session: _Session,
                        bots: Mapping[str, VenueBot], specs: Sequence[LoopSpec], chair_bot: VenueBot,
                        hold: float) -> None:
    """Interactive: register a batch (the roll call after the first), hear it, again, until a person chairs
    the room."""
    stop = functools.partial(_someone_else_chairs, chair_bot)
    communes = [(s.venue, s.name) for s in specs[1:]]
    try:
        while not stop():
            await _register(desk, session, communes)
            if not session.published:
                await _roll_call(chair, session, specs)
            order = await chair.published_order()
            session.published.extend(order)
            say("order", order=_numbers(order))
            await _hear(chair, session, bots, order, hold, stop, secretary)
        say("person_chairs")
    except (ConsoleRefused, httpx.HTTPError, ConnectionError) as exc:  # a person acted on the queue meanwhile
        say("failed", error=f"{type(exc).__name__}: {exc}")


async def _check_recordings(app: Any, settings: Settings, room: str,
                            observer: VenueBot) -> tuple[int, dict[str, list[str]] | None]:
    """Headless, when the server records: every call the pages saw has a closed, verified segment. The status
    and the closed segments checked per case (None: the server does not record)."""
    if not settings.recorder_options.enabled:
        return 0, None
    from .demo_recording import check_recordings

    services = app.state.services
    called = [int(m["call"]["call_seq"]) for m in observer.messages if m["type"] == "case.called"]
    check = await check_recordings(services.engine, services.keyring, settings.recorder_options.root, room, called)
    verified: dict[str, list[str]] = {}
    for segment in check.segments:
        if segment.case_id is not None:
            verified.setdefault(segment.case_id, []).append(segment.segment)
    for problem in check.problems:
        say("recording_bad", problem=problem)
    if check.problems:
        return 1, verified
    say("recording_ok", count=len(check.segments), files=check.files)
    return 0, verified


async def _check_cases(app: Any, room: str, verified: dict[str, list[str]] | None) -> int:
    """Headless: every called case landed in the complaint database from its approved minutes."""
    check = await check_cases(app.state.services.engine, room, verified=verified)
    for problem in check.problems:
        say("cases_bad", problem=problem)
    if check.problems:
        return 1
    say("cases_ok", count=len(check.landed), directives=sum(c.directives for c in check.landed),
        recording="" if verified is None else " và đoạn ghi hình đã kiểm tra toàn vẹn")
    return 0


async def _check_notice(app: Any, room: str) -> int:
    """Headless: the session's conclusion notice is issued and its signatures validate."""
    from .demo_documents import issue_session_notice

    check = await issue_session_notice(app, room)
    for problem in check.problems:
        say("notice_bad", problem=problem)
    if check.problems or check.record is None:
        return 1
    say("notice_ok", number=check.record.number_symbol, id=check.record.id)
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary_table(counts: dict[str, dict[str, int]], names: dict[str, str]) -> str:
    venues = list(counts)
    head = "nhận \\ gửi".ljust(20) + "".join(f"{i:>7}" for i in range(1, len(venues) + 1))
    lines = [head]
    for number, receiver in enumerate(venues, start=1):
        cells = "".join(f"{'—' if s == receiver else counts[receiver].get(s, 0):>7}" for s in venues)
        lines.append(f"{number:>2} {receiver[:17]:<17}{cells}")
    lines.append("")
    lines.extend(f"{number:>2} = {names[v]} ({v})" for number, v in enumerate(venues, start=1))
    return "\n".join(lines)


async def _wait_for_stop(server_task: asyncio.Task[None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, server_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _report(bots: Sequence[VenueBot], loops: Sequence[VenueLoop], session: _Session, seconds: float,
            cpu: float) -> int:
    counts = {bot.name: {v: bot.frames_from.get(v, 0) for v in (b.name for b in bots) if v != bot.name}
              for bot in bots}
    names = {loop.spec.venue: loop.spec.name for loop in loops}
    say("summary", seconds=seconds, cpu=cpu / seconds if seconds > 0 else 0.0)
    print(summary_table(counts, names), flush=True)
    status = 0
    missing = missing_pairs(counts)
    if missing:
        say("missing", pairs=", ".join(f"{p.receiver} ← {p.source}" for p in missing))
        status = 1
    else:
        say("ok")
    problems = call_problems(session.issued, session.published, {bot.name: bot.messages for bot in bots},
                             main=session.main)
    for problem in problems:
        say("calls_bad", problem=problem)
    if problems:
        return 1
    say("calls_ok", count=len(session.published), pages=len(bots))
    return status
