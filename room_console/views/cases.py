"""Pages "Tra cứu vụ việc" (search) and "Chi tiết vụ việc" (case file), and the one-time view of a
sealed identity (POST with CSRF and a purpose; audited, refused views too)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from complaints.case_file import load_case_file
from complaints.enums import CaseStatus, PetitionKind
from complaints.errors import ComplaintsError, IdentityAccessDenied
from complaints.search import CaseQuery, search_cases
from complaints.vault import read_identity
from signaling.grants import Grant

from ..api.complaints import ensure_case_visible, keyring_of, local_now
from ..errors import Forbidden
from ..routes import Console, CurrentUser, render_error_text, render_page
from .common import actor_of, choices

router = APIRouter()
PAGE_SIZE = 20


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@router.get("/cases")
async def search_page(
    console: Console, signed: CurrentUser,
    q: Annotated[str, Query(max_length=200)] = "", kind: Annotated[str, Query(max_length=40)] = "",
    status: Annotated[str, Query(max_length=40)] = "", venue: Annotated[str, Query(max_length=64)] = "",
    unit: Annotated[str, Query(max_length=64)] = "", received_from: Annotated[str, Query(max_length=10)] = "",
    received_to: Annotated[str, Query(max_length=10)] = "", page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    actor = actor_of(signed)
    if not actor.may_view_cases:
        raise Forbidden("grant missing")
    error = None
    result = None
    try:
        query = CaseQuery(
            text=q, kind=PetitionKind.parse(kind) if kind else None,
            status=CaseStatus.parse(status) if status else None,
            venue=venue or None, unit=unit or None, received_from=_date(received_from), received_to=_date(received_to),
            unit_scope=actor.unit_scope, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
        )
        async with console.engine.connect() as conn:
            result = await search_cases(conn, query)
    except ComplaintsError as exc:
        error = exc.message_vi
    params = {"q": q, "kind": kind, "status": status, "venue": venue, "unit": unit, "received_from": received_from,
              "received_to": received_to}
    return render_page(console, "cases/search.html", signed, status=422 if error else 200, params=params,
                       result=result, error=error, page=page, page_size=PAGE_SIZE, kinds=choices(PetitionKind),
                       statuses=choices(CaseStatus))


@router.get("/cases/{case_id}")
async def case_page(console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    async with console.engine.connect() as conn:
        await ensure_case_visible(conn, actor, case_id[:64])
        file = await load_case_file(conn, case_id[:64], today=local_now(console).date(), calendar=console.calendar)
    return render_page(console, "cases/detail.html", signed, file=file,
                       can_reveal=actor.has(Grant.IDENTITY_READ))


@router.post("/cases/{case_id}/identity/{petitioner_id}")
async def reveal_identity(
    request: Request, console: Console, signed: CurrentUser, case_id: str, petitioner_id: str,
    purpose: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    actor = actor_of(signed)
    async with console.engine.connect() as conn:
        await ensure_case_visible(conn, actor, case_id[:64])
    if len(purpose.strip()) < 3:
        return render_error_text(422, "Hãy ghi mục đích xem danh tính (ít nhất 3 ký tự).")
    denied: IdentityAccessDenied | None = None
    async with console.engine.begin() as conn:
        try:
            identity = await read_identity(conn, keyring_of(console), petitioner_id[:64], actor=actor.label,
                                           grants=actor.grants, purpose=purpose.strip(),
                                           now=local_now(console))
        except IdentityAccessDenied as exc:
            denied = exc
    if denied is not None:
        raise denied
    context: dict[str, Any] = {"identity": identity, "case_id": case_id}
    return render_page(console, "cases/identity.html", signed, **context)
