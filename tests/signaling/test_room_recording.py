"""The room server drives the recorder: aiortc venue bots publish through the real room server and SFU, the
scheduler's call-order events arrive on the bus, and the recorder (recorder.recorder, real files) cuts a
segment per call. Files are read with ffprobe and verified with the manifests' keyring; a full recordings
volume (a 2 MB tmpfs) raises an alarm on the chair's connection, in /metrics and in /healthz."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import sfu
from evidence import Keyring
from recorder.options import RecorderOptions
from recorder.recorder import Recorder
from recorder.verify import verify_path
from signaling.events import CaseCalled, CaseClosed, SegmentClosed, SegmentOpened, SessionClosed, SessionOpened
from signaling.grants import Role
from signaling.room.media import MediaOptions
from signaling.room.recording import AlarmCallback, RecorderFactory, RecorderPort, SegmentClosedCallback
from tests.fakes.venue_bot import VenueBot, until
from tiepdan.app import create_app

from .room_harness import ROOM, VENUES, Harness, running_server
from .test_room_media import COLOURS, decoder_guard, loopback_ice  # noqa: F401 - fixtures

pytestmark = pytest.mark.media

MEDIA = MediaOptions(sfu=sfu.Options(connect_timeout=8.0), stats_interval_s=0.5, link_lost_after_s=1.0, tick_s=0.1)
CASE = "0b5d3c2a-1f4e-4a6b-9c8d-7e6f5a4b3c2d"


def recorder_factory(root: Path, keyring: Keyring, **options: Any) -> RecorderFactory:
    def build(on_segment_closed: SegmentClosedCallback, on_alarm: AlarmCallback) -> RecorderPort:
        return Recorder(RecorderOptions(root=root, **options), keyring, on_segment_closed=on_segment_closed,
                        on_alarm=on_alarm)
    return build


def _called(seq: int, case: str = CASE, venue: str = "tien-du") -> CaseCalled:
    return CaseCalled(session=ROOM, case=case, ticket_no=seq, venue=venue, call_seq=seq,
                      announcement_text=f"Mời công dân có số thứ tự {seq} chuẩn bị trình bày.")


def _closed(seq: int, case: str = CASE, venue: str = "tien-du") -> CaseClosed:
    return CaseClosed(session=ROOM, case=case, ticket_no=seq, venue=venue, call_seq=seq)


def _events(h: Harness, kind: type[Any]) -> list[Any]:
    return [e for e in h.bus.published if isinstance(e, kind)]


def _gauges(metrics: CollectorRegistry) -> dict[str, float]:
    return {s.name: s.value for m in metrics.collect() for s in m.samples if s.name.startswith("tiepdan_recording")}


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type:format=duration",
                          "-of", "json", str(path)], capture_output=True, check=True, text=True, timeout=60)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


async def _bots(h: Harness, venues: tuple[tuple[Role, str], ...]) -> list[VenueBot]:
    bots = []
    for role, venue in venues:
        bot = VenueBot(h.url, h.token(role, venue=venue), colour=COLOURS[venue], name=f"{role.value}-{venue}")
        await bot.connect()
        await bot.publish()
        bots.append(bot)
    return bots


def _recorded(h: Harness) -> Callable[[], int]:
    recording = h.server.recording
    assert recording is not None
    return lambda: recording.recorder.status().bytes_written


async def _media_flows(h: Harness, tracks: int) -> None:
    """Wait until the recorder taps ``tracks`` tracks and writes more than before (frames reach the disk)."""
    recording = h.server.recording
    assert recording is not None
    await until(lambda: recording.recorder.status().tracks >= tracks, what="tracks tapped", timeout=20)
    written = _recorded(h)
    before = written()
    await until(lambda: written() > before + 20_000, what="media written", timeout=20)


@pytest.fixture
async def bots() -> AsyncIterator[list[VenueBot]]:
    made: list[VenueBot] = []
    yield made
    await asyncio.gather(*(b.close() for b in made), return_exceptions=True)


async def test_a_called_case_gets_a_segment_whose_files_play_and_verify_and_repeats_change_nothing(
        tmp_path: Path, bots: list[VenueBot]) -> None:
    keyring = Keyring.generate(dev=True)
    root = tmp_path / "recordings"
    metrics = CollectorRegistry()
    async with running_server(media=MEDIA, metrics=metrics, recorder=recorder_factory(root, keyring)) as h:
        recording = h.server.recording
        assert recording is not None
        bots.extend(await _bots(h, ((Role.CHAIR, "tinh"), (Role.VENUE, "tien-du"))))
        await _media_flows(h, tracks=4)

        await h.bus.publish(_called(1))
        await until(lambda: _events(h, SegmentOpened), what="segment opened")
        opened = _events(h, SegmentOpened)[0]
        assert (opened.segment, opened.case, opened.call_seq, opened.confidential) == (f"c1-{CASE}", CASE, 1, False)
        await _media_flows(h, tracks=4)
        await h.bus.publish(_called(1))  # the same call delivered again: no second segment
        started = time.monotonic()
        await h.bus.publish(_closed(1))
        await until(lambda: _events(h, SegmentClosed), what="segment closed", timeout=20)
        closed_after = time.monotonic() - started
        await h.bus.publish(_closed(1))   # the same case.closed again
        await h.bus.publish(_closed(7))   # an end without a call
        await recording.drain(ROOM)
        # the next call still opens its segment; a case id outside the recorder's charset is made safe
        await h.bus.publish(_called(2, case="../vụ việc 2", venue="tinh"))
        await until(lambda: len(_events(h, SegmentOpened)) == 2, what="second segment opened")
        await recording.drain(ROOM)
        assert re.fullmatch(r"c2-[A-Za-z0-9._-]+", _events(h, SegmentOpened)[1].segment)
        assert "/" not in _events(h, SegmentOpened)[1].segment

        assert len(_events(h, SegmentOpened)) == 2
        assert [e.segment for e in _events(h, SegmentClosed)] == [f"c1-{CASE}"]
        closed: SegmentClosed = _events(h, SegmentClosed)[0]
        assert recording.errors == 0
        assert closed.case == CASE and closed.call_seq == 1 and not closed.confidential
        assert closed.manifest_path and (root / closed.manifest_path).is_file()
        assert closed.sha256 and closed.duration_s and closed.duration_s > 0.5
        assert {t.venue for t in closed.tracks} == {"tinh", "tien-du"}
        assert [t.path for t in closed.tracks] == list(closed.files)
        for track in closed.tracks:
            probe = _ffprobe(root / ROOM / track.path)
            assert {s["codec_name"] for s in probe["streams"]} == {"vp8", "opus"}, track.path
            assert float(probe["format"]["duration"]) > 0.3
        gauges = _gauges(metrics)
        assert gauges["tiepdan_recording_active"] == 1.0 and gauges["tiepdan_recording_alarms"] == 0.0
        assert gauges["tiepdan_recording_bytes_written"] > 0 and gauges["tiepdan_recording_tracks"] >= 4

        # the session closes while the second case is heard: its segment closes, then the session's manifest
        await h.bus.publish(SessionClosed(session=ROOM))
        await until(lambda: len(_events(h, SegmentClosed)) == 2, what="open segment closed with the session",
                    timeout=20)
        assert _events(h, SegmentClosed)[1].segment == _events(h, SegmentOpened)[1].segment
        await until(lambda: any((root / ROOM / "manifests").glob("*-session.json")), what="session manifest")
        assert recording.errors == 0
    report = verify_path(root, keyring)
    assert report.ok, report.findings
    print(f"segment closed {closed_after:.2f} s after case.closed, {closed.duration_s:.1f} s of media")


async def test_a_venue_leaving_mid_case_leaves_a_gap_and_the_segment_still_closes(
        tmp_path: Path, bots: list[VenueBot]) -> None:
    keyring = Keyring.generate(dev=True)
    root = tmp_path / "recordings"
    async with running_server(media=MEDIA, recorder=recorder_factory(root, keyring)) as h:
        recording = h.server.recording
        assert recording is not None
        bots.extend(await _bots(h, ((Role.CHAIR, "tinh"), (Role.VENUE, "que-vo"))))
        await _media_flows(h, tracks=4)
        await h.bus.publish(_called(3, venue="que-vo"))
        await until(lambda: _events(h, SegmentOpened), what="segment opened")
        await _media_flows(h, tracks=4)
        await bots[1].close()  # the venue leaves in the middle of its case
        await until(lambda: recording.recorder.status().tracks <= 2, what="its taps ended", timeout=20)
        await _media_flows(h, tracks=2)
        await h.bus.publish(_closed(3, venue="que-vo"))
        await until(lambda: _events(h, SegmentClosed), what="segment closed", timeout=20)
        closed: SegmentClosed = _events(h, SegmentClosed)[0]
        assert [g.venue for g in closed.gaps] == ["que-vo"]
        assert closed.gaps[0].reason in ("publisher_left", "link_lost")
        assert {t.venue for t in closed.tracks} == {"tinh", "que-vo"}
        assert recording.errors == 0
    assert verify_path(root, keyring).ok


async def test_a_case_called_during_a_closed_segment_is_recorded_confidential_and_encrypted(
        tmp_path: Path, bots: list[VenueBot]) -> None:
    keyring = Keyring.generate(dev=True)
    root = tmp_path / "recordings"
    async with running_server(media=MEDIA, recorder=recorder_factory(root, keyring)) as h:
        recording = h.server.recording
        assert recording is not None
        bots.extend(await _bots(h, ((Role.CHAIR, "tinh"), (Role.VENUE, "que-vo"))))
        await _media_flows(h, tracks=4)
        await bots[0].send({"type": "closed_segment.start", "venue": "que-vo"})  # the chair: phiên kín
        await until(lambda: bots[0].of_type("closed_segment.changed"), what="closed segment started")
        await h.bus.publish(_called(5, venue="que-vo"))
        await until(lambda: _events(h, SegmentOpened), what="segment opened")
        assert _events(h, SegmentOpened)[0].confidential is True
        await _media_flows(h, tracks=4)
        await h.bus.publish(_closed(5, venue="que-vo"))
        await until(lambda: _events(h, SegmentClosed), what="segment closed", timeout=20)
        closed: SegmentClosed = _events(h, SegmentClosed)[0]
        assert closed.confidential and closed.tracks and all(t.encrypted for t in closed.tracks)
        for track in closed.tracks:
            data = (root / ROOM / track.path).read_bytes()
            assert track.path.endswith(".enc") and b"\x1a\x45\xdf\xa3" not in data  # no Matroska in the clear
    assert verify_path(root, keyring).ok


# -- a full recordings volume ------------------------------------------------------------------------------


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: far below the recorder's free-space floor (256 MB by default)."""
    mountpoint = tmp_path / "small-volume"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"tmpfs not mounted: {done.stderr.strip()}")
        pytest.skip(f"tmpfs not mounted: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


async def test_a_full_volume_alarms_the_chair_and_metrics_while_the_room_goes_on(
        small_volume: Path, bots: list[VenueBot]) -> None:
    keyring = Keyring.generate(dev=True)
    metrics = CollectorRegistry()
    async with running_server(media=MEDIA, metrics=metrics,
                              recorder=recorder_factory(small_volume, keyring, flush_interval_s=0.2)) as h:
        recording = h.server.recording
        assert recording is not None
        await until(lambda: recording.alarms, what="alarm raised", timeout=20)
        assert [(a.session, a.code) for a in recording.alarms] == [(ROOM, "disk_full")]
        chair = VenueBot(h.url, h.token(Role.CHAIR, venue="tinh"), colour="red", name="chair")
        bots.append(chair)
        await chair.connect()  # joins after the alarm: told at once
        await until(lambda: chair.of_type("recording.alarm"), what="alarm sent to the chair")
        assert chair.of_type("recording.alarm")[0] == {"type": "recording.alarm", "code": "disk_full",
                                                        "active": True}
        venue = VenueBot(h.url, h.token(Role.VENUE, venue="tien-du"), colour="green", name="venue")
        bots.append(venue)
        await venue.connect()
        await venue.publish()  # the room goes on: the venue publishes and the floor moves
        await chair.send({"type": "floor.give", "venue": "tien-du"})
        await until(lambda: venue.of_type("floor.changed"), what="floor moved")
        assert venue.of_type("recording.alarm") == []  # venues are not told, only moderators
        gauges = _gauges(metrics)
        assert gauges["tiepdan_recording_alarms"] == 1.0 and gauges["tiepdan_recording_active"] == 0.0


async def test_healthz_is_degraded_while_the_recording_alarm_is_active(make_settings: Any,
                                                                      small_volume: Path) -> None:
    app = create_app(make_settings(recording_dir=small_volume))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            assert (await client.get("/healthz")).status_code == 200
            await app.state.services.bus.publish(SessionOpened(session=ROOM, venues=VENUES))
            async with asyncio.timeout(20):
                while (response := await client.get("/healthz")).status_code == 200:
                    await asyncio.sleep(0.05)
            body = response.json()
            assert response.status_code == 503 and body["status"] == "degraded"
            assert body["checks"][f"recording:{ROOM}"] == "alarm: disk_full"
            text = (await client.get("/metrics")).text
            assert "tiepdan_recording_alarms 1.0" in text


async def test_recorder_errors_never_reach_the_room(tmp_path: Path, bots: list[VenueBot]) -> None:
    """A recorder whose every call fails (a broken volume path: a file where the root should be)."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the recordings root should be")
    keyring = Keyring.generate(dev=True)
    async with running_server(media=MEDIA, recorder=recorder_factory(blocked / "root", keyring)) as h:
        recording = h.server.recording
        assert recording is not None
        bots.extend(await _bots(h, ((Role.CHAIR, "tinh"),)))
        await h.bus.publish(_called(1, venue="tinh"))
        await h.bus.publish(_closed(1, venue="tinh"))
        await recording.drain(ROOM)
        assert recording.errors > 0  # counted and logged
        await bots[0].send({"type": "hand.raise"})
        await until(lambda: bots[0].of_type("hands.changed"), what="the room still answers")
        assert _events(h, SegmentClosed) == []
