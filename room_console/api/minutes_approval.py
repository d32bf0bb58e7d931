"""Read-back, confirmation and approval of a case's minutes over HTTP (``/api/minutes-approval/…``).

* ``GET /api/minutes-approval/{session}``: the case of the session being read back now, with the content
  shown to the citizen (``readback`` null when none) — for the called venue's operator (his page shows it and
  takes the signature) and holders of ``minutes`` or ``approve``.
* ``GET /api/minutes-approval/{session}/{case}``: where the minutes stand (``state``: none, readback,
  confirmed, approved, recorded), the hashes, the confirmation, the approval, the problems that keep the case
  from being written, and what was written.
* ``POST …/{case}/readback`` ``{"version": n}`` (grant ``minutes``): read back version ``n`` (the current one).
* ``POST …/{case}/signature?readback=<sha256>`` with the PNG drawn on screen as the body (``image/png``, at
  most 256 KB): the citizen confirms; sent by the called venue's operator or a holder of ``minutes``.
* ``POST …/{case}/verbal`` ``{"readback_sha256": "…", "media_time": "mm:ss"}`` (grant ``minutes``).
* ``POST …/{case}/approve`` ``{"confirmed_sha256": "…"}`` (grant ``approve``: the chair). 200 with the state
  (``recorded`` when ``case.closed`` was seen: the case is written at once); 422 ``minutes_incomplete`` with
  ``errors`` (every missing field, a deadline past or on a day off, an unknown unit) and nothing approved.

Refusals: 403 ``forbidden``, 404, 409 ``readback_stale`` / ``not_confirmed`` / ``changed_after_confirmation`` /
``draft_closed`` (the draft changed since what the person saw, or the case is written), 422 ``invalid_input``
with ``errors`` (a PNG that is none, blank or too large; a recording time that is no ``mm:ss``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from complaints.cases import get_case
from complaints.errors import ComplaintsError, StaleVersion
from minutes.approval import (
    MAX_SIGNATURE_BYTES,
    Approval,
    approval_state,
    approve,
    confirm_by_signature,
    confirm_verbally,
    readback_for_venue,
    request_readback,
)
from minutes.drafts import VIETNAM_TZ, DraftClosed, DraftForbidden, DraftInvalid

from ..actor import CurrentActor
from ..context import ConsoleContext
from .minutes import NO_STORE, Console, author_of, bad_ids, console_now, display_names
from .problems import json_problem, problem

__all__ = ["create_minutes_approval_router", "approval_json"]

_SHA256 = r"^[0-9a-f]{64}$"


class ReadbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31)


class VerbalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    readback_sha256: str = Field(pattern=_SHA256)
    media_time: str = Field(max_length=16)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmed_sha256: str = Field(pattern=_SHA256)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(VIETNAM_TZ).strftime("%H:%M:%S %d/%m/%Y")


def approval_json(state: Approval, names: dict[str, str]) -> dict[str, Any]:
    record = state.record
    return {
        "session": state.session_id, "case": state.case_id, "venue": state.venue, "state": state.state,
        "draft_state": state.draft_state, "draft_version": state.draft_version, "draft_sha256": state.draft_sha256,
        "readback_version": state.readback_version, "readback_sha256": state.readback_sha256,
        "changed_since_readback": state.changed_since_readback, "confirmation": state.confirmation,
        "confirmed_sha256": state.confirmed_sha256,
        "confirmed_by_name": names.get(state.confirmed_by or "", state.confirmed_by),
        "confirmed_time": _time(state.confirmed_at), "signature_sha256": state.signature_sha256,
        "verbal_time": state.verbal_time, "approved_sha256": state.approved_sha256,
        "approved_by_name": names.get(state.approved_by or "", state.approved_by),
        "approved_time": _time(state.approved_at), "case_closed": state.case_closed,
        "problems": list(state.problems),
        "record": None if record is None else {
            "content_sha256": record.content_sha256, "reception": record.reception_id,
            "decision": record.decision_id, "directives": list(record.directives),
            "segments": list(record.segments), "recorded_time": _time(record.recorded_at)},
    }


async def _body(console: ConsoleContext, state: Approval) -> dict[str, Any]:
    names = await display_names(console, {label for label in (state.confirmed_by, state.approved_by) if label})
    async with console.engine.connect() as conn:
        tracking = (await get_case(conn, state.case_id)).tracking_code
    return {**approval_json(state, names), "tracking_code": tracking}


async def _answer(console: ConsoleContext, state: Approval) -> JSONResponse:
    return JSONResponse(await _body(console, state), headers=NO_STORE)


def _problem(exc: ComplaintsError) -> JSONResponse:
    if isinstance(exc, DraftForbidden):
        return json_problem(403, "forbidden", exc.message_vi)
    if isinstance(exc, DraftInvalid):
        return json_problem(422, exc.code, exc.message_vi, errors=exc.errors)
    if isinstance(exc, DraftClosed | StaleVersion):
        return json_problem(409, exc.code, exc.message_vi)
    return problem(exc)


def create_minutes_approval_router() -> APIRouter:
    router = APIRouter(prefix="/api/minutes-approval", tags=["minutes"])

    @router.get("/{session_id}")
    async def get_readback(console: Console, actor: CurrentActor, session_id: str) -> Response:
        """The session's case being read back now, with the content shown (``readback`` null when none)."""
        if (bad := bad_ids(session_id)) is not None:
            return bad
        async with console.engine.connect() as conn:
            found = await readback_for_venue(conn, session_id=session_id, author=author_of(actor),
                                             venue=actor.venue)
        if found is None:
            return JSONResponse({"session": session_id, "readback": None}, headers=NO_STORE)
        state, content = found
        body = {**await _body(console, state), "content": content.model_dump(mode="json")}
        return JSONResponse({"session": session_id, "readback": body}, headers=NO_STORE)

    @router.get("/{session_id}/{case_id}")
    async def get_state(console: Console, actor: CurrentActor, session_id: str, case_id: str) -> Response:
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        try:
            async with console.engine.connect() as conn:
                state = await approval_state(conn, session_id=session_id, case_id=case_id, author=author_of(actor),
                                             venue=actor.venue)
        except ComplaintsError as exc:
            return _problem(exc)
        return await _answer(console, state)

    @router.post("/{session_id}/{case_id}/readback")
    async def post_readback(console: Console, actor: CurrentActor, session_id: str, case_id: str,
                            body: Annotated[ReadbackIn, Body()]) -> Response:
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        try:
            async with console.engine.begin() as conn:
                state = await request_readback(conn, session_id=session_id, case_id=case_id, version=body.version,
                                               author=author_of(actor), now=console_now(console))
        except ComplaintsError as exc:
            return _problem(exc)
        return await _answer(console, state)

    @router.post("/{session_id}/{case_id}/signature")
    async def post_signature(request: Request, console: Console, actor: CurrentActor, session_id: str,
                             case_id: str, readback: str = "") -> Response:
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        if not re.match(_SHA256, readback):
            return json_problem(422, "invalid_input", "Thiếu mã của bản biên bản đã đọc lại.",
                                errors=[{"field": "readback", "message": "Thiếu mã của bản biên bản đã đọc lại."}])
        if request.headers.get("content-type", "").split(";")[0].strip() != "image/png":
            return _problem(DraftInvalid([{"field": "signature", "message": "Chữ ký phải là ảnh PNG."}]))
        png = await request.body()
        if len(png) > MAX_SIGNATURE_BYTES:
            return _problem(DraftInvalid([{"field": "signature", "message":
                                           f"Ảnh chữ ký quá lớn (tối đa {MAX_SIGNATURE_BYTES // 1024} KB)."}]))
        try:
            async with console.engine.begin() as conn:
                state = await confirm_by_signature(conn, session_id=session_id, case_id=case_id,
                                                   readback_sha256=readback, png=png, author=author_of(actor),
                                                   venue=actor.venue, now=console_now(console))
        except ComplaintsError as exc:
            return _problem(exc)
        return await _answer(console, state)

    @router.post("/{session_id}/{case_id}/verbal")
    async def post_verbal(console: Console, actor: CurrentActor, session_id: str, case_id: str,
                          body: Annotated[VerbalIn, Body()]) -> Response:
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        try:
            async with console.engine.begin() as conn:
                state = await confirm_verbally(conn, session_id=session_id, case_id=case_id,
                                               readback_sha256=body.readback_sha256, media_time=body.media_time,
                                               author=author_of(actor), now=console_now(console))
        except ComplaintsError as exc:
            return _problem(exc)
        return await _answer(console, state)

    @router.post("/{session_id}/{case_id}/approve")
    async def post_approve(console: Console, actor: CurrentActor, session_id: str, case_id: str,
                           body: Annotated[ApproveIn, Body()]) -> Response:
        if (bad := bad_ids(session_id, case_id)) is not None:
            return bad
        if console.keyring is None:
            raise RuntimeError("the console was built without a keyring")
        try:
            async with console.engine.begin() as conn:
                state = await approve(conn, session_id=session_id, case_id=case_id,
                                      confirmed_sha256=body.confirmed_sha256, author=author_of(actor),
                                      name=actor.name, keyring=console.keyring, calendar=console.calendar,
                                      now=console_now(console))
        except ComplaintsError as exc:
            return _problem(exc)
        if state.approved_sha256 is None:
            names: dict[str, str] = {}
            return json_problem(422, "minutes_incomplete", "Chưa phê duyệt được: biên bản còn thiếu hoặc sai "
                                "thông tin bắt buộc.", errors=list(state.problems),
                                approval=approval_json(state, names))
        if console.notify_outbox is not None:
            console.notify_outbox()
        return await _answer(console, state)

    return router
