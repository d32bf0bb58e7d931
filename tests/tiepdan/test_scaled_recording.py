"""Recording in the scaled topology: a ``--role media`` process records into the shared ``TIEPDAN_RECORDING_DIR``
while a venue bot publishes through it; the chair calls and ends the case on a ``--role control`` process (PostgreSQL
+ Redis); the control process's consumer of ``room.segment_closed`` writes the segment into ``recording_segments``,
linked to the case, and its manifest and files, read from the shared path, verify with the shared keyring."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from complaints.recordings import SegmentRecord, segments_of_session
from evidence import Keyring
from recorder.verify import verify_path
from tests.harness import LiveServer, _settings, run_coroutine
from tiepdan.bots.venue_bot import VenueBot

from .test_scaled_console import ROOM, VENUES, _ticket_after_roll_call, _until

pytestmark = pytest.mark.system


class _PublishingVenue:
    """A venue bot publishing through the media process from a thread of its own (the test is synchronous)."""

    def __init__(self, url: str, token: str) -> None:
        self._url, self._token = url, token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.bot: VenueBot | None = None

    def start(self) -> None:
        async def go() -> None:
            self.bot = VenueBot(self._url, self._token, colour="green", name="tien-du")
            await self.bot.connect()
            await self.bot.publish()

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout=30)

    def close(self) -> None:
        if self.bot is not None:
            asyncio.run_coroutine_threadsafe(self.bot.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _segments(env: dict[str, str]) -> list[SegmentRecord]:
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.connect() as conn:
            return await segments_of_session(conn, ROOM)
    finally:
        await engine.dispose()


def test_a_segment_recorded_by_the_media_process_is_kept_by_the_control_process(
        server_factory: Callable[..., LiveServer], module_pg_url: str, redis_base_url: str, redis_run_prefix: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.monotonic()
    keys = tmp_path_factory.mktemp("keys") / "keyring.json"
    shared: Path = tmp_path_factory.mktemp("shared-recordings")
    env = {"TIEPDAN_DATABASE_URL": module_pg_url, "TIEPDAN_REDIS_URL": redis_base_url,
           "TIEPDAN_REDIS_PREFIX": f"{redis_run_prefix}{secrets.token_hex(3)}:", "TIEPDAN_KEYRING_PATH": str(keys),
           "TIEPDAN_RECORDING_DIR": str(shared)}
    control = server_factory(env=env, args=("--role", "control"))
    media = server_factory(env=env, users=[], args=("--role", "media"))
    room = ROOM
    done = control.cli("session", "open", room, *VENUES)
    assert done.returncode == 0, done.stderr
    media.wait_room(room)
    minted = control.cli("token", "--role", "venue", "--room", room, "--venue", "tien-du", "--ttl", "600")
    assert minted.returncode == 0, minted.stderr
    venue = _PublishingVenue(media.ws_url(room), minted.stdout.strip())
    try:
        venue.start()
        _until(lambda: _bytes(shared / room) > 0, "media written", timeout=20)
        ticket_no = run_coroutine(_ticket_after_roll_call(control.env))
        with control.http_client("chair") as (chair, csrf):
            called = chair.post(f"/api/sessions/{room}/queue/call-next", headers={"X-CSRF-Token": csrf})
            assert called.status_code == 200, called.text
            _until(lambda: bool(run_coroutine(_segments(control.env))), "the segment opened", timeout=20)
            _until(lambda: _bytes(shared / room) > 60_000, "the case's media written", timeout=20)
            ended = chair.post(f"/api/sessions/{room}/queue/end", headers={"X-CSRF-Token": csrf})
            assert ended.status_code == 200, ended.text
            _until(lambda: all(s.closed for s in run_coroutine(_segments(control.env))), "the segment closed",
                   timeout=30)
    finally:
        venue.close()
    segments = run_coroutine(_segments(control.env))
    assert len(segments) == 1
    segment = segments[0]
    assert segment.segment.startswith("c1-") and segment.case_id is not None and segment.call_seq == 1
    assert segment.manifest_path and (shared / segment.manifest_path).is_file()
    assert "tien-du" in {f["venue"] for f in segment.files}
    for item in segment.files:
        assert (shared / room / item["path"]).is_file()
    report = verify_path(shared / room, Keyring.load(keys))
    assert report.ok, report.findings
    done = control.cli("session", "close", room)
    assert done.returncode == 0, done.stderr
    print(f"media records, control keeps ticket {ticket_no}'s segment: {time.monotonic() - started:.1f} s")


def _bytes(directory: Path) -> int:
    # encrypted by default (TIEPDAN_RECORDING_ENCRYPT_ALL): ".webm.enc"
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and ".webm" in p.name)
