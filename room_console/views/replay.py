"""Replay of recordings (xem lại bản ghi hình; grants ``replay`` and ``confidential_replay``: the auditor).

* ``GET /xem-lai``: the sessions with recordings, and each one's segments (its cases).
* ``GET /xem-lai/{segment}``: a segment's page: the composite player (a "compose" button queues the job;
  the page polls its progress), each venue's own track, the verification of the session, the speaker
  timeline and the link-loss gaps.
* ``GET /xem-lai/{segment}/tep/{name}``: one venue track file; ``GET /xem-lai/{segment}/ban-dung``: the
  composite. Both answer ``Range`` requests (206) and take ``?tai=1`` for a download. A request without a
  range or from byte 0 (a player starting, a download) is an audit event (``replay.segment`` /
  ``replay.download``: who, segment, file); the further ranges a player asks while playing are not.
* ``POST /xem-lai/{segment}/dung-lai`` (a form with the CSRF token): compose again a segment whose composite
  is done or failed (e.g. after a re-verification; audited ``replay.compose_forced``); refused (409) while
  its job is queued or running, before any composite was asked, and for a segment still recording.
* ``POST /api/replays/{segment}/compose``: queue the composite (idempotent; a failed job is retried);
  ``GET /api/replays/{segment}``: the job (state, progress); ``GET /api/replays/{segment}/verification``:
  ``tiepdan verify`` of the session and its cross-check with the case store's rows.

Venues are shown by name: the names the session announced (``session_venues``), else the venue table's, the
id only as secondary information (and alone when no name is known).

Who sees what: without either grant, 403. A segment is confidential when it was recorded as such (phiên kín)
or its case is confidential by the rule of :mod:`complaints.confidentiality` (a denunciation: the rule, not
only the stored flag). Only a holder of ``confidential_replay`` sees, plays or composes it; anyone else gets
404, exactly as for a segment that does not exist (its existence is not confirmed), and the attempt is
audited (``replay.refused``). The list shows such a segment as "phiên kín" without case, time or link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.errors import NotFound, StaleVersion
from complaints.recordings import cross_check_recordings
from complaints.replays import (
    ReplayJob,
    ReplaySegment,
    job_for_segment,
    jobs_for_segments,
    recompose_replay,
    record_replay_access,
    replay_segment,
    replay_segments,
    request_replay,
)
from evidence import DecryptionFailed
from schedules import calls, list_venues
from signaling.grants import Grant

from ..actor import Actor, CurrentActor, require_any
from ..context import ConsoleContext
from ..i18n import t
from ..replay_files import (
    FileMissing,
    RangeNotSatisfiable,
    ReplayFiles,
    ServedFile,
    parse_range,
    ranged_response,
    read_first,
    safe_name,
)
from ..routes import Console, CurrentUser, SignedIn, render_error_text, render_page
from .common import actor_of

__all__ = ["router"]

log = logging.getLogger("room_console.replay")
router = APIRouter()

REPLAY_GRANTS = frozenset({Grant.REPLAY, Grant.CONFIDENTIAL_REPLAY})


class _Hidden(Exception):
    """Unknown segment, or one the actor may not see: 404 either way."""


def _files(request: Request) -> ReplayFiles:
    files: ReplayFiles = request.app.state.replay
    return files


def _now(console: ConsoleContext) -> datetime:
    return datetime.fromtimestamp(console.clock(), UTC)


def _may_see(actor: Actor, segment: ReplaySegment) -> bool:
    return actor.has(Grant.CONFIDENTIAL_REPLAY) if segment.confidential else actor.has(Grant.REPLAY)


async def _segment_for(console: ConsoleContext, actor: Actor, segment_id: str, *, file: str = "") -> ReplaySegment:
    require_any(actor, REPLAY_GRANTS)
    if not safe_name(segment_id):
        raise _Hidden(segment_id)
    async with console.engine.connect() as conn:
        segment = await replay_segment(conn, segment_id)
    if segment is None:
        raise _Hidden(segment_id)
    if not _may_see(actor, segment):
        async with console.engine.begin() as conn:
            await record_replay_access(conn, actor=actor.label, action="replay.refused", segment=segment.segment,
                                       file=file, now=_now(console), detail={"reason": "confidential"})
        log.info("replay refused", extra={"ctx": {"segment": segment.segment, "actor": actor.label}})
        raise _Hidden(segment_id)
    return segment


def _not_found_json() -> JSONResponse:
    return JSONResponse({"error": "not_found", "message": t("replay.error.unknown")}, status_code=404,
                        headers={"cache-control": "no-store"})


def _time(value: float | None) -> str:
    if value is None:
        return "—"
    whole = int(max(0.0, value))
    return f"{whole // 3600:d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


async def _venue_names(conn: AsyncConnection, sessions: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per session: venue id → name, as the session announced it (``session_venues``), else as the venue
    table has it."""
    table = {venue.id: venue.name for venue in await list_venues(conn)}
    named: dict[str, dict[str, str]] = {}
    for session in dict.fromkeys(sessions):
        named[session] = {**table, **await calls.venue_names(conn, session)}
    return named


def _venue(names: dict[str, str], venue: Any) -> dict[str, str] | None:
    """A venue as shown: its name, and its id as secondary information (``name`` is the id when unknown)."""
    if venue is None or venue == "":
        return None
    ident = str(venue)
    name = names.get(ident)
    return {"id": ident, "name": name or ident, "known": "1" if name else ""}


def _venues_of(segment: ReplaySegment, names: dict[str, str]) -> list[dict[str, str]]:
    seen = dict.fromkeys(str(item.get("venue", "")) for item in segment.files)
    return [v for v in (_venue(names, ident) for ident in seen) if v is not None]


def _tracks(segment: ReplaySegment, names: dict[str, str]) -> list[dict[str, Any]]:
    tracks = []
    for item in segment.files:
        path = str(item.get("path", ""))
        name = path.rsplit("/", 1)[-1]
        if not safe_name(name):
            continue
        tracks.append({"name": name, "venue": _venue(names, item.get("venue")),
                       "url": f"/xem-lai/{segment.segment}/tep/{name}",
                       "t0": _time(float(item.get("t0", 0.0)) - (segment.media_t0 or 0.0)),
                       "duration": _time(float(item.get("duration", 0.0))),
                       "encrypted": bool(item.get("encrypted")), "recovered": bool(item.get("recovered"))})
    return tracks


_GAP_REASONS = {"link_lost": "replay.gaps.reason.link_lost", "publisher_left": "replay.gaps.reason.publisher_left",
                "lagging": "replay.gaps.reason.lagging", "disk_full": "replay.gaps.reason.disk_full",
                "crash": "replay.gaps.reason.crash"}
_JOB_STATES = {"queued": "replay.list.job.queued", "running": "replay.list.job.running",
               "done": "replay.list.job.done", "failed": "replay.list.job.failed"}


def _spans(items: tuple[dict[str, Any], ...], t0: float, names: dict[str, str]) -> list[dict[str, Any]]:
    shown = []
    for item in items:
        end = item.get("end")
        reason = str(item.get("reason") or "")
        shown.append({"venue": _venue(names, item.get("venue")), "start": _time(float(item.get("start", 0.0)) - t0),
                      "end": "—" if end is None else _time(float(end) - t0),
                      "reason": t(_GAP_REASONS[reason]) if reason in _GAP_REASONS else reason})
    return shown


def _job_json(job: ReplayJob | None, segment: ReplaySegment) -> dict[str, Any]:
    return {"job": None if job is None else job.to_json(),
            "composite": f"/xem-lai/{segment.segment}/ban-dung" if job is not None and job.state == "done" else None}


# -- pages ------------------------------------------------------------------------------------------------


@router.get("/xem-lai")
async def replay_list(console: Console, signed: CurrentUser) -> Response:
    actor = actor_of(signed)
    require_any(actor, REPLAY_GRANTS)
    async with console.engine.connect() as conn:
        segments = await replay_segments(conn)
        jobs = await jobs_for_segments(conn, [s.segment for s in segments if _may_see(actor, s)])
        names = await _venue_names(conn, (s.session for s in segments if _may_see(actor, s)))
    sessions: dict[str, list[dict[str, Any]]] = {}
    for segment in segments:
        rows = sessions.setdefault(segment.session, [])
        if not _may_see(actor, segment):
            rows.append({"hidden": True})
            continue
        job = jobs.get(segment.segment)
        rows.append({"hidden": False, "segment": segment.segment, "url": f"/xem-lai/{segment.segment}",
                     "tracking_code": segment.tracking_code, "confidential": segment.confidential,
                     "closed": segment.closed, "duration": _time(segment.duration_s),
                     "opened_at": segment.opened_at, "tracks": len(segment.files),
                     "venues": _venues_of(segment, names.get(segment.session, {})),
                     "composite": t(_JOB_STATES[job.state] if job is not None else "replay.list.job.none")})
    return render_page(console, "replay/list.html", signed, sessions=sessions)


async def _render_segment(console: ConsoleContext, signed: SignedIn, segment: ReplaySegment, *, status: int = 200,
                          error: str = "", ok: str = "") -> Response:
    async with console.engine.connect() as conn:
        job = await job_for_segment(conn, segment.segment)
        names = (await _venue_names(conn, [segment.session]))[segment.session]
    t0 = segment.media_t0 or 0.0
    config = {"segment": segment.segment, "status": f"/api/replays/{segment.segment}",
              "compose": f"/api/replays/{segment.segment}/compose",
              "verification": f"/api/replays/{segment.segment}/verification"}
    return render_page(console, "replay/segment.html", signed, status=status, segment=segment, config=config,
                       job=_job_json(job, segment), tracks=_tracks(segment, names),
                       speakers=_spans(segment.speakers, t0, names), gaps=_spans(segment.gaps, t0, names),
                       venues=_venues_of(segment, names), duration=_time(segment.duration_s),
                       recompose=f"/xem-lai/{segment.segment}/dung-lai",
                       may_recompose=job is not None and job.state in ("done", "failed") and segment.closed,
                       error=error, ok=ok, messages={k: t(k) for k in _JS_KEYS})


@router.get("/xem-lai/{segment_id}")
async def replay_page(request: Request, console: Console, signed: CurrentUser, segment_id: str) -> Response:
    actor = actor_of(signed)
    try:
        segment = await _segment_for(console, actor, segment_id)
    except _Hidden:
        return render_error_text(404, t("replay.error.unknown"))
    ok = t("replay.recompose.ok") if request.query_params.get("ok") == "recompose" else ""
    return await _render_segment(console, signed, segment, ok=ok)


@router.post("/xem-lai/{segment_id}/dung-lai")
async def replay_recompose(request: Request, console: Console, signed: CurrentUser, segment_id: str) -> Response:
    """Compose a segment again (a console form; the CSRF token is checked by the middleware)."""
    actor = actor_of(signed)
    try:
        segment = await _segment_for(console, actor, segment_id)
    except _Hidden:
        return render_error_text(404, t("replay.error.unknown"))
    if not segment.closed:
        return await _render_segment(console, signed, segment, status=409, error=t("replay.error.open"))
    try:
        async with console.engine.begin() as conn:
            job = await recompose_replay(conn, segment.segment, actor=actor.label, now=_now(console))
    except NotFound:
        return await _render_segment(console, signed, segment, status=409,
                                     error=t("replay.recompose.not_composed"))
    except StaleVersion:
        return await _render_segment(console, signed, segment, status=409, error=t("replay.recompose.busy"))
    log.info("replay composed again", extra={"ctx": {"segment": segment.segment, "job": job.id}})
    notify = _files(request).notify
    if notify is not None:
        notify()
    return RedirectResponse(f"/xem-lai/{segment.segment}?ok=recompose", status_code=303)


_JS_KEYS = ("replay.job.none", "replay.job.queued", "replay.job.running", "replay.job.done", "replay.job.failed",
            "replay.verify.running", "replay.verify.ok", "replay.verify.bad", "replay.verify.error",
            "replay.compose.error")


# -- files ------------------------------------------------------------------------------------------------


async def _serve(request: Request, console: ConsoleContext, actor: Actor, segment: ReplaySegment,
                 served: ServedFile, *, kind: str) -> Response:
    files = _files(request)
    download = request.query_params.get("tai") == "1"
    try:
        stream, size = await asyncio.to_thread(files.open, served)
    except FileMissing:
        log.warning("recording file missing", extra={"ctx": {"segment": segment.segment, "file": served.name}})
        return render_error_text(404, t("replay.error.file_missing"))
    except DecryptionFailed:
        log.error("recording file fails authentication", extra={"ctx": {"segment": segment.segment,
                                                                        "file": served.name}})
        return render_error_text(409, t("replay.error.altered"))
    try:
        byte_range = parse_range(request.headers.get("range"), size)
        first = await asyncio.to_thread(read_first, stream, byte_range, size)
    except RangeNotSatisfiable:
        stream.close()
        return Response(status_code=416, headers={"content-range": f"bytes */{size}", "accept-ranges": "bytes"})
    except DecryptionFailed:
        stream.close()
        log.error("recording file fails authentication", extra={"ctx": {"segment": segment.segment,
                                                                        "file": served.name}})
        return render_error_text(409, t("replay.error.altered"))
    if byte_range is None or byte_range.start == 0 or download:
        action = "replay.download" if download else "replay.segment"
        async with console.engine.begin() as conn:
            await record_replay_access(conn, actor=actor.label, action=action, segment=segment.segment,
                                       file=served.name, now=_now(console),
                                       detail={"kind": kind, "session": segment.session,
                                               "confidential": segment.confidential})
    return ranged_response(stream, size, served, byte_range, first=first, download=download)


@router.get("/xem-lai/{segment_id}/tep/{name}")
async def replay_track(request: Request, console: Console, actor: CurrentActor, segment_id: str,
                       name: str) -> Response:
    try:
        segment = await _segment_for(console, actor, segment_id, file=name[:80])
        listed = {str(f.get("path", "")).rsplit("/", 1)[-1]: str(f.get("path", "")) for f in segment.files}
        served = _files(request).track(segment.session, name, listed)
    except (_Hidden, LookupError, FileMissing):
        return render_error_text(404, t("replay.error.unknown"))
    return await _serve(request, console, actor, segment, served, kind="track")


@router.get("/xem-lai/{segment_id}/ban-dung")
async def replay_composite(request: Request, console: Console, actor: CurrentActor, segment_id: str) -> Response:
    try:
        segment = await _segment_for(console, actor, segment_id, file="composite")
    except _Hidden:
        return render_error_text(404, t("replay.error.unknown"))
    async with console.engine.connect() as conn:
        job = await job_for_segment(conn, segment.segment)
    if job is None or job.state != "done" or not job.output_path:
        return render_error_text(404, t("replay.error.not_composed"))
    try:
        served = _files(request).composite(segment.session, job.output_path)
    except (LookupError, FileMissing):
        return render_error_text(404, t("replay.error.not_composed"))
    return await _serve(request, console, actor, segment, served, kind="composite")


# -- API --------------------------------------------------------------------------------------------------


@router.get("/api/replays/{segment_id}", tags=["replay"])
async def replay_status(console: Console, actor: CurrentActor, segment_id: str) -> Response:
    """The composing job of a segment (``job`` null when none was asked) and the composite's URL when done."""
    try:
        segment = await _segment_for(console, actor, segment_id)
    except _Hidden:
        return _not_found_json()
    async with console.engine.connect() as conn:
        job = await job_for_segment(conn, segment.segment)
    return JSONResponse(_job_json(job, segment), headers={"cache-control": "no-store"})


@router.post("/api/replays/{segment_id}/compose", tags=["replay"])
async def replay_compose(request: Request, console: Console, actor: CurrentActor, segment_id: str) -> Response:
    """Queue the composite of a segment (idempotent while queued, running or done; a failed job is retried)."""
    try:
        segment = await _segment_for(console, actor, segment_id)
    except _Hidden:
        return _not_found_json()
    if not segment.closed:
        return JSONResponse({"error": "segment_open", "message": t("replay.error.open")}, status_code=409)
    async with console.engine.begin() as conn:
        job = await request_replay(conn, segment.segment, actor=actor.label, now=_now(console))
    notify = _files(request).notify
    if notify is not None and job.state == "queued":
        notify()
    return JSONResponse(_job_json(job, segment), status_code=202, headers={"cache-control": "no-store"})


@router.get("/api/replays/{segment_id}/verification", tags=["replay"])
async def replay_verification(request: Request, console: Console, actor: CurrentActor, segment_id: str) -> Response:
    """``tiepdan verify`` of the segment's session: ``{ok, findings: [{kind, path, detail}]}`` (cached)."""
    try:
        segment = await _segment_for(console, actor, segment_id)
    except _Hidden:
        return _not_found_json()
    files = _files(request)
    try:
        result = await files.verification(segment.session)
        disk = await files.disk_recordings(segment.session)
        async with console.engine.connect() as conn:
            mismatches = await cross_check_recordings(conn, scope=segment.session, sessions=disk.sessions,
                                                      manifests=disk.manifests, segments=disk.segments,
                                                      case_segments=disk.case_segments)
    except FileMissing:
        return JSONResponse({"error": "recording_missing", "message": t("replay.error.file_missing")},
                            status_code=404)
    except Exception as exc:  # noqa: BLE001 - the verifier's failure is shown, never a crash of the page
        log.exception("verification failed", extra={"ctx": {"session": segment.session}})
        return JSONResponse({"error": "verification_failed", "message": t("replay.verify.error"),
                             "detail": type(exc).__name__}, status_code=500)
    findings = [*result["findings"], *({"kind": m.kind, "path": m.path, "detail": m.detail,
                                        "informational": m.informational} for m in mismatches)]
    ok = bool(result["ok"]) and all(m.informational for m in mismatches)
    return JSONResponse({"ok": ok, "findings": findings}, headers={"cache-control": "no-store"})
