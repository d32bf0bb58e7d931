"""Pages of a case: "Tra cứu vụ việc" (search), "Chi tiết vụ việc" (case file), "Sửa vụ việc" (edit,
optimistic locking), "Ghi hướng xử lý đơn" (handling decision), "Giao ý kiến chỉ đạo" (directive),
attachment downloads, and the one-time view of a sealed identity (POST with CSRF and a purpose;
audited, refused views too).

Plain HTML forms (no script). Every handler checks the grants itself; the buttons on the case page
only reflect them. A form that fails comes back with what was typed and the reasons in Vietnamese.
An edit carries the version it was made from: when somebody else saved in between, the form comes
back (409) with the typed values kept, the other person's values beside them and the new version,
so the official decides and nothing typed is lost. Opening a case file (and its edit form) is an
audit event. What the case file shows of people follows :mod:`complaints.confidentiality` (handles,
numbered attachments and no download for whoever lacks ``identity_read`` in a confidential case);
an edit that makes the case a denunciation seals its parties at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints import service
from complaints.case_file import load_case_file
from complaints.cases import CaseRecord, get_case
from complaints.deadlines import DEADLINE_RULES
from complaints.directives import active_units, check_deadline, directive_deadline_kinds, known_active_units
from complaints.enums import CaseNovelty, CaseStatus, HandlingDirection, PetitionKind, SubjectArea
from complaints.errors import ComplaintsError, IdentityAccessDenied, NotFound, StaleVersion
from complaints.schemas import CaseUpdateIn, DirectiveIn, HandlingDecisionIn, describe_errors, not_in_future
from complaints.search import CaseQuery, search_cases
from complaints.tables import petitions
from complaints.vault import read_identity
from signaling.grants import Grant

from ..actor import CASE_EDIT_GRANTS, Actor, require_any
from ..api.complaints import (
    DECISION_GRANTS,
    attachment_download,
    caller_of,
    ensure_case_visible,
    keyring_of,
    local_now,
    may_issue_directives,
    record_case_view,
)
from ..context import ConsoleContext
from ..errors import Forbidden
from ..i18n import t
from ..routes import Console, CurrentUser, SignedIn, render_error_text, render_page
from .common import actor_of, choices

router = APIRouter()
PAGE_SIZE = 20

# What ?saved= on the case page says after a form was saved.
_SAVED = {"edit": "case.saved.edit", "unchanged": "case.saved.unchanged", "decision": "case.saved.decision",
          "directive": "case.saved.directive"}
# The Vietnamese name of each form field, for the list of errors.
_FIELD_KEYS = {
    "kind": "case.kind", "status": "case.status", "subject_area": "case.subject_area", "novelty": "case.novelty",
    "venue": "case.venue", "summary": "case.summary", "complex": "case.complex", "crowd": "case.crowd",
    "version": "case.version", "direction": "decision.direction", "decided_on": "decision.decided_on",
    "petition_id": "decision.petition", "forwarded_to": "decision.forwarded_to", "notes": "decision.notes",
    "unit_id": "case.directive_unit", "content": "directive.content", "issued_on": "directive.issued_on",
    "deadline": "case.directive_deadline", "working_days": "directive.working_days",
    "legal_deadline": "directive.legal_deadline", "deadline_mode": "directive.deadline_mode",
}
EDIT_FIELDS = ("kind", "status", "subject_area", "novelty", "venue", "summary", "complex", "crowd")
DECISION_FIELDS = ("direction", "decided_on", "petition_id", "forwarded_to", "notes")
DIRECTIVE_FIELDS = ("unit_id", "content", "issued_on", "deadline_mode", "deadline", "working_days", "legal_deadline")
DEADLINE_MODES = ("working_days", "legal", "date")


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _field(form: Mapping[str, Any], name: str) -> str:
    """A form field as typed (stripped, never cut: a value too long is refused, not shortened)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _label(field: str) -> str:
    head = field.split(".")[0]
    return t(_FIELD_KEYS[head]) if head in _FIELD_KEYS else ""


def _errors(items: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"field": _label(item.get("field", "")), "message": item["message"]} for item in items]


def _domain_error(exc: ComplaintsError) -> list[dict[str, str]]:
    field = getattr(exc, "field", None) or ""
    return [{"field": _label(field), "message": exc.message_vi}]


async def _visible_case(conn: AsyncConnection, actor: Actor, case_id: str) -> CaseRecord:
    await ensure_case_visible(conn, actor, case_id)
    return await get_case(conn, case_id)


# -- search and case file ---------------------------------------------------------------------------


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
async def case_page(console: Console, signed: CurrentUser, case_id: str,
                    saved: Annotated[str, Query(max_length=20)] = "") -> Response:
    actor = actor_of(signed)
    async with console.engine.connect() as conn:
        await ensure_case_visible(conn, actor, case_id[:64])
        file = await load_case_file(conn, case_id[:64], today=local_now(console).date(), calendar=console.calendar,
                                    grants=actor.grants)
    await record_case_view(console, actor, file.case.id, via="page")
    return render_page(console, "cases/detail.html", signed, file=file,
                       can_reveal=actor.has(Grant.IDENTITY_READ), can_download=file.may_download,
                       can_edit=actor.has_any(CASE_EDIT_GRANTS), can_decide=actor.has_any(DECISION_GRANTS),
                       can_direct=may_issue_directives(actor), saved=_SAVED.get(saved),
                       subject_areas=dict(choices(SubjectArea)))


@router.get("/cases/{case_id}/attachments/{attachment_id}")
async def attachment_file(console: Console, signed: CurrentUser, case_id: str, attachment_id: str) -> Response:
    return await attachment_download(console, actor_of(signed), attachment_id, case_id=case_id[:64])


# -- edit ------------------------------------------------------------------------------------------


def _case_values(case: CaseRecord) -> dict[str, str]:
    return {"kind": case.kind.value, "status": case.status.value, "subject_area": case.subject_area or "",
            "novelty": case.novelty.value if case.novelty else "", "venue": case.venue or "",
            "summary": case.summary, "complex": "1" if case.complex else "", "crowd": "1" if case.crowd else "",
            "version": str(case.version)}


def _render_edit(console: ConsoleContext, signed: SignedIn, case: CaseRecord, values: dict[str, str], *,
                 status: int = 200, errors: list[dict[str, str]] | None = None,
                 current: CaseRecord | None = None) -> Response:
    conflicts: list[dict[str, str]] = []
    if current is not None:
        theirs = _case_values(current)
        for name in EDIT_FIELDS:
            if theirs[name] != values.get(name, ""):
                conflicts.append({"field": _label(name), "theirs": _shown(name, theirs[name]),
                                  "yours": _shown(name, values.get(name, ""))})
    context: dict[str, Any] = {
        "case": case, "values": values, "errors": errors or [], "current": current, "conflicts": conflicts,
        "kinds": choices(PetitionKind), "statuses": choices(CaseStatus), "subject_areas": choices(SubjectArea),
        "novelties": choices(CaseNovelty),
    }
    return render_page(console, "cases/edit.html", signed, status=status, **context)


def _shown(name: str, value: str) -> str:
    """A stored value as a person reads it (Vietnamese labels, "có"/"không")."""
    if name in ("complex", "crowd"):
        return t("case.yes") if value else t("case.no")
    if not value:
        return t("case.unset")
    enums: dict[str, Any] = {"kind": PetitionKind, "status": CaseStatus, "subject_area": SubjectArea,
                             "novelty": CaseNovelty}
    if name in enums:
        try:
            return str(enums[name].parse(value).label_vi)
        except ComplaintsError:
            return value
    return value


@router.get("/cases/{case_id}/edit")
async def edit_form(console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    require_any(actor, CASE_EDIT_GRANTS)
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id[:64])
    await record_case_view(console, actor, case.id, via="edit")
    return _render_edit(console, signed, case, _case_values(case))


@router.post("/cases/{case_id}/edit")
async def edit_submit(request: Request, console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    require_any(actor, CASE_EDIT_GRANTS)
    case_id = case_id[:64]
    form = await request.form()
    values = {name: _field(form, name) for name in (*EDIT_FIELDS, "version")}
    values["complex"] = "1" if values["complex"] else ""
    values["crowd"] = "1" if values["crowd"] else ""
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id)
    payload: dict[str, Any] = {
        "version": values["version"] or None, "kind": values["kind"] or None, "status": values["status"] or None,
        "subject_area": values["subject_area"] or None, "novelty": values["novelty"] or None,
        "venue": values["venue"] or None, "summary": values["summary"],
        "complex": bool(values["complex"]), "crowd": bool(values["crowd"]),
    }
    try:
        body = CaseUpdateIn.model_validate(payload)
    except ValidationError as exc:
        return _render_edit(console, signed, case, values, status=422, errors=_errors(describe_errors(exc.errors())))
    if body.version is None:
        return _render_edit(console, signed, case, values, status=422,
                            errors=[{"field": _label("version"), "message": t("case.edit.version_missing")}])
    try:
        async with console.engine.begin() as conn:
            change = await service.update_case(conn, keyring_of(console), caller_of(actor), case_id,
                                               expected_version=body.version, changes=body.changes(),
                                               now=local_now(console))
    except StaleVersion:
        async with console.engine.connect() as conn:
            current = await get_case(conn, case_id)
        values["version"] = str(current.version)
        message = t("case.edit.conflict", version=current.version)
        return _render_edit(console, signed, current, values, status=409, current=current,
                            errors=[{"field": "", "message": message}])
    except NotFound:
        raise
    except ComplaintsError as exc:
        return _render_edit(console, signed, case, values, status=422, errors=_domain_error(exc))
    outcome = "edit" if change.changed else "unchanged"
    return RedirectResponse(f"/cases/{case_id}?saved={outcome}", status_code=303)


# -- handling decision ------------------------------------------------------------------------------


async def _petition_choices(conn: AsyncConnection, case_id: str) -> list[tuple[str, str]]:
    rows = (await conn.execute(select(petitions.c.id, petitions.c.kind, petitions.c.received_on)
                               .where(petitions.c.case_id == case_id)
                               .order_by(petitions.c.received_on, petitions.c.created_at))).all()
    return [(r.id, t("decision.petition_choice", kind=PetitionKind.parse(r.kind).label_vi,
                     day=r.received_on.strftime("%d/%m/%Y"))) for r in rows]


async def _render_decision(console: ConsoleContext, signed: SignedIn, case: CaseRecord, values: dict[str, str], *,
                           status: int = 200, errors: list[dict[str, str]] | None = None) -> Response:
    async with console.engine.connect() as conn:
        petition_choices = await _petition_choices(conn, case.id)
    return render_page(console, "cases/decision.html", signed, status=status, case=case, values=values,
                       errors=errors or [], directions=choices(HandlingDirection), petitions=petition_choices)


@router.get("/cases/{case_id}/decisions/new")
async def decision_form(console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    require_any(actor, DECISION_GRANTS)
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id[:64])
    values = dict.fromkeys(DECISION_FIELDS, "")
    values["decided_on"] = local_now(console).date().isoformat()
    return await _render_decision(console, signed, case, values)


@router.post("/cases/{case_id}/decisions")
async def decision_submit(request: Request, console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    require_any(actor, DECISION_GRANTS)
    case_id = case_id[:64]
    form = await request.form()
    values = {name: _field(form, name) for name in DECISION_FIELDS}
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id)
    payload = {"direction": values["direction"], "decided_on": values["decided_on"] or None,
               "petition_id": values["petition_id"] or None, "forwarded_to": values["forwarded_to"] or None,
               "notes": values["notes"]}
    try:
        body = HandlingDecisionIn.model_validate(payload)
    except ValidationError as exc:
        return await _render_decision(console, signed, case, values, status=422,
                                      errors=_errors(describe_errors(exc.errors())))
    try:
        async with console.engine.begin() as conn:
            await service.record_handling_decision(
                conn, caller_of(actor), case_id, direction=body.direction, decided_on=body.decided_on,
                now=local_now(console), petition_id=body.petition_id, forwarded_to=body.forwarded_to,
                notes=body.notes)
    except ComplaintsError as exc:  # a future date, a forward without its body, a petition of another case
        field = "petition_id" if isinstance(exc, NotFound) else (getattr(exc, "field", None) or "")
        return await _render_decision(console, signed, case, values, status=422,
                                      errors=[{"field": _label(field), "message": exc.message_vi}])
    return RedirectResponse(f"/cases/{case_id}?saved=decision", status_code=303)


# -- directive --------------------------------------------------------------------------------------


def _deadline_choices() -> list[tuple[str, str]]:
    out = []
    for kind in directive_deadline_kinds():
        rule = DEADLINE_RULES[kind]
        out.append((kind.value, t("directive.legal_choice", name=kind.label_vi, amount=rule.amount,
                                  unit=rule.unit.label_vi, source=rule.source_vi)))
    return out


async def _render_directive(console: ConsoleContext, signed: SignedIn, case: CaseRecord, values: dict[str, str], *,
                            status: int = 200, errors: list[dict[str, str]] | None = None,
                            preview: date | None = None) -> Response:
    async with console.engine.connect() as conn:
        unit_rows = await active_units(conn)
    return render_page(console, "cases/directive.html", signed, status=status, case=case, values=values,
                       errors=errors or [], units=unit_rows,
                       legal_deadlines=_deadline_choices(), preview=preview)


def _require_issuer(actor: Actor) -> None:
    if not may_issue_directives(actor):
        raise Forbidden("grant missing")


@router.get("/cases/{case_id}/directives/new")
async def directive_form(console: Console, signed: CurrentUser, case_id: str) -> Response:
    actor = actor_of(signed)
    _require_issuer(actor)
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id[:64])
    values = dict.fromkeys(DIRECTIVE_FIELDS, "")
    values.update(issued_on=local_now(console).date().isoformat(), deadline_mode="working_days", working_days="10")
    return await _render_directive(console, signed, case, values)


def _directive_payload(values: dict[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {"unit_id": values["unit_id"], "content": values["content"],
                               "issued_on": values["issued_on"] or None}
    mode = values["deadline_mode"]
    if mode == "date":
        payload["deadline"] = values["deadline"] or None
    elif mode == "working_days":
        payload["working_days"] = values["working_days"] or None
    elif mode == "legal":
        payload["legal_deadline"] = values["legal_deadline"] or None
    return payload


@router.post("/cases/{case_id}/directives")
async def directive_submit(request: Request, console: Console, signed: CurrentUser, case_id: str) -> Response:
    """``action=preview`` computes and shows the deadline without saving; ``action=save`` issues."""
    actor = actor_of(signed)
    _require_issuer(actor)
    case_id = case_id[:64]
    form = await request.form()
    values = {name: _field(form, name) for name in DIRECTIVE_FIELDS}
    action = _field(form, "action")
    async with console.engine.connect() as conn:
        case = await _visible_case(conn, actor, case_id)
    if values["deadline_mode"] not in DEADLINE_MODES:
        return await _render_directive(console, signed, case, values, status=422, errors=[
            {"field": _label("deadline_mode"), "message": t("directive.mode_missing")}])
    try:
        body = DirectiveIn.model_validate(_directive_payload(values))
    except ValidationError as exc:
        return await _render_directive(console, signed, case, values, status=422,
                                       errors=_errors(describe_errors(exc.errors())))
    now = local_now(console)
    try:
        if action != "save":
            not_in_future(body.issued_on, now.date(), "issued_on", "Ngày chỉ đạo")
            due = body.resolve_deadline(console.calendar)
            check_deadline(body.issued_on, due, console.calendar)
            async with console.engine.connect() as conn:
                if not await known_active_units(conn, [body.unit_id]):
                    raise NotFound("Không tìm thấy đơn vị được giao.")
            return await _render_directive(console, signed, case, values, preview=due)
        async with console.engine.begin() as conn:
            await service.issue_directive(
                conn, caller_of(actor), case_id, unit_id=body.unit_id, content=body.content,
                issued_on=body.issued_on, calendar=console.calendar, now=now, deadline=body.deadline,
                working_days=body.working_days, legal=body.legal_deadline)
    except ComplaintsError as exc:  # a deadline that cannot be, a future date, an unknown unit
        field = "unit_id" if isinstance(exc, NotFound) else (getattr(exc, "field", None) or "deadline")
        return await _render_directive(console, signed, case, values, status=422,
                                       errors=[{"field": _label(field), "message": exc.message_vi}])
    return RedirectResponse(f"/cases/{case_id}?saved=directive", status_code=303)


# -- sealed identity --------------------------------------------------------------------------------


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
