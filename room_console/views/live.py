"""Pages of the live session (phiên tiếp công dân trực tuyến): the list of open rooms and one room's page.

* ``GET /phien``: the live sessions the signed-in user may enter, with their venues: the sessions that
  ``schedules`` holds open or in progress (the database), whichever media node serves their room, and
  for each what the room store says of it (:mod:`signaling.room_state`: which venues are connected; none
  while no media node has opened the room yet). The console never reads a room server's memory, so every
  page works on a ``--role control`` process as on the embedded one.
* ``GET /phien/{room}``: the page of one room, rendered for the user: the chair's view (grant
  ``moderate``), a venue operator's view (role ``venue``) or a viewer (e.g. the secretary, with the
  closed-segment request). The page's scripts (``/static/live*.js``) connect to ``/ws`` with a connect
  ticket (``POST /api/live/connect-ticket``) and speak ``docs/protocol.md``; the server stays
  authoritative for every state shown.
* ``POST /api/live/token``: a fresh access token for the page's ``refresh`` message (the answer to
  ``token.expiring``), bound like the token of a connect ticket to the user, the room and the login
  session, valid on ``/ws`` only (the REST API refuses it); same-origin and CSRF-checked like every
  unsafe request, never cached.

A user whose account names a venue may only enter rooms that include it (the room server would refuse
the connection with ``venue_not_in_room`` anyway): such rooms are left out of the list and answered 403.
A session that is not open (planned, closed, cancelled …) or unknown is answered 404 ``room_unknown``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schedules import SessionRecord, UnknownSession, get_session, live_sessions
from schedules.sessions import LIVE_STATES
from signaling.events import VenueInfo
from signaling.grants import Grant, Role
from signaling.room_state import RoomStateError, RoomSummary

from ..accounts import User
from ..context import ConsoleContext
from ..errors import Forbidden
from ..i18n import catalogue, t
from ..routes import Console, CurrentUser, access_token_for, render_error_text, render_page

__all__ = ["router", "LiveRoom", "live_rooms_for", "live_room", "view_of"]

log = logging.getLogger("room_console.live")
router = APIRouter()

_ROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class LiveRoom:
    """A live session as the pages show it: its room id (the session id), its venues (from ``schedules``)
    and, when a media node has the room open, the room store's summary of it."""

    room: str
    venues: tuple[VenueInfo, ...]
    summary: RoomSummary | None = None

    @classmethod
    def of(cls, record: SessionRecord) -> LiveRoom:
        return cls(record.id, tuple(v.info() for v in record.venues))

    def venue(self, venue: str | None) -> VenueInfo | None:
        return next((v for v in self.venues if v.venue == venue), None)

    @property
    def connected_venues(self) -> tuple[str, ...]:
        return self.summary.connected_venues if self.summary is not None else ()


async def _with_summary(console: ConsoleContext, room: LiveRoom) -> LiveRoom:
    """``room`` with the room store's summary (left out, and logged, when the store cannot be read: the page
    still works and its script learns the state over ``/ws``)."""
    if console.room_states is None:
        return room
    try:
        return replace(room, summary=await console.room_states.room_summary(room.room))
    except RoomStateError as exc:
        log.warning("room state unreadable", extra={"ctx": {"room": room.room, "error": str(exc)}})
        return room


async def live_room(console: ConsoleContext, room: str) -> LiveRoom | None:
    """The live session ``room`` (open or in progress in ``schedules``), else None."""
    if not _ROOM_ID.match(room):
        return None
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, room)
        except UnknownSession:
            return None
    return LiveRoom.of(record) if record.state in LIVE_STATES else None


def _may_enter(user: User, room: LiveRoom) -> bool:
    return user.has(Grant.SUBSCRIBE) and (user.venue is None or room.venue(user.venue) is not None)


async def live_rooms_for(console: ConsoleContext, user: User) -> list[LiveRoom]:
    """The live sessions ``user`` may enter (the same checks as the room server's admission), with their
    room summaries."""
    async with console.engine.connect() as conn:
        records = await live_sessions(conn)
    rooms = [LiveRoom.of(record) for record in records]
    return [await _with_summary(console, room) for room in rooms if _may_enter(user, room)]


def view_of(user: User) -> str:
    """Which page the user gets: ``chair`` (moderate), ``venue`` (a venue operator) or ``viewer``."""
    if user.has(Grant.MODERATE):
        return "chair"
    if Role.VENUE in user.roles and user.venue is not None:
        return "venue"
    return "viewer"


def _js_messages() -> dict[str, str]:
    """The texts the page's scripts show (every ``live.*`` key of the catalogue)."""
    messages = catalogue()
    return {key: messages.t(key) for key in sorted(messages.keys()) if key.startswith("live.")}


def _page_config(user: User, room: LiveRoom, view: str) -> dict[str, Any]:
    own = room.venue(user.venue)
    publishes = user.has(Grant.PUBLISH) and own is not None
    return {
        "room": room.room,
        "view": view,
        "venue": own.venue if own is not None else None,
        "venues": [{"venue": v.venue, "name": v.name, "main": v.main} for v in room.venues],
        "publish": publishes,
        "moderate": user.has(Grant.MODERATE),
        "closedSegment": user.has(Grant.CLOSED_SEGMENT),
        "callQueue": user.has(Grant.CALL_QUEUE),
        "protocol": 1,
    }


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str = Field(pattern=_ROOM_ID.pattern)


@router.get("/phien")
async def live_rooms_page(request: Request, console: Console, signed: CurrentUser) -> Response:
    if not signed.user.has(Grant.SUBSCRIBE):
        raise Forbidden("subscribe grant missing")
    rooms = await live_rooms_for(console, signed.user)
    return render_page(console, "live/rooms.html", signed, rooms=rooms)


@router.get("/phien/{room}")
async def live_room_page(request: Request, console: Console, signed: CurrentUser, room: str) -> Response:
    user = signed.user
    live = await live_room(console, room)
    if live is None:
        return render_error_text(404, t("live.page.room_unknown"))
    if not user.has(Grant.SUBSCRIBE):
        return render_error_text(403, t("live.page.no_subscribe"))
    if not _may_enter(user, live):
        return render_error_text(403, t("live.page.venue_not_in_room"))
    view = view_of(user)
    own = live.venue(user.venue)
    return render_page(console, "live/room.html", signed, room=live, view=view, own=own,
                       config=_page_config(user, live, view), messages=_js_messages())


@router.post("/api/live/token", tags=["console"])
async def live_token(request: Request, console: Console, signed: CurrentUser) -> Response:
    """A new access token of the signed-in user for ``room``: the page sends it in ``refresh``."""
    try:
        body = TokenRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError:
        return JSONResponse({"error": "bad_request", "message": t("live.error.request")}, status_code=422)
    user = signed.user
    live = await live_room(console, body.room)
    if live is None:
        return JSONResponse({"error": "room_unknown", "message": t("live.page.room_unknown")}, status_code=404)
    if not _may_enter(user, live):
        return JSONResponse({"error": "forbidden", "message": t("live.page.no_subscribe")}, status_code=403)
    token = access_token_for(console, signed, body.room)
    return JSONResponse({"token": token, "expires_in": console.options.token_ttl_s},
                        headers={"cache-control": "no-store"})
