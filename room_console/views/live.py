"""Pages of the live session (phiên tiếp công dân trực tuyến): the list of open rooms and one room's page.

* ``GET /phien``: the live rooms open on this node that the signed-in user may enter, with their venues
  (read from the room server, ``app.state.room_server``).
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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from signaling.events import VenueInfo
from signaling.grants import Grant, Role

from ..accounts import User
from ..errors import Forbidden
from ..i18n import catalogue, t
from ..routes import Console, CurrentUser, access_token_for, render_error_text, render_page

__all__ = ["router", "LiveRoom", "OpenRooms", "open_rooms_for", "view_of", "CAMERA_MAX_BITRATE",
           "CAMERA_LOW_MAX_BITRATE"]

router = APIRouter()

#: the camera layer's cap when the venue has no ``max_kbps`` of its own (bits per second)
CAMERA_MAX_BITRATE = 1_500_000
#: the small layer (320×180 at 15 fps) shown in the small tiles
CAMERA_LOW_MAX_BITRATE = 150_000
_ROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class LiveRoom:
    room: str
    venues: tuple[VenueInfo, ...]

    def venue(self, venue: str | None) -> VenueInfo | None:
        return next((v for v in self.venues if v.venue == venue), None)


@runtime_checkable
class OpenRooms(Protocol):
    """What the pages read of the room server (``app.state.room_server``; the console does not import it)."""

    @property
    def closed(self) -> bool: ...

    def open_rooms(self) -> Sequence[tuple[str, tuple[VenueInfo, ...]]]: ...


def _room_server(request: Request) -> OpenRooms | None:
    server = getattr(request.app.state, "room_server", None)
    return server if isinstance(server, OpenRooms) and not server.closed else None


def _open_room(request: Request, room: str) -> LiveRoom | None:
    server = _room_server(request)
    if server is None or not _ROOM_ID.match(room):
        return None
    return next((LiveRoom(room, venues) for name, venues in server.open_rooms() if name == room), None)


def _may_enter(user: User, room: LiveRoom) -> bool:
    return user.has(Grant.SUBSCRIBE) and (user.venue is None or room.venue(user.venue) is not None)


def open_rooms_for(server: OpenRooms | None, user: User) -> list[LiveRoom]:
    """The open rooms ``user`` may enter (the same checks as the room server's admission)."""
    if server is None:
        return []
    rooms = [LiveRoom(room, venues) for room, venues in server.open_rooms()]
    return [room for room in rooms if _may_enter(user, room)]


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
    max_bitrate = own.max_kbps * 1000 if own is not None and own.max_kbps else CAMERA_MAX_BITRATE
    return {
        "room": room.room,
        "view": view,
        "venue": own.venue if own is not None else None,
        "venues": [{"venue": v.venue, "name": v.name, "main": v.main} for v in room.venues],
        "publish": publishes,
        "moderate": user.has(Grant.MODERATE),
        "closedSegment": user.has(Grant.CLOSED_SEGMENT),
        "cameraMaxBitrate": max_bitrate,
        "cameraLowMaxBitrate": CAMERA_LOW_MAX_BITRATE,
        "protocol": 1,
    }


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str = Field(pattern=_ROOM_ID.pattern)


@router.get("/phien")
async def live_rooms_page(request: Request, console: Console, signed: CurrentUser) -> Response:
    if not signed.user.has(Grant.SUBSCRIBE):
        raise Forbidden("subscribe grant missing")
    rooms = open_rooms_for(_room_server(request), signed.user)
    return render_page(console, "live/rooms.html", signed, rooms=rooms)


@router.get("/phien/{room}")
async def live_room_page(request: Request, console: Console, signed: CurrentUser, room: str) -> Response:
    user = signed.user
    live = _open_room(request, room)
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
    live = _open_room(request, body.room)
    if live is None:
        return JSONResponse({"error": "room_unknown", "message": t("live.page.room_unknown")}, status_code=404)
    if not _may_enter(user, live):
        return JSONResponse({"error": "forbidden", "message": t("live.page.no_subscribe")}, status_code=403)
    token = access_token_for(console, signed, body.room)
    return JSONResponse({"token": token, "expires_in": console.options.token_ttl_s},
                        headers={"cache-control": "no-store"})
