"""The worker role composes queued replays: ``tiepdan serve --role worker`` (its own process, sharing the
database and the recordings volume) takes a job queued for a real recording (WebM files muxed with PyAV,
a signed manifest), composes it in a niced child process, reports progress up to 1.0 and leaves an MP4
(H.264 + AAC); a job whose input is broken fails with a reason and the loop goes on with the next."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from complaints.replays import job_for_segment, request_replay
from complaints.tables import audit_events, replay_jobs
from evidence import Keyring
from tests.harness import LiveServer, run_coroutine
from tests.room_console.test_replay_api import SESSION, insert_segment, record_segment
from tiepdan.db import make_engine

pytestmark = pytest.mark.system


async def _queue(url: str, reports: list[object]) -> None:
    engine = make_engine(url)
    try:
        for report in reports:
            await insert_segment(engine, report)  # type: ignore[arg-type]
        async with engine.begin() as conn:
            for report in reports:
                await request_replay(conn, report.segment, actor="user:test",  # type: ignore[attr-defined]
                                     now=datetime.now(UTC))
    finally:
        await engine.dispose()


async def _jobs(url: str) -> dict[str, tuple[str, float, str | None, str | None]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(replay_jobs))).all()
            return {r.segment: (r.state, r.progress, r.error, r.output_path) for r in rows}
    finally:
        await engine.dispose()


async def _audit(url: str, segment: str) -> list[tuple[str, dict[str, object]]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(audit_events.c.action, audit_events.c.detail)
                                      .where(audit_events.c.target_id == segment).order_by(audit_events.c.id))
            return [(r[0], r[1]) for r in rows]
    finally:
        await engine.dispose()


async def _job(url: str, segment: str) -> object:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await job_for_segment(conn, segment)
    finally:
        await engine.dispose()


def test_worker_role_composes_a_queued_job_with_progress_and_survives_a_broken_one(
        server_factory: Callable[..., LiveServer], tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    server = server_factory(env={"TIEPDAN_RECORDING_DIR": str(recordings), "TIEPDAN_REPLAY_POLL_S": "0.2"},
                            users=[], args=("--role", "worker"))
    url = server.env.get("TIEPDAN_DATABASE_URL") or f"sqlite+aiosqlite:///{(server.data_dir / 'tiepdan.db').resolve()}"
    keyring = Keyring.load(server.data_dir / "keys" / "keyring.json")
    _, broken = record_segment(recordings, keyring, "c1-broken", venues=[("tinh", (200, 30, 30))], seconds=2)
    (recordings / SESSION / "media" / "c1-broken" / "tinh-1.webm").write_bytes(b"\x00" * 10)
    _, good = record_segment(recordings, keyring, "c2-good",
                             venues=[("tinh", (200, 30, 30)), ("xa-b", (30, 30, 200))], seconds=4)
    run_coroutine(_queue(url, [broken, good]))

    seen: list[float] = []
    deadline = time.monotonic() + 240
    while True:
        jobs = run_coroutine(_jobs(url))
        if jobs["c2-good"][0] == "running":
            seen.append(jobs["c2-good"][1])
        if jobs["c2-good"][0] in ("done", "failed") and jobs["c1-broken"][0] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.2)

    state, progress, error, output = jobs["c2-good"]
    assert (state, progress, error, output) == ("done", 1.0, None, "replays/c2-good.mp4"), jobs
    assert jobs["c1-broken"][0] == "failed" and jobs["c1-broken"][2], jobs  # a reason, and the loop went on
    assert seen == sorted(seen) and all(0.0 <= p <= 1.0 for p in seen)
    composite = recordings / SESSION / "replays" / "c2-good.mp4"
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration",
                            "-of", "json", str(composite)], capture_output=True, text=True, check=True)
    found = json.loads(probe.stdout)
    assert sorted(s["codec_name"] for s in found["streams"]) == ["aac", "h264"]
    assert abs(float(found["format"]["duration"]) - 4.0) < 1.0
    assert not list(composite.parent.glob(".*part*"))  # nothing half-written left beside it
    actions = run_coroutine(_audit(url, "c2-good"))
    assert [a for a, _ in actions] == ["replay.compose_requested", "replay.compose_started", "replay.compose_done"]
    assert int(actions[-1][1]["nice"]) >= 10  # type: ignore[call-overload]
    assert [a for a, _ in run_coroutine(_audit(url, "c1-broken"))][-1] == "replay.compose_failed"


async def test_a_killed_composing_child_fails_its_job_with_the_signal_and_the_loop_goes_on(tmp_path: Path) -> None:
    import asyncio
    import os
    import signal

    from complaints.tables import metadata
    from tiepdan.replay_worker import ReplayWorker, ReplayWorkerOptions

    keyring_path = tmp_path / "keyring.json"
    keyring = Keyring.generate(dev=True, path=keyring_path)
    recordings = tmp_path / "recordings"
    _, first = record_segment(recordings, keyring, "c1-killed", venues=[("tinh", (200, 30, 30))], seconds=20)
    _, second = record_segment(recordings, keyring, "c2-after", venues=[("tinh", (30, 200, 30))], seconds=2)
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await _queue(url, [first, second])
    worker = ReplayWorker(engine, ReplayWorkerOptions(root=recordings, keyring_path=keyring_path, poll_s=0.1))
    try:
        task = asyncio.ensure_future(worker.run_once())
        while worker._child is None:  # the child of the first job has started
            await asyncio.sleep(0.05)
        os.kill(worker._child.pid, signal.SIGKILL)
        assert await task is True
        assert await worker.run_once() is True
        assert await worker.run_once() is False  # nothing left
    finally:
        await worker.close()
        await engine.dispose()
    jobs = await _jobs(url)
    assert jobs["c1-killed"][0] == "failed" and jobs["c1-killed"][2].startswith("compose_crashed: signal SIGKILL")
    assert jobs["c2-after"][0] == "done" and (recordings / SESSION / "replays" / "c2-after.mp4").stat().st_size > 0
    assert not list((recordings / SESSION / "replays").glob(".*part*"))
