"""The registration desk (bàn tiếp nhận, role ``reception``, grant ``intake``): the page ``/ban-tiep-nhan``,
its JSON API under ``/api/desk`` and the printed slip ``/ban-tiep-nhan/phieu/{ticket_id}``.

Each handler parses, authorises, calls one domain function (:func:`schedules.desk.register_at_desk`
in one transaction, or a read) and shapes the response. The chip ID card's QR string typed by the
USB scanner is parsed again here with :func:`schedules.parse_chip_id_qr` (the page's script parses it
only to show it); a malformed string is refused with the reason. A venue operator's account names its
venue, and registers there only; a desk officer picks one of the session's venues.

Nothing here answers with a citizen's ID number, and a denunciation's slip and JSON name nobody: the
response is ids, numbers and the tracking code (mã tra cứu). The duplicate check shows a sealed match
as one sentence to whoever lacks ``identity_read`` (:func:`complaints.petitioners.find_duplicates`).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from complaints.duplicates import IntakeRecord
from complaints.enums import PetitionerRole, PetitionerType, PetitionKind, PetitionSource
from complaints.errors import ComplaintsError, IdentityAccessDenied
from complaints.intake import Intake
from complaints.petitioners import DuplicateCheck, NewPetitioner, find_duplicates
from complaints.petitions import NewPetition
from complaints.schemas import PetitionerIn, RespondentIn, describe_errors
from schedules import PriorityGround, parse_chip_id_qr
from schedules.desk import DESK_STATES, DeskRegistration, DeskResult, Triage, desk_slip, register_at_desk
from schedules.errors import (
    ConcurrentChange,
    DuplicateTicket,
    InvalidChipId,
    NotPermitted,
    SchedulesError,
    SessionNotToday,
    TicketNotWaiting,
    TicketsNotIssued,
    UnknownCase,
    UnknownSession,
    UnknownTicket,
    VenueNotInSession,
)
from schedules.sessions import SessionRecord, sessions_between
from schedules.triage import ConfidentialHandling, retriage_ticket, ticket_venue
from signaling.grants import Grant

from ..actor import Actor, require_any
from ..api.complaints import duplicates_json, keyring_of, local_now
from ..context import ConsoleContext
from ..errors import Forbidden
from ..routes import Console, CurrentUser, SignedIn, render_page
from .common import actor_of, choices, form_value

__all__ = ["router", "DeskRegistrationIn"]

log = logging.getLogger("room_console.desk")
router = APIRouter()

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]


class DeskPetitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] = "complaint"
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    request: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)] = ""


class DeskRegistrationIn(BaseModel):
    """``POST /api/desk/registrations`` (and ``/api/desk/duplicates``): exactly one of ``chip_qr`` (the
    scanner's string), ``petitioner`` (typed in) or ``petitioner_id`` (a duplicate candidate on file, with
    ``chip_qr`` or ``birth_date`` optionally, for the elderly priority); ``case_id`` attaches to that case."""

    model_config = ConfigDict(extra="forbid")
    session_id: Slug
    venue: Slug | None = None  # a venue operator's account fixes it
    chip_qr: Annotated[str, StringConstraints(max_length=1000)] | None = None
    petitioner: PetitionerIn | None = None
    petitioner_id: Id | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    birth_date: date | None = None  # of a person on file, for the elderly priority
    delegation: bool = False  # the citizen represents a delegation (đoàn đông người)
    case_id: Id | None = None
    petition: DeskPetitionIn
    respondent: RespondentIn | None = None
    priorities: list[Literal["disabled", "pregnant"]] = []
    triage: Literal["propose_leader", "guidance", "forward", "explain", "refuse"]
    refusal_reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""
    receiving_body: Short = ""
    # a denunciation proposed to the leader: how it is heard (required then, refused otherwise)
    handling: Literal["in_person", "closed_segment"] | None = None


class TicketTriageIn(BaseModel):
    """``POST /api/desk/sessions/{session_id}/tickets/{ticket_no}/triage``: the desk's priority grounds
    and, for a confidential case, its handling, at the queue ``expected_version`` the desk read."""

    model_config = ConfigDict(extra="forbid")
    expected_version: int = Field(ge=0, le=2**31)
    priorities: list[Literal["disabled", "pregnant"]] = []
    handling: Literal["in_person", "closed_segment"] | None = None


# -- what the API and the page share ------------------------------------------------------------------


def _status(exc: SchedulesError) -> int:
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, UnknownSession | UnknownTicket | UnknownCase):
        return 404
    if isinstance(exc, TicketsNotIssued | SessionNotToday | DuplicateTicket | ConcurrentChange | TicketNotWaiting):
        return 409
    return 422


def _problem(exc: SchedulesError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message_vi}
    field = getattr(exc, "field", None)
    if isinstance(exc, InvalidChipId):
        body["errors"] = [{"field": f"chip_qr.{field}" if field else "chip_qr", "message": exc.message_vi}]
    elif isinstance(exc, VenueNotInSession):
        body["errors"] = [{"field": "venue", "message": exc.message_vi}]
    elif exc.code in ("handling_required", "handling_not_confidential"):
        body["errors"] = [{"field": "handling", "message": exc.message_vi}]
    elif isinstance(exc, ConcurrentChange):
        body["current_version"] = exc.current
    return JSONResponse(body, status_code=_status(exc))


def _venue_for(signed: SignedIn, asked: str | None) -> str:
    """A venue operator's account is bound to its venue; anybody else names one of the session's."""
    bound = signed.user.venue
    if bound is not None:
        if asked is not None and asked != bound:
            raise Forbidden("grant missing")
        return bound
    if not asked:
        raise VenueNotInSession("Hãy chọn điểm cầu của phiên.")
    return asked


def _registration(body: DeskRegistrationIn, venue: str, today: date, officer: str) -> DeskRegistration:
    """The domain's registration (raises :class:`InvalidChipId`, complaints' ``InvalidInput``)."""
    given = sum(x is not None for x in (body.chip_qr if body.petitioner_id is None else None, body.petitioner,
                                        body.petitioner_id))
    if given != 1:
        raise InvalidChipId("Hãy quét thẻ căn cước, nhập thông tin công dân hoặc chọn một công dân đã có "
                            "(chỉ một trong ba).", code="petitioner_choice")
    person: NewPetitioner | None = None
    birth = body.birth_date
    if body.chip_qr is not None and body.petitioner_id is not None:
        birth = parse_chip_id_qr(body.chip_qr, today=today).birth_date  # the person on file, scanned again
    elif body.chip_qr is not None:
        card = parse_chip_id_qr(body.chip_qr, today=today)
        person = NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=card.full_name, id_number=card.id_number,
                               id_kind=card.personal_id.kind.value, birth_date=card.birth_date, sex=card.sex.value,
                               phone=body.phone or None, address_detail=card.permanent_address)
        birth = card.birth_date
    elif body.petitioner is not None:
        person = body.petitioner.to_domain(today)
        birth = person.birth_date
    petition = NewPetition(source=PetitionSource.IN_PERSON, kind=PetitionKind.parse(body.petition.kind),
                           received_on=today, content=body.petition.content, request=body.petition.request)
    intake = Intake(petition=petition, petitioner=person, petitioner_id=body.petitioner_id,
                    role=PetitionerRole.REPRESENTATIVE if body.delegation else PetitionerRole.SIGNATORY,
                    respondent=body.respondent.to_domain() if body.respondent else None, case_id=body.case_id)
    return DeskRegistration(session_id=body.session_id, venue=venue, intake=intake, triage=Triage.parse(body.triage),
                            priorities=frozenset(PriorityGround.parse(p) for p in body.priorities), birth_date=birth,
                            refusal_reason=body.refusal_reason, receiving_body=body.receiving_body, officer=officer,
                            handling=None if body.handling is None else ConfidentialHandling.parse(body.handling))


async def _register(console: ConsoleContext, actor: Actor, reg: DeskRegistration) -> DeskResult:
    """One transaction; a refused identity write keeps its audit row (the intake's rule)."""
    denied: IdentityAccessDenied | None = None
    async with console.engine.begin() as conn:
        try:
            result = await register_at_desk(conn, keyring_of(console), reg, actor=actor.label, grants=actor.grants,
                                            clock=lambda: local_now(console))
        except IdentityAccessDenied as exc:
            denied = exc
    if denied is not None:
        raise denied
    log.info("desk registration", extra={"ctx": {"session": result.session_id, "venue": result.venue,
                                                 "case_id": result.intake.case_id, "triage": result.triage.value,
                                                 "ticket_no": result.ticket.ticket_no if result.ticket else None}})
    return result


def _result_json(result: DeskResult) -> dict[str, Any]:
    ticket = result.ticket
    return {
        "session_id": result.session_id, "venue": result.venue,
        "case_id": result.intake.case_id, "tracking_code": result.intake.tracking_code,
        "new_case": result.intake.new_case, "confidential": result.intake.confidential,
        "triage": {"value": result.triage.value, "label": result.triage.label_vi},
        "reception": {"id": result.reception_id, "nth": result.reception_nth,
                      "label": f"Lần tiếp thứ {result.reception_nth}"},
        "ticket": None if ticket is None else {
            "id": ticket.ticket_id, "number": ticket.ticket_no, "venue": ticket.venue,
            "priorities": [{"value": g.value, "label": g.label_vi} for g in sorted(ticket.priorities,
                                                                                   key=lambda g: g.value)],
            "issued_at": ticket.issued_at.isoformat(), "slip_url": f"/ban-tiep-nhan/phieu/{ticket.ticket_id}",
            "handling": _labelled(result.handling)},
    }


def _labelled(value: ConfidentialHandling | None) -> dict[str, str] | None:
    return None if value is None else {"value": value.value, "label": value.label_vi}


async def _desk_sessions(console: ConsoleContext, signed: SignedIn) -> list[SessionRecord]:
    """Today's sessions the desk registers for; for a venue operator, those its venue takes part in."""
    today = local_now(console).date()
    async with console.engine.connect() as conn:
        found = await sessions_between(conn, today, today)
    bound = signed.user.venue
    return [s for s in found if s.state in DESK_STATES and (bound is None or any(v.venue == bound for v in s.venues))]


def _session_json(record: SessionRecord, bound: str | None) -> dict[str, Any]:
    return {"id": record.id, "title": record.title, "day": record.day.isoformat(),
            "state": {"value": record.state.value, "label": record.state.label_vi},
            "venues": [{"id": v.venue, "name": v.name, "main": v.main} for v in record.venues
                       if bound is None or v.venue == bound]}


# -- the API -----------------------------------------------------------------------------------------------


@router.get("/api/desk/sessions")
async def desk_sessions(console: Console, signed: CurrentUser) -> dict[str, Any]:
    """Today's sessions open to the desk (published, open or in progress), with the venues to pick."""
    require_any(actor_of(signed), {Grant.INTAKE})
    found = await _desk_sessions(console, signed)
    return {"sessions": [_session_json(s, signed.user.venue) for s in found], "bound_venue": signed.user.venue}


@router.post("/api/desk/duplicates")
async def desk_duplicates(console: Console, signed: CurrentUser, body: DeskRegistrationIn) -> Response:
    """The duplicate check of the person being registered (the chip card parsed on the server)."""
    actor = actor_of(signed)
    require_any(actor, {Grant.INTAKE})
    now = local_now(console)
    try:
        reg = _registration(body, _venue_for(signed, body.venue), now.date(), actor.name)
    except SchedulesError as exc:
        return _problem(exc)
    async with console.engine.begin() as conn:
        check = await find_duplicates(conn, keyring_of(console), _query(reg), actor=actor.label, grants=actor.grants,
                                      now=now)
    return JSONResponse(duplicates_json(check))


@router.post("/api/desk/registrations", status_code=201)
async def desk_register(console: Console, signed: CurrentUser, body: DeskRegistrationIn) -> Response:
    """Register, triage and, for ``propose_leader``, issue the next ticket (see the module docstring)."""
    actor = actor_of(signed)
    require_any(actor, {Grant.INTAKE})
    try:
        reg = _registration(body, _venue_for(signed, body.venue), local_now(console).date(), actor.name)
        result = await _register(console, actor, reg)
    except SchedulesError as exc:
        return _problem(exc)
    return JSONResponse(_result_json(result), status_code=201)


@router.post("/api/desk/sessions/{session_id}/tickets/{ticket_no}/triage")
async def desk_retriage(console: Console, signed: CurrentUser, session_id: Slug, ticket_no: int,
                        body: TicketTriageIn) -> Response:
    """Change an issued ticket's priority grounds or its handling (``ticket.triaged``; the chair's call
    order follows). A venue operator changes the tickets of its venue only."""
    actor = actor_of(signed)
    require_any(actor, {Grant.INTAKE})
    if not 1 <= ticket_no <= 99_999:
        return _problem(UnknownTicket(f"Không có số thứ tự {ticket_no} trong phiên."))
    bound = signed.user.venue
    try:
        async with console.engine.begin() as conn:
            if bound is not None:
                venue = await ticket_venue(conn, session_id, ticket_no)
                if venue is not None and venue != bound:
                    raise Forbidden("grant missing")
            change = await retriage_ticket(
                conn, session_id, ticket_no, expected_version=body.expected_version,
                priorities=[PriorityGround.parse(p) for p in body.priorities],
                handling=None if body.handling is None else ConfidentialHandling.parse(body.handling),
                actor=actor.label, grants=actor.grants, clock=lambda: local_now(console))
    except SchedulesError as exc:
        return _problem(exc)
    return JSONResponse({"ticket_no": change.ticket_no, "version": change.version, "changed": change.event is not None,
                         "status": {"value": change.status.value, "label": change.status.label_vi},
                         "priorities": [{"value": g.value, "label": g.label_vi}
                                        for g in sorted(change.priorities, key=lambda g: g.value)],
                         "handling": _labelled(change.handling)})


def _query(reg: DeskRegistration) -> IntakeRecord:
    person = reg.intake.petitioner
    return IntakeRecord("new", full_name=person.full_name if person else "",
                        id_number=(person.id_number or "") if person else "",
                        address=(person.address_detail or "") if person else "",
                        respondent=reg.intake.respondent.name if reg.intake.respondent else "",
                        content=reg.intake.petition.content)


# -- the page ------------------------------------------------------------------------------------------------

FIELDS = ("session_id", "venue", "chip_qr", "full_name", "id_number", "birth_date", "phone", "address", "kind",
          "content", "request", "respondent_name", "triage", "refusal_reason", "receiving_body", "handling")
FLAGS = ("delegation", "disabled", "pregnant")


def _render(console: ConsoleContext, signed: SignedIn, sessions: list[SessionRecord], values: dict[str, str], *,
            status: int = 200, check: DuplicateCheck | None = None, errors: list[dict[str, str]] | None = None,
            done: DeskResult | None = None) -> Response:
    bound = signed.user.venue
    context: dict[str, Any] = {
        "values": values, "sessions": [_session_json(s, bound) for s in sessions], "bound_venue": bound,
        "candidates": check.candidates if check else [], "sealed_match": check.sealed_match if check else False,
        "checked": check is not None, "errors": errors or [], "kinds": choices(PetitionKind),
        "triages": choices(Triage), "done": _result_json(done) if done else None,
    }
    return render_page(console, "desk.html", signed, status=status, **context)


def _blank(console: ConsoleContext, sessions: list[SessionRecord], chosen: str) -> dict[str, str]:
    values = dict.fromkeys(FIELDS + FLAGS, "")
    values.update(kind="complaint", triage="propose_leader")
    ids = [s.id for s in sessions]
    values["session_id"] = chosen if chosen in ids else (ids[0] if len(ids) == 1 else "")
    return values


@router.get("/ban-tiep-nhan")
async def desk_page(console: Console, signed: CurrentUser, session: str = "") -> Response:
    require_any(actor_of(signed), {Grant.INTAKE})
    sessions = await _desk_sessions(console, signed)
    return _render(console, signed, sessions, _blank(console, sessions, session[:64]))


def _body_of(values: dict[str, str], attach: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "session_id": values["session_id"], "venue": values["venue"] or None, "delegation": bool(values["delegation"]),
        "petition": {"kind": values["kind"], "content": values["content"], "request": values["request"]},
        "priorities": [p for p in ("disabled", "pregnant") if values[p]], "triage": values["triage"],
        "refusal_reason": values["refusal_reason"], "receiving_body": values["receiving_body"],
        "handling": values["handling"] or None,
    }
    if values["phone"]:
        body["phone"] = values["phone"]
    if values["respondent_name"]:
        body["respondent"] = {"kind": "organisation", "name": values["respondent_name"]}
    if attach:
        case_id, _, petitioner_id = attach.partition("|")
        body["case_id"] = case_id or None
        body["petitioner_id"] = petitioner_id or None
        if values["chip_qr"]:
            body["chip_qr"] = values["chip_qr"]
        elif values["birth_date"]:
            body["birth_date"] = values["birth_date"]
    elif values["chip_qr"]:
        body["chip_qr"] = values["chip_qr"]
    else:
        person: dict[str, Any] = {"full_name": values["full_name"]}
        for key, target in (("id_number", "id_number"), ("birth_date", "birth_date"), ("phone", "phone"),
                            ("address", "address_detail")):
            if values[key]:
                person[target] = values[key]
        body["petitioner"] = person
    return body


@router.post("/ban-tiep-nhan")
async def desk_submit(request: Request, console: Console, signed: CurrentUser) -> Response:
    actor = actor_of(signed)
    require_any(actor, {Grant.INTAKE})
    form = await request.form()
    values = {name: form_value(form, name, 20000 if name == "content" else 1000) for name in FIELDS + FLAGS}
    if signed.user.venue is not None:
        values["venue"] = signed.user.venue
    action = form_value(form, "action", 20)
    attach = form_value(form, "attach", 200)
    sessions = await _desk_sessions(console, signed)
    now = local_now(console)
    try:
        body = DeskRegistrationIn.model_validate(_body_of(values, attach))
        reg = _registration(body, _venue_for(signed, body.venue), now.date(), actor.name)
        if action == "check" and not attach:
            async with console.engine.begin() as conn:
                check = await find_duplicates(conn, keyring_of(console), _query(reg), actor=actor.label,
                                              grants=actor.grants, now=now)
            return _render(console, signed, sessions, values, check=check)
        result = await _register(console, actor, reg)
    except ValidationError as exc:
        return _render(console, signed, sessions, values, status=422, errors=describe_errors(exc.errors()))
    except SchedulesError as exc:
        return _render(console, signed, sessions, values, status=_status(exc),
                       errors=[{"field": "", "message": exc.message_vi}])
    except IdentityAccessDenied:
        raise
    except ComplaintsError as exc:
        return _render(console, signed, sessions, values, status=422, errors=[{"field": "", "message": exc.message_vi}])
    if result.ticket is not None:
        return RedirectResponse(f"/ban-tiep-nhan/phieu/{result.ticket.ticket_id}", status_code=303)
    return _render(console, signed, sessions, _blank(console, sessions, result.session_id), done=result)


@router.get("/ban-tiep-nhan/phieu/{ticket_id}")
async def desk_slip_page(console: Console, signed: CurrentUser, ticket_id: str) -> Response:
    """The A6 slip: number, session, venue, date and time, the tracking code and its QR; no name, no ID."""
    require_any(actor_of(signed), {Grant.INTAKE})
    async with console.engine.connect() as conn:
        try:
            slip = await desk_slip(conn, ticket_id[:64])
        except UnknownTicket as exc:
            raise HTTPException(404) from exc
    if signed.user.venue is not None and slip.venue != signed.user.venue:
        raise Forbidden("grant missing")
    qr = segno.make(slip.tracking_code, error="m").svg_inline(scale=4, omitsize=True)
    return render_page(console, "desk_slip.html", signed, slip=slip, qr_svg=qr,
                       elderly=any(g is PriorityGround.ELDERLY for g in slip.priorities))

