"""The replay worker: the loop of the ``worker`` role (and of the embedded ``all``) that composes queued
replays (:mod:`complaints.replays`), one job at a time.

Each turn claims the oldest queued job, then runs ``python -m tiepdan.replay_child`` (niced, see there) for
it and reads the child's progress lines, writing the progress to the job row at most once per
``progress_interval_s`` (the write doubles as the job's heartbeat, so a job whose worker died is failed as
``worker_lost`` by the next claim). The child's end decides the job: ``done`` with its file, or ``failed``
with a reason (the child's error code, or how it died: ``compose_crashed: signal 9``); either way the loop
goes on with the next job. The CPU-heavy work never runs in this process: in the embedded default the loop
lives beside the console and the media, the composing in its own lower-priority process.

Output: ``<root>/<session>/replays/<segment>.mp4.enc``, sealed with the keyring's data key (composed in RAM,
never in clear on disk) for a confidential segment and, under ``TIEPDAN_RECORDING_ENCRYPT_ALL`` (the
default), for every segment; ``….mp4`` only when that setting is off. A new composite replaces the other
variant of an earlier one. Stopping the worker kills a running child and fails its job as ``worker_stopped``
(an auditor may retry it).

Leftovers: a child killed outright (SIGKILL, the OOM killer) leaves its half-written ``replays/.<name>.<pid>.part…``
and its RAM directory (``/dev/shm/tiepdan-replay-<pid>-…``). The worker removes them as soon as its child
has died, and at its own start (:meth:`ReplayWorker.sweep`: after a worker was killed with its child) the
partial files of every failed job and the RAM directories of children no longer alive; again every
``sweep_every_s`` while idle (a dead worker's job is failed as ``worker_lost`` only once its heartbeat is
``stale_after_s`` old, possibly after this worker started).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.replays import (
    ReplayJob,
    claim_next,
    fail_job,
    finish_job,
    jobs_in_state,
    replay_segment,
    report_progress,
)

from .replay_child import RAM_DIR, RAM_PREFIX

__all__ = ["ReplayWorker", "ReplayWorkerOptions", "remove_leftovers", "replay_output_path", "sweep_ram_dir"]

log = logging.getLogger("tiepdan.replay_worker")

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_REPO = Path(__file__).resolve().parents[1]


def replay_output_path(segment: str, *, sealed: bool) -> str:
    """The composite's path relative to the session's directory (``.enc``: sealed)."""
    return f"replays/{segment}.mp4" + (".enc" if sealed else "")


def remove_leftovers(session_dir: Path, *, pid: int | None = None, segment: str | None = None,
                     ram_dir: Path = RAM_DIR) -> list[Path]:
    """Remove what a killed child left: its partial composites under ``replays/`` (of child ``pid``, or of
    ``segment`` whoever wrote them) and, with ``pid``, its RAM directory. Returns what was removed."""
    removed: list[Path] = []
    replays = session_dir / "replays"
    # the child's ".<name>.<pid>.part[.mp4]", and the composer's own ".<that>.part" beside it
    patterns = ([f".*.{pid}.part*"] if pid is not None else []) + \
        ([f".{segment}.mp4*.part*", f"..{segment}.mp4*.part*"] if segment else [])
    if replays.is_dir():
        for pattern in patterns:
            for path in replays.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    if pid is not None and ram_dir.is_dir():
        for path in ram_dir.glob(f"{RAM_PREFIX}{pid}-*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True


def sweep_ram_dir(ram_dir: Path = RAM_DIR) -> list[Path]:
    """Remove the RAM directories of replay children that are no longer alive (owned by this user)."""
    removed: list[Path] = []
    if not ram_dir.is_dir():
        return removed
    for path in ram_dir.glob(f"{RAM_PREFIX}*"):
        pid_text = path.name[len(RAM_PREFIX):].split("-", 1)[0]
        try:
            owned = path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid()
        except OSError:
            continue
        if owned and pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@dataclass(frozen=True)
class ReplayWorkerOptions:
    root: Path
    keyring_path: Path
    keyring_passphrase: str | None = None
    poll_s: float = 2.0
    nice: int = 10
    progress_interval_s: float = 1.0
    heartbeat_s: float = 10.0
    stale_after_s: float = 120.0
    encrypt_all: bool = True
    ram_dir: Path = RAM_DIR
    sweep_every_s: float = 300.0
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    python: str = sys.executable


class ReplayWorker:
    """Owns its loop's child process; :meth:`close` is idempotent."""

    def __init__(self, engine: AsyncEngine, options: ReplayWorkerOptions, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self.options = options
        self._clock = clock
        self._wake = asyncio.Event()
        self._child: asyncio.subprocess.Process | None = None
        self.closed = False
        self.jobs_done = 0
        self.jobs_failed = 0

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def wake(self) -> None:
        """A job was queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        self.closed = True
        self._wake.set()  # an idle loop ends now, not at its next poll
        await self._kill_child()

    async def sweep(self) -> int:
        """Remove the leftovers of killed children (module doc): partial files of failed jobs, RAM directories
        of children no longer alive. Returns how many were removed."""
        async with self._engine.connect() as conn:
            failed = await jobs_in_state(conn, "failed")
            sessions = {job.segment: await replay_segment(conn, job.segment) for job in failed}

        def work() -> int:
            count = len(sweep_ram_dir(self.options.ram_dir))
            for segment, record in sessions.items():
                if record is not None and _SAFE.match(record.session) and _SAFE.match(segment):
                    count += len(remove_leftovers(self.options.root / record.session, segment=segment,
                                                  ram_dir=self.options.ram_dir))
            return count

        removed = await asyncio.to_thread(work)
        if removed:
            log.warning("leftovers of killed replay children removed", extra={"ctx": {"count": removed}})
        return removed

    async def run(self) -> None:
        """The loop (supervised): sweep leftovers once, then claim, compose, repeat; waits ``poll_s`` (or a
        :meth:`wake`) when idle."""
        await self.sweep()
        swept_at = time.monotonic()
        while not self.closed:
            # cleared before claiming, not after: a wake while the claim runs (a job queued, the app
            # stopping) is kept, and the wait below returns at once instead of after ``poll_s``
            self._wake.clear()
            if not await self.run_once():
                if time.monotonic() - swept_at >= self.options.sweep_every_s:
                    await self.sweep()
                    swept_at = time.monotonic()
                if self.closed:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.options.poll_s)

    async def run_once(self) -> bool:
        """Claim and compose one job; False when none was queued."""
        async with self._engine.begin() as conn:
            job = await claim_next(conn, worker=self.options.worker_id, now=self._now(),
                                   stale_after_s=self.options.stale_after_s)
        if job is None:
            return False
        log.info("replay job started", extra={"ctx": {"job": job.id, "segment": job.segment}})
        try:
            outcome = await self._compose(job)
        except asyncio.CancelledError:
            await self._kill_child()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fail(job, "worker_stopped"))
            raise
        if outcome is None:
            return True  # the job was taken away meanwhile (failed as lost): nothing more to write
        error, result = outcome
        if error is None:
            async with self._engine.begin() as conn:
                await finish_job(conn, job.id, output_path=str(result["done"]), now=self._now(),
                                 detail={k: result[k] for k in ("bytes", "seconds", "nice") if k in result})
            self.jobs_done += 1
            log.info("replay job done", extra={"ctx": {"job": job.id, "segment": job.segment,
                                                       "seconds": result.get("seconds")}})
        else:
            await self._fail(job, error)
        return True

    async def _fail(self, job: ReplayJob, reason: str) -> None:
        async with self._engine.begin() as conn:
            await fail_job(conn, job.id, reason, now=self._now())
        self.jobs_failed += 1
        log.warning("replay job failed", extra={"ctx": {"job": job.id, "segment": job.segment, "reason": reason}})

    async def _compose(self, job: ReplayJob) -> tuple[str | None, dict[str, Any]] | None:
        """Run the child for ``job``: (None, its result) or (reason, {}); None when the job stopped running."""
        async with self._engine.connect() as conn:
            segment = await replay_segment(conn, job.segment)
        if segment is None:
            return "unknown_segment", {}
        if not _SAFE.match(segment.session) or not _SAFE.match(segment.segment):
            return "bad_segment_id", {}
        if not segment.closed:
            return "segment_not_closed", {}
        session_dir = self.options.root / segment.session
        if not session_dir.is_dir():
            return "recording_missing", {}
        sealed = segment.confidential or self.options.encrypt_all
        out = replay_output_path(segment.segment, sealed=sealed)
        args = [self.options.python, "-m", "tiepdan.replay_child", "--session-dir", str(session_dir),
                "--segment", segment.segment, "--out", out, "--keyring", str(self.options.keyring_path),
                "--nice", str(self.options.nice)]
        if sealed:
            args.append("--encrypt")
        env = dict(os.environ)
        env.pop("TIEPDAN_KEYRING_PASSPHRASE", None)
        if self.options.keyring_passphrase:
            env["TIEPDAN_KEYRING_PASSPHRASE"] = self.options.keyring_passphrase
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
        child = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE, env=env, cwd=str(_REPO))
        self._child = child
        try:
            outcome = await self._follow(job, child)
        finally:
            self._child = None
            if child.returncode != 0:  # killed, failed or still running (then killed by _follow): its leftovers
                await self._kill_child_of(child)
                await asyncio.to_thread(remove_leftovers, session_dir, pid=child.pid, ram_dir=self.options.ram_dir)
        if outcome is not None and outcome[0] is None:
            # the new composite replaces an earlier one of the other variant (.mp4 <-> .mp4.enc)
            other = out[:-4] if sealed else out + ".enc"
            await asyncio.to_thread((session_dir / other).unlink, missing_ok=True)
        return outcome

    async def _follow(self, job: ReplayJob,
                      child: asyncio.subprocess.Process) -> tuple[str | None, dict[str, Any]] | None:
        assert child.stdout is not None and child.stderr is not None
        state: dict[str, Any] = {"progress": 0.0}
        stderr_tail: list[bytes] = []

        async def read_stdout() -> None:
            assert child.stdout is not None
            async for line in child.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    if isinstance(message.get("progress"), int | float):
                        state["progress"] = min(1.0, max(0.0, float(message["progress"])))
                    state.update({k: v for k, v in message.items() if k != "progress"})

        async def read_stderr() -> None:
            assert child.stderr is not None
            async for line in child.stderr:
                stderr_tail.append(line)
                del stderr_tail[:-5]

        readers = asyncio.gather(read_stdout(), read_stderr(), child.wait())
        written, written_at = -1.0, time.monotonic()
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(readers), timeout=self.options.progress_interval_s)
                    break
                except TimeoutError:
                    pass
                due = time.monotonic() - written_at >= self.options.heartbeat_s
                if state["progress"] != written or due:
                    async with self._engine.begin() as conn:
                        alive = await report_progress(conn, job.id, state["progress"], now=self._now())
                    written, written_at = state["progress"], time.monotonic()
                    if not alive:
                        await self._kill_child()
                        return None
        finally:
            if not readers.done():
                await self._kill_child()
                readers.cancel()
                with contextlib.suppress(BaseException):
                    await readers
        code = child.returncode
        if self.closed and code != 0:
            return "worker_stopped", {}
        if code == 0 and "done" in state:
            return None, state
        if "error" in state:
            return f"{state['error']}: {state.get('detail', '')}".strip(": "), {}
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
        last = stderr_tail[-1].decode("utf-8", "replace").strip()[:200] if stderr_tail else ""
        return f"compose_crashed: {how}" + (f" ({last})" if last else ""), {}

    async def _kill_child(self) -> None:
        if self._child is not None:
            await self._kill_child_of(self._child)

    @staticmethod
    async def _kill_child_of(child: asyncio.subprocess.Process) -> None:
        if child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.wait(), timeout=10)
