"""The live minutes' drafts over HTTP (``/api/minutes/{session}/{case}``): what the secretary's page autosaves.

* ``GET /api/minutes/{session}/{case}`` (grant ``minutes`` or ``approve``): the draft as saved last —
  ``version``, ``content`` (:class:`minutes.drafts_content.MinutesContent`), who saved it and when
  (``updated_by_name``, ``saved_time`` in Vietnam time), ``client`` (the page that saved it), whether the
  case has a sealed identity section (``holds_identity``) and the sealed record's handle. 404 before the
  case was called in that session.
* ``PUT /api/minutes/{session}/{case}`` (grant ``minutes``) with ``{"base_version": n, "client": "…",
  "content": {…}, "identity": {…} | null}``: saves the whole form (:func:`minutes.drafts.save_draft`).
  200 with the saved version (``created`` false when nothing changed); 409 ``conflict`` when someone else
  saved since ``base_version``, with ``current`` — the server's version, its content, who saved it and when
  — so the page shows both; 422 ``invalid_input`` with ``errors`` field by field (a text over 10,000
  characters, an unknown unit, an identity on a case that is no denunciation …); 409 ``draft_closed``;
  403 without the grant; 413 over the route's cap (the edge). Nothing is stored by a refused save.
* ``GET /api/minutes/{session}/{case}/versions`` and ``…/versions/{n}``: every version (who, when, which
  page, its base), and one version's content.

The denouncer's identity in ``identity`` is sealed in the vault and never answered back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from complaints.cases import get_case
from complaints.errors import ComplaintsError, NotFound
from complaints.schemas import describe_errors
from minutes.drafts import (
    VIETNAM_TZ,
    Author,
    Draft,
    DraftClosed,
    DraftConflict,
    DraftForbidden,
    DraftInvalid,
    DraftVersion,
    list_versions,
    load_draft,
    load_version,
    save_draft,
)
from minutes.drafts_content import DenouncerIdentity

from .. import accounts
from ..actor import Actor, CurrentActor
from ..context import ConsoleContext
from .problems import json_problem, problem

__all__ = ["create_minutes_api_router", "author_of", "draft_json", "display_names", "Console", "NO_STORE", "bad_ids",
           "console_now"]

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CASE_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
NO_STORE = {"cache-control": "no-store"}


def _console(request: Request) -> ConsoleContext:
    console: ConsoleContext = request.app.state.console
    return console


Console = Annotated[ConsoleContext, Depends(_console)]


class DraftIn(BaseModel):
    """The content and the identity are checked by the service, field by field, in Vietnamese."""

    model_config = ConfigDict(extra="forbid")

    base_version: int = Field(ge=0, le=2**31)
    client: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    content: dict[str, Any]
    identity: dict[str, Any] | None = None


def author_of(actor: Actor) -> Author:
    return Author(actor.label, actor.grants)


async def display_names(console: ConsoleContext, labels: set[str]) -> dict[str, str]:
    """``user:<id>`` labels → the officials' display names (a service keeps its label)."""
    names: dict[str, str] = {}
    async with console.engine.connect() as conn:
        for label in labels:
            if label.startswith("user:"):
                user = await accounts.get_user(conn, label[5:])
                if user is not None:
                    names[label] = user.display_name
    return names


def _time(value: datetime) -> str:
    return value.astimezone(VIETNAM_TZ).strftime("%H:%M:%S")


def draft_json(draft: Draft, names: dict[str, str], *, client: str | None = None) -> dict[str, Any]:
    return {
        "session": draft.session_id, "case": draft.case_id, "version": draft.version, "state": draft.state,
        "content": draft.content.model_dump(mode="json"), "updated_by": draft.updated_by,
        "updated_by_name": names.get(draft.updated_by, draft.updated_by), "updated_at": draft.updated_at.isoformat(),
        "saved_time": _time(draft.updated_at), "issued_on": draft.issued_on.isoformat(), "client": client,
        "holds_identity": draft.holds_identity, "sealed_handle": draft.sealed_handle,
    }


def _version_json(version: DraftVersion, names: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": version.version, "saved_by": version.saved_by,
        "saved_by_name": names.get(version.saved_by, version.saved_by), "saved_at": version.saved_at.isoformat(),
        "saved_time": _time(version.saved_at), "client": version.client, "base_version": version.base_version,
    }
    if version.content is not None:
        body["content"] = version.content.model_dump(mode="json")
    return body


def _problem(exc: ComplaintsError) -> JSONResponse:
    if isinstance(exc, DraftForbidden):
        return json_problem(403, "forbidden", exc.message_vi)
    if isinstance(exc, DraftClosed):
        return json_problem(409, exc.code, exc.message_vi)
    if isinstance(exc, DraftInvalid):
        return json_problem(422, exc.code, exc.message_vi, errors=exc.errors)
    response = problem(exc)
    response.headers.update(NO_STORE)
    return response


def bad_ids(session_id: str, case_id: str | None = None) -> JSONResponse | None:
    """A 404 for a session id (and a case id, when given) no minutes can have; None when both may be."""
    if _SESSION_ID.match(session_id) and (case_id is None or _CASE_ID.match(case_id)):
        return None
    return json_problem(404, "not_found", "Không tìm thấy biên bản.")


def console_now(console: ConsoleContext) -> datetime:
    """The console's clock, as an aware UTC time."""
    return datetime.fromtimestamp(console.clock(), UTC)


def _identity(raw: dict[str, Any] | None) -> DenouncerIdentity | None:
    if raw is None:
        return None
    try:
        return DenouncerIdentity.model_validate(raw)
    except ValidationError as exc:
        errors = describe_errors(exc.errors())
        raise DraftInvalid([{**e, "field": f"identity.{e['field']}"} for e in errors]) from None


async def _last_client(console: ConsoleContext, draft: Draft, actor: Actor) -> str | None:
    async with console.engine.connect() as conn:
        return (await load_version(conn, session_id=draft.session_id, case_id=draft.case_id, version=draft.version,
                                   author=author_of(actor))).client


def create_minutes_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/minutes", tags=["minutes"])

    @router.get("/{session_id}/{case_id}")
    async def get_draft(console: Console, actor: CurrentActor, session_id: str, case_id: str) -> Response:
        """The draft as saved last."""
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        try:
            async with console.engine.connect() as conn:
                draft = await load_draft(conn, session_id=session_id, case_id=case_id, author=author_of(actor))
            client = await _last_client(console, draft, actor)
        except ComplaintsError as exc:
            return _problem(exc)
        names = await display_names(console, {draft.updated_by})
        return JSONResponse(draft_json(draft, names, client=client), headers=NO_STORE)

    @router.put("/{session_id}/{case_id}")
    async def put_draft(console: Console, actor: CurrentActor, session_id: str, case_id: str,
                        body: Annotated[DraftIn, Body()]) -> Response:
        """Save the whole form as the version after ``base_version``."""
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        if console.keyring is None:
            raise RuntimeError("the console was built without a keyring")
        try:
            identity = _identity(body.identity)
            async with console.engine.begin() as conn:
                saved = await save_draft(
                    conn, session_id=session_id, case_id=case_id, base_version=body.base_version,
                    content=body.content, author=author_of(actor), keyring=console.keyring,
                    calendar=console.calendar, now=console_now(console),
                    client=body.client, identity=identity)
        except DraftConflict as exc:
            current = exc.current
            names = await display_names(console, {current.saved_by})
            return json_problem(409, "conflict", exc.message_vi.replace(
                "bởi người khác", f"bởi {names.get(current.saved_by, current.saved_by)}"),
                current=_version_json(current, names))
        except ComplaintsError as exc:
            return _problem(exc)
        draft = saved.draft
        names = await display_names(console, {draft.updated_by})
        return JSONResponse({**draft_json(draft, names, client=body.client if saved.created else None),
                             "created": saved.created}, headers=NO_STORE)

    @router.get("/{session_id}/{case_id}/versions")
    async def get_versions(console: Console, actor: CurrentActor, session_id: str, case_id: str) -> Response:
        """Every version, the newest first (without content)."""
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        try:
            async with console.engine.connect() as conn:
                versions = await list_versions(conn, session_id=session_id, case_id=case_id, author=author_of(actor))
                case = await get_case(conn, case_id)
        except ComplaintsError as exc:
            return _problem(exc)
        names = await display_names(console, {v.saved_by for v in versions})
        return JSONResponse({"session": session_id, "case": case_id, "tracking_code": case.tracking_code,
                             "versions": [_version_json(v, names) for v in versions]}, headers=NO_STORE)

    @router.get("/{session_id}/{case_id}/versions/{version}")
    async def get_version(console: Console, actor: CurrentActor, session_id: str, case_id: str,
                          version: int) -> Response:
        """One version with its content."""
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        if not 1 <= version <= 2**31:
            return _problem(NotFound(f"Biên bản không có phiên bản {version}."))
        try:
            async with console.engine.connect() as conn:
                found = await load_version(conn, session_id=session_id, case_id=case_id, version=version,
                                           author=author_of(actor))
        except ComplaintsError as exc:
            return _problem(exc)
        names = await display_names(console, {found.saved_by})
        return JSONResponse(_version_json(found, names), headers=NO_STORE)

    return router
