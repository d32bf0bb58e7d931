"""The roll call and the venues' readiness checks of a session over HTTP (``/api/sessions/{id}/…``).

* ``GET /api/sessions/{id}/roll-call`` (grant ``call_queue``: the chair, the secretary): the roll call in
  force (``roll_call_no``, 0 before the first) with each venue present or not, its officials (name and
  position) and its count of citizens; ``history``: every roll call (number, when, who, the venues present
  and absent), the first first; ``required``: no roll call in force yet, so "call next" is refused.
* ``POST /api/sessions/{id}/roll-call`` (same grant) with ``{"expected_roll_call_no": n, "venues": [{"venue",
  "present", "citizens", "officials": [{"name", "position"}]}]}``: records a roll call, the first or an
  amendment (:func:`schedules.record_roll_call`); answers 201 with the GET's body. A stale
  ``expected_roll_call_no`` (another page amended it meanwhile) gets 409 ``stale_version``.
* ``GET /api/sessions/{id}/readiness`` (same grant): each venue with its latest check: ``status``
  (``ready``, ``not_ready``, ``not_checked``), the figures, the problems and when.
* ``POST /api/sessions/{id}/readiness`` (grant ``publish`` and the caller's own venue: a venue's page,
  the chair's page for the main venue) with the browser's figures ``{"venue", "rtt_ms", "rtt_source",
  "outgoing_kbps", "turn", "camera", "microphone", "browser"}``: records the check
  (:func:`schedules.record_readiness`); 201 with the check and its verdict.

Refusals are JSON problems ``{"error": code, "message": Vietnamese text}``: 403 a missing grant or a
venue reporting for another, 404 an unknown session or venue, 409 a session not open (roll call) or
over (readiness), 422 a bad body or figure, 413 a body over the route's cap (the edge).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from schedules import (
    MAX_SESSION_VENUES,
    Official,
    ReadinessReport,
    RollCall,
    RttSource,
    SchedulesError,
    TurnResult,
    VenueAttendance,
    VenueReadiness,
    get_session,
    readiness_of,
    record_readiness,
    record_roll_call,
    roll_calls_of,
)
from schedules.roll_call import MAX_CITIZENS, MAX_OFFICIALS
from schedules.sessions import LIVE_STATES
from signaling.grants import Grant

from ..actor import CurrentActor, require_any
from ..context import ConsoleContext
from .problems import schedules_problem, unknown_session

__all__ = ["create_roll_call_api_router"]

log = logging.getLogger("room_console.api.roll_call")
_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


class OfficialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    position: str = Field(max_length=300)


class VenueAttendanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venue: str = Field(min_length=1, max_length=64)
    present: bool
    citizens: int = Field(default=0, ge=0, le=MAX_CITIZENS)
    officials: list[OfficialIn] = Field(default_factory=list, max_length=MAX_OFFICIALS)


class RollCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_roll_call_no: int | None = Field(default=None, ge=0, le=2**31)
    venues: list[VenueAttendanceIn] = Field(min_length=1, max_length=MAX_SESSION_VENUES)


class ReadinessIn(BaseModel):
    """The figures are checked by :func:`schedules.readiness.checked_report` (Vietnamese reasons)."""

    model_config = ConfigDict(extra="forbid")

    venue: str = Field(min_length=1, max_length=64)
    rtt_ms: float | None = None
    rtt_source: Literal["media", "signalling"] | None = None
    outgoing_kbps: int | None = None
    turn: Literal["reachable", "unreachable", "not_configured"]
    camera: bool
    microphone: bool
    browser: str = Field(default="", max_length=400)


def _schedules_problem(exc: SchedulesError) -> JSONResponse:
    return schedules_problem(exc, current_key="current_roll_call_no")


def _clock(console: ConsoleContext) -> datetime:
    return datetime.fromtimestamp(console.clock(), UTC)


def _roll_call_json(venues: list[dict[str, Any]], calls: tuple[RollCall, ...], live: bool) -> dict[str, Any]:
    latest = calls[-1] if calls else None
    attendance = {v.venue: v for v in latest.venues} if latest is not None else {}

    def venue(v: dict[str, Any]) -> dict[str, Any]:
        entry = attendance.get(v["venue"])
        return {**v, "present": None if entry is None else entry.present,
                "citizens": 0 if entry is None else entry.citizens,
                "officials": [] if entry is None else [{"name": o.name, "position": o.position}
                                                       for o in entry.officials]}

    return {
        "roll_call_no": latest.roll_call_no if latest is not None else 0,
        "recorded_at": latest.recorded_at.isoformat() if latest is not None else None,
        "live": live,
        "required": latest is None,
        "venues": [venue(v) for v in venues],
        "history": [{"roll_call_no": c.roll_call_no, "recorded_at": c.recorded_at.isoformat(),
                     "recorded_by": c.recorded_by, "present": list(c.present), "absent": list(c.absent),
                     "officials": c.officials, "citizens": c.citizens} for c in calls],
    }


async def _roll_call_view(console: ConsoleContext, session_id: str) -> dict[str, Any]:
    async with console.engine.connect() as conn:
        record = await get_session(conn, session_id)
        calls = await roll_calls_of(conn, session_id)
    venues = [{"venue": v.venue, "name": v.name, "main": v.main} for v in record.venues]
    body = _roll_call_json(venues, calls, record.state in LIVE_STATES)
    body["session"] = session_id
    return body


def _readiness_json(item: VenueReadiness) -> dict[str, Any]:
    check = item.latest
    body: dict[str, Any] = {"venue": item.venue, "name": item.name, "main": item.main, "status": item.status}
    if check is None:
        return body
    report = check.report
    body.update({
        "checked_at": check.checked_at.isoformat(),
        "rtt_ms": None if report.rtt_ms is None else round(report.rtt_ms, 1),
        "rtt_source": None if report.rtt_source is None else {"value": report.rtt_source.value,
                                                               "label": report.rtt_source.label_vi},
        "outgoing_kbps": report.outgoing_kbps,
        "turn": {"value": report.turn.value, "label": report.turn.label_vi},
        "camera": report.camera,
        "microphone": report.microphone,
        "browser": report.browser,
        "problems": [{"value": p.value, "label": p.label_vi} for p in check.problems],
    })
    return body


def create_roll_call_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["roll call"])

    @router.get("/sessions/{session_id}/roll-call")
    async def roll_call_view(console: Console, actor: CurrentActor,
                             session_id: str) -> Response:
        """The roll call in force and every earlier one."""
        require_any(actor, {Grant.CALL_QUEUE})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        try:
            body = await _roll_call_view(console, session_id)
        except SchedulesError as exc:
            return _schedules_problem(exc)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    @router.post("/sessions/{session_id}/roll-call")
    async def roll_call_record(console: Console, actor: CurrentActor,
                               session_id: str,
                               body: Annotated[RollCallIn, Body()]) -> Response:
        """Record a roll call (the first, or an amendment)."""
        require_any(actor, {Grant.CALL_QUEUE})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        attendance = [VenueAttendance(v.venue, v.present, tuple(Official(o.name, o.position) for o in v.officials),
                                      v.citizens) for v in body.venues]
        try:
            async with console.engine.begin() as conn:
                recorded = await record_roll_call(conn, session_id, attendance=attendance,
                                                  expected_roll_call_no=body.expected_roll_call_no,
                                                  actor=actor.label, grants=actor.grants,
                                                  clock=lambda: _clock(console))
            view = await _roll_call_view(console, session_id)
        except SchedulesError as exc:
            return _schedules_problem(exc)
        if console.notify_outbox is not None:
            console.notify_outbox()
        log.info("roll call recorded", extra={"ctx": {"session": session_id, "roll_call_no": recorded.roll_call_no,
                                                      "absent": len(recorded.absent)}})
        return JSONResponse(view, status_code=201, headers={"cache-control": "no-store"})

    @router.get("/sessions/{session_id}/readiness")
    async def readiness_view(console: Console, actor: CurrentActor,
                             session_id: str) -> Response:
        """Each venue of the session with its latest readiness check."""
        require_any(actor, {Grant.CALL_QUEUE})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        try:
            async with console.engine.connect() as conn:
                items = await readiness_of(conn, session_id)
        except SchedulesError as exc:
            return _schedules_problem(exc)
        return JSONResponse({"session": session_id, "venues": [_readiness_json(i) for i in items]},
                            headers={"cache-control": "no-store"})

    @router.post("/sessions/{session_id}/readiness")
    async def readiness_record(console: Console, actor: CurrentActor,
                               session_id: str,
                               body: Annotated[ReadinessIn, Body()]) -> Response:
        """Record the caller's venue's readiness check (figures measured by its browser)."""
        require_any(actor, {Grant.PUBLISH})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        report = ReadinessReport(
            venue=body.venue, rtt_ms=body.rtt_ms,
            rtt_source=None if body.rtt_source is None else RttSource.parse(body.rtt_source),
            outgoing_kbps=body.outgoing_kbps, turn=TurnResult.parse(body.turn), camera=body.camera,
            microphone=body.microphone, browser=body.browser)
        try:
            async with console.engine.begin() as conn:
                check = await record_readiness(conn, session_id, report, actor=actor.label, actor_venue=actor.venue,
                                               grants=actor.grants, clock=lambda: _clock(console))
        except SchedulesError as exc:
            return _schedules_problem(exc)
        if console.notify_outbox is not None:
            console.notify_outbox()
        log.info("readiness checked", extra={"ctx": {"session": session_id, "venue": body.venue,
                                                     "ready": check.ready}})
        item = VenueReadiness(venue=body.venue, name=body.venue, main=False, latest=check)
        answer = _readiness_json(item)
        answer.pop("name")
        answer.pop("main")
        answer["id"] = check.id
        return JSONResponse(answer, status_code=201, headers={"cache-control": "no-store"})

    return router
