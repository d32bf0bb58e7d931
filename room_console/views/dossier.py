"""The case dossier beside the chair's video, and the printable one-page brief (bản tóm tắt vụ việc).

* ``GET /api/cases/{case_id}/dossier`` (``?session=`` the reception session it is read for): the dossier
  of :func:`complaints.dossier.load_dossier` as JSON — the case, "lần tiếp thứ n", its parties as the
  reader may see them, its history, the chair's earlier directives with their progress, and the
  refusal-condition flag of LTCD Điều 9 (a hint, never a refusal).
* ``GET /api/sessions/{session_id}/dossier``: the same for the case being received in the session now
  (``{"case": null}`` between cases), for those who also drive the queue (``call_queue``: the chair,
  the secretary): what the live page's panel (``/static/live-dossier.js``) loads
  when ``case.called`` / ``case.recalled`` / ``case.ended`` arrive.
* ``GET /cases/{case_id}/brief`` (``?session=``): the brief, an A4 page styled for print from the same data.

Who may read: whoever may read the case file (the grants of the case pages: the chair, the secretary,
intake staff…; a unit only the cases directed to it); anybody else gets 403, a venue's token included.
What is shown of people follows :mod:`complaints.confidentiality` as on the case page: without
``identity_read`` a confidential case's parties appear by their handle; the chair (``identity_read``)
sees the name of a sealed party, each opening audited. Every read is a ``case.view`` audit event.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from complaints.dossier import Dossier, HistoryKind, load_dossier
from complaints.dossier_rules import DirectiveProgress
from complaints.enums import SubjectArea
from complaints.errors import UnknownEnumValue
from schedules import calls
from schedules.errors import SchedulesError
from signaling.grants import Grant

from ..actor import Actor, CurrentActor
from ..api.complaints import ensure_case_visible, local_now, record_case_view
from ..api.problems import json_problem
from ..context import ConsoleContext
from ..i18n import t
from ..routes import Console, CurrentUser, render_error_text, render_page
from .common import actor_of

__all__ = ["router", "dossier_json", "read_dossier"]

router = APIRouter()
_SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _labelled(value: Any) -> dict[str, str] | None:
    return None if value is None else {"value": value.value, "label": value.label_vi}


def _subject_area(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        return _labelled(SubjectArea.parse(raw))
    except UnknownEnumValue:
        return {"value": raw, "label": raw}


def brief_url(case_id: str, session_id: str | None) -> str:
    return f"/cases/{case_id}/brief" + (f"?session={session_id}" if session_id else "")


def dossier_json(d: Dossier) -> dict[str, Any]:
    """The dossier for the page's panel: labels in Vietnamese from the catalogue, dates ISO."""
    c = d.case
    refusal = d.refusal
    return {
        "case": {"id": c.id, "tracking_code": c.tracking_code, "kind": _labelled(c.kind), "status": _labelled(c.status),
                 "subject_area": _subject_area(c.subject_area), "summary": c.summary, "novelty": _labelled(c.novelty),
                 "complex": c.complex, "crowd": c.crowd, "confidential": d.confidential},
        "session": d.session_id,
        "reception_number": d.reception_number,
        "reception_number_text": t("live.dossier.nth", n=d.reception_number),
        "parties": [{"shown": p.shown, "handle": p.as_handle, "role": _labelled(p.role)} for p in d.parties],
        "respondents": [{"name": r.name, "position": r.position, "workplace": r.workplace} for r in d.respondents],
        "history": [{"on": h.on.isoformat(), "kind": h.kind.value, "kind_label": t(f"live.dossier.history.{h.kind}"),
                     "label": h.label, "detail": h.detail, "nth": h.nth,
                     "due": h.due.isoformat() if h.due else None} for h in d.history],
        "directives": [{"unit": x.view.unit_name, "content": x.view.content, "issued_on": x.issued_on.isoformat(),
                        "deadline": x.view.deadline.isoformat(),
                        "completed_on": x.view.completed_on.isoformat() if x.view.completed_on else None,
                        "status": _labelled(x.view.status),
                        "progress": {"value": x.progress.value, "label": t(f"live.dossier.progress.{x.progress}")}}
                       for x in d.directives],
        "refusal": {
            "flagged": refusal.flagged,
            "level": {"value": refusal.level.value, "label": t(f"live.dossier.refusal.{refusal.level}")},
            "reason": _labelled(refusal.reason),
            "checks": [{"condition": k.condition.value, "label": t(f"live.dossier.refusal.condition.{k.condition}"),
                        "finding": {"value": k.finding.value, "label": t(f"live.dossier.finding.{k.finding}")},
                        "count": k.count} for k in refusal.checks],
            "hint": t("live.dossier.refusal.hint"),
        },
        "today": d.today.isoformat(),
        "case_url": f"/cases/{c.id}",
        "brief_url": brief_url(c.id, d.session_id),
    }


def _session_param(session: str) -> str | None:
    if not session:
        return None
    if not _SESSION_ID.match(session):
        raise ValueError(session)
    return session


async def read_dossier(console: ConsoleContext, actor: Actor, case_id: str, session_id: str | None, *,
                       via: str) -> Dossier:
    """Authorise (the case file's grants, a unit's scope) and read the dossier; audited as a case view."""
    now = local_now(console)
    async with console.engine.begin() as conn:
        await ensure_case_visible(conn, actor, case_id)
        dossier = await load_dossier(conn, case_id, today=now.date(), calendar=console.calendar,
                                     grants=actor.grants, session_id=session_id)
    await record_case_view(console, actor, dossier.case.id, via=via)
    return dossier


def _bad_session() -> JSONResponse:
    return json_problem(422, "invalid_session", t("live.dossier.bad_session"))


@router.get("/api/cases/{case_id}/dossier", tags=["console"])
async def case_dossier(console: Console, actor: CurrentActor, case_id: str,
                       session: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The dossier of one case (see the module docstring)."""
    try:
        session_id = _session_param(session)
    except ValueError:
        return _bad_session()
    dossier = await read_dossier(console, actor, case_id[:64], session_id, via="dossier")
    return JSONResponse(dossier_json(dossier), headers={"cache-control": "no-store"})


@router.get("/api/sessions/{session_id}/dossier", tags=["console"])
async def current_dossier(console: Console, actor: CurrentActor, session_id: str) -> Response:
    """The dossier of the case being received in ``session_id`` now, or ``{"case": null}``."""
    if not (actor.may_view_cases and actor.has(Grant.CALL_QUEUE)):
        return json_problem(403, "forbidden", t("error.403"))
    if not _SESSION_ID.match(session_id):
        return json_problem(404, "unknown_session", t("live.dossier.unknown_session"))
    try:
        async with console.engine.connect() as conn:
            state, _ = await calls.load_queue(conn, session_id)
    except SchedulesError as exc:
        status = 404 if isinstance(exc, LookupError) else 409
        return json_problem(status, exc.code, exc.message_vi)
    ticket = state.current_ticket
    if ticket is None:
        return JSONResponse({"case": None, "session": session_id}, headers={"cache-control": "no-store"})
    dossier = await read_dossier(console, actor, ticket.case, session_id, via="dossier")
    body = dossier_json(dossier)
    body["ticket"] = {"ticket_no": ticket.ticket_no, "venue": ticket.venue, "call_seq": ticket.last_call_seq}
    return JSONResponse(body, headers={"cache-control": "no-store"})


@router.get("/cases/{case_id}/brief")
async def case_brief(console: Console, signed: CurrentUser, case_id: str,
                     session: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The one-page brief of a case, styled for A4 print."""
    try:
        session_id = _session_param(session)
    except ValueError:
        return render_error_text(422, t("live.dossier.bad_session"))
    dossier = await read_dossier(console, actor_of(signed), case_id[:64], session_id, via="brief")
    labels = {**{k.value: t(f"live.dossier.history.{k}") for k in HistoryKind},
              **{p.value: t(f"live.dossier.progress.{p}") for p in DirectiveProgress}}
    return render_page(console, "cases/brief.html", signed, d=dossier, data=dossier_json(dossier), labels=labels,
                       printed_on=local_now(console))
