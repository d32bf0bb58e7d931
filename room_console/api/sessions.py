"""The transitions of a reception session over HTTP (``/api/sessions/{id}`` and ``/api/sessions/{id}/{action}``).

* ``GET /api/sessions/{id}`` (grant ``manage`` or ``call_queue``): the session — ``state`` (value and
  Vietnamese label), ``version``, ``day``, ``opens_at`` / ``closes_at`` (local hh:mm), the time of each
  transition, and ``actions``: which of the transitions below its state allows.
* ``POST /api/sessions/{id}/publish`` (grant ``manage``) ``{"expected_version": n, "override_reason": "…"}``:
  publish the schedule (LTCD Điều 24: 5 working days ahead, else a written reason of 10 characters or more).
* ``POST /api/sessions/{id}/open`` · ``/start`` · ``/close`` (grant ``call_queue``)
  ``{"expected_version": n}``: open the room for the roll call (on the session day), start receiving
  citizens, end the session (not while a case is being heard).
* ``POST /api/sessions/{id}/postpone`` · ``/cancel`` (grant ``manage``) ``{"expected_version": n,
  "reason": code, "note": "…"}``: with a reason code of :class:`schedules.SessionReason` (``other`` needs
  a note).

``expected_version`` is required: the version the caller's page showed. Each action is one call of
:mod:`schedules.sessions` in one transaction (change, audit row, ``session.*`` event in the outbox), then
the outbox relay is woken; the answer is the session as the GET shows it with ``events`` (the types
written). Refusals are JSON problems ``{"error": code, "message": Vietnamese text}``: 403 a missing grant,
404 an unknown session, 409 a stale ``expected_version`` (``stale_version``, with ``current_version``) or a
state that does not allow the action (``illegal_transition`` with ``from_state`` / ``to_state``;
``publish_too_late`` with ``working_days_left`` and ``last_day``; ``not_session_day``,
``case_in_progress``, ``clock_went_backwards`` …), 422 a bad body (a missing or unknown reason code, a
reason too short).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from schedules import sessions as service
from schedules.errors import (
    IllegalTransition,
    PublishTooLate,
    SchedulesError,
)
from schedules.session_state import ALLOWED_FROM, SessionAction, SessionReason
from schedules.sessions import SessionRecord
from signaling.grants import Grant

from ..actor import Actor, CurrentActor, require_any
from ..context import ConsoleContext
from ..i18n import t
from .problems import json_problem, schedules_problem, unknown_session

__all__ = ["SESSION_ACTIONS", "create_sessions_api_router", "session_json"]

log = logging.getLogger("room_console.api.sessions")

_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MAX_TEXT = 500
#: The transitions this API offers, and the grant each needs (``reschedule`` belongs to the planning page).
SESSION_ACTIONS: dict[SessionAction, Grant] = {
    SessionAction.PUBLISH: Grant.MANAGE,
    SessionAction.OPEN: Grant.CALL_QUEUE,
    SessionAction.START: Grant.CALL_QUEUE,
    SessionAction.CLOSE: Grant.CALL_QUEUE,
    SessionAction.POSTPONE: Grant.MANAGE,
    SessionAction.CANCEL: Grant.MANAGE,
}
_REASONS = frozenset(r.value for r in SessionReason)


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


class TransitionIn(BaseModel):
    """The body of open, start and close."""

    model_config = ConfigDict(extra="forbid")

    expected_version: int = Field(ge=1, le=2**31)


class PublishIn(TransitionIn):
    override_reason: str | None = Field(default=None, max_length=_MAX_TEXT)


class ReasonIn(TransitionIn):
    reason: str = Field(max_length=32)
    note: str = Field(default="", max_length=_MAX_TEXT)


def _schedules_problem(exc: SchedulesError) -> JSONResponse:
    if isinstance(exc, IllegalTransition):
        return schedules_problem(exc, from_state=exc.from_state, to_state=exc.to_state)
    if isinstance(exc, PublishTooLate):
        return schedules_problem(exc, working_days_left=exc.working_days_left, last_day=exc.last_day.isoformat())
    return schedules_problem(exc)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def session_json(record: SessionRecord) -> dict[str, Any]:
    """A session for a page or a program (no personal data: ids, dates, states, venues)."""
    return {
        "session": record.id,
        "version": record.version,
        "state": {"value": record.state.value, "label": record.state.label_vi},
        "day": record.day.isoformat(),
        "opens_at": f"{record.opens_at:%H:%M}",
        "closes_at": f"{record.closes_at:%H:%M}",
        "form": record.session.form.value,
        "kind": record.session.kind.value,
        "host": record.host,
        "track": record.track.value,
        "title": record.title,
        "venues": [{"venue": v.venue, "name": v.name, "main": v.main} for v in record.venues],
        "reason": record.session.reason.value if record.session.reason else None,
        "published_at": _iso(record.published_at),
        "opened_at": _iso(record.opened_at),
        "started_at": _iso(record.started_at),
        "closed_at": _iso(record.closed_at),
        "actions": {a.value: record.state in ALLOWED_FROM[a] for a in SESSION_ACTIONS},
    }


Apply = Callable[[AsyncConnection, dict[str, Any]], Awaitable[SessionRecord]]


def create_sessions_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["sessions"])

    def clock_of(console: ConsoleContext) -> Callable[[], datetime]:
        return lambda: datetime.fromtimestamp(console.clock(), UTC)

    async def run(console: ConsoleContext, actor: Actor, session_id: str, action: SessionAction,
                  body: TransitionIn, apply: Apply) -> Response:
        require_any(actor, {SESSION_ACTIONS[action]})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        common: dict[str, Any] = {"expected_version": body.expected_version, "actor": actor.label,
                                  "grants": actor.grants, "clock": clock_of(console)}
        try:
            async with console.engine.begin() as conn:
                record = await apply(conn, common)
        except SchedulesError as exc:
            log.info("session transition refused", extra={"ctx": {"session": session_id, "action": action.value,
                                                                   "code": exc.code}})
            return _schedules_problem(exc)
        if console.notify_outbox is not None:
            console.notify_outbox()
        log.info("session transition", extra={"ctx": {"session": session_id, "action": action.value,
                                                      "version": record.version}})
        out = session_json(record)
        out["events"] = [str(getattr(e, "type", "")) for e in record.events]
        return JSONResponse(out, headers={"cache-control": "no-store"})

    @router.get("/sessions/{session_id}")
    async def session_view(console: Console, actor: CurrentActor, session_id: str) -> Response:
        """The session, its version and the transitions its state allows."""
        require_any(actor, {Grant.MANAGE, Grant.CALL_QUEUE})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        try:
            async with console.engine.connect() as conn:
                record = await service.get_session(conn, session_id)
        except SchedulesError as exc:
            return _schedules_problem(exc)
        return JSONResponse(session_json(record), headers={"cache-control": "no-store"})

    @router.post("/sessions/{session_id}/publish")
    async def publish(console: Console, actor: CurrentActor, session_id: str,
                      body: Annotated[PublishIn, Body()]) -> Response:
        """Publish the schedule (LTCD Điều 24)."""
        return await run(console, actor, session_id, SessionAction.PUBLISH, body, lambda conn, common:
                         service.publish_session(conn, session_id, calendar=console.calendar,
                                                 override_reason=body.override_reason, **common))

    @router.post("/sessions/{session_id}/open")
    async def open_(console: Console, actor: CurrentActor, session_id: str,
                    body: Annotated[TransitionIn, Body()]) -> Response:
        """Open the room for the venues' roll call (on the session day)."""
        return await run(console, actor, session_id, SessionAction.OPEN, body,
                         lambda conn, common: service.open_session(conn, session_id, **common))

    @router.post("/sessions/{session_id}/start")
    async def start(console: Console, actor: CurrentActor, session_id: str,
                    body: Annotated[TransitionIn, Body()]) -> Response:
        """Start receiving citizens."""
        return await run(console, actor, session_id, SessionAction.START, body,
                         lambda conn, common: service.start_session(conn, session_id, **common))

    @router.post("/sessions/{session_id}/close")
    async def close(console: Console, actor: CurrentActor, session_id: str,
                    body: Annotated[TransitionIn, Body()]) -> Response:
        """End the session (refused while a case is being heard)."""
        return await run(console, actor, session_id, SessionAction.CLOSE, body,
                         lambda conn, common: service.close_session(conn, session_id, **common))

    def reasoned(body: ReasonIn) -> Response | SessionReason:
        if body.reason not in _REASONS:
            return json_problem(422, "unknown_reason", t("api.sessions.unknown_reason"),
                            errors=[{"field": "reason", "message": t("api.sessions.unknown_reason")}])
        return SessionReason.parse(body.reason)

    @router.post("/sessions/{session_id}/postpone")
    async def postpone(console: Console, actor: CurrentActor, session_id: str,
                       body: Annotated[ReasonIn, Body()]) -> Response:
        """Postpone with a reason code."""
        require_any(actor, {Grant.MANAGE})
        reason = reasoned(body)
        if isinstance(reason, Response):
            return reason
        return await run(console, actor, session_id, SessionAction.POSTPONE, body, lambda conn, common:
                         service.postpone_session(conn, session_id, reason=reason, note=body.note, **common))

    @router.post("/sessions/{session_id}/cancel")
    async def cancel(console: Console, actor: CurrentActor, session_id: str,
                     body: Annotated[ReasonIn, Body()]) -> Response:
        """Cancel with a reason code."""
        require_any(actor, {Grant.MANAGE})
        reason = reasoned(body)
        if isinstance(reason, Response):
            return reason
        return await run(console, actor, session_id, SessionAction.CANCEL, body, lambda conn, common:
                         service.cancel_session(conn, session_id, reason=reason, note=body.note, **common))

    return router
