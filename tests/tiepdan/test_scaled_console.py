"""The console works in the scaled topology (issue #10 item 9): a ``--role control`` process (console, no room
server) and a ``--role media`` process (room server + SFU) on PostgreSQL + Redis. The control process lists the
live sessions from the scheduler's tables and reads the room's state from the room store in Redis; the chair
signed in on it gets the page and tokens, and joins the room on the media process with a connect ticket."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.sync.client import connect

from tests.harness import LiveServer, _settings, run_coroutine

pytestmark = pytest.mark.system

ROOM = "phien-tach-tien-trinh"
VENUES = ("--venue=main=Trụ sở Tiếp công dân tỉnh", "--venue=tien-du=Điểm cầu xã Tiên Du")


def _until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _connected(html: str) -> int | None:
    """The number of connected venues the room list shows for ROOM (None: no media node has the room yet)."""
    if f'data-room="{ROOM}"' not in html:
        return None
    item = html.split(f'data-room="{ROOM}"', 1)[1].split("live-rooms__item", 1)[0]
    found = re.search(r'data-testid="live-room-connected" data-connected="(\d+)"', item)
    return int(found.group(1)) if found else None


async def _ticket_after_roll_call(env: dict[str, str]) -> int:
    """A queue ticket at Tiên Du (as the desk issues it) and the roll call, in the shared database."""
    from datetime import UTC, datetime

    from complaints.cases import create_case
    from complaints.enums import PetitionKind
    from schedules import issue_ticket
    from signaling.grants import ROLE_GRANTS, Role
    from tests.schedules._roll_call import record_all_present
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.begin() as conn:
            case = await create_case(conn, kind=PetitionKind.COMPLAINT, summary="Khiếu nại", now=datetime.now(UTC))
            issued = await issue_ticket(conn, ROOM, venue="tien-du", case=case.id, actor="user:ban-tiep-dan",
                                        grants=frozenset(ROLE_GRANTS[Role.RECEPTION]), clock=lambda: datetime.now(UTC))
            await record_all_present(conn, ROOM, clock=lambda: datetime.now(UTC))
        return issued.ticket_no
    finally:
        await engine.dispose()


def _next_event(lines: Iterator[str], wanted: str) -> dict[str, object]:
    """The data of the next server-sent event named ``wanted`` (others are skipped)."""
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event == wanted:
            found: dict[str, object] = json.loads(line[len("data: "):])
            return found
    raise AssertionError(f"the stream ended before {wanted!r}")


def test_the_chair_on_a_control_process_lists_enters_and_joins_a_room_served_by_a_media_process(
        server_factory: Callable[..., LiveServer], module_pg_url: str, redis_base_url: str, redis_run_prefix: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.monotonic()
    keys = tmp_path_factory.mktemp("keys") / "keyring.json"
    env = {"TIEPDAN_DATABASE_URL": module_pg_url, "TIEPDAN_REDIS_URL": redis_base_url,
           "TIEPDAN_REDIS_PREFIX": f"{redis_run_prefix}{secrets.token_hex(3)}:", "TIEPDAN_KEYRING_PATH": str(keys)}
    control = server_factory(env=env, args=("--role", "control"))
    media = server_factory(env=env, users=[], args=("--role", "media"))
    done = control.cli("session", "open", ROOM, *VENUES)
    assert done.returncode == 0, done.stderr

    with control.http_client("chair") as (chair, csrf):
        listed = chair.get("/phien")
        assert listed.status_code == 200 and f'data-room="{ROOM}"' in listed.text  # from the database
        assert "Điểm cầu xã Tiên Du" in listed.text
        # the room's state, from the room store the media process writes in Redis
        _until(lambda: _connected(chair.get("/phien").text) == 0, "the media process to open the room")

        page = chair.get(f"/phien/{ROOM}")
        assert page.status_code == 200, page.text
        assert 'data-view="chair"' in page.text
        assert 'data-venue="main"' in page.text and 'data-venue="tien-du"' in page.text
        assert "Điểm cầu xã Tiên Du" in page.text

        token = chair.post("/api/live/token", headers={"X-CSRF-Token": csrf}, json={"room": ROOM})
        assert token.status_code == 200 and token.json()["token"], token.text
        ticket = chair.post("/api/live/connect-ticket", headers={"X-CSRF-Token": csrf}, json={"room": ROOM})
        assert ticket.status_code == 200, ticket.text

        with connect(media.ws_url(ROOM, connect_ticket=ticket.json()["connect_ticket"]), open_timeout=5) as ws:
            ws.send(json.dumps({"type": "join", "protocol": 1}))
            while (message := json.loads(ws.recv(timeout=5)))["type"] != "welcome":
                pass
            assert message["type"] == "welcome"
            _until(lambda: _connected(chair.get("/phien").text) == 1, "the chair's venue to show as connected")

        # the queue board's events on the control process (from the Redis bus) follow a call made there
        ticket_no = run_coroutine(_ticket_after_roll_call(control.env))
        with chair.stream("GET", f"/api/sessions/{ROOM}/board/main/events") as board:
            assert board.status_code == 200 and board.headers["content-type"].startswith("text/event-stream")
            lines = board.iter_lines()
            assert _next_event(lines, "board")["waiting"] == 1
            called = chair.post(f"/api/sessions/{ROOM}/queue/call-next", headers={"X-CSRF-Token": csrf})
            assert called.status_code == 200, called.text
            call = _next_event(lines, "call")
            assert (call["ticket_no"], call["venue"], call["venue_name"]) == (ticket_no, "tien-du",
                                                                              "Điểm cầu xã Tiên Du")
        ended = chair.post(f"/api/sessions/{ROOM}/queue/end", headers={"X-CSRF-Token": csrf})
        assert ended.status_code == 200, ended.text  # (a session does not close while a case is received)

        done = control.cli("session", "close", ROOM)
        assert done.returncode == 0, done.stderr
        listed = chair.get("/phien")
        assert f'data-room="{ROOM}"' not in listed.text  # the database says closed at once
        assert chair.get(f"/phien/{ROOM}").status_code == 404
        media.wait_room(ROOM, 410)  # and the media process closes the room
    print(f"control + media, open → list → page → token → join → close: {time.monotonic() - started:.1f} s")
