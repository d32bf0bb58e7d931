"""The chair's «venue is back» over HTTP: ``POST /api/sessions/{id}/queue/venues/{venue}/back``.

A venue whose link was reported lost is held out of the call order until the room server announces it back
(``room.venue_link_restored``). When the chair sees that the venue is fine and no such announcement came,
this action makes it available again (:func:`schedules.link_watch.confirm_venue_back`: one transaction, the
change and its audit row naming who did it). It needs the chair's grant ``moderate``: anyone else gets 403
with the reason in Vietnamese. Body (JSON, optional): ``expected_version``, the queue version the page
showed (a stale one gives 409 ``stale_version``). The answer is the new queue, as
``GET /api/sessions/{id}/queue`` gives it. Other refusals: 404 unknown session or venue not in the session,
409 ``venue_not_lost`` (the venue is not marked lost: someone did it first, or its restore arrived) or
``queue_closed`` (the session is not live), 422 a bad venue id or body. A paused case stays paused.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from schedules import calls
from schedules.errors import SchedulesError
from schedules.link_watch import confirm_venue_back
from schedules.sessions import get_session
from schedules.triage import ticket_handling
from signaling.grants import Grant

from ..actor import CurrentActor
from ..context import ConsoleContext
from .problems import schedules_problem, unknown_session
from .queue import queue_json

__all__ = ["create_venue_link_api_router"]

log = logging.getLogger("room_console.api.venue_link")

_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


class VenueBackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(default=None, ge=0, le=2**31)


def create_venue_link_api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["queue"])

    @router.post("/sessions/{session_id}/queue/venues/{venue}/back")
    async def venue_back(console: Console, actor: CurrentActor, session_id: str, venue: str,
                         body: Annotated[VenueBackIn | None, Body()] = None) -> Response:
        """The chair's «venue is back» (see the module docstring)."""
        if not _SESSION_ID.match(session_id):
            return unknown_session(session_id)
        data = body or VenueBackIn()
        clock = lambda: datetime.fromtimestamp(console.clock(), UTC)  # noqa: E731
        try:
            async with console.engine.begin() as conn:
                result = await confirm_venue_back(conn, session_id, venue, actor=actor.label, grants=actor.grants,
                                                  clock=clock, expected_version=data.expected_version)
            async with console.engine.connect() as conn:
                record = await get_session(conn, session_id)
                state, version = await calls.load_queue(conn, session_id)
                flags = await ticket_handling(conn, session_id) if actor.has_any(
                    {Grant.MODERATE, Grant.CLOSED_SEGMENT}) else None
        except SchedulesError as exc:
            return schedules_problem(exc)
        log.info("venue back", extra={"ctx": {"session": session_id, "venue": venue, "version": result.version}})
        names = {v.venue: v.name for v in record.venues}
        shown = queue_json(state, version, names, flags)
        shown["outcome"] = result.outcome.value
        return JSONResponse(shown, headers={"cache-control": "no-store"})

    return router
