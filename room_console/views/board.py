"""The queue board (bảng hiển thị số thứ tự, grant ``queue_board``): a full-screen page per session and venue,
fed by server-sent events.

* ``GET /bang-so``: the sessions whose board is shown (published, open, in progress) and their venues, for
  whoever holds the grant (an account bound to a venue sees its own venue only).
* ``GET /bang-so/{session_id}/{venue}``: the board page (no site header: it runs full screen on a TV).
* ``GET /api/sessions/{session_id}/board/{venue}``: the board as JSON (what a ``board`` event carries).
* ``GET /api/sessions/{session_id}/board/{venue}/events``: ``text/event-stream`` from the process's
  :class:`~room_console.board_stream.BoardHub`: a snapshot first, ``call`` on every call, ``board`` after every
  change, ``end`` when the session closes, ``reconnect`` when the client was too slow or the server stops.

Who may see which board: the grant ``queue_board`` (display, chair, secretary, venue operator, desk); an account
or a token bound to a venue sees only that venue's board, and only in a session that venue takes part in
(403 otherwise). An unknown session, one not shown (planned, closed, cancelled …) or a venue not in the
session is 404; nobody signed in: 401 for the API, the login form for the page. What the board shows is
numbers, venue names and reason codes: never a name, a case's content or its kind.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from schedules import local_day
from schedules.board import BOARD_STATES, load_board
from schedules.errors import UnknownSession
from schedules.sessions import SessionRecord, get_session, sessions_between
from signaling.grants import Grant

from ..actor import Actor, CurrentActor, require_any
from ..board_stream import BoardHub, BoardOptions, EventStreamResponse, TooManyStreams, board_json
from ..context import ConsoleContext
from ..errors import Forbidden
from ..i18n import catalogue, t
from ..routes import Console, CurrentUser, render_error_text, render_page
from .common import actor_of

__all__ = ["router"]

log = logging.getLogger("room_console.board")
router = APIRouter()

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class _NotShown(Exception):
    """The board is not shown: ``status`` and the catalogue key of the reason."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status, self.key = status, key


def _now(console: ConsoleContext) -> datetime:
    return datetime.fromtimestamp(console.clock(), UTC)


async def _session_for(console: ConsoleContext, actor: Actor, session_id: str, venue: str) -> SessionRecord:
    """The session whose board ``actor`` asks for at ``venue`` (raises :class:`_NotShown` / ``Forbidden``)."""
    require_any(actor, {Grant.QUEUE_BOARD})
    if not _SLUG.match(session_id) or not _SLUG.match(venue):
        raise _NotShown(404, "board.error.unknown")
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, session_id)
        except UnknownSession as exc:
            raise _NotShown(404, "board.error.unknown") from exc
    in_session = any(v.venue == venue for v in record.venues)
    if actor.venue is not None and (actor.venue != venue or not in_session):
        raise Forbidden("venue not bound to this account")
    if record.state not in BOARD_STATES or not in_session:
        raise _NotShown(404, "board.error.unknown")
    return record


def _problem(exc: _NotShown) -> JSONResponse:
    return JSONResponse({"error": "board_not_shown", "message": t(exc.key)}, status_code=exc.status,
                        headers={"cache-control": "no-store"})


def _hub(console: ConsoleContext) -> BoardHub | None:
    return console.boards


def _js_messages() -> dict[str, str]:
    messages = catalogue()
    return {key: messages.t(key) for key in sorted(messages.keys()) if key.startswith("board.")}


@router.get("/bang-so")
async def boards_page(console: Console, signed: CurrentUser) -> Response:
    """The sessions with a board, and the venues whose board this user may open."""
    actor = actor_of(signed)
    require_any(actor, {Grant.QUEUE_BOARD})
    today = local_day(_now(console))
    async with console.engine.connect() as conn:
        found = await sessions_between(conn, today, today)
    bound = signed.user.venue
    sessions = [{"id": s.id, "title": s.title, "state": s.state.label_vi,
                 "venues": [{"id": v.venue, "name": v.name} for v in s.venues if bound is None or v.venue == bound]}
                for s in found if s.state in BOARD_STATES]
    return render_page(console, "board_list.html", signed, sessions=[s for s in sessions if s["venues"]])


@router.get("/bang-so/{session_id}/{venue}")
async def board_page(console: Console, signed: CurrentUser, session_id: str, venue: str) -> Response:
    try:
        record = await _session_for(console, actor_of(signed), session_id, venue)
    except _NotShown as exc:
        return render_error_text(exc.status, t(exc.key))
    own = next(v for v in record.venues if v.venue == venue)
    config = {"session": record.id, "venue": venue, "venueName": own.name,
              "events": f"/api/sessions/{record.id}/board/{venue}/events",
              "snapshot": f"/api/sessions/{record.id}/board/{venue}"}
    return render_page(console, "board.html", signed, config=config, messages=_js_messages(), venue_name=own.name,
                       title=record.title)


@router.get("/api/sessions/{session_id}/board/{venue}", tags=["queue"])
async def board_snapshot(console: Console, actor: CurrentActor, session_id: str, venue: str) -> Response:
    """The queue board of a session as one venue's screen shows it (numbers and venues only)."""
    try:
        await _session_for(console, actor, session_id, venue)
    except _NotShown as exc:
        return _problem(exc)
    options = console.boards.options if console.boards is not None else BoardOptions()
    async with console.engine.connect() as conn:
        board, version = await load_board(conn, session_id, next_shown=options.next_shown,
                                          log_shown=options.log_shown)
    body: dict[str, Any] = board_json(board, _now(console))
    body["version"] = version
    return JSONResponse(body, headers={"cache-control": "no-store"})


@router.get("/api/sessions/{session_id}/board/{venue}/events", tags=["queue"])
async def board_events(console: Console, actor: CurrentActor, session_id: str, venue: str) -> Response:
    """Server-sent events of the board (see the module docstring)."""
    try:
        await _session_for(console, actor, session_id, venue)
    except _NotShown as exc:
        return _problem(exc)
    hub = _hub(console)
    try:
        if hub is None:
            raise TooManyStreams("no board hub in this process")
        stream = hub.subscribe(session_id, venue)
    except TooManyStreams:
        log.warning("board stream refused", extra={"ctx": {"session": session_id, "venue": venue}})
        return JSONResponse({"error": "too_many_streams", "message": t("board.error.busy")}, status_code=503,
                            headers={"retry-after": "5", "cache-control": "no-store"})
    log.info("board stream", extra={"ctx": {"session": session_id, "venue": venue, "streams": hub.streams}})
    return EventStreamResponse(hub, stream)
