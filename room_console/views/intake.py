"""Page "Tiếp nhận đơn": the intake form. "Kiểm tra trùng" shows the ranked duplicate candidates with
their reasons before anything is saved; staff then attach the petition to a candidate's case or
confirm that it is a new case. Plain HTML forms: no script needed.

A sealed match is shown in full only to holders of ``identity_read``; anybody else reads one sentence
(ask an officer with the grant) and no case to attach to (:func:`complaints.petitioners.find_duplicates`).
A denunciation attached to a case, or a known citizen's denunciation, is sealed for that case by the
domain (:mod:`complaints.confidentiality`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from complaints import service
from complaints.duplicates import IntakeRecord
from complaints.enums import PetitionKind, PetitionSource
from complaints.errors import ComplaintsError, IdentityAccessDenied
from complaints.petitioners import DuplicateCheck, find_duplicates
from complaints.schemas import IntakeIn, describe_errors
from signaling.grants import Grant

from ..actor import require_any
from ..api.complaints import caller_of, keyring_of, local_now
from ..context import ConsoleContext
from ..routes import Console, CurrentUser, SignedIn, render_page
from .common import actor_of, choices, form_value

router = APIRouter()

FIELDS = ("full_name", "id_number", "birth_date", "phone", "address", "kind", "source", "received_on", "content",
          "request", "respondent_kind", "respondent_name")


def _render(console: ConsoleContext, signed: SignedIn, values: dict[str, str], *, status: int = 200,
            check: DuplicateCheck | None = None, errors: list[dict[str, str]] | None = None) -> Response:
    context: dict[str, Any] = {"values": values, "candidates": check.candidates if check else [],
                               "sealed_match": check.sealed_match if check else False, "errors": errors or [],
                               "checked": check is not None, "kinds": choices(PetitionKind),
                               "sources": choices(PetitionSource)}
    return render_page(console, "intake.html", signed, status=status, **context)


@router.get("/intake")
async def intake_form(console: Console, signed: CurrentUser) -> Response:
    require_any(actor_of(signed), {Grant.INTAKE})
    values = dict.fromkeys(FIELDS, "")
    values.update(kind="complaint", source="in_person", respondent_kind="organisation",
                  received_on=local_now(console).date().isoformat())
    return _render(console, signed, values)


def _payload(values: dict[str, str], attach: str) -> dict[str, Any]:
    person: dict[str, Any] = {"full_name": values["full_name"]}
    for key, target in (("id_number", "id_number"), ("birth_date", "birth_date"), ("phone", "phone"),
                        ("address", "address_detail")):
        if values[key]:
            person[target] = values[key]
    body: dict[str, Any] = {
        "petition": {"kind": values["kind"], "source": values["source"], "received_on": values["received_on"] or None,
                     "content": values["content"], "request": values["request"]},
        "reception": {"reception_type": "routine", "form": "in_person"},
    }
    if values["respondent_name"]:
        body["respondent"] = {"kind": values["respondent_kind"] or "person", "name": values["respondent_name"]}
    if attach:
        case_id, _, petitioner_id = attach.partition("|")
        body["case_id"] = case_id or None
        body["petitioner_id"] = petitioner_id or None
    else:
        body["petitioner"] = person
    return body


@router.post("/intake")
async def intake_submit(request: Request, console: Console, signed: CurrentUser) -> Response:
    actor = actor_of(signed)
    require_any(actor, {Grant.INTAKE})
    form = await request.form()
    values = {name: form_value(form, name, 20000 if name == "content" else 500) for name in FIELDS}
    action = form_value(form, "action", 20)
    attach = form_value(form, "attach", 200)
    if action == "check" and not attach:
        query = IntakeRecord("new", full_name=values["full_name"], id_number=values["id_number"],
                             address=values["address"], respondent=values["respondent_name"], content=values["content"])
        async with console.engine.begin() as conn:
            check = await find_duplicates(conn, keyring_of(console), query, actor=actor.label, grants=actor.grants,
                                          now=local_now(console))
        return _render(console, signed, values, check=check)
    now = local_now(console)
    try:
        data = IntakeIn.model_validate(_payload(values, attach)).to_domain(now.date(), officer=actor.name)
    except ValidationError as exc:
        return _render(console, signed, values, status=422, errors=describe_errors(exc.errors()))
    except ComplaintsError as exc:
        return _render(console, signed, values, status=422, errors=[{"field": "", "message": exc.message_vi}])
    denied: IdentityAccessDenied | None = None
    async with console.engine.begin() as conn:
        try:
            result = await service.record_intake(conn, keyring_of(console), caller_of(actor), data, now=now)
        except IdentityAccessDenied as exc:
            denied = exc
    if denied is not None:
        raise denied
    return RedirectResponse(f"/cases/{result.case_id}?saved=1", status_code=303)
