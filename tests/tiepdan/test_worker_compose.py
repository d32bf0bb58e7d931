"""The worker role composes queued replays: ``tiepdan serve --role worker`` (its own process, sharing the
database and the recordings volume) takes a job queued for a real recording (WebM files muxed with PyAV,
a signed manifest), composes it in a niced child process, reports progress up to 1.0 and leaves an MP4
(H.264 + AAC), sealed as written (TIEPDAN_RECORDING_ENCRYPT_ALL, the default: no ``ftyp`` box on disk); a
job whose input is broken fails with a reason and the loop goes on with the next. A SIGKILLed child leaves
nothing behind: the worker removes its partial file and its RAM directory when it dies, and at the worker's
next start those of failed jobs whose worker died with them."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from complaints.replays import claim_next, fail_job, job_for_segment, request_replay
from complaints.tables import audit_events, metadata, replay_jobs
from evidence import Keyring
from evidence.stream import open_decrypted
from tests.harness import LiveServer, run_coroutine
from tests.room_console.test_replay_api import SESSION, insert_segment, record_segment
from tiepdan.db import make_engine
from tiepdan.replay_child import RAM_DIR, RAM_PREFIX
from tiepdan.replay_worker import ReplayWorker, ReplayWorkerOptions

REPO = Path(__file__).resolve().parents[2]


def sealed_mp4(path: Path, keyring: Keyring, aad: str) -> tuple[bytes, list[str], float]:
    """The plaintext of a sealed composite (decrypted in memory), its codecs and duration (PyAV)."""
    with open_decrypted(path, keyring, aad=aad.encode()) as stream:
        plain = stream.read()
    with av.open(io.BytesIO(plain)) as container:
        codecs = sorted(s.codec_context.name for s in container.streams)
        duration = float(container.duration or 0) / 1_000_000
    return plain, codecs, duration

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
    assert (state, progress, error, output) == ("done", 1.0, None, "replays/c2-good.mp4.enc"), jobs
    assert jobs["c1-broken"][0] == "failed" and jobs["c1-broken"][2], jobs  # a reason, and the loop went on
    assert seen == sorted(seen) and all(0.0 <= p <= 1.0 for p in seen)
    composite = recordings / SESSION / "replays" / "c2-good.mp4.enc"
    assert b"ftyp" not in composite.read_bytes() and not (composite.parent / "c2-good.mp4").exists()
    plain, codecs, duration = sealed_mp4(composite, keyring, "replays/c2-good.mp4.enc")
    assert plain[4:8] == b"ftyp" and codecs == ["aac", "h264"] and abs(duration - 4.0) < 1.0
    assert not list(composite.parent.glob(".*part*"))  # nothing half-written left beside it
    actions = run_coroutine(_audit(url, "c2-good"))
    assert [a for a, _ in actions] == ["replay.compose_requested", "replay.compose_started", "replay.compose_done"]
    assert int(actions[-1][1]["nice"]) >= 10  # type: ignore[call-overload]
    assert [a for a, _ in run_coroutine(_audit(url, "c1-broken"))][-1] == "replay.compose_failed"


async def _wait_for(found: Callable[[], list[Path]], what: str, timeout: float = 120.0) -> list[Path]:
    """Poll the file system (the child writes there, it has no event to wait on) until ``found`` is not empty."""
    deadline = time.monotonic() + timeout
    while not (paths := found()):
        assert time.monotonic() < deadline, f"no {what} appeared"
        await asyncio.sleep(0.05)
    return paths


def _written(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        try:
            if path.is_file() and path.stat().st_size > 0:
                found.append(path)
        except FileNotFoundError:  # renamed or removed by the child meanwhile
            continue
    return found


def _ram_files(pid: int) -> list[Path]:
    return _written([f for d in RAM_DIR.glob(f"{RAM_PREFIX}{pid}-*") for f in d.iterdir()])


async def test_a_killed_composing_child_fails_its_job_leaves_nothing_and_the_loop_goes_on(tmp_path: Path) -> None:
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
        pid = worker._child.pid
        await _wait_for(lambda: _ram_files(pid), "composite in RAM")  # composing, in RAM (sealed job)
        os.kill(pid, signal.SIGKILL)
        assert await task is True
        assert not list(RAM_DIR.glob(f"{RAM_PREFIX}{pid}-*"))  # its RAM directory went with it
        assert await worker.run_once() is True
        assert await worker.run_once() is False  # nothing left
    finally:
        await worker.close()
        await engine.dispose()
    jobs = await _jobs(url)
    assert jobs["c1-killed"][0] == "failed" and jobs["c1-killed"][2].startswith("compose_crashed: signal SIGKILL")
    assert jobs["c2-after"][:1] + jobs["c2-after"][3:] == ("done", "replays/c2-after.mp4.enc")
    replays = recordings / SESSION / "replays"
    assert sorted(p.name for p in replays.iterdir()) == ["c2-after.mp4.enc"]  # no partial of the killed one
    assert b"ftyp" not in (replays / "c2-after.mp4.enc").read_bytes()


def _child(session_dir: Path, segment: str, keyring_path: Path, *, encrypt: bool) -> list[str]:
    out = f"replays/{segment}.mp4" + (".enc" if encrypt else "")
    return [sys.executable, "-m", "tiepdan.replay_child", "--session-dir", str(session_dir), "--segment", segment,
            "--out", out, "--keyring", str(keyring_path), "--nice", "0"] + (["--encrypt"] if encrypt else [])


async def test_the_next_worker_start_removes_what_killed_children_of_failed_jobs_left(
        tmp_path: Path, database_url: str) -> None:
    keyring_path = tmp_path / "keyring.json"
    keyring = Keyring.generate(dev=True, path=keyring_path)
    recordings = tmp_path / "recordings"
    reports = [record_segment(recordings, keyring, segment, venues=[("tinh", (200, 30, 30))], seconds=seconds)[1]
               for segment, seconds in (("c1-plain", 20), ("c2-sealed", 20), ("c3-waiting", 1))]
    session_dir = recordings / SESSION
    replays = session_dir / "replays"
    # a worker and its children killed mid-compose: one writing its partial MP4, one composing in RAM
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    plain = await asyncio.create_subprocess_exec(*_child(session_dir, "c1-plain", keyring_path, encrypt=False),
                                                 stdout=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=env)
    sealed = await asyncio.create_subprocess_exec(*_child(session_dir, "c2-sealed", keyring_path, encrypt=True),
                                                  stdout=asyncio.subprocess.DEVNULL, cwd=str(REPO), env=env)

    async def kill_when(child: asyncio.subprocess.Process, found: Callable[[], list[Path]], what: str) -> list[Path]:
        paths = await _wait_for(found, what)
        child.send_signal(signal.SIGKILL)
        await child.wait()
        return paths

    partial, in_ram = await asyncio.gather(
        kill_when(plain, lambda: _written(list(replays.glob(f".*c1-plain.mp4.{plain.pid}.part*"))), "partial"),
        kill_when(sealed, lambda: _ram_files(sealed.pid), "composite in RAM"))
    assert plain.returncode == sealed.returncode == -signal.SIGKILL
    engine = make_engine(database_url)
    live_ram = Path(RAM_DIR, f"{RAM_PREFIX}{os.getpid()}-test")  # a child still alive: not touched
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await _queue(database_url, reports)
        now = datetime.now(UTC)
        for segment in ("c1-plain", "c2-sealed", "c3-waiting"):
            async with engine.begin() as conn:
                job = await claim_next(conn, worker="dead-worker", now=now)
                assert job is not None and job.segment == segment
                if segment != "c3-waiting":  # c3 stays running, as if on another worker
                    await fail_job(conn, job.id, "worker_lost", now=now)
        running = replays / f".c3-waiting.mp4.enc.{os.getpid()}.part"
        running.write_bytes(b"\x00")
        live_ram.mkdir()
        worker = ReplayWorker(engine, ReplayWorkerOptions(root=recordings, keyring_path=keyring_path, poll_s=60))
        loop = asyncio.ensure_future(worker.run())  # the worker's start
        try:
            await _wait_for(lambda: [] if any(p.exists() for p in [*partial, *in_ram]) else [replays], "sweep",
                            timeout=30)
        finally:
            await worker.close()
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
    finally:
        await engine.dispose()
        if live_ram.exists():
            live_ram.rmdir()
            kept_live = True
        else:
            kept_live = False
    assert not in_ram[0].parent.exists() and kept_live
    assert [p.name for p in replays.iterdir()] == [running.name]  # the running job's partial is not touched
