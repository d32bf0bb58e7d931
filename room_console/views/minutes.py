"""The secretary's pages of the live minutes (biên bản tiếp công dân), beside the live view.

* ``GET /bien-ban`` (grant ``minutes`` or ``approve``): the drafts, the latest saved first, each a link to
  its page and to its session's live page.
* ``GET /bien-ban/{session}/{case}``: the form of one case's minutes, rendered from the server's draft (a
  reloaded page resumes where the server is): the case's header and history (the dossier, with the
  reader's grants: a sealed party by its handle), the attendees per venue of the session, the texts, the
  answer, the outcome and the handling direction (the legal enumerations), the directives (unit from the
  units table, content, deadline in working days), the documents handed over (TT 04/2021 Mẫu số 02) and,
  for a denunciation, the sealed identity section. ``/static/minutes.js`` autosaves it through
  ``PUT /api/minutes/{session}/{case}`` (room_console.api.minutes) while typing and on leaving a field,
  shows each acknowledgement ("Đã lưu phiên bản N lúc hh:mm:ss"), keeps unsent text in the browser's
  local storage until the server acknowledged it (never the denouncer's identity), and shows a conflict
  banner when another page saved first. The live view (``/phien/{session}``) opens beside it. Below the form,
  the case's timeline (:mod:`minutes.timeline`): each event with its time and its time in the recording, a link
  to the replay page at that moment for a reader who may replay the segment. A holder of ``closed_segment``
  (the secretary) asks for a closed segment (phiên kín) from here: the script sends the live page's request
  (``closed_segment.request`` on ``/ws``); the chair confirms it on the live page, as always.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.directives import active_units
from complaints.dossier import load_dossier
from complaints.enums import HandlingDirection, ReceptionOutcome
from complaints.errors import ComplaintsError
from complaints.replays import replay_segment
from minutes.drafts import VIETNAM_TZ, Draft, DraftForbidden, list_drafts, load_draft, load_version
from minutes.drafts_content import MAX_ATTENDEE_CHARS, MAX_DOCUMENTS, MAX_TEXT_CHARS, TEXT_FIELDS
from minutes.timeline import TimelineRow, case_timeline
from schedules import UnknownSession, get_session
from signaling.grants import Grant

from ..actor import Actor
from ..api.minutes import author_of, display_names, draft_json
from ..errors import Forbidden
from ..i18n import catalogue, t
from ..routes import Console, CurrentUser, render_error_text, render_page
from .common import actor_of, choices

__all__ = ["router"]

log = logging.getLogger("room_console.minutes")
router = APIRouter()

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CASE_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_READ = frozenset({Grant.MINUTES, Grant.APPROVE})


def _js_messages() -> dict[str, str]:
    messages = catalogue()
    return {key: messages.t(key) for key in sorted(messages.keys()) if key.startswith("minutes.js.")}


@router.get("/bien-ban")
async def minutes_list(console: Console, signed: CurrentUser) -> Response:
    actor = actor_of(signed)
    if not actor.has_any(_READ):
        raise Forbidden("minutes grant missing")
    async with console.engine.connect() as conn:
        drafts = await list_drafts(conn, author=author_of(actor))
    return render_page(console, "minutes/list.html", signed, drafts=drafts, tz=VIETNAM_TZ)


async def _venues(console: Console, draft: Draft) -> list[tuple[str, str]]:
    """(venue, name) of the session's venues, then any venue of the draft the session no longer lists."""
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, draft.session_id)
            listed = [(v.venue, v.name) for v in record.venues]
        except UnknownSession:
            listed = []
    known = {v for v, _ in listed}
    return listed + [(a.venue, a.venue) for a in draft.content.attendees if a.venue not in known]


async def _closed_segment_venues(console: Console, draft: Draft) -> list[tuple[str, str]]:
    """The venues a closed segment may be asked for (the session's, the main one excepted), the called first."""
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, draft.session_id)
        except UnknownSession:
            return []
    others = [(v.venue, v.name) for v in record.venues if not v.main]
    return sorted(others, key=lambda v: v[0] != draft.venue)


def _outcomes(draft: Draft) -> list[tuple[str, str]]:
    """The reception outcomes the form offers: "hẹn tiếp trực tiếp" only for a denunciation or a confidential
    case (a denouncer heard online is moved to a closed segment or received in person), or when already chosen."""
    offered = draft.holds_identity or draft.content.outcome is ReceptionOutcome.RESCHEDULE_IN_PERSON
    return [(value, label) for value, label in choices(ReceptionOutcome)
            if offered or value != ReceptionOutcome.RESCHEDULE_IN_PERSON.value]


def _clock(seconds: float) -> str:
    whole = int(max(0.0, seconds))
    return f"{whole // 3600:d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


async def _timeline(conn: AsyncConnection, actor: Actor, rows: list[TimelineRow],
                    venue_names: dict[str, str]) -> list[dict[str, Any]]:
    """The case's timeline as the page shows it: Vietnam time, what happened (the venue by name, never for a
    closed segment), the time in the recording and, when the reader may replay the segment (``replay``, or
    ``confidential_replay`` for a confidential one), a link to the replay page at that moment."""
    replayable: dict[str, bool] = {}
    for segment in {r.segment for r in rows if r.segment is not None}:
        found = await replay_segment(conn, segment)
        replayable[segment] = found is not None and actor.has(
            Grant.CONFIDENTIAL_REPLAY if found.confidential else Grant.REPLAY)
    entries: list[dict[str, Any]] = []
    for row in rows:
        offset = row.media_offset
        closed_segment = row.kind.startswith("room.closed_segment")
        venue = None if closed_segment or row.venue is None else venue_names.get(row.venue, row.venue)
        link = None
        if offset is not None and row.segment is not None and replayable.get(row.segment):
            link = f"/xem-lai/{row.segment}#t={offset:.1f}"
        entries.append({"time": row.occurred_at.astimezone(VIETNAM_TZ).strftime("%H:%M:%S"),
                        "label": t(f"minutes.timeline.kind.{row.kind.replace('.', '_')}"), "venue": venue,
                        "media": None if offset is None else _clock(offset), "link": link, "kind": row.kind})
    return entries


@router.get("/bien-ban/{session_id}/{case_id}")
async def minutes_page(console: Console, signed: CurrentUser, session_id: str, case_id: str) -> Response:
    actor = actor_of(signed)
    if not actor.has_any(_READ):
        raise Forbidden("minutes grant missing")
    if not _SESSION_ID.match(session_id) or not _CASE_ID.match(case_id):
        return render_error_text(404, "Không tìm thấy biên bản.")
    author = author_of(actor)
    try:
        async with console.engine.connect() as conn:
            draft = await load_draft(conn, session_id=session_id, case_id=case_id, author=author)
            client = (await load_version(conn, session_id=session_id, case_id=case_id, version=draft.version,
                                         author=author)).client
            today = datetime.fromtimestamp(console.clock(), UTC).astimezone(VIETNAM_TZ).date()
            dossier = await load_dossier(conn, case_id, today=today, calendar=console.calendar,
                                         grants=actor.grants, session_id=session_id)
            unit_rows = await active_units(conn)
            timeline_rows = await case_timeline(conn, session_id=session_id, case_id=case_id)
    except DraftForbidden as exc:
        return render_error_text(403, exc.message_vi)
    except ComplaintsError as exc:
        return render_error_text(404, exc.message_vi)
    venues = await _venues(console, draft)
    may_ask = actor.has(Grant.CLOSED_SEGMENT) and draft.state == "open"
    cs_venues = await _closed_segment_venues(console, draft) if may_ask else []
    async with console.engine.connect() as conn:
        timeline = await _timeline(conn, actor, timeline_rows, dict(venues))
    people = {a.venue: a.people for a in draft.content.attendees}
    names = await display_names(console, {draft.updated_by})
    state = draft_json(draft, names, client=client)
    config: dict[str, Any] = {
        "api": f"/api/minutes/{session_id}/{case_id}", "session": session_id, "case": case_id,
        "version": draft.version, "client": client, "savedTime": state["saved_time"],
        "updatedByName": state["updated_by_name"], "writable": actor.has(Grant.MINUTES) and draft.state == "open",
        "holdsIdentity": draft.holds_identity, "sealedHandle": draft.sealed_handle,
        "units": {uid: name for uid, name in unit_rows}, "maxText": MAX_TEXT_CHARS,
    }
    return render_page(
        console, "minutes/draft.html", signed, draft=draft, d=dossier, venues=venues, people=people,
        units=unit_rows, directions=choices(HandlingDirection),
        outcomes=_outcomes(draft), text_fields=TEXT_FIELDS, config=config, messages=_js_messages(),
        max_text=MAX_TEXT_CHARS, max_attendee=MAX_ATTENDEE_CHARS, max_documents=MAX_DOCUMENTS,
        updated_by_name=state["updated_by_name"], saved_time=state["saved_time"], timeline=timeline,
        cs_venues=cs_venues,
    )
