"""The queue at scale: tickets issued by concurrent desks, and call-to-screen latency on every queue board.

Against a real ``tiepdan serve`` (a child process; embedded SQLite and memory bus, or PostgreSQL + Redis with
``--scaled``):

1. ``--venues`` venues (default 100) in two sessions opened with ``tiepdan session open`` (a session takes at
   most ``schedules.MAX_SESSION_VENUES`` = 64 venues, so 100 venues are two parallel sessions of 50), the roll
   call recorded;
2. **issue throughput**: ``--desks`` concurrent desk clients (default 10), each signed in as its own reception
   account, register ``--api-registrations`` citizens (default 300) through ``POST /api/desk/registrations``
   (chip-less typed person, the duplicate check, the case, the reception entry, the ticket: the whole desk
   transaction), spread over the venues; tickets per second over the wall time;
3. the rest of ``--registrations`` (default 5,000 in all) are seeded through the scheduler's service functions
   directly (``complaints.cases.create_case`` + ``schedules.issue_ticket``, one transaction each), so the
   queues are full-sized;
4. the chair's ``call-next`` request time with no board open (announcements synthesised beforehand), the
   baseline of what the boards add;
5. **call-to-screen latency**: one board per venue (100 server-sent-event streams, a display token each)
   receives its snapshot; then ``--calls`` times per phase the chair's ``POST …/queue/call-next`` (alternating
   the two sessions) and the time from just before the request to the ``call`` event on every board of that
   session is measured, then the case is ended (the next call waits until every board shows that end: in a
   real session minutes pass between two calls). Phase "cold": the bench synthesises nothing beforehand (a new
   number is a new text), so a call finds its announcement only if the server prepared it (it synthesises the
   announcement of the number first in the call order after answering each queue action), else synthesises it
   inside the request; phase "warm": the texts of the numbers to be called were synthesised beforehand by the
   bench.

Usage: ``.venv/bin/python bench/queue.py [--scaled] [--venues 100] [--registrations 5000] [--desks 10]
[--api-registrations 300] [--calls 20] [--keep]``. ``--scaled``: a database ``tiepdan_bench_<hex>`` on
127.0.0.1:5432 (user postgres, dropped at the end) and Redis on 127.0.0.1:6379 (a fresh key prefix, deleted).
Results are printed; the ones recorded for the team are in ``bench/README.md``.
"""

# ruff: noqa: E402 - the path fix below must come before the first import that loads ``queue``
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file (bench/queue.py) would shadow
# the standard library's ``queue`` for everything imported after it (asyncio, redis …).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from complaints.cases import create_case
from complaints.enums import PetitionKind
from room_console.accounts import add_user
from schedules import (
    Official,
    SpeechOptions,
    VenueAttendance,
    announcement_text,
    get_session,
    issue_ticket,
    record_roll_call,
    spoken_venue_name,
    synthesize,
)
from schedules.calls import load_queue
from signaling.grants import ROLE_GRANTS, Role
from signaling.tokens import TokenIssuer
from tiepdan.app import load_keyring
from tiepdan.db import make_engine, prepare_database
from tiepdan.settings import Settings
from tiepdan.wiring import console_options

PASSWORD = "Bench-" + secrets.token_urlsafe(12)
SESSIONS = ("phien-bench-a", "phien-bench-b")
DESK = frozenset(ROLE_GRANTS[Role.RECEPTION])
SECRETARY = frozenset(ROLE_GRANTS[Role.SECRETARY])
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


def _now() -> datetime:
    return datetime.now(UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{k[len("TIEPDAN_"):].lower(): v for k, v in env.items() if k.startswith("TIEPDAN_")})


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tiepdan.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tiepdan {' '.join(args[:3])} failed:\n{done.stderr[-2000:]}")


def _venues(count: int) -> list[tuple[str, str]]:
    """The main venue and ``count - 1`` communes (ids and names)."""
    return [("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh")] + [(f"xa-{n:03d}", f"Xã Số {n}") for n in range(1, count)]


async def _prepare(env: dict[str, str], desks: int) -> None:
    settings = _settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        await prepare_database(engine)
        for n in range(desks):
            await add_user(engine, username=f"ban{n:02d}", display_name=f"Bàn tiếp nhận {n}", roles=("reception",),
                           password=PASSWORD, options=console_options(settings), now=time.time())
    finally:
        await engine.dispose()


async def _roll_calls(env: dict[str, str]) -> None:
    engine = make_engine(_settings(env).resolved_database_url)
    try:
        for session in SESSIONS:
            async with engine.begin() as conn:
                record = await get_session(conn, session)
                attendance = [VenueAttendance(v.venue, True, (Official("Nguyễn Văn An", "Chủ tịch UBND xã"),),
                                              0 if v.main else 1) for v in record.venues]
                await record_roll_call(conn, session, attendance=attendance, actor="user:thu-ky", grants=SECRETARY,
                                       clock=_now)
    finally:
        await engine.dispose()


async def _seed(env: dict[str, str], plan: list[tuple[str, str]]) -> float:
    """Issue a ticket for each (session, venue) of ``plan`` through the service functions; seconds taken."""
    engine = make_engine(_settings(env).resolved_database_url)
    started = time.perf_counter()
    try:
        for session, venue in plan:
            async with engine.begin() as conn:
                case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại", now=_now())
                await issue_ticket(conn, session, venue=venue, case=case.id, actor="user:ban-bench", grants=DESK,
                                   clock=_now)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _next_calls(env: dict[str, str], count: int) -> list[str]:
    """The announcement texts of the next ``count`` numbers of each session (to warm the cache)."""
    engine = make_engine(_settings(env).resolved_database_url)
    texts: list[str] = []
    try:
        async with engine.connect() as conn:
            for session in SESSIONS:
                names = {v.venue: v.name for v in (await get_session(conn, session)).venues}
                state, _ = await load_queue(conn, session)
                for ticket in state.order().order[:count]:
                    texts.append(announcement_text(ticket.ticket_no, spoken_venue_name(names[ticket.venue])))
    finally:
        await engine.dispose()
    return texts


class Server:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "server.log").open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "tiepdan.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(self.port)], cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"tiepdan serve exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("tiepdan serve did not become healthy")

    def stop(self) -> float:
        """SIGTERM, and the seconds until the process is gone (open board streams included)."""
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        return time.monotonic() - started


async def _sign_in(http: httpx.AsyncClient, username: str) -> str:
    form = _FORM.search((await http.get("/login")).text)
    assert form is not None
    answer = await http.post("/login", data={"username": username, "password": PASSWORD, "next": "/",
                                             "csrf_token": form.group(1)})
    assert answer.status_code == 303, answer.status_code
    token = _CSRF.search((await http.get("/")).text)
    assert token is not None
    return token.group(1)


async def _desks(base: str, plan: list[tuple[str, str]], desks: int) -> tuple[float, list[float]]:
    """``desks`` signed-in desk clients registering ``plan`` concurrently; (seconds, request times)."""
    work: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
    for i, (session, venue) in enumerate(plan):
        work.put_nowait((i, session, venue))
    times: list[float] = []

    async def desk(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            csrf = await _sign_in(http, f"ban{n:02d}")
            while not work.empty():
                i, session, venue = work.get_nowait()
                body = {"session_id": session, "venue": venue, "triage": "propose_leader",
                        "petitioner": {"full_name": f"Công Dân Thử {i}", "address_detail": f"Thôn {i % 50}"},
                        "petition": {"kind": "complaint", "content": f"Đề nghị giải quyết việc số {i}."}}
                started = time.perf_counter()
                answer = await http.post("/api/desk/registrations", json=body, headers={"x-csrf-token": csrf})
                times.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    raise SystemExit(f"desk registration refused: {answer.status_code} {answer.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(desk(n) for n in range(desks)))
    return time.perf_counter() - started, times


@dataclass
class Boards:
    """One server-sent-event stream per venue; ``arrivals[(session, ticket_no)][venue]`` = perf_counter()."""

    arrivals: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    idle: dict[str, set[str]] = field(default_factory=dict)  # session → venues whose board shows no case
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0

    async def watch(self, http: httpx.AsyncClient, session: str, venue: str, token: str) -> None:
        path = f"/api/sessions/{session}/board/{venue}/events"
        while True:
            async with http.stream("GET", path, headers={"authorization": f"Bearer {token}"}) as response:
                if response.status_code != 200:
                    raise SystemExit(f"board stream refused: {response.status_code}")
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        if event == "call":
                            data = json.loads(line[6:])
                            self.arrivals.setdefault((session, int(data["ticket_no"])), {})[venue] = \
                                time.perf_counter()
                            self.changed.set()
                        elif event == "board":
                            self.ready.add(venue)
                            shown = self.idle.setdefault(session, set())
                            if json.loads(line[6:])["current"] is None:
                                shown.add(venue)
                            else:
                                shown.discard(venue)
                            self.changed.set()
                        elif event in ("end", "reconnect"):
                            self.reconnects += 1
            if event in ("end", "reconnect"):
                return  # (a real board reconnects; the bench stops here)

    async def wait(self, predicate: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def _calls(base: str, boards: Boards | None, chair_token: str, by_session: dict[str, list[str]],
                 count: int) -> tuple[list[float], list[float], list[float]]:
    """``count`` calls alternating the sessions; (call-to-every-board latencies, call-next request times, each
    board's arrival after the call-next response: negative when the board had the number first)."""
    latencies: list[float] = []
    requests: list[float] = []
    after_response: list[float] = []
    headers = {"authorization": f"Bearer {chair_token}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as chair:
        for i in range(count):
            session = SESSIONS[i % len(SESSIONS)]
            if boards is not None:  # the previous case's end is on every board: the system has settled
                await boards.wait(lambda: all(boards.idle.get(s, set()) >= set(v) for s, v in by_session.items()))
            started = time.perf_counter()
            answer = await chair.post(f"/api/sessions/{session}/queue/call-next")
            responded = time.perf_counter()
            requests.append(responded - started)
            if answer.status_code != 200:
                raise SystemExit(f"call next refused: {answer.status_code} {answer.text[:300]}")
            number = int(answer.json()["current"]["ticket_no"])
            venues = by_session[session]
            if boards is None:  # no board open: the request alone
                await chair.post(f"/api/sessions/{session}/queue/end")
                continue
            await boards.wait(lambda s=session, n=number, v=venues: len(boards.arrivals.get((s, n), {})) == len(v))
            latencies.extend(at - started for at in boards.arrivals[(session, number)].values())
            after_response.extend(at - responded for at in boards.arrivals[(session, number)].values())
            ended = await chair.post(f"/api/sessions/{session}/queue/end")
            if ended.status_code != 200:
                raise SystemExit(f"end case refused: {ended.status_code} {ended.text[:300]}")
    return latencies, requests, after_response


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def _drop_pg(name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _create_pg(name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tiepdan-bench-queue-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIEPDAN_")}
    env.update({"TIEPDAN_DATA_DIR": str(workdir / "data"), "TIEPDAN_MODE": "dev", "TIEPDAN_LOG_JSON": "true",
                "TIEPDAN_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
    pg_name = f"tiepdan_bench_{secrets.token_hex(4)}"
    prefix = f"tiepdan-bench-{secrets.token_hex(4)}:"
    if args.scaled:
        await _create_pg(pg_name)
        env.update({"TIEPDAN_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}",
                    "TIEPDAN_REDIS_URL": "redis://127.0.0.1:6379/0", "TIEPDAN_REDIS_PREFIX": prefix})
    server: Server | None = None
    try:
        print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}; Python {platform.python_version()}; "
              f"{'PostgreSQL + Redis' if args.scaled else 'SQLite + memory bus'}", flush=True)
        await _prepare(env, args.desks)
        venues = _venues(args.venues)
        half = (len(venues) + 1) // 2
        # the main venue takes part in both sessions; the communes are shared out
        by_session = {SESSIONS[0]: [v for v, _ in venues[:half]],
                      SESSIONS[1]: [venues[0][0]] + [v for v, _ in venues[half:]]}
        names = dict(venues)
        for session, ids in by_session.items():
            _cli(env, "session", "open", session, *[f"--venue={v}={names[v]}" for v in ids])
        await _roll_calls(env)
        server = Server(env, workdir)
        server.wait_healthy()

        plan = [(SESSIONS[i % 2], by_session[SESSIONS[i % 2]][1 + (i // 2) % (len(by_session[SESSIONS[i % 2]]) - 1)])
                for i in range(args.registrations)]
        api_plan, seed_plan = plan[:args.api_registrations], plan[args.api_registrations:]
        wall, times = await _desks(server.url, api_plan, args.desks)
        print(f"desk API: {len(api_plan)} registrations by {args.desks} concurrent desks in {wall:.1f} s: "
              f"{len(api_plan) / wall:.1f} tickets/s; request p50 {1000 * statistics.median(times):.0f} ms, "
              f"p99 {1000 * _pct(times, 99):.0f} ms", flush=True)
        seeded = await _seed(env, seed_plan)
        print(f"service: {len(seed_plan)} tickets seeded through schedules.issue_ticket in {seeded:.1f} s "
              f"({len(seed_plan) / max(seeded, 1e-9):.0f} tickets/s, one process, sequential)", flush=True)

        settings = _settings(env)
        issuer = TokenIssuer(load_keyring(settings), settings.token_options)
        chair_token = issuer.issue("bench-chair", roles=[Role.CHAIR], venue="tru-so-tinh", ttl_s=3600,
                                   audience="api")
        speech = SpeechOptions(cache_dir=settings.data_dir / "announcements")
        for text in await _next_calls(env, args.calls):
            await asyncio.to_thread(synthesize, text, speech)
        _, alone, _ = await _calls(server.url, None, chair_token, by_session, args.calls)
        print(f"call-next request with no board open (warm, {args.calls} calls): p50 "
              f"{1000 * statistics.median(alone):.0f} ms, p99 {1000 * _pct(alone, 99):.0f} ms", flush=True)
        boards = Boards()
        limits = httpx.Limits(max_connections=args.venues + 50, max_keepalive_connections=args.venues + 50)
        async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(60, read=120), limits=limits) as http:
            # one board per venue: the main venue's in session A, every commune's in its session
            watched = [(session, v) for session, ids in by_session.items() for v in ids
                       if not (session == SESSIONS[1] and v == venues[0][0])]
            tasks = [asyncio.create_task(boards.watch(http, s, v, issuer.issue(
                f"bench-display-{v}", roles=[Role.DISPLAY], venue=v, ttl_s=3600, audience="api")))
                for s, v in watched]
            opened = time.perf_counter()
            await boards.wait(lambda: len(boards.ready) == len(watched), timeout=120)
            print(f"boards: {len(watched)} streams, every first snapshot in {time.perf_counter() - opened:.2f} s",
                  flush=True)
            watching = {s: [v for ws, v in watched if ws == s] for s in SESSIONS}
            results: dict[str, tuple[list[float], list[float], list[float]]] = {}
            results["cold"] = await _calls(server.url, boards, chair_token, watching, args.calls)
            for text in await _next_calls(env, args.calls):
                await asyncio.to_thread(synthesize, text, speech)
            results["warm"] = await _calls(server.url, boards, chair_token, watching, args.calls)
            for phase, (latencies, requests, after) in results.items():
                print(f"call-to-screen ({phase}, {args.calls} calls × {len(watched) // 2} boards): "
                      f"p50 {1000 * statistics.median(latencies):.0f} ms, p99 {1000 * _pct(latencies, 99):.0f} ms, "
                      f"max {1000 * max(latencies):.0f} ms; call-next request p50 "
                      f"{1000 * statistics.median(requests):.0f} ms, p99 {1000 * _pct(requests, 99):.0f} ms; "
                      f"board after the response p50 {1000 * statistics.median(after):.0f} ms, "
                      f"p99 {1000 * _pct(after, 99):.0f} ms", flush=True)
            stopped = await asyncio.to_thread(server.stop)  # the boards go on reading meanwhile
            print(f"shutdown with {len(watched)} open board streams: {stopped:.2f} s "
                  f"(streams told to reconnect: {boards.reconnects})", flush=True)
            server = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if server is not None:
            server.stop()
        if args.scaled and not args.keep:
            await _drop_pg(pg_name)
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            try:
                keys = list(client.scan_iter(match=f"{prefix}*", count=500))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept: {workdir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scaled", action="store_true", help="PostgreSQL + Redis instead of SQLite + memory bus")
    parser.add_argument("--venues", type=int, default=100)
    parser.add_argument("--registrations", type=int, default=5000)
    parser.add_argument("--desks", type=int, default=10)
    parser.add_argument("--api-registrations", type=int, default=300)
    parser.add_argument("--calls", type=int, default=20, help="calls per phase (cold, warm)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not 4 <= args.venues <= 2 * 64 - 1:
        parser.error("--venues must be between 4 and 127 (two sessions of at most 64 venues)")
    if not 0 < args.api_registrations <= args.registrations:
        parser.error("--api-registrations must be between 1 and --registrations")
    if args.calls < 1 or 3 * args.calls > args.registrations:
        parser.error("--calls must be between 1 and a third of --registrations (three phases)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
