"""The scaled topology in real processes (PostgreSQL + Redis): a control process (console) and two media
processes (room servers). Signing out or disabling the account in the control process ends the
session's live-room tokens and connections on both media processes, which learn it through the outbox,
the bus and the room store, never from the control process's memory."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from signaling.connect_tickets import RedisConnectTicketStore
from tests.harness import LiveServer, run_coroutine

pytestmark = pytest.mark.integration

ROOM = "phien-2026-12-10"
DEADLINE_S = 5.0  # what the test tolerates on a busy machine; the design takes about a second


@pytest.fixture(scope="module")
def topology(server_factory: Callable[..., LiveServer], module_pg_url: str, redis_base_url: str,
             redis_run_prefix: str, tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[LiveServer, LiveServer, LiveServer]:
    """Control, a media process that opens the room, and a second media process started afterwards (the
    tests share them, each with its own accounts)."""
    keys = tmp_path_factory.mktemp("keys") / "keyring.json"
    env = {"TIEPDAN_DATABASE_URL": module_pg_url, "TIEPDAN_REDIS_URL": redis_base_url,
           "TIEPDAN_REDIS_PREFIX": f"{redis_run_prefix}{secrets.token_hex(3)}:", "TIEPDAN_KEYRING_PATH": str(keys)}
    control = server_factory(env=env, args=("--role", "control"))
    media = server_factory(env=env, users=[], args=("--role", "media"))
    done = control.cli("session", "open", ROOM, "--venue=main=Trụ sở Tiếp công dân tỉnh",
                       "--venue=tien-du=Điểm cầu xã Tiên Du")
    assert done.returncode == 0, done.stderr
    media.wait_room(ROOM)
    second = server_factory(env=env, users=[], args=("--role", "media"))
    second.wait_room(ROOM)  # restored from the room store
    return control, media, second


def _connect_ticket(client: httpx.Client, csrf: str) -> str:
    response = client.post("/api/live/connect-ticket", json={"room": ROOM}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    connect_ticket: str = response.json()["connect_ticket"]
    return connect_ticket


def _token(control: LiveServer, client: httpx.Client, csrf: str) -> str:
    """The live-room token a connect ticket of the control process stands for (read as ``/ws`` redeems it)."""
    connect_ticket = _connect_ticket(client, csrf)

    async def redeem() -> str | None:
        redis = Redis.from_url(control.env["TIEPDAN_REDIS_URL"])
        try:
            return await RedisConnectTicketStore(redis, control.env["TIEPDAN_REDIS_PREFIX"]).redeem(connect_ticket)
        finally:
            await redis.aclose()

    token = run_coroutine(redeem())
    assert token is not None
    return token


@contextmanager
def _joined(media: LiveServer, connect_ticket: str) -> Iterator[ClientConnection]:
    with connect(media.ws_url(ROOM, connect_ticket=connect_ticket), open_timeout=5) as ws:
        ws.send(json.dumps({"type": "join", "protocol": 1}))
        while json.loads(ws.recv(timeout=5))["type"] != "welcome":
            pass
        yield ws


def _close_code(ws: ClientConnection, started: float) -> tuple[int | None, float]:
    """Read until the server closes the connection: its close code, and the seconds since ``started``."""
    try:
        while True:
            ws.recv(timeout=max(0.01, started + DEADLINE_S - time.monotonic()))
    except ConnectionClosed:
        return ws.close_code, time.monotonic() - started
    except TimeoutError:
        return None, DEADLINE_S


def _refused_after(media: LiveServer, token: str, expected: tuple[int, str], started: float) -> float:
    while (seen := media.ws_handshake(ROOM, bearer=token)) != expected:
        assert time.monotonic() - started < DEADLINE_S, f"{media.base_url}: {seen} instead of {expected}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_signing_out_in_the_control_process_ends_the_sessions_live_tokens_on_every_media_process(
        topology: tuple[LiveServer, LiveServer, LiveServer]) -> None:
    control, media, second = topology
    with control.http_client("venue") as (official, csrf), control.http_client("venue") as (elsewhere, csrf2):
        live = _token(control, official, csrf)
        other = _token(control, elsewhere, csrf2)
        assert control.ws_handshake(ROOM, bearer=live) == (503, "internal")  # control serves no live room
        for node in (media, second):
            assert node.ws_handshake(ROOM, bearer=live) == (101, "")
        refused = httpx.get(control.url("/api/cases"), headers={"authorization": f"Bearer {live}"})
        assert refused.status_code == 401 and refused.json()["error"] == "not_signed_in"

        with _joined(media, _connect_ticket(official, csrf)) as on_media, \
                _joined(second, _connect_ticket(official, csrf)) as on_second:
            started = time.monotonic()
            assert official.post("/logout", data={"csrf_token": csrf}).status_code == 303
            closes = [_close_code(ws, started) for ws in (on_media, on_second)]
        assert [code for code, _ in closes] == [4006, 4006]
        refusals = [_refused_after(node, live, (401, "token_revoked"), started) for node in (media, second)]
        print(f"signed out: connections closed after {[round(s, 2) for _, s in closes]} s, "
              f"tokens refused after {[round(s, 2) for s in refusals]} s")
        for node in (media, second):
            assert node.ws_handshake(ROOM, bearer=other) == (101, "")  # the account's other session goes on
        assert official.get("/api/me").status_code == 401
        assert elsewhere.get("/api/me").status_code == 200


def test_disabling_the_account_in_the_control_process_ends_its_live_tokens_on_every_media_process(
        topology: tuple[LiveServer, LiveServer, LiveServer]) -> None:
    control, media, second = topology
    with control.http_client("secretary") as (official, csrf), control.http_client("admin") as (admin, admin_csrf):
        user_id = official.get("/api/me").json()["id"]
        live = _token(control, official, csrf)
        with _joined(media, _connect_ticket(official, csrf)) as on_media, \
                _joined(second, _connect_ticket(official, csrf)) as on_second:
            started = time.monotonic()
            done = admin.post(f"/admin/users/{user_id}/disable", data={"csrf_token": admin_csrf})
            assert done.status_code == 200
            closes = [_close_code(ws, started) for ws in (on_media, on_second)]
        assert [code for code, _ in closes] == [4005, 4005]
        refusals = [_refused_after(node, live, (403, "account_disabled"), started) for node in (media, second)]
        print(f"disabled: connections closed after {[round(s, 2) for _, s in closes]} s, "
              f"tokens refused after {[round(s, 2) for s in refusals]} s")
        assert official.get("/api/me").status_code == 401
