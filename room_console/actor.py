"""Who is asking: a signed-in official (session cookie) or a service (``Authorization: Bearer`` access
token verified with the console's :class:`~signaling.tokens.TokenVerifier`). Every complaint route
asks for grants of the :class:`Actor`, never for roles.

A bearer token must be for the REST API (audience ``api``: ``tiepdan token --audience api``); a
live-room token (audience ``ws``, what pages get for ``/ws``) is refused with 401. A token that names
a console login session (``sid``) is accepted only while that session is open."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from complaints.service.caller import CASE_EDIT_GRANTS, CASE_VIEW_GRANTS
from signaling.errors import TokenError
from signaling.grants import Grant, grants_for

from . import accounts
from .context import ConsoleContext
from .errors import Forbidden, NotSignedIn
from .security import read_session_id

__all__ = ["Actor", "CASE_VIEW_GRANTS", "CASE_EDIT_GRANTS", "current_actor", "CurrentActor", "require_any",
           "request_session_user"]

# Seeing cases in full (CASE_VIEW_GRANTS) and editing them (CASE_EDIT_GRANTS): the complaint service's sets.


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    grants: frozenset[Grant]
    unit: str | None = None
    session_id: str | None = None  # a signed-in official; None for a service token
    venue: str | None = None  # the venue an account or token is bound to (a venue operator, a display)

    @property
    def label(self) -> str:
        """The actor as written in the audit log and in records (an id, never a name)."""
        return f"user:{self.id}" if self.session_id else f"service:{self.id}"

    def has(self, grant: Grant) -> bool:
        return grant in self.grants

    def has_any(self, grants: Iterable[Grant]) -> bool:
        return not self.grants.isdisjoint(grants)

    @property
    def unit_scope(self) -> str | None:
        """For an official who follows directives only (a unit's officer): the unit whose cases and
        directives they may see ("" when the account names no unit: nothing). None: no restriction."""
        if self.has_any(CASE_VIEW_GRANTS) or not self.has(Grant.DIRECTIVES):
            return None
        return self.unit or ""

    @property
    def may_view_cases(self) -> bool:
        return self.has_any(CASE_VIEW_GRANTS) or self.has(Grant.DIRECTIVES)


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


_SESSION_USER = "console_session_user"  # request.state: (session id, user) or None, once looked up


async def request_session_user(request: Request) -> tuple[str, accounts.User] | None:
    """The request's console session and its user, or None; looked up once per request, so the edge's
    body check (:mod:`room_console.request_limits`) and the route share one database round trip."""
    if hasattr(request.state, _SESSION_USER):
        cached: tuple[str, accounts.User] | None = getattr(request.state, _SESSION_USER)
        return cached
    console = _console(request)
    found: tuple[str, accounts.User] | None = None
    session_id = read_session_id(request, console.options)
    if session_id is not None:
        async with console.engine.begin() as conn:
            user = await accounts.session_user(conn, session_id, now=console.clock(), options=console.options)
        if user is not None:
            found = (session_id, user)
    setattr(request.state, _SESSION_USER, found)
    return found


async def current_actor(request: Request) -> Actor:
    console = _console(request)
    signed = await request_session_user(request)
    if signed is not None:
        session_id, user = signed
        return Actor(user.id, user.display_name, user.grants, user.unit, session_id, user.venue)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token and console.verifier is not None:
        try:
            claims = console.verifier.verify(token.strip(), kind="access", audience="api")
        except TokenError as exc:
            raise NotSignedIn(exc.code) from exc
        if claims.sid is not None:
            async with console.engine.connect() as conn:
                alive = await accounts.token_session_alive(conn, claims.sub, claims.sid, now=console.clock())
            if not alive:
                raise NotSignedIn("token_revoked")
        return Actor(claims.sub, claims.name or claims.sub, grants_for(claims.roles), claims.unit,
                     venue=claims.venue)
    raise NotSignedIn("not signed in")


CurrentActor = Annotated[Actor, Depends(current_actor)]


def require_any(actor: Actor, grants: Iterable[Grant]) -> None:
    """Raise :class:`Forbidden` (403) unless ``actor`` holds one of ``grants``."""
    if not actor.has_any(grants):
        raise Forbidden("grant missing")
