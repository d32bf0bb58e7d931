"""The chair's queue controls over HTTP (``/api/sessions/{id}/queue``) and the call announcements' audio.

* ``GET /api/sessions/{id}/queue``: the queue as the chair's page shows it — the case being received,
  the waiting tickets in call order (number and venue only, never a name), those passed over for now,
  the reorder reasons, which actions apply, and the queue ``version``.
* ``POST /api/sessions/{id}/queue/{action}`` with ``action`` one of ``call-next``, ``recall``, ``skip``,
  ``absent``, ``end``, ``pause``, ``resume``; body (JSON, optional): ``expected_version`` (the version
  the page showed: a stale one gives 409 ``stale_version``), ``reason`` (``pause``: ``chair`` or
  ``link_lost``, required), ``ticket_no`` (``recall`` / ``absent`` of a ticket passed over before).
  Answers the new queue (as the GET) with the bus events written (``events``: their types).
* ``GET /api/announcements/{sha256}.wav``: a synthesised announcement from the cache (signed-in users;
  the name is checked to be 64 hex digits, never used as a path otherwise).

Both queue routes need the grant ``call_queue`` (chair, secretary): a venue's account or token gets 403.
A confidential case's handling chosen at the desk (:mod:`schedules.triage`: ``closed_segment``, so the
chair starts the closed segment when calling it; ``in_person``, listed apart and never called online)
is in the answer only for holders of ``moderate`` or ``closed_segment`` (``handling`` on each ticket and
``in_person``); nobody else's answer, no event and no board shows it.
Each action is one call of :mod:`schedules.calls` in one transaction (change, audit row, outbox event),
which reads the queue once, under its lock; then the outbox relay is woken. For ``call-next`` and
``recall`` the service asks for the announcement's audio once it knows the text (ticket number and
venue): espeak-ng in a worker thread, cached by the text's hash, so ``case.called`` / ``case.recalled``
carry its URL; if synthesis fails the call goes on without audio (logged). So that this lookup inside
the transaction is a cache hit, after every action's answer has been sent the announcement of the
number now first in the call order is synthesised (a background task of the response). Refusals of
``schedules`` become JSON problems ``{"error": code, "message": Vietnamese text}``: 404 unknown session or
ticket, 409 a state that does not allow the action (closed session, nobody waiting, a case in progress,
paused, stale version, and ``roll_call_missing``: the first "call next" before the venues' roll call,
``/api/sessions/{id}/roll-call``), 422 a bad body, 403 a missing grant.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.background import BackgroundTask

from schedules import calls
from schedules.announcement import SpeechOptions, announcement_text, synthesize_async
from schedules.call_order import TicketStatus
from schedules.errors import (
    AnnouncementError,
    SchedulesError,
)
from schedules.queue import PauseReason, QueueState
from schedules.triage import ConfidentialHandling, ticket_handling
from signaling.grants import Grant

from ..actor import Actor, CurrentActor, require_any
from ..context import ConsoleContext
from .problems import json_problem, schedules_problem, unknown_session

__all__ = ["create_queue_api_router", "ANNOUNCEMENT_PATH", "QUEUE_ACTIONS", "queue_json"]

log = logging.getLogger("room_console.api.queue")

#: Where the console serves a cached announcement: ``ANNOUNCEMENT_PATH + "<sha256>.wav"``.
ANNOUNCEMENT_PATH = "/api/announcements/"
QUEUE_ACTIONS = ("call-next", "recall", "skip", "absent", "end", "pause", "resume")
_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_AUDIO_NAME = re.compile(r"^([0-9a-f]{64})\.wav$")
_WAITING_SHOWN = 20


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


class QueueActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(default=None, ge=0, le=2**31)
    reason: Literal["chair", "link_lost"] | None = None
    ticket_no: int | None = Field(default=None, ge=1, le=99_999)


def _labelled(value: Any) -> dict[str, str] | None:
    return None if value is None else {"value": value.value, "label": value.label_vi}


def queue_json(state: QueueState, version: int, venue_names: Mapping[str, str],
               handling: Mapping[int, ConfidentialHandling] | None = None) -> dict[str, Any]:
    """The queue for the chair's page: ticket numbers and venues, never a name or a case's content.
    ``handling`` (the chair and the secretary only): the flagged tickets' handling, added to each ticket."""
    order = state.order()

    def flagged(out: dict[str, Any], ticket_no: int) -> dict[str, Any]:
        if handling is not None:
            out["handling"] = _labelled(handling.get(ticket_no))
        return out

    def ticket(t: Any) -> dict[str, Any]:
        return flagged({"ticket_no": t.ticket_no, "venue": t.venue, "venue_name": venue_names.get(t.venue, t.venue),
                        "reorder": _labelled(order.reason_for(t.ticket_no))}, t.ticket_no)

    current = state.current_ticket
    passed_over = [t for t in state.tickets if t.status is TicketStatus.DEFERRED
                   or (t.status is TicketStatus.WAITING and t.no_shows > 0)]
    idle = current is None and not state.paused
    open_ = not state.closed
    shown: dict[str, Any] = {
        "session": state.session_id,
        "version": version,
        "closed": state.closed,
        "paused": state.paused,
        "current": None if current is None else flagged({
            "ticket_no": current.ticket_no, "venue": current.venue,
            "venue_name": venue_names.get(current.venue, current.venue), "call_seq": current.last_call_seq},
            current.ticket_no),
        # venues whose link is down (their tickets held); ``link_lost``: the case paused over its venue's link
        "unavailable_venues": [{"venue": v, "venue_name": venue_names.get(v, v)}
                               for v in sorted(state.unavailable_venues)],
        "link_lost": state.paused and current is not None and current.venue in state.unavailable_venues,
        "waiting_count": len(order.order),
        "waiting": [ticket(t) for t in order.order[:_WAITING_SHOWN]],
        "held": [ticket(t) for t in order.held],
        "passed_over": [{"ticket_no": t.ticket_no, "venue": t.venue,
                         "venue_name": venue_names.get(t.venue, t.venue), "status": _labelled(t.status)}
                        for t in passed_over],
        "reorders": [{"ticket_no": r.ticket_no, **(_labelled(r.reason) or {})} for r in order.reorders],
        "actions": {
            "call-next": open_ and idle and bool(order.order),
            "recall": open_ and current is not None and not state.paused,
            "skip": open_ and current is not None and not state.paused,
            "absent": open_ and current is not None and not state.paused,
            "end": open_ and current is not None and not state.paused,
            "pause": open_ and current is not None and not state.paused,
            "resume": open_ and state.paused,
        },
    }
    if handling is not None:
        shown["in_person"] = [ticket(t) for t in state.tickets if t.status is TicketStatus.IN_PERSON]
    return shown


async def _handling(conn: AsyncConnection, actor: Actor, session_id: str) -> dict[int, ConfidentialHandling] | None:
    """The flags for the chair and the secretary (``moderate`` / ``closed_segment``), None for anyone else."""
    if not actor.grants & {Grant.MODERATE, Grant.CLOSED_SEGMENT}:
        return None
    return await ticket_handling(conn, session_id)


def _announcer(speech: SpeechOptions | None) -> calls.Announce | None:
    """The service's ``announce``: the URL of a text's audio, synthesised unless cached; None on failure."""
    if speech is None:
        return None

    async def announce(text: str) -> str | None:
        try:
            speech_file = await synthesize_async(text, speech)
        except (AnnouncementError, OSError) as exc:
            log.warning("announcement not synthesised", extra={"ctx": {"code": getattr(exc, "code", "os_error")}})
            return None
        return f"{ANNOUNCEMENT_PATH}{speech_file.name}"

    return announce


async def _prepare_next_announcement(speech: SpeechOptions, ticket_no: int, venue_name: str) -> None:
    """Synthesise the announcement of the number first in the call order (so calling it finds it cached)."""
    try:
        await synthesize_async(announcement_text(ticket_no, calls.spoken_venue_name(venue_name)), speech)
    except (AnnouncementError, OSError) as exc:
        log.warning("next announcement not synthesised", extra={"ctx": {"code": getattr(exc, "code", "os_error")}})


def _schedules_clock(console: ConsoleContext) -> datetime:
    return datetime.fromtimestamp(console.clock(), UTC)


def create_queue_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["queue"])

    @router.get("/sessions/{session_id}/queue")
    async def queue_view(console: Console, actor: CurrentActor, session_id: str) -> Response:
        """The queue of a session: the case being received, the waiting numbers, the reorder reasons."""
        require_any(actor, {Grant.CALL_QUEUE})
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        try:
            async with console.engine.connect() as conn:
                state, version = await calls.load_queue(conn, session_id)
                names = await calls.venue_names(conn, session_id)
                flags = await _handling(conn, actor, session_id)
        except SchedulesError as exc:
            return schedules_problem(exc)
        return JSONResponse(queue_json(state, version, names, flags), headers={"cache-control": "no-store"})

    @router.post("/sessions/{session_id}/queue/{action}")
    async def queue_action(console: Console, actor: CurrentActor, session_id: str, action: str,
                           body: Annotated[QueueActionIn | None, Body()] = None) -> Response:
        """One queue action of the chair (see the module docstring)."""
        require_any(actor, {Grant.CALL_QUEUE})
        if action not in QUEUE_ACTIONS:
            return json_problem(404, "unknown_action", "Thao tác hàng đợi không tồn tại.")
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        data = body or QueueActionIn()
        if action == "pause" and data.reason is None:
            return json_problem(422, "missing_reason", "Cần nêu lý do tạm dừng (chair hoặc link_lost).",
                            errors=[{"field": "reason", "message": "Cần nêu lý do tạm dừng."}])
        clock = lambda: _schedules_clock(console)  # noqa: E731
        common: dict[str, Any] = {"expected_version": data.expected_version, "actor": actor.label,
                                  "grants": actor.grants, "clock": clock}
        announce = _announcer(console.speech)
        try:
            async with console.engine.begin() as conn:
                if action == "call-next":
                    outcome = await calls.call_next(conn, session_id, announce=announce, **common)
                elif action == "recall":
                    outcome = await calls.recall(conn, session_id, ticket_no=data.ticket_no, announce=announce,
                                                 **common)
                elif action == "skip":
                    outcome = await calls.skip(conn, session_id, **common)
                elif action == "absent":
                    outcome = await calls.mark_absent(conn, session_id, ticket_no=data.ticket_no, **common)
                elif action == "end":
                    outcome = await calls.end_case(conn, session_id, **common)
                elif action == "pause":
                    outcome = await calls.pause(conn, session_id, reason=PauseReason.parse(data.reason or "chair"),
                                                **common)
                else:
                    outcome = await calls.resume(conn, session_id, **common)
                flags = await _handling(conn, actor, session_id)
        except SchedulesError as exc:
            return schedules_problem(exc)
        if console.notify_outbox is not None:
            console.notify_outbox()
        log.info("queue action", extra={"ctx": {"session": session_id, "action": action, "version": outcome.version}})
        names = outcome.venue_names
        body_out = queue_json(outcome.state, outcome.version, names, flags)
        body_out["events"] = [str(getattr(e, "type", "")) for e in outcome.events]
        body_out["announcement_audio_url"] = next(
            (getattr(e, "announcement_audio_url", None) for e in outcome.events
             if getattr(e, "announcement_audio_url", None)), None)
        upcoming = body_out["waiting"][0] if body_out["waiting"] and not outcome.state.closed else None
        warm = None if console.speech is None or upcoming is None else BackgroundTask(
            _prepare_next_announcement, console.speech, upcoming["ticket_no"], upcoming["venue_name"])
        return JSONResponse(body_out, headers={"cache-control": "no-store"}, background=warm)

    @router.get("/announcements/{name}")
    async def announcement_audio(console: Console, actor: CurrentActor, name: str) -> Response:
        """A synthesised call announcement (WAV) from the cache."""
        del actor  # any signed-in user or service: the announcement is said aloud at every venue anyway
        match = _AUDIO_NAME.fullmatch(name)
        if match is None or console.speech is None:
            return json_problem(404, "not_found", "Không tìm thấy tệp thông báo.")
        path = console.speech.cache_dir / f"{match.group(1)}.wav"
        if not path.is_file():
            return json_problem(404, "not_found", "Không tìm thấy tệp thông báo.")
        return FileResponse(path, media_type="audio/wav",
                            headers={"cache-control": "private, max-age=86400, immutable",
                                     "x-content-type-options": "nosniff"})

    return router
