"""``tiepdan demo``: the whole live room on one machine, with bots for the main venue and the communes.

What it does, in order:

1. renders each venue's loop once into ``<data_dir>/demo/`` (:mod:`tiepdan.bots.loops`: 10 s at 15 fps, the
   venue's name and a clock burned in, a 640×360 and a 320×180 VP8 layer, a quiet Opus tone); later runs
   read the files back, so the bots only re-packetise;
2. starts the server in this process (uvicorn, the app of ``tiepdan serve``). ``--headless`` runs it on a
   temporary data directory (SQLite, development keyring; removed at the end) so that CI leaves nothing;
   otherwise it uses the settings as they are (``./data`` by default);
3. opens a demo session (``SessionOpened`` on the bus): the main venue and ``--venues`` communes;
4. issues a token per venue with the app's real :class:`~signaling.tokens.TokenIssuer` (the main venue's bot
   is the chair) and starts a :class:`~tiepdan.bots.venue_bot.VenueBot` per venue: it joins, publishes both
   layers and the tone, and subscribes with two video slots and one audio slot (``DemoOptions``). The room
   server shows each venue's ``camera`` (high) layer; the ``camera-low`` layer is published too, for when
   the layout picks layers (the room server does not yet);
5. the chair's bot gives the floor to each commune in turn, then back to the main venue (``--headless``:
   at once, the turns share what is left of ``--duration``; otherwise every ``--rotate`` seconds, 15 by
   default), so every venue is large for a while and the slots move without renegotiation. The two video
   slots are the floor holder and the chair's venue: a bot decodes every other venue during its turn;
   nine bots × eight full slots would need more than the one core the bots and the SFU share here;
6. ``--headless``: after ``--duration`` seconds, prints per bot how many frames it decoded from each other
   venue (the decoded picture's centre colour names the venue, so the count proves what arrived, not
   which slot it was meant for) and exits 0 only when every bot decoded frames of every other venue;
   otherwise prints the console's address and runs until Ctrl-C.

All bots and the SFU use loopback only (aioice never offers 127.0.0.1 by itself: the demo lets it), unless
``--lan`` (then venues on the network could reach the SFU).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from signaling.events import SessionOpened, VenueInfo
from signaling.grants import Role

from .bots.loops import PALETTE, LoopSpec, VenueLoop, render_tone, render_venue_loop
from .bots.media import Clip
from .bots.venue_bot import RequestRefused, VenueBot
from .session_cli import open_unless_known
from .settings import Settings

__all__ = ["DemoOptions", "DEMO_VENUES", "run_demo", "Pair", "missing_pairs"]

ROOM = "phien-trinh-dien"
#: the console account a person uses to chair the demo (interactive runs)
DEMO_CHAIR = "chutri-demo"
TOKEN_TTL_S = 12 * 3600

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

MAIN_SUBTITLE = "Điểm cầu chính — chủ trì phiên tiếp công dân"
SUBTITLE = "Điểm cầu tiếp công dân trực tuyến"

#: what the demo tells a person (Vietnamese; one place)
MESSAGES: dict[str, str] = {
    "rendering": "tiepdan demo: đang dựng hình {count} đoạn lặp 10 giây vào {path} (chỉ lần đầu)…",
    "rendered": "tiepdan demo: hình đã sẵn sàng ({seconds:.1f} giây)",
    "server": "tiepdan demo: máy chủ chạy tại {url} (dữ liệu: {data})",
    "joined": "tiepdan demo: {count} điểm cầu đã vào phiên «{room}» và đang gửi hình, tiếng",
    "chair": "Trang của chủ trì: {url}/phien/{room}\n"
             "  đăng nhập bằng tài khoản «{username}», mật khẩu «{password}» (mật khẩu mới mỗi lần chạy demo).\n"
             "  Máy chủ trì của demo trao quyền phát biểu lần lượt cho từng điểm cầu cho đến khi bạn vào phiên.",
    "stop": "Nhấn Ctrl-C để dừng.",
    "floor": "tiepdan demo: trao quyền phát biểu cho {name}",
    "summary": "Số khung hình mỗi điểm cầu đã giải mã, theo điểm cầu gửi ({seconds:.0f} giây, CPU trung bình "
               "{cpu:.2f} nhân):",
    "ok": "tiepdan demo: đạt — mọi điểm cầu đã nhận hình của mọi điểm cầu khác",
    "missing": "tiepdan demo: KHÔNG ĐẠT — thiếu hình: {pairs}",
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
    """seconds between floor changes (None: the rest of ``duration`` shared by the venues headless, else 15 s)"""
    lan: bool = False
    video_slots: int = 2
    """video slots per bot (floor holder and chair; the rotation shows everyone)"""
    audio_slots: int = 1


@dataclass(frozen=True)
class Pair:
    receiver: str
    source: str


def missing_pairs(counts: dict[str, dict[str, int]]) -> list[Pair]:
    """The (receiver, source) pairs with no decoded frame; ``counts``: receiver → source → frames."""
    return [Pair(receiver, source) for receiver in counts for source in counts
            if source != receiver and counts[receiver].get(source, 0) <= 0]


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


async def _open_session(app: Any, venues: Sequence[LoopSpec]) -> None:
    services = app.state.services
    infos = tuple(VenueInfo(venue=s.venue, name=s.name, main=i == 0) for i, s in enumerate(venues))
    async with services.engine.begin() as conn:  # the console lists the sessions the scheduler holds live
        await open_unless_known(conn, ROOM, infos)
    await services.bus.publish(SessionOpened(session=ROOM, venues=infos))  # an earlier run's session too
    room_server = app.state.room_server
    async with asyncio.timeout(10):
        while room_server.room(ROOM) is None:
            await asyncio.sleep(0.05)


async def _start_bots(app: Any, url: str, loops: Sequence[VenueLoop], tone: Clip,
                      options: DemoOptions) -> list[VenueBot]:
    issuer = app.state.services.issuer
    palette = {loop.spec.venue: loop.centre_yuv for loop in loops}
    bots: list[VenueBot] = []
    for i, loop in enumerate(loops):
        role = Role.CHAIR if i == 0 else Role.VENUE
        token = issuer.issue(f"demo:{loop.spec.venue}", roles=[role], room=ROOM, venue=loop.spec.venue,
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


async def _rotate_floor(chair: VenueBot, loops: Sequence[VenueLoop], every: float, *, quiet: bool,
                        immediately: bool) -> None:
    """The chair gives the floor to each commune in turn, then takes it back to the main venue; again."""
    order = [loop.spec for loop in loops[1:]] + [loops[0].spec]
    index = 0
    if not immediately:
        await asyncio.sleep(every)
    while True:
        if _someone_else_chairs(chair):
            return  # a person chairs now (the console's chair page): the floor is theirs to give
        spec = order[index % len(order)]
        index += 1
        await chair.send({"type": "floor.give", "venue": spec.venue})
        if not quiet:
            say("floor", name=spec.name)
        await asyncio.sleep(every)


def _someone_else_chairs(chair: VenueBot) -> bool:
    """Whether a participant with the chair role other than the demo's chair bot is in the room."""
    return any(m["type"] == "presence.joined" and "chair" in m["participant"].get("roles", ())
               and m["participant"].get("participant") != chair.participant for m in chair.messages)


async def _demo_chair_account(app: Any) -> str:
    """The console account a person chairs the demo with (chair role, no venue: it watches and moderates);
    a new random password each run, which is printed. Development data only."""
    from room_console.accounts import add_user, get_user_by_username, set_password

    from .wiring import console_options

    services = app.state.services
    options = console_options(services.settings)
    password = secrets.token_urlsafe(12)
    async with services.engine.connect() as conn:
        existing = await get_user_by_username(conn, DEMO_CHAIR)
    if existing is None:
        await add_user(services.engine, username=DEMO_CHAIR, display_name="Chủ trì phiên trình diễn",
                       roles=["chair"], password=password, options=options, now=time.time())
    else:
        await set_password(services.engine, existing.id, password, options=options)
    return password


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


async def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo (see the module docstring); the exit status."""
    if not 1 <= options.venues <= len(DEMO_VENUES) - 1:
        raise ValueError(f"--venues phải từ 1 đến {len(DEMO_VENUES) - 1}")
    if options.headless and options.duration <= 0:
        raise ValueError("--duration phải lớn hơn 0")
    specs = _specs(options.venues)
    loops, tone = await asyncio.to_thread(_render_all, settings.data_dir / "demo", specs)
    with contextlib.ExitStack() as cleanup:
        data_dir: Path | None = None
        if options.headless:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tiepdan-demo-")))
        server_settings = _server_settings(settings, options, data_dir)
        try:
            return await _run(server_settings, options, loops, tone)
        except (OSError, TimeoutError, ConnectionError, RequestRefused, RuntimeError) as exc:
            say("failed", error=f"{type(exc).__name__}: {exc}")
            return 1


async def _run(settings: Settings, options: DemoOptions, loops: list[VenueLoop], tone: Clip) -> int:
    server, server_task, app = await _start_server(settings)
    base = f"http://{settings.host}:{settings.port}"
    bots: list[VenueBot] = []
    rotation: asyncio.Task[None] | None = None
    try:
        say("server", url=base, data=settings.data_dir)
        await _open_session(app, [loop.spec for loop in loops])
        started, cpu_started = time.monotonic(), _cpu_seconds()
        bots = await _start_bots(app, f"ws://127.0.0.1:{settings.port}/ws?room={ROOM}", loops, tone, options)
        say("joined", count=len(bots), room=ROOM)
        if options.headless:  # every venue's turn fits in what is left of --duration
            left = options.duration - (time.monotonic() - started)
            every = options.rotate_s or max(0.5, left / len(loops))
        else:
            every = options.rotate_s or 15.0
        rotation = asyncio.create_task(_rotate_floor(bots[0], loops, every, quiet=options.headless,
                                                     immediately=options.headless), name="demo-floor")
        if options.headless:
            remaining = options.duration - (time.monotonic() - started)
            done, _ = await asyncio.wait({server_task}, timeout=max(0.0, remaining))
            if done:
                raise RuntimeError("the server stopped during the demo")
            return _report(bots, loops, time.monotonic() - started, _cpu_seconds() - cpu_started)
        password = await _demo_chair_account(app)
        say("chair", url=base, room=ROOM, username=DEMO_CHAIR, password=password)
        say("stop")
        await _wait_for_stop(server_task)
        say("stopping")
        return 0
    finally:
        if rotation is not None:
            rotation.cancel()
            await asyncio.gather(rotation, return_exceptions=True)
        await asyncio.gather(*(bot.close() for bot in bots), return_exceptions=True)
        server.should_exit = True
        await asyncio.gather(server_task, return_exceptions=True)


def _report(bots: Sequence[VenueBot], loops: Sequence[VenueLoop], seconds: float, cpu: float) -> int:
    counts = {bot.name: {v: bot.frames_from.get(v, 0) for v in (b.name for b in bots) if v != bot.name}
              for bot in bots}
    names = {loop.spec.venue: loop.spec.name for loop in loops}
    say("summary", seconds=seconds, cpu=cpu / seconds if seconds > 0 else 0.0)
    print(summary_table(counts, names), flush=True)
    missing = missing_pairs(counts)
    if missing:
        say("missing", pairs=", ".join(f"{p.receiver} ← {p.source}" for p in missing))
        return 1
    say("ok")
    return 0
