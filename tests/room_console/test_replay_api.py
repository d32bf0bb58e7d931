"""The auditor's replay pages over HTTP (room_console/views/replay.py): the list, a segment's page, byte
ranges of plain and sealed tracks, audit rows of every replay start and download, grants (a confidential
segment is 404 to whoever lacks ``confidential_replay``), path traversal, a missing file, composing requests
(and composing again, a form refused while a job runs), a composite sealed as written and served by range,
venues shown by name, and the verification of the session with its cross-check against the case store. The
recordings are real: WebM files muxed with PyAV and signed manifests written by recorder.manifest."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import ReceptionForm, ReceptionType
from complaints.replays import claim_next, finish_job, job_for_segment
from complaints.tables import audit_events, recording_segments, replay_jobs
from evidence import Keyring
from evidence.stream import EncryptingWriter
from recorder.manifest import write_segment_manifest
from recorder.model import SegmentReport, SpeakerSpan, TrackFile
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from schedules import VenueChoice, VenueDraft, ensure_venues, plan_session
from signaling.grants import Grant
from tests.conftest import _fresh_pg_database
from tiepdan.app import create_app
from tiepdan.replay_worker import ReplayWorker, ReplayWorkerOptions

from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC).timestamp()
SESSION = "phien-2026-12-06"
USERS = {"thanhtra": ("auditor",), "chutri": ("chair",), "diemcau": ("venue",), "tiepnhan": ("reception",)}


# -- a real recording ----------------------------------------------------------------------------------------


def _yuv(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = colour
    y = int(0.257 * r + 0.504 * g + 0.098 * b + 16)
    u = int(-0.148 * r - 0.291 * g + 0.439 * b + 128)
    v = int(0.439 * r - 0.368 * g - 0.071 * b + 128)
    return y, u, v


@functools.cache
def webm_bytes(seconds: float = 2.0, colour: tuple[int, int, int] = (200, 30, 30), fps: int = 15) -> bytes:
    """A WebM (VP8 160×120 + Opus mono) of a solid colour and a tone, muxed in memory (once per process)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=fps)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"  # type: ignore[union-attr]
        video.options = {"deadline": "realtime", "cpu-used": "8"}
        audio = out.add_stream("libopus", rate=48000)
        audio.layout = "mono"  # type: ignore[union-attr]
        for n in range(int(seconds * fps)):
            frame = av.VideoFrame(160, 120, "yuv420p")
            for plane, value in zip(frame.planes, _yuv(colour), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts, frame.time_base = n, Fraction(1, fps)
            out.mux(video.encode(frame))  # type: ignore[union-attr]
        out.mux(video.encode(None))  # type: ignore[union-attr]
        for n in range(int(seconds * 50)):
            samples = array("h", (int(6000 * math.sin(2 * math.pi * 440 * (n * 960 + i) / 48000)) for i in range(960)))
            frame = av.AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(samples.tobytes())
            frame.sample_rate, frame.pts, frame.time_base = 48000, n * 960, Fraction(1, 48000)
            out.mux(audio.encode(frame))  # type: ignore[union-attr]
        out.mux(audio.encode(None))  # type: ignore[union-attr]
    return buffer.getvalue()


@dataclass
class Recorded:
    session_dir: Path
    segment: str
    plain: dict[str, bytes]  # file name → plaintext


def record_segment(root: Path, keyring: Keyring, segment: str, *, venues: Sequence[tuple[str, tuple[int, int, int]]],
                   confidential: bool = False, seconds: float = 2.0, session: str = SESSION) -> tuple[Recorded,
                                                                                                      SegmentReport]:
    """Media files of ``venues`` (sealed when ``confidential``) and the segment's signed manifest."""
    session_dir = root / session
    folder = session_dir / "media" / segment
    folder.mkdir(parents=True, exist_ok=True)
    files, plain = [], {}
    for venue, colour in venues:
        data = webm_bytes(seconds, colour)
        name = f"{venue}-1.webm" + (".enc" if confidential else "")
        rel = f"media/{segment}/{name}"
        kid = None
        if confidential:
            with (session_dir / rel).open("wb") as raw:
                writer = EncryptingWriter(raw, keyring, aad=rel.encode())
                writer.write(data)
                kid = writer.kid
                writer.close()
        else:
            (session_dir / rel).write_bytes(data)
        stored = (session_dir / rel).read_bytes()
        files.append(TrackFile(path=rel, venue=venue, kinds=("video", "audio"), codecs=("vp8", "opus"),
                               sha256=hashlib.sha256(stored).hexdigest(), size=len(stored), t0=10.0,
                               duration=seconds, encrypted=confidential, kid=kid))
        plain[name] = data
    report = SegmentReport(session=session, segment=segment, case=None, confidential=confidential,
                           session_epoch=NOW - 60, opened_at=NOW - 50, closed_at=NOW - 50 + seconds, media_t0=10.0,
                           media_t1=10.0 + seconds, files=tuple(files),
                           speakers=(SpeakerSpan(venues[0][0], 10.0, 10.0 + seconds),),
                           venue_names={v: v for v, _ in venues})
    write_segment_manifest(session_dir, report, keyring)
    return Recorded(session_dir, segment, plain), report


async def insert_segment(engine: AsyncEngine, report: SegmentReport, *, case_id: str | None = None) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(recording_segments).values(
            segment=report.segment, session=report.session, case_id=case_id, confidential=report.confidential,
            media_t0=report.media_t0, duration_s=report.duration,
            files_json=json.dumps([f.to_json() for f in report.files]),
            speakers_json=json.dumps([s.to_json() for s in report.speakers]),
            gaps_json=json.dumps([{"venue": "xa-b", "start": 10.5, "end": 11.0, "reason": "link_lost"}]),
            opened_at=datetime.fromtimestamp(report.opened_at, UTC),
            closed_at=datetime.fromtimestamp(report.closed_at, UTC)))


# -- the app -----------------------------------------------------------------------------------------------


@pytest.fixture
def app_database(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """SQLite; a test parametrized ``indirect`` with "postgresql" gets a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return sqlite_url
    return _fresh_pg_database(request.getfixturevalue("pg_url"))


BOTH_DATABASES = pytest.mark.parametrize("app_database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
async def app(make_settings, app_database: str, tmp_path: Path) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    # the control role: no replay worker in this process, so a queued job stays queued
    application = create_app(make_settings(database_url=app_database, recording_dir=tmp_path / "rec",
                                           process_role="control"))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        ctx.clock = lambda: NOW
        for username, roles in USERS.items():
            await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                           password=PASSWORD, options=ctx.options, now=NOW,
                           venue="tien-du" if "venue" in roles else None)
        yield application


@pytest.fixture
async def recorded(app: FastAPI, tmp_path: Path) -> dict[str, Recorded]:
    ctx: ConsoleContext = app.state.console
    assert ctx.keyring is not None
    open_one, report = record_segment(tmp_path / "rec", ctx.keyring, "c1-case1",
                                      venues=[("tinh", (200, 30, 30)), ("xa-b", (30, 30, 200))])
    await insert_segment(ctx.engine, report)
    closed_one, closed_report = record_segment(tmp_path / "rec", ctx.keyring, "c2-case2",
                                               venues=[("xa-b", (30, 200, 30))], confidential=True)
    await insert_segment(ctx.engine, closed_report)
    return {"open": open_one, "closed": closed_one}


class Client:
    def __init__(self, http: httpx.AsyncClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf

    async def get(self, url: str, **kw: object) -> httpx.Response:
        return await self.http.get(url, **kw)  # type: ignore[arg-type]

    async def post(self, url: str) -> httpx.Response:
        return await self.http.post(url, headers={"x-csrf-token": self.csrf}, json={})

    async def submit(self, url: str, *, csrf: bool = True) -> httpx.Response:
        """A console form posted as a browser does (the CSRF token a hidden field)."""
        return await self.http.post(url, data={"csrf_token": self.csrf if csrf else ""})


async def signed(app: FastAPI, username: str) -> Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await sign_in(http, username)
    assert response.status_code == 303, response.text
    return Client(http, page_token((await http.get("/")).text))


async def audit_rows(app: FastAPI, segment: str) -> list[tuple[str, str, dict[str, object]]]:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.connect() as conn:
        rows = await conn.execute(select(audit_events.c.action, audit_events.c.actor, audit_events.c.detail)
                                  .where(audit_events.c.target_id == segment).order_by(audit_events.c.id))
        return [(r[0], r[1], r[2]) for r in rows]


# -- tests -------------------------------------------------------------------------------------------------


async def test_list_and_page_show_the_segments_tracks_timeline_and_gaps(app: FastAPI,
                                                                       recorded: dict[str, Recorded]) -> None:
    auditor = await signed(app, "thanhtra")
    listing = await auditor.get("/xem-lai")
    assert listing.status_code == 200
    assert 'data-segment="c1-case1"' in listing.text and 'data-segment="c2-case2"' in listing.text
    page = await auditor.get("/xem-lai/c1-case1")
    assert page.status_code == 200
    for name in ("tinh-1.webm", "xa-b-1.webm"):
        assert f'src="/xem-lai/c1-case1/tep/{name}"' in page.text
    assert 'data-testid="replay-speakers"' in page.text and "mất kết nối" in page.text
    assert (await auditor.get("/xem-lai/c2-case2")).status_code == 200  # the auditor holds confidential_replay


async def test_ranges_of_a_plain_track_and_audit_of_the_start_only(app: FastAPI,
                                                                  recorded: dict[str, Recorded]) -> None:
    auditor = await signed(app, "thanhtra")
    data = recorded["open"].plain["tinh-1.webm"]
    url = "/xem-lai/c1-case1/tep/tinh-1.webm"
    first = await auditor.get(url, headers={"range": "bytes=0-99"})
    assert first.status_code == 206 and first.content == data[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert first.headers["content-type"] == "video/webm" and first.headers["accept-ranges"] == "bytes"
    later = await auditor.get(url, headers={"range": f"bytes=100-{len(data) + 50}"})
    assert later.status_code == 206 and later.content == data[100:]
    suffix = await auditor.get(url, headers={"range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.content == data[-10:]
    whole = await auditor.get(url + "?tai=1")
    assert whole.status_code == 200 and whole.content == data and "attachment" in whole.headers["content-disposition"]
    beyond = await auditor.get(url, headers={"range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    rows = await audit_rows(app, "c1-case1")
    assert [(a, d["file"]) for a, _, d in rows] == [("replay.segment", "tinh-1.webm"),
                                                    ("replay.download", "tinh-1.webm")]
    assert rows[0][1].startswith("user:") and rows[0][2]["kind"] == "track"


async def test_a_sealed_track_is_decrypted_by_range_for_the_confidential_grant(
        app: FastAPI, recorded: dict[str, Recorded]) -> None:
    auditor = await signed(app, "thanhtra")
    data = recorded["closed"].plain["xa-b-1.webm.enc"]
    stored = (recorded["closed"].session_dir / "media/c2-case2/xa-b-1.webm.enc").read_bytes()
    assert b"\x1a\x45\xdf\xa3" not in stored  # no Matroska magic on disk
    url = "/xem-lai/c2-case2/tep/xa-b-1.webm.enc"
    head = await auditor.get(url, headers={"range": "bytes=0-3"})
    assert head.status_code == 206 and head.content == b"\x1a\x45\xdf\xa3"
    assert head.headers["content-range"] == f"bytes 0-3/{len(data)}"
    middle = await auditor.get(url, headers={"range": "bytes=70000-70099"})
    assert middle.content == data[70000:70100] or len(data) <= 70000
    full = await auditor.get(url)
    assert full.status_code == 200 and full.content == data
    assert [a for a, _, _ in await audit_rows(app, "c2-case2")] == ["replay.segment", "replay.segment"]


async def test_confidential_segment_is_404_without_the_grant_and_roles_without_replay_are_refused(
        app: FastAPI, recorded: dict[str, Recorded]) -> None:
    chair = await signed(app, "chutri")  # holds replay, not confidential_replay
    listing = await chair.get("/xem-lai")
    assert listing.status_code == 200
    assert 'data-segment="c1-case1"' in listing.text and "c2-case2" not in listing.text
    assert 'data-testid="replay-hidden"' in listing.text and "Phiên kín" in listing.text
    for url in ("/xem-lai/c2-case2", "/xem-lai/c2-case2/tep/xa-b-1.webm.enc", "/xem-lai/c2-case2/ban-dung",
                "/api/replays/c2-case2", "/api/replays/c2-case2/verification"):
        assert (await chair.get(url)).status_code == 404, url
    assert (await chair.post("/api/replays/c2-case2/compose")).status_code == 404
    unknown = await chair.get("/api/replays/c9-nothing")
    refused = await chair.get("/api/replays/c2-case2")
    assert unknown.json() == refused.json()  # the same answer: existence is not confirmed
    assert {a for a, _, _ in await audit_rows(app, "c2-case2")} == {"replay.refused"}
    for username in ("diemcau", "tiepnhan"):
        other = await signed(app, username)
        for url in ("/xem-lai", "/xem-lai/c1-case1", "/xem-lai/c1-case1/tep/tinh-1.webm", "/api/replays/c1-case1"):
            assert (await other.get(url)).status_code == 403, (username, url)
        assert (await other.post("/api/replays/c1-case1/compose")).status_code == 403
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    assert (await anonymous.get("/api/replays/c1-case1")).status_code == 401
    assert not [a for a, _, _ in await audit_rows(app, "c1-case1") if a.startswith("replay.segment")]


async def test_path_traversal_and_unlisted_names_are_refused(app: FastAPI, recorded: dict[str, Recorded],
                                                            tmp_path: Path) -> None:
    (tmp_path / "rec" / SESSION / "media" / "c1-case1" / "extra.webm").write_bytes(b"not listed")
    auditor = await signed(app, "thanhtra")
    for url in ("/xem-lai/c1-case1/tep/..%2F..%2Fmanifests%2F00001-c1-case1.json",
                "/xem-lai/c1-case1/tep/%2E%2E", "/xem-lai/c1-case1/tep/extra.webm",
                "/xem-lai/c1-case1/tep/xa-b-1.webm.enc", "/xem-lai/..%2Fc1-case1/tep/tinh-1.webm",
                "/xem-lai/c1-case1/tep/tinh-1.webm%00.txt"):
        response = await auditor.get(url)
        assert response.status_code == 404, url
        assert b"not listed" not in response.content


async def test_a_missing_file_and_an_altered_one_give_clear_errors(app: FastAPI, recorded: dict[str, Recorded]) -> None:
    auditor = await signed(app, "thanhtra")
    verified = await auditor.get("/api/replays/c1-case1/verification")
    assert verified.status_code == 200 and verified.json()["ok"] is True
    assert all(f["informational"] for f in verified.json()["findings"])  # e.g. "open": no session manifest yet
    track = recorded["open"].session_dir / "media/c1-case1/xa-b-1.webm"
    track.unlink()
    missing = await auditor.get("/xem-lai/c1-case1/tep/xa-b-1.webm")
    assert missing.status_code == 404 and "không còn trên ổ lưu trữ" in missing.text
    reverified = (await auditor.get("/api/replays/c1-case1/verification")).json()
    assert reverified["ok"] is False
    assert any(f["kind"] == "removed" and f["path"].endswith("media/c1-case1/xa-b-1.webm")
               for f in reverified["findings"]), reverified
    sealed = recorded["closed"].session_dir / "media/c2-case2/xa-b-1.webm.enc"
    raw = bytearray(sealed.read_bytes())
    raw[200] ^= 0x01
    sealed.write_bytes(bytes(raw))
    altered = await auditor.get("/xem-lai/c2-case2/tep/xa-b-1.webm.enc", headers={"range": "bytes=0-99"})
    assert altered.status_code == 409 and "đã bị thay đổi" in altered.text


async def test_compose_request_is_idempotent_and_the_composite_is_served_when_done(
        app: FastAPI, recorded: dict[str, Recorded]) -> None:
    auditor = await signed(app, "thanhtra")
    assert (await auditor.get("/api/replays/c1-case1")).json() == {"job": None, "composite": None}
    assert (await auditor.get("/xem-lai/c1-case1/ban-dung")).status_code == 404
    first = await auditor.post("/api/replays/c1-case1/compose")
    second = await auditor.post("/api/replays/c1-case1/compose")
    assert first.status_code == second.status_code == 202
    assert first.json()["job"]["id"] == second.json()["job"]["id"] and first.json()["job"]["state"] == "queued"
    ctx: ConsoleContext = app.state.console
    mp4 = recorded["open"].session_dir / "replays" / "c1-case1.mp4"
    mp4.parent.mkdir()
    mp4.write_bytes(recorded["open"].plain["tinh-1.webm"])  # bytes are bytes: served as the job says
    async with ctx.engine.begin() as conn:
        job = await claim_next(conn, worker="test", now=datetime.fromtimestamp(NOW, UTC))
        assert job is not None
        await finish_job(conn, job.id, output_path="replays/c1-case1.mp4", now=datetime.fromtimestamp(NOW, UTC))
    status = (await auditor.get("/api/replays/c1-case1")).json()
    assert status["job"]["state"] == "done" and status["composite"] == "/xem-lai/c1-case1/ban-dung"
    served = await auditor.get("/xem-lai/c1-case1/ban-dung", headers={"range": "bytes=0-9"})
    assert served.status_code == 206 and served.headers["content-type"] == "video/mp4"
    assert served.content == mp4.read_bytes()[:10]
    rows = await audit_rows(app, "c1-case1")
    assert [a for a, _, _ in rows] == ["replay.compose_requested", "replay.compose_started", "replay.compose_done",
                                       "replay.segment"]
    assert rows[-1][2]["kind"] == "composite"
    async with ctx.engine.connect() as conn:
        assert len((await conn.execute(select(replay_jobs.c.id))).all()) == 1


async def test_venues_are_shown_by_name_with_the_id_as_secondary(app: FastAPI, recorded: dict[str, Recorded]) -> None:
    ctx: ConsoleContext = app.state.console
    at = datetime.fromtimestamp(NOW, UTC)
    async with ctx.engine.begin() as conn:  # the venue table, and the session's own name for one of them
        await ensure_venues(conn, [VenueDraft("tinh", "Trụ sở Tiếp công dân tỉnh"), VenueDraft("xa-b", "Xã Bình")],
                            actor="user:admin", grants=frozenset({Grant.MANAGE}), clock=lambda: at)
        await plan_session(conn, session_id=SESSION, day=date(2026, 12, 6), form=ReceptionForm.ONLINE,
                           kind=ReceptionType.AD_HOC, venues_chosen=[VenueChoice("tinh"),
                                                                      VenueChoice("xa-b", name="Xã Bình Minh")],
                           opens_at=time(13, 30), closes_at=time(16, 30), actor="user:admin",
                           grants=frozenset({Grant.MANAGE}), clock=lambda: at)
    auditor = await signed(app, "thanhtra")
    listing = (await auditor.get("/xem-lai")).text
    assert 'data-venue="tinh">Trụ sở Tiếp công dân tỉnh</span>' in listing
    assert 'data-venue="xa-b">Xã Bình Minh</span>' in listing and "Mã điểm cầu: xa-b" in listing
    page = (await auditor.get("/xem-lai/c1-case1")).text
    assert "Điểm cầu Trụ sở Tiếp công dân tỉnh: từ" in page and "Điểm cầu Xã Bình Minh: từ" in page  # tracks
    speakers = page[page.index('data-testid="replay-speakers"'):]
    assert 'data-venue="tinh">Trụ sở Tiếp công dân tỉnh</span> <small class="hint">(tinh)</small>' in speakers
    gaps = page[page.index('data-testid="replay-gaps"'):]
    assert 'data-venue="xa-b">Xã Bình Minh</span> <small class="hint">(xa-b)</small>' in gaps
    assert ">xa-b<" not in page and ">tinh<" not in page  # never an id alone where a name is known
    async with ctx.engine.begin() as conn:  # a venue nobody named: its id, once
        await conn.execute(update(recording_segments).where(recording_segments.c.segment == "c1-case1").values(
            gaps_json=json.dumps([{"venue": "xa-moi", "start": 10.5, "end": 11.0, "reason": "link_lost"}])))
    unnamed = (await auditor.get("/xem-lai/c1-case1")).text
    assert 'data-venue="xa-moi">xa-moi</span></td>' in unnamed


@BOTH_DATABASES
async def test_compose_again_is_a_form_refused_while_a_job_runs_and_audited(
        app: FastAPI, recorded: dict[str, Recorded]) -> None:
    ctx: ConsoleContext = app.state.console
    auditor = await signed(app, "thanhtra")
    url = "/xem-lai/c1-case1/dung-lai"
    never = await auditor.submit(url)
    assert never.status_code == 409 and "chưa được dựng bản xem lại lần nào" in never.text
    assert (await auditor.post("/api/replays/c1-case1/compose")).json()["job"]["state"] == "queued"
    page = (await auditor.get("/xem-lai/c1-case1")).text
    assert 'data-testid="replay-recompose" hidden' in page and 'name="csrf_token"' in page
    queued = await auditor.submit(url)
    assert queued.status_code == 409 and "đang được dựng hoặc đang chờ dựng" in queued.text
    now = datetime.fromtimestamp(NOW, UTC)
    async with ctx.engine.begin() as conn:
        job = await claim_next(conn, worker="test", now=now)
        assert job is not None
    running = await auditor.submit(url)
    assert running.status_code == 409 and "đang được dựng" in running.text
    async with ctx.engine.begin() as conn:
        await finish_job(conn, job.id, output_path="replays/c1-case1.mp4.enc", now=now)
    assert 'data-testid="replay-recompose" hidden' not in (await auditor.get("/xem-lai/c1-case1")).text
    assert (await auditor.submit(url, csrf=False)).status_code == 403  # no token: refused before anything
    chair, venue = await signed(app, "chutri"), await signed(app, "diemcau")
    assert (await chair.submit("/xem-lai/c2-case2/dung-lai")).status_code == 404  # confidential: not confirmed
    assert (await venue.submit(url)).status_code == 403
    async with ctx.engine.connect() as conn:
        assert (await job_for_segment(conn, "c1-case1")).state == "done"  # type: ignore[union-attr]
    again = await auditor.submit(url)
    assert again.status_code == 303 and again.headers["location"] == "/xem-lai/c1-case1?ok=recompose"
    async with ctx.engine.connect() as conn:
        queued_again = await job_for_segment(conn, "c1-case1")
    assert queued_again is not None and (queued_again.state, queued_again.output_path) == ("queued", None)
    assert "Đã gửi yêu cầu dựng lại" in (await auditor.get(again.headers["location"])).text
    rows = await audit_rows(app, "c1-case1")
    forced = [(actor, detail) for action, actor, detail in rows if action == "replay.compose_forced"]
    assert len(forced) == 1 and forced[0][0].startswith("user:")
    assert forced[0][1]["previous"] == "done" and forced[0][1]["replaced"] == "replays/c1-case1.mp4.enc"


async def test_the_composite_is_sealed_on_disk_and_decrypted_by_range(app: FastAPI, recorded: dict[str, Recorded],
                                                                      tmp_path: Path) -> None:
    ctx: ConsoleContext = app.state.console
    auditor = await signed(app, "thanhtra")
    assert (await auditor.post("/api/replays/c1-case1/compose")).status_code == 202
    worker = ReplayWorker(ctx.engine, ReplayWorkerOptions(root=tmp_path / "rec", poll_s=60,
                                                          keyring_path=tmp_path / "data" / "keys" / "keyring.json"))
    try:  # the worker of the default settings (TIEPDAN_RECORDING_ENCRYPT_ALL), one job
        assert await worker.run_once() is True
    finally:
        await worker.close()
    status = (await auditor.get("/api/replays/c1-case1")).json()
    assert status["job"]["state"] == "done", status
    sealed = recorded["open"].session_dir / "replays" / "c1-case1.mp4.enc"
    assert [p.name for p in sealed.parent.iterdir()] == [sealed.name]
    for path in (tmp_path / "rec").rglob("*"):  # no MP4 box in clear anywhere on the volume
        assert not path.is_file() or b"ftyp" not in path.read_bytes(), path
    url = status["composite"]
    head = await auditor.get(url, headers={"range": "bytes=4-7"})
    assert head.status_code == 206 and head.content == b"ftyp" and head.headers["content-type"] == "video/mp4"
    whole = await auditor.get(url)
    size = len(whole.content)
    assert whole.status_code == 200 and whole.headers["content-length"] == str(size)
    tail = await auditor.get(url, headers={"range": f"bytes={size - 1000}-"})
    assert tail.status_code == 206 and tail.content == whole.content[-1000:]
    assert tail.headers["content-range"] == f"bytes {size - 1000}-{size - 1}/{size}"
    with av.open(io.BytesIO(whole.content)) as container:
        assert sorted(st.codec_context.name for st in container.streams) == ["aac", "h264"]
    # the whole read is a replay start; the ranges further in are a player seeking
    assert [d["file"] for a, _, d in await audit_rows(app, "c1-case1") if a == "replay.segment"] == ["c1-case1.mp4"]


@BOTH_DATABASES
async def test_the_verification_names_what_the_case_store_recorded_and_the_disk_lacks(
        app: FastAPI, recorded: dict[str, Recorded]) -> None:
    ctx: ConsoleContext = app.state.console
    async with ctx.engine.begin() as conn:
        await conn.execute(update(recording_segments).where(recording_segments.c.segment == "c1-case1").values(
            manifest_path=f"{SESSION}/manifests/00009-c1-case1.json", manifest_sha256="a" * 64))
    auditor = await signed(app, "thanhtra")
    result = (await auditor.get("/api/replays/c1-case1/verification")).json()
    assert result["ok"] is False
    assert {"kind": "db_only", "path": f"{SESSION}/manifests/00009-c1-case1.json", "informational": False,
            "detail": "segment c1-case1 closed with this manifest in the case store; it is not on disk"} \
        in result["findings"]
