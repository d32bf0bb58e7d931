"""Replay jobs (xem lại): composing one case segment's recording into a single MP4, queued by an auditor
and done by the ``worker`` role, one job at a time.

Theory of operation
    A job is a row of ``replay_jobs``, one per recording segment (``segment`` is unique), in one of four
    states::

        queued ──claim──► running ──finish──► done
           ▲                 │
           └──retry──  failed ◄──fail (a reason; or "worker_lost" when its worker stopped beating)

    * :func:`request_replay` (an auditor's "compose" button) is idempotent: a queued, running or done job
      is returned as it is; a failed one is queued again (a retry); otherwise a job is created.
    * :func:`claim_next` hands the oldest queued job to one worker atomically: ``FOR UPDATE SKIP LOCKED``
      on PostgreSQL, so concurrent workers never wait on each other nor take the same job; on SQLite (one
      writer at a time) the conditional ``UPDATE … WHERE state = 'queued'`` is the guard. Before claiming it
      fails the running jobs whose heartbeat is older than ``stale_after_s`` (their worker died).
    * :func:`report_progress` stores the progress (0.0 … 1.0) and the heartbeat of a running job.
    * :func:`finish_job` / :func:`fail_job` end a running job; :func:`retry_replay` queues a failed job
      again, or a done one whose file has gone (``force``).
    * :func:`recompose_replay` (an auditor's "compose again", e.g. after a re-verification) queues a new
      composite of a segment whose job is done or failed (audited ``replay.compose_forced``, with the state
      and file it replaces); it refuses while the job is queued or running, and when there is none.

Every change of state writes its audit row in the same transaction (actions ``replay.compose_*``);
progress reports do not (a heartbeat a second is no access). Reasons and details carry ids and error
codes, never personal data. Times are passed in by the caller (no clock read here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Select,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .audit import append_audit
from .confidentiality import confidential_clause
from .errors import InvalidInput, NotFound, StaleVersion
from .tables import cases, recording_segments, replay_jobs

__all__ = ["replay_jobs", "ReplayJob", "JobState", "JOB_STATES", "request_replay", "retry_replay", "claim_next",
           "report_progress", "finish_job", "fail_job", "get_job", "job_for_segment", "jobs_for_segments",
           "WORKER_LOST", "ReplaySegment", "replay_segment", "replay_segments", "ACCESS_ACTIONS",
           "record_replay_access", "recompose_replay", "jobs_in_state"]

JobState = Literal["queued", "running", "done", "failed"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed")
#: The reason given to a running job whose worker stopped sending heartbeats.
WORKER_LOST = "worker_lost"
_REASON_MAX = 500

@dataclass(frozen=True)
class ReplayJob:
    id: int
    segment: str
    state: JobState
    progress: float
    output_path: str | None
    error: str | None
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "segment": self.segment, "state": self.state, "progress": round(self.progress, 4),
                "error": self.error, "attempts": self.attempts,
                "requested_at": self.requested_at.isoformat(),
                "started_at": None if self.started_at is None else self.started_at.isoformat(),
                "finished_at": None if self.finished_at is None else self.finished_at.isoformat()}


def _job(row: Any) -> ReplayJob:
    return ReplayJob(id=row.id, segment=row.segment, state=row.state, progress=float(row.progress),
                     output_path=row.output_path, error=row.error, requested_by=row.requested_by,
                     requested_at=row.requested_at, started_at=row.started_at, finished_at=row.finished_at,
                     worker=row.worker, attempts=int(row.attempts))


async def _audit(conn: AsyncConnection, actor: str, action: str, job: ReplayJob, at: datetime,
                 **detail: Any) -> None:
    await append_audit(conn, actor=actor, action=action, target_kind="segment", target_id=job.segment,
                       detail={"job": job.id, **detail}, at=at)


async def get_job(conn: AsyncConnection, job_id: int) -> ReplayJob:
    row = (await conn.execute(select(replay_jobs).where(replay_jobs.c.id == job_id))).one_or_none()
    if row is None:
        raise NotFound("Không tìm thấy yêu cầu dựng bản xem lại.", code="unknown_replay_job")
    return _job(row)


async def job_for_segment(conn: AsyncConnection, segment: str) -> ReplayJob | None:
    row = (await conn.execute(select(replay_jobs).where(replay_jobs.c.segment == segment))).one_or_none()
    return None if row is None else _job(row)


async def jobs_for_segments(conn: AsyncConnection, segments: list[str]) -> dict[str, ReplayJob]:
    if not segments:
        return {}
    rows = (await conn.execute(select(replay_jobs).where(replay_jobs.c.segment.in_(segments)))).all()
    return {row.segment: _job(row) for row in rows}


async def jobs_in_state(conn: AsyncConnection, state: JobState) -> list[ReplayJob]:
    """Every job in ``state``, oldest request first."""
    rows = (await conn.execute(select(replay_jobs).where(replay_jobs.c.state == state)
                               .order_by(replay_jobs.c.requested_at, replay_jobs.c.id))).all()
    return [_job(row) for row in rows]


async def _requeue(conn: AsyncConnection, job: ReplayJob, *, actor: str, now: datetime,
                   allowed: tuple[JobState, ...], action: str = "replay.compose_retried") -> ReplayJob:
    done = await conn.execute(
        update(replay_jobs).where(replay_jobs.c.id == job.id, replay_jobs.c.state.in_(allowed))
        .values(state="queued", progress=0.0, error=None, output_path=None, requested_by=actor, requested_at=now,
                started_at=None, finished_at=None, worker=None, heartbeat_at=None))
    if done.rowcount != 1:
        raise StaleVersion("Yêu cầu dựng bản xem lại vừa thay đổi, xin thử lại.", code="replay_job_changed")
    queued = await get_job(conn, job.id)
    await _audit(conn, actor, action, queued, now, previous=job.state, reason=job.error,
                 **({"replaced": job.output_path} if job.output_path else {}))
    return queued


async def request_replay(conn: AsyncConnection, segment: str, *, actor: str, now: datetime) -> ReplayJob:
    """The job composing ``segment``: the existing one while queued, running or done; a failed one queued
    again; else a new queued job (audited ``replay.compose_requested``). The caller checked the grant and
    that the segment exists. Concurrent requests of one segment end with one job (the unique segment)."""
    existing = await job_for_segment(conn, segment)
    if existing is not None:
        if existing.state == "failed":
            return await _requeue(conn, existing, actor=actor, now=now, allowed=("failed",))
        return existing
    values = {"segment": segment, "state": "queued", "progress": 0.0, "requested_by": actor, "requested_at": now,
              "attempts": 0}
    insert_fn = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    try:
        result = await conn.execute(insert_fn(replay_jobs).values(**values)
                                    .on_conflict_do_nothing(index_elements=["segment"]).returning(replay_jobs.c.id))
    except IntegrityError as exc:  # the foreign key: no such segment
        raise NotFound("Không tìm thấy đoạn ghi hình.", code="unknown_segment") from exc
    job_id = result.scalar()
    if job_id is None:  # a concurrent request created it first
        raced = await job_for_segment(conn, segment)
        if raced is None:
            raise StaleVersion("Yêu cầu dựng bản xem lại vừa thay đổi, xin thử lại.", code="replay_job_changed")
        return raced
    job = await get_job(conn, job_id)
    await _audit(conn, actor, "replay.compose_requested", job, now)
    return job


async def retry_replay(conn: AsyncConnection, job_id: int, *, actor: str, now: datetime,
                       force: bool = False) -> ReplayJob:
    """Queue a failed job again (``force``: a done one too, e.g. when its file has gone)."""
    job = await get_job(conn, job_id)
    allowed: tuple[JobState, ...] = ("failed", "done") if force else ("failed",)
    if job.state not in allowed:
        raise InvalidInput("Chỉ yêu cầu dựng đã thất bại mới được thử lại.", code="replay_not_failed",
                           field="state")
    return await _requeue(conn, job, actor=actor, now=now, allowed=allowed)


async def recompose_replay(conn: AsyncConnection, segment: str, *, actor: str, now: datetime) -> ReplayJob:
    """Queue a new composite of ``segment`` whose job is done or failed (audited ``replay.compose_forced``).
    The caller checked the grant and that the segment exists and is closed.

    Raises :class:`NotFound` (``replay_not_composed``) when no composite was ever asked, and
    :class:`StaleVersion` (``replay_busy``) while the job is queued or running: the composite being made
    is the new one already."""
    job = await job_for_segment(conn, segment)
    if job is None:
        raise NotFound("Đoạn ghi hình này chưa được dựng bản xem lại lần nào: hãy dùng nút «Dựng bản xem lại».",
                       code="replay_not_composed")
    if job.state in ("queued", "running"):
        raise StaleVersion("Bản xem lại đang được dựng hoặc đang chờ dựng: chỉ dựng lại được khi đã xong "
                           "hoặc đã thất bại.", code="replay_busy")
    return await _requeue(conn, job, actor=actor, now=now, allowed=("done", "failed"),
                          action="replay.compose_forced")


async def _fail_stale(conn: AsyncConnection, *, now: datetime, stale_after_s: float, actor: str) -> None:
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = (await conn.execute(select(replay_jobs).where(
        replay_jobs.c.state == "running",
        func.coalesce(replay_jobs.c.heartbeat_at, replay_jobs.c.started_at) < cutoff))).all()
    for row in stale:
        job = _job(row)
        await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job.id, replay_jobs.c.state == "running")
                           .values(state="failed", error=WORKER_LOST, finished_at=now))
        await _audit(conn, actor, "replay.compose_failed", job, now, reason=WORKER_LOST, worker=job.worker)


async def claim_next(conn: AsyncConnection, *, worker: str, now: datetime, stale_after_s: float = 120.0,
                     actor: str = "service:worker") -> ReplayJob | None:
    """Take the oldest queued job for ``worker`` (state running, attempts + 1, audited
    ``replay.compose_started``), or None when nothing waits. Commit soon after: on PostgreSQL the chosen
    row stays locked until then (other workers skip it)."""
    await _fail_stale(conn, now=now, stale_after_s=stale_after_s, actor=actor)
    while True:
        candidate = (select(replay_jobs.c.id).where(replay_jobs.c.state == "queued")
                     .order_by(replay_jobs.c.requested_at, replay_jobs.c.id).limit(1))
        if conn.dialect.name == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        job_id = (await conn.execute(candidate)).scalar()
        if job_id is None:
            return None
        taken = await conn.execute(
            update(replay_jobs).where(replay_jobs.c.id == job_id, replay_jobs.c.state == "queued")
            .values(state="running", started_at=now, heartbeat_at=now, worker=worker[:200], progress=0.0,
                    attempts=replay_jobs.c.attempts + 1))
        if taken.rowcount == 1:
            job = await get_job(conn, job_id)
            await _audit(conn, actor, "replay.compose_started", job, now, worker=job.worker, attempt=job.attempts)
            return job


def _check_progress(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise InvalidInput("Tiến độ phải nằm trong khoảng 0 đến 1.", code="invalid_progress", field="progress")
    return float(value)


async def report_progress(conn: AsyncConnection, job_id: int, progress: float, *, now: datetime) -> bool:
    """Store the progress and heartbeat of a running job; False when it is no longer running (e.g. failed
    as lost meanwhile: the worker should stop)."""
    value = _check_progress(progress)
    done = await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job_id, replay_jobs.c.state == "running")
                              .values(progress=value, heartbeat_at=now))
    return done.rowcount == 1


async def finish_job(conn: AsyncConnection, job_id: int, *, output_path: str, now: datetime,
                     actor: str = "service:worker", detail: dict[str, Any] | None = None) -> ReplayJob:
    """A running job is done: its file is ``output_path`` (relative to the session's directory)."""
    if not output_path or output_path.startswith("/") or ".." in output_path.split("/"):
        raise InvalidInput("Đường dẫn bản xem lại không hợp lệ.", code="invalid_output_path", field="output_path")
    done = await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job_id, replay_jobs.c.state == "running")
                              .values(state="done", progress=1.0, output_path=output_path, finished_at=now,
                                      heartbeat_at=now, error=None))
    if done.rowcount != 1:
        raise StaleVersion("Yêu cầu dựng bản xem lại không còn ở trạng thái đang dựng.", code="replay_not_running")
    job = await get_job(conn, job_id)
    await _audit(conn, actor, "replay.compose_done", job, now, file=output_path, **(detail or {}))
    return job


async def fail_job(conn: AsyncConnection, job_id: int, reason: str, *, now: datetime,
                   actor: str = "service:worker") -> ReplayJob:
    """A running job failed for ``reason`` (an error code and short detail, never personal data)."""
    text = " ".join(reason.split())[:_REASON_MAX] or "unknown"
    done = await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job_id, replay_jobs.c.state == "running")
                              .values(state="failed", error=text, finished_at=now))
    if done.rowcount != 1:
        raise StaleVersion("Yêu cầu dựng bản xem lại không còn ở trạng thái đang dựng.", code="replay_not_running")
    job = await get_job(conn, job_id)
    await _audit(conn, actor, "replay.compose_failed", job, now, reason=text)
    return job


# -- the read side: recording segments as the replay pages show them ----------------------------------------

_segments = recording_segments


@dataclass(frozen=True)
class ReplaySegment:
    """A recording segment with what the replay pages need. ``confidential``: marked so when recorded (a closed
    segment, phiên kín) or its case is confidential by the rule (complaints.confidentiality)."""

    segment: str
    session: str
    case_id: str | None
    tracking_code: str | None
    confidential: bool
    closed: bool
    media_t0: float | None
    duration_s: float | None
    manifest_path: str | None
    manifest_sha256: str | None
    files: tuple[dict[str, Any], ...]
    speakers: tuple[dict[str, Any], ...]
    gaps: tuple[dict[str, Any], ...]
    opened_at: datetime | None
    closed_at: datetime | None


def _json_list(raw: Any) -> tuple[dict[str, Any], ...]:
    if raw is None or raw == "":
        return ()
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, dict))


def _segments_query() -> Select[Any]:
    case_confidential = func.coalesce(confidential_clause(), False)
    return (select(_segments.c.segment, _segments.c.session, _segments.c.case_id, cases.c.tracking_code,
                   _segments.c.confidential.label("marked"), case_confidential.label("case_confidential"),
                   _segments.c.manifest_path, _segments.c.manifest_sha256, _segments.c.media_t0,
                   _segments.c.duration_s, _segments.c.files_json, _segments.c.speakers_json, _segments.c.gaps_json,
                   _segments.c.opened_at, _segments.c.closed_at)
            .select_from(_segments.outerjoin(cases, cases.c.id == _segments.c.case_id)))


def _segment(row: Any) -> ReplaySegment:
    return ReplaySegment(
        segment=row.segment, session=row.session, case_id=row.case_id, tracking_code=row.tracking_code,
        confidential=bool(row.marked) or bool(row.case_confidential), closed=row.closed_at is not None,
        media_t0=None if row.media_t0 is None else float(row.media_t0),
        duration_s=None if row.duration_s is None else float(row.duration_s),
        manifest_path=row.manifest_path, manifest_sha256=row.manifest_sha256, files=_json_list(row.files_json),
        speakers=_json_list(row.speakers_json), gaps=_json_list(row.gaps_json), opened_at=row.opened_at,
        closed_at=row.closed_at)


async def replay_segment(conn: AsyncConnection, segment: str) -> ReplaySegment | None:
    row = (await conn.execute(_segments_query().where(_segments.c.segment == segment))).one_or_none()
    return None if row is None else _segment(row)


async def replay_segments(conn: AsyncConnection, *, limit: int = 500) -> list[ReplaySegment]:
    """Every recorded segment, newest session first and in recording order within a session."""
    rows = (await conn.execute(_segments_query().order_by(_segments.c.session.desc(), _segments.c.opened_at,
                                                          _segments.c.segment).limit(limit))).all()
    return [_segment(row) for row in rows]


#: The audit actions of an access to a recording (an auditor's page, never a worker's).
ACCESS_ACTIONS = frozenset({"replay.segment", "replay.download", "replay.refused"})


async def record_replay_access(conn: AsyncConnection, *, actor: str, action: str, segment: str, file: str,
                               now: datetime, detail: dict[str, Any] | None = None) -> int:
    """The audit row of one replay start (``replay.segment``), download (``replay.download``) or refused
    access to a confidential segment (``replay.refused``): who, which segment, which file."""
    if action not in ACCESS_ACTIONS:
        raise InvalidInput("Hành động không hợp lệ.", code="invalid_action", field="action")
    return await append_audit(conn, actor=actor, action=action, target_kind="segment", target_id=segment,
                              detail={"file": file, **(detail or {})}, at=now)
