"""The shared test harness (a pytest plugin, registered in ``tests/conftest.py``).

Fixtures every later issue reuses:

* ``live_server`` (session): ``tiepdan serve`` in a subprocess on a free port, embedded mode
  (SQLite + memory bus) under a temporary data dir, with the test accounts of :data:`TEST_USERS`
  created before it starts. Gives ``.base_url``, ``.url(path)``, ``.users[key]``, ``.add_user(...)``,
  ``.login(page, key)`` (through the real login form), ``with .http_client(key) as (client, csrf)``
  (a signed-in ``httpx.Client`` and its CSRF token) and ``.log_text()``.
* ``server_factory`` (session): ``start(env={...}, users=..., args=...)`` for another server, e.g. on
  PostgreSQL and Redis (``TIEPDAN_DATABASE_URL`` / ``TIEPDAN_REDIS_URL``); stopped at the end. The
  scaled topology is several of them on one ``env`` (database, Redis and its prefix, and one
  ``TIEPDAN_KEYRING_PATH``), e.g. ``args=("--role", "control")`` with accounts and
  ``args=("--role", "media"), users=[]``; ``.wait_room(room)`` on a media process,
  ``.ws_handshake(room, bearer=… | connect_ticket=…)`` gives the status and refusal code of ``/ws``.
* ``browser`` (session): one headless Debian Chromium driven by Playwright (sync API, so browser
  tests are plain ``def`` tests), fake camera and microphone; ``browser_context`` / ``page``: a
  fresh context per test; ``launch_browser(fake_video=Path, extra_args=...)`` (session) launches
  more browsers, e.g. with ``--use-file-for-fake-video-capture``; ``artifacts_dir``: where
  screenshots go (``test-artifacts/``). Browser tests are ordered after all other tests (see
  :func:`pytest_collection_modifyitems`), and must be marked ``browser``.

Playwright never downloads a browser: when ``/usr/bin/chromium`` is missing the harness runs
``scripts/ensure-system-packages.sh`` (Debian's ``chromium``).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

    from tiepdan.settings import Settings

__all__ = ["TestUser", "LiveServer", "TEST_USERS", "CHROMIUM", "CHROMIUM_ARGS", "REPO_ROOT", "ARTIFACTS_DIR"]

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream=fps=30",
)
STARTUP_TIMEOUT_S = 30.0
T = TypeVar("T")


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a test class, despite the name

    username: str
    password: str
    name: str
    roles: tuple[str, ...]
    venue: str | None = None
    unit: str | None = None


# Created in every live server before it starts. Passwords are per run, never reused elsewhere.
_RUN_PASSWORD = "Mk-" + secrets.token_urlsafe(12)
TEST_USERS: dict[str, TestUser] = {
    "admin": TestUser("quantri", _RUN_PASSWORD, "Nguyễn Văn Quản", ("admin",)),
    "chair": TestUser("chutri", _RUN_PASSWORD, "Trần Văn Chủ", ("chair",), venue="main"),
    "secretary": TestUser("thuky", _RUN_PASSWORD, "Lê Thị Thư", ("secretary",), venue="main"),
    "venue": TestUser("diemcau", _RUN_PASSWORD, "Phạm Văn Điểm", ("venue",), venue="tien-du"),
    "auditor": TestUser("thanhtra", _RUN_PASSWORD, "Hoàng Thị Tra", ("auditor",)),
}


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh loop in a helper thread (usable from sync and async tests)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="harness-coroutine")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    # The developer's own TIEPDAN_* variables never leak into a test server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIEPDAN_")}
    env.update({"TIEPDAN_DATA_DIR": str(data_dir), "TIEPDAN_MODE": "dev", "TIEPDAN_LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1",
                # the SFU offers 127.0.0.1 (aioice never does by itself): Chromium reaches it on loopback
                "TIEPDAN_MEDIA_HOST_ADDRESSES": "127.0.0.1"})
    env.update(extra)
    return env


def _settings(env: dict[str, str]) -> Settings:
    """The settings a server started with ``env`` reads."""
    from tiepdan.settings import Settings

    values = {k[len("TIEPDAN_"):].lower(): v for k, v in env.items() if k.startswith("TIEPDAN_")}
    return Settings(**values)  # type: ignore[arg-type]


async def _create_users(env: dict[str, str], users: Sequence[TestUser]) -> None:
    from room_console.accounts import add_user
    from tiepdan.db import make_engine, prepare_database
    from tiepdan.wiring import console_options

    settings = _settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        await prepare_database(engine)
        for user in users:
            await add_user(engine, username=user.username, display_name=user.name, roles=user.roles,
                           password=user.password, unit=user.unit, venue=user.venue,
                           options=console_options(settings), now=time.time())
    finally:
        await engine.dispose()


async def _add_to_outbox(env: dict[str, str], event: Any) -> None:
    from signaling.outbox import add_to_outbox
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.begin() as conn:
            await add_to_outbox(conn, event)
    finally:
        await engine.dispose()


_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class LiveServer:
    """A running ``tiepdan serve`` subprocess."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]
    users: dict[str, TestUser] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def add_user(self, username: str, *, name: str, roles: Sequence[str], password: str | None = None,
                 venue: str | None = None, unit: str | None = None) -> TestUser:
        """Create another account in the running server's database."""
        user = TestUser(username, password or _RUN_PASSWORD, name, tuple(roles), venue=venue, unit=unit)
        run_coroutine(_create_users(self.env, [user]))
        return user

    def _user(self, who: str | TestUser) -> TestUser:
        return who if isinstance(who, TestUser) else self.users[who]

    def login(self, page: Page, who: str | TestUser) -> None:
        """Sign ``who`` (a key of ``users`` or a TestUser) in through the real login form of ``page``."""
        user = self._user(who)
        page.goto(self.url("/login"))
        page.fill("#username", user.username)
        page.fill("#password", user.password)
        with page.expect_navigation():
            page.click("button[type=submit]")

    @contextmanager
    def http_client(self, who: str | TestUser) -> Iterator[tuple[httpx.Client, str]]:
        """``with server.http_client("admin") as (client, csrf):`` a signed-in ``httpx.Client`` and the
        CSRF token to send as ``X-CSRF-Token`` (or the ``csrf_token`` form field)."""
        user = self._user(who)
        with httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=10) as client:
            form = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None, "login form without a CSRF token"
            response = client.post("/login", data={"username": user.username, "password": user.password,
                                                   "csrf_token": token.group(1), "next": "/"})
            assert response.status_code == 303, f"login failed with {response.status_code}"
            csrf = _CSRF_RE.search(client.get("/").text)
            assert csrf is not None, "page without a CSRF token"
            yield client, csrf.group(1)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``tiepdan <args>`` against this server's settings (same database, keyring, data dir)."""
        return subprocess.run([sys.executable, "-m", "tiepdan.cli", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _chair_token(self, room: str) -> str:
        minted = self.cli("token", "--role", "chair", "--room", room, "--ttl", "60")
        assert minted.returncode == 0, minted.stderr
        return minted.stdout.strip()

    def _room_status(self, room: str, token: str | None = None) -> int:
        """HTTP status of a WebSocket handshake to ``room`` as its chair: 101 open, 404 unknown, 410 closed."""
        return self.ws_handshake(room, bearer=token or self._chair_token(room))[0]

    def ws_url(self, room: str, *, connect_ticket: str | None = None) -> str:
        """The ``/ws`` URL of ``room``, with a connect ticket (``&connect=``) when given."""
        return (self.base_url.replace("http://", "ws://") + f"/ws?room={room}"
                + (f"&connect={connect_ticket}" if connect_ticket else ""))

    def ws_handshake(self, room: str, *, bearer: str | None = None,
                     connect_ticket: str | None = None) -> tuple[int, str]:
        """A WebSocket handshake to ``room`` with a bearer token or a connect ticket, closed at once: (101, "") when
        accepted, else the refusal's HTTP status and ``code`` (docs/protocol.md §1)."""
        import json

        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            with connect(self.ws_url(room, connect_ticket=connect_ticket), additional_headers=headers, open_timeout=5):
                return 101, ""
        except InvalidStatus as exc:
            code = json.loads(exc.response.body or b"{}").get("code", "")
            return exc.response.status_code, str(code)

    def publish(self, event: Any) -> None:
        """Put ``event`` in this server's outbox (its database), as the service that owns it would; the
        server's relay publishes it on its bus within its poll interval."""
        run_coroutine(_add_to_outbox(self.env, event))

    def open_session(self, room: str, venues: Sequence[tuple[str, str]], *, timeout: float = 15,
                     caps: Mapping[str, int] | None = None) -> None:
        """Open the live room ``room`` (``tiepdan session open``) with ``venues`` (id, name) in order, the
        first being the main venue, and ``caps`` (venue → kbps, ``--cap``); return once the server has it open."""
        done = self.cli("session", "open", room, *[f"--venue={v}={n}" for v, n in venues],
                        *[f"--cap={v}={kbps}" for v, kbps in (caps or {}).items()])
        assert done.returncode == 0, done.stderr
        self.wait_room(room, 101, timeout)

    def close_session(self, room: str, *, timeout: float = 15) -> None:
        done = self.cli("session", "close", room)
        assert done.returncode == 0, done.stderr
        self.wait_room(room, 410, timeout)

    def wait_room(self, room: str, status: int = 101, timeout: float = 15) -> None:
        """Wait until this server answers a chair's handshake to ``room`` with ``status`` (101: open here;
        with control and media in separate processes, ask the media process)."""
        deadline = time.monotonic() + timeout
        token = self._chair_token(room)  # one token for every poll (a CLI run costs about a second)
        while (seen := self._room_status(room, token)) != status:
            if time.monotonic() > deadline:  # the server's own account of the room, for a rare failure
                lines = [line for line in self.log_text().splitlines()
                         if room in line or '"level": "WARNING"' in line or '"level": "ERROR"' in line]
                raise AssertionError(f"room {room}: status {seen}, expected {status}; the server's log lines "
                                     "naming the room, its warnings and errors:\n" + "\n".join(lines[-40:]))
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(data_dir: Path, *, env: dict[str, str] | None = None,
                 users: Sequence[TestUser] | None = None, args: Sequence[str] = ()) -> LiveServer:
    """Start ``tiepdan serve`` (after creating ``users``, default :data:`TEST_USERS`) and wait for
    ``/healthz``; the caller stops it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = _clean_env(data_dir, env or {})
    chosen = list(TEST_USERS.values()) if users is None else list(users)
    if chosen:
        run_coroutine(_create_users(full_env, chosen))
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tiepdan.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, full_env, log_path, process,
                        {key: u for key, u in TEST_USERS.items() if u in chosen})
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"tiepdan serve exited with {process.returncode}:\n{server.log_text()[-4000:]}")
        try:
            if httpx.get(server.url("/healthz"), timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"tiepdan serve did not become healthy:\n{server.log_text()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(*, env: dict[str, str] | None = None, users: Sequence[TestUser] | None = None,
              args: Sequence[str] = ()) -> LiveServer:
        server = start_server(tmp_path_factory.mktemp("server"), env=env, users=users, args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def live_server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    """The embedded-mode server of this test session, with :data:`TEST_USERS`."""
    return server_factory()


# -- Chromium ---------------------------------------------------------------------------------------


#: The kinds of test (pyproject.toml's markers); each test is of exactly one, its closest such marker.
KINDS = ("unit", "integration", "media", "browser", "system")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kinds", default=",".join(KINDS), metavar="KIND,...",
                     help="run only tests of these kinds (closest marker among " + ", ".join(KINDS) + "); "
                     "`make pytest` runs unit,integration on two workers, then the rest one at a time")


def kind_of(item: pytest.Item) -> str | None:
    """The kind of a test: the closest of :data:`KINDS` among its markers (a test's own marker wins over
    its module's ``pytestmark``; a parameter's over both)."""
    return next((mark.name for mark in item.iter_markers() if mark.name in KINDS), None)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if kind_of(item) is None]
    if unmarked:
        raise pytest.UsageError("every test needs one of the markers " + ", ".join(KINDS) + "; these have none:\n  "
                                + "\n  ".join(unmarked))
    wanted = {kind.strip() for kind in str(config.getoption("--kinds")).split(",") if kind.strip()}
    if not wanted <= set(KINDS):
        unknown = ", ".join(sorted(wanted - set(KINDS)))
        raise pytest.UsageError(f"--kinds takes some of {', '.join(KINDS)}, not {unknown}")
    if wanted != set(KINDS):
        deselected = [item for item in items if kind_of(item) not in wanted]
        items[:] = [item for item in items if kind_of(item) in wanted]
        config.hook.pytest_deselected(items=deselected)
    # Playwright's sync API keeps its event loop set on the main thread while the session browser is
    # open, and async tests cannot start a loop then: every ``browser`` test runs after the others.
    items.sort(key=lambda item: kind_of(item) == "browser")
    for item in items:  # read back from each test's reports (on the controller too, under xdist)
        item.user_properties.append(("kind", kind_of(item)))


#: each kind's share of the suite's 15 minutes, in seconds of wall time (the team's budget)
BUDGET_S = {"unit": 120, "integration": 180, "media": 180, "browser": 240, "system": 180}


class KindTimes:
    """Seconds spent in the tests of each kind (setup, call and teardown), summed over the run's workers."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.tests: dict[str, int] = {}

    def add(self, report: pytest.TestReport) -> None:
        kind = dict(report.user_properties).get("kind")
        if isinstance(kind, str):
            self.seconds[kind] = self.seconds.get(kind, 0.0) + report.duration
            if report.when == "call":
                self.tests[kind] = self.tests.get(kind, 0) + 1

    def lines(self, workers: int) -> list[str]:
        """One line per kind that ran: its tests, its seconds and, spread over ``workers``, the wall time it
        took against :data:`BUDGET_S`."""
        out = []
        for kind in KINDS:
            if kind not in self.seconds:
                continue
            wall = self.seconds[kind] / max(1, workers)
            over = "  OVER BUDGET" if wall > BUDGET_S[kind] else ""
            out.append(f"{kind:12s} {self.tests.get(kind, 0):5d} tests  {self.seconds[kind]:7.1f} s in tests"
                       f"  ~{wall:6.1f} s of wall time on {workers} worker(s)  (budget {BUDGET_S[kind]} s){over}")
        return out


class _KindClock:
    """The plugin that times each kind of test and prints the times after the run (under xdist, on the
    controller: the workers' reports carry each test's kind)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.times = KindTimes()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.times.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        option = self.config.option
        workers = int(getattr(option, "numprocesses", 0) or 0) if getattr(option, "dist", "no") != "no" else 0
        lines = self.times.lines(workers or 1)
        if lines:
            terminalreporter.section("time by kind of test")
            for line in lines:
                terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist): it sees every report
        config.pluginmanager.register(_KindClock(config), "tiepdan-kind-clock")


def ensure_chromium() -> str:
    if not Path(CHROMIUM).exists():
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ensure-system-packages.sh")], check=True)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing and could not be installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    ensure_chromium()
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="session")
def launch_browser(playwright_driver: Playwright) -> Iterator[Callable[..., Browser]]:
    """Launch another Chromium: ``launch_browser(fake_video=path_to_y4m, extra_args=[...])``."""
    launched: list[Browser] = []

    def launch(*, fake_video: Path | None = None, extra_args: Sequence[str] = ()) -> Browser:
        args = list(CHROMIUM_ARGS)
        if fake_video is not None:
            args.append(f"--use-file-for-fake-video-capture={fake_video}")
        args.extend(extra_args)
        browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        launched.append(browser)
        return browser

    yield launch
    for browser in launched:
        browser.close()


@pytest.fixture(scope="session")
def browser(launch_browser: Callable[..., Browser]) -> Browser:
    """The one Chromium of this test session (fake camera and microphone)."""
    return launch_browser()


@pytest.fixture
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 800})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    return browser_context.new_page()
