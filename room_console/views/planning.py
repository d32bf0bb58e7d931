"""The session calendar (``/lich``), the planning page of one session (``/lich/phien/{id}``) and the
iCalendar feeds (``/lich/ics/…``), for the reception board (grant ``manage``: the grant
:func:`schedules.plan_session` and :func:`schedules.publish_session` demand).

* ``GET /lich`` — the sessions of a month (``?thang=2027-03``) or a range (``?tu=…&den=…``) with their
  state, day (and the rule's nominal day when a day off moved it), hours, form, hosts and venues; the
  forms to plan an ad hoc session and the periodic sessions of a rule for a year; the monthly duty of
  a leader (``?lanh_dao=…&nam=…``: :func:`schedules.monthly_compliance`, shortfall months marked);
  the signed links of the feeds.
* ``GET /lich/phien/{id}`` and ``POST /lich/phien/{id}/{action}`` — venues (at most
  :data:`schedules.planning.MAX_LIVE_VENUES`, each with the session's bitrate cap), host and co-hosts,
  the chair's pre-selected cases, publish (a refusal under LTCD Điều 24 is shown with the reason field),
  postpone / cancel (reason code and note), reschedule. Every form carries the version it showed: a
  stale form gets the conflict message (409), never a lost update.
* ``GET /lich/ics/{kind}/{key}/{token}.ics`` — public, for calendar applications: a leader's or a
  venue's published sessions (:mod:`schedules.ical`) behind an unguessable token
  (:mod:`room_console.feed_links`); any fault (bad token, unknown leader or venue, no keyring) is a bare 404.

Handlers parse, authorise, call one schedules function in one transaction and redirect (303) to the page,
or render it again with the error in Vietnamese.
"""

from __future__ import annotations

import calendar as stdlib_calendar
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from complaints.enums import IssuingTrack, ReceptionForm, ReceptionType
from complaints.errors import ComplaintsError
from schedules import (
    COMMUNE_SECRETARY_DUTY,
    PROVINCIAL_SECRETARY_DUTY,
    PeriodicRule,
    SessionReason,
    VenueChoice,
    cancel_session,
    create_periodic_sessions,
    get_session,
    list_venues,
    monthly_compliance,
    plan_session,
    postpone_session,
    publish_session,
    reschedule_session,
    sessions_between,
    set_session_venues,
)
from schedules.calendar import MonthlyDuty
from schedules.errors import (
    ConcurrentChange,
    IllegalTransition,
    NotPermitted,
    PublishTooLate,
    SchedulesError,
    SessionExists,
    UnknownSession,
    VenueExists,
    VenueInUse,
)
from schedules.ical import build_feed
from schedules.periodic import PeriodicPlan
from schedules.planning import (
    MAX_LIVE_VENUES,
    SELECTABLE_STATES,
    check_live_venues,
    known_leaders,
    select_cases,
    selected_cases,
    set_session_hours,
    set_session_leaders,
)
from schedules.session_hours import DEFAULT_CLOSES_AT, DEFAULT_OPENS_AT, parse_time_of_day
from schedules.session_state import SessionState, last_publication_day
from schedules.sessions import SessionRecord
from schedules.venues import Venue

from ..api.complaints import local_now
from ..context import ConsoleContext
from ..feed_links import FeedLinks
from ..i18n import t
from ..routes import Console, Manager, SignedIn, render_page
from .common import actor_of, choices, form_value

__all__ = ["FormError", "parse_day", "router", "status_for"]

log = logging.getLogger("room_console.planning")
router = APIRouter()

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_VN_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_MAX_RANGE_DAYS = 400
_FIRST_YEAR, _LAST_YEAR = 2000, 2100
_DUTIES: dict[str, MonthlyDuty] = {"tinh": PROVINCIAL_SECRETARY_DUTY, "xa": COMMUNE_SECRETARY_DUTY}
ACTIONS = ("venues", "leaders", "hours", "cases", "publish", "postpone", "cancel", "reschedule")


class FormError(Exception):
    """A form field the page cannot use (message in Vietnamese, from the catalogue)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def status_for(exc: SchedulesError) -> int:
    """The HTTP status of a refusal by the scheduler, as the planning pages answer it."""
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, UnknownSession):
        return 404
    if isinstance(exc, ConcurrentChange | IllegalTransition | PublishTooLate | SessionExists | VenueInUse
                  | VenueExists):
        return 409
    return 422


def _clock(console: ConsoleContext) -> Callable[[], datetime]:
    return lambda: local_now(console)


def parse_day(text: str, what: str) -> date:
    """``2027-03-10`` (a date field) or ``10/03/2027`` (typed); an impossible date (31/02, year 0) is refused."""
    value = text.strip()
    iso, vn = _ISO_DAY.fullmatch(value), _VN_DAY.fullmatch(value)
    if iso is not None:
        year, month, day = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
    elif vn is not None:
        year, month, day = int(vn.group(3)), int(vn.group(2)), int(vn.group(1))
    else:
        raise FormError(t("plan.error.day_format", what=what, value=value[:20]))
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise FormError(t("plan.error.year", what=what, first=_FIRST_YEAR, last=_LAST_YEAR))
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise FormError(t("plan.error.no_such_day", what=what, value=value[:20])) from exc


def _year(text: str) -> int:
    if not text.strip().isdigit() or not _FIRST_YEAR <= int(text) <= _LAST_YEAR:
        raise FormError(t("plan.error.year", what=t("plan.year"), first=_FIRST_YEAR, last=_LAST_YEAR))
    return int(text)


def _int(text: str, what: str, low: int, high: int) -> int:
    value = text.strip()
    if not re.fullmatch(r"-?\d{1,6}", value) or not low <= int(value) <= high:
        raise FormError(t("plan.error.number", what=what, low=low, high=high))
    return int(value)


def _slugs(text: str, what: str) -> list[str]:
    found = [part for part in re.split(r"[\s,;]+", text.strip()) if part]
    for part in found:
        if not _SLUG.fullmatch(part):
            raise FormError(t("plan.error.slug", what=what, value=part[:64]))
    return found


def _time(text: str, default: time, what: str) -> time:
    return parse_time_of_day(text, what) if text.strip() else default


def _version(form: Any) -> int:
    value = form_value(form, "version", 12)
    if not value.isdigit():
        raise FormError(t("plan.error.version"))
    return int(value)


def _venue_choices(form: Any, *, with_caps: bool) -> tuple[list[VenueChoice], str | None]:
    picked = [v for v in form.getlist("venues") if isinstance(v, str)][:200]
    for venue in picked:
        if not _SLUG.fullmatch(venue):
            raise FormError(t("plan.error.slug", what=t("plan.venues"), value=venue[:64]))
    chosen: list[VenueChoice] = []
    for venue in picked:
        cap: int | None = None
        if with_caps and form_value(form, f"kbps-{venue}", 12):
            cap = _int(form_value(form, f"kbps-{venue}", 12), t("plan.kbps"), 100, 20000)
        chosen.append(VenueChoice(venue, max_kbps=cap))
    check_live_venues(chosen)
    main = form_value(form, "main", 64) or None
    return chosen, main


def _form_values(form: Any, names: tuple[str, ...]) -> dict[str, str]:
    values = {name: form_value(form, name, 2000) for name in names}
    values["venues"] = ",".join(v for v in form.getlist("venues") if isinstance(v, str))[:4000]
    return values


# -- what the pages show -------------------------------------------------------------------------------------


_WEEKDAYS = ("weekday.mon", "weekday.tue", "weekday.wed", "weekday.thu", "weekday.fri", "weekday.sat", "weekday.sun")


def _day_text(day: date) -> str:
    return f"{t(_WEEKDAYS[day.weekday()])} {day:%d/%m/%Y}"


def _session_view(record: SessionRecord) -> dict[str, Any]:
    moved = record.nominal_day is not None and record.nominal_day != record.day
    return {
        "id": record.id, "title": record.title, "day": _day_text(record.day), "day_iso": record.day.isoformat(),
        "nominal": _day_text(record.nominal_day) if moved and record.nominal_day else None,
        "hours": f"{record.opens_at:%H:%M}–{record.closes_at:%H:%M}",
        "opens_at": f"{record.opens_at:%H:%M}", "closes_at": f"{record.closes_at:%H:%M}",
        "state": record.state.value, "state_label": record.state.label_vi,
        "form": record.session.form.label_vi, "kind": record.session.kind.label_vi,
        "host": record.host or "", "cohosts": list(record.cohosts), "version": record.version,
        "track": record.track.value, "track_label": record.track.label_vi,
        "venues": [{"id": v.venue, "name": v.name, "main": v.main, "max_kbps": v.max_kbps,
                    "effective_kbps": v.effective_kbps} for v in record.venues],
        "reason": record.session.reason.label_vi if record.session.reason else "",
        "reason_note": record.session.reason_note, "publish_override": record.session.publish_override,
    }


def _feed_links(console: ConsoleContext) -> FeedLinks | None:
    return FeedLinks.from_keyring(console.keyring) if console.keyring is not None else None


def _month_range(month: str, today: date) -> tuple[date, date]:
    match = _MONTH.fullmatch(month.strip()) if month else None
    if not month:
        year, number = today.year, today.month
    elif match is None or not 1 <= int(match.group(2)) <= 12 or not _FIRST_YEAR <= int(match.group(1)) <= _LAST_YEAR:
        raise FormError(t("plan.error.month", value=month[:20]))
    else:
        year, number = int(match.group(1)), int(match.group(2))
    return date(year, number, 1), date(year, number, stdlib_calendar.monthrange(year, number)[1])


@dataclass
class CalendarQuery:
    start: date
    end: date
    leader: str
    year: int
    duty: str


def _calendar_query(request: Request, today: date) -> CalendarQuery:
    params = request.query_params
    start_text, end_text = params.get("tu", "")[:20], params.get("den", "")[:20]
    if start_text or end_text:
        start, end = parse_day(start_text, t("plan.from")), parse_day(end_text, t("plan.to"))
        if end < start or (end - start).days > _MAX_RANGE_DAYS:
            raise FormError(t("plan.error.range", days=_MAX_RANGE_DAYS))
    else:
        start, end = _month_range(params.get("thang", "")[:20], today)
    leader = params.get("lanh_dao", "")[:64]
    if leader and not _SLUG.fullmatch(leader):
        raise FormError(t("plan.error.slug", what=t("plan.host"), value=leader))
    year = _year(params["nam"][:8]) if params.get("nam") else today.year
    duty = params.get("nghia_vu", "tinh")
    if duty not in _DUTIES:
        duty = "tinh"
    return CalendarQuery(start, end, leader, year, duty)


async def _render_calendar(console: ConsoleContext, signed: SignedIn, request: Request, query: CalendarQuery | None,
                           *, status: int = 200, errors: list[str] | None = None,
                           values: dict[str, str] | None = None, periodic: PeriodicPlan | None = None) -> Response:
    today = local_now(console).date()
    if query is None:
        start, end = _month_range("", today)
        query = CalendarQuery(start, end, "", today.year, "tinh")
    async with console.engine.connect() as conn:
        sessions = await sessions_between(conn, query.start, query.end)
        venues = await list_venues(conn)
        leaders = await known_leaders(conn)
        compliance = (await monthly_compliance(conn, leader=query.leader, first_month=date(query.year, 1, 1),
                                               last_month=date(query.year, 12, 1), duty=_DUTIES[query.duty])
                      if query.leader else ())
    this_month = (today.year, today.month)
    months = [{"label": f"{m.month:02d}/{m.year}", "held": m.held_days, "required": m.required,
               "in_person": m.in_person, "online": m.online, "future": (m.year, m.month) > this_month,
               "current": (m.year, m.month) == this_month, "met": m.met} for m in compliance]
    links = _feed_links(console)
    base = (console.options.public_url or str(request.base_url)).rstrip("/")
    feeds = [] if links is None else (
        [{"label": t("plan.feed_leader", leader=leader), "url": base + links.path("lanh-dao", leader)}
         for leader in leaders]
        + [{"label": t("plan.feed_venue", venue=v.name), "url": base + links.path("diem-cau", v.id)} for v in venues])
    previous = date(query.start.year - 1, 12, 1) if query.start.month == 1 else date(query.start.year,
                                                                                       query.start.month - 1, 1)
    following = date(query.start.year + 1, 1, 1) if query.start.month == 12 else date(query.start.year,
                                                                                        query.start.month + 1, 1)
    context: dict[str, Any] = {
        "sessions": [_session_view(s) for s in sessions], "start": query.start.strftime("%d/%m/%Y"),
        "end": query.end.strftime("%d/%m/%Y"), "previous": f"{previous:%Y-%m}", "following": f"{following:%Y-%m}",
        "venues": [v for v in venues if v.active], "leaders": leaders, "forms": choices(ReceptionForm),
        "tracks": choices(IssuingTrack),
        "query": query, "months": months,
        "shortfalls": [m for m in months if not (m["met"] or m["future"] or m["current"])],
        "feeds": feeds, "errors": errors or [], "values": defaultdict(str, values or {}), "periodic": periodic,
        "max_venues": MAX_LIVE_VENUES, "default_opens": f"{DEFAULT_OPENS_AT:%H:%M}",
        "default_closes": f"{DEFAULT_CLOSES_AT:%H:%M}",
    }
    return render_page(console, "planning/calendar.html", signed, status=status, **context)


@router.get("/lich")
async def calendar_page(request: Request, console: Console, signed: Manager) -> Response:
    try:
        query = _calendar_query(request, local_now(console).date())
    except FormError as exc:
        return await _render_calendar(console, signed, request, None, status=422, errors=[exc.message])
    except SchedulesError as exc:
        return await _render_calendar(console, signed, request, None, status=status_for(exc), errors=[exc.message_vi])
    return await _render_calendar(console, signed, request, query)


_AD_HOC_FIELDS = ("session_id", "day", "opens_at", "closes_at", "form", "host", "cohosts", "title", "main", "track")


@router.post("/lich/phien")
async def create_session(request: Request, console: Console, signed: Manager) -> Response:
    """Plan an ad hoc (đột xuất) session; on success, its planning page."""
    form = await request.form()
    values = _form_values(form, _AD_HOC_FIELDS)
    actor = actor_of(signed)
    try:
        day = parse_day(values["day"], t("plan.day"))
        chosen, main = _venue_choices(form, with_caps=False)
        opens = _time(values["opens_at"], DEFAULT_OPENS_AT, t("plan.opens_at"))
        closes = _time(values["closes_at"], DEFAULT_CLOSES_AT, t("plan.closes_at"))
        async with console.engine.begin() as conn:
            record = await plan_session(
                conn, session_id=values["session_id"], day=day, form=ReceptionForm.parse(values["form"] or "online"),
                kind=ReceptionType.AD_HOC, venues_chosen=chosen, main=main, host=values["host"] or None,
                cohosts=_slugs(values["cohosts"], t("plan.cohosts")), title=values["title"], opens_at=opens,
                closes_at=closes, track=values["track"] or None, actor=actor.label, grants=actor.grants,
                clock=_clock(console))
    except FormError as exc:
        return await _render_calendar(console, signed, request, None, status=422, errors=[exc.message], values=values)
    except SchedulesError as exc:
        return await _render_calendar(console, signed, request, None, status=status_for(exc), errors=[exc.message_vi],
                                      values=values)
    except ComplaintsError as exc:
        return await _render_calendar(console, signed, request, None, status=422, errors=[exc.message_vi],
                                      values=values)
    log.info("session planned", extra={"ctx": {"session": record.id}})
    return RedirectResponse(f"/lich/phien/{record.id}?ok=planned", status_code=303)


_PERIODIC_FIELDS = ("rule", "day_of_month", "year", "rule_key", "form", "host", "cohosts", "main", "track")


@router.post("/lich/dinh-ky")
async def create_periodic(request: Request, console: Console, signed: Manager) -> Response:
    """Plan the sessions of a periodic rule (quarterly or monthly, on a day of the month) for one year."""
    form = await request.form()
    values = _form_values(form, _PERIODIC_FIELDS)
    actor = actor_of(signed)
    try:
        year = _year(values["year"])
        day_of_month = _int(values["day_of_month"] or "10", t("plan.day_of_month"), 1, 31)
        if values["rule"] not in ("quarterly", "monthly"):
            raise FormError(t("plan.error.rule"))
        rule = (PeriodicRule.quarterly(day_of_month) if values["rule"] == "quarterly"
                else PeriodicRule.monthly(day_of_month))
        chosen, main = _venue_choices(form, with_caps=False)
        async with console.engine.begin() as conn:
            result = await create_periodic_sessions(
                conn, rule=rule, rule_key=values["rule_key"], start=date(year, 1, 1), end=date(year, 12, 31),
                calendar=console.calendar, form=ReceptionForm.parse(values["form"] or "online"), venues_chosen=chosen,
                main=main, host=values["host"] or None, cohosts=_slugs(values["cohosts"], t("plan.cohosts")),
                track=values["track"] or None, actor=actor.label, grants=actor.grants, clock=_clock(console))
    except FormError as exc:
        return await _render_calendar(console, signed, request, None, status=422, errors=[exc.message], values=values)
    except SchedulesError as exc:
        return await _render_calendar(console, signed, request, None, status=status_for(exc), errors=[exc.message_vi],
                                      values=values)
    except ComplaintsError as exc:
        return await _render_calendar(console, signed, request, None, status=422, errors=[exc.message_vi],
                                      values=values)
    log.info("periodic sessions planned", extra={"ctx": {"rule_key": values["rule_key"], "year": year,
                                                         "created": len(result.created)}})
    leader = values["host"] if _SLUG.fullmatch(values["host"]) else ""
    query = CalendarQuery(date(year, 1, 1), date(year, 12, 31), leader, year, "tinh")
    return await _render_calendar(console, signed, request, query, periodic=result)


# -- one session ---------------------------------------------------------------------------------------------


async def _render_session(console: ConsoleContext, signed: SignedIn, session_id: str, *, status: int = 200,
                          errors: list[str] | None = None, failed: str = "", values: dict[str, str] | None = None,
                          ok: str = "") -> Response:
    async with console.engine.connect() as conn:
        try:
            record = await get_session(conn, session_id)
        except UnknownSession as exc:
            raise HTTPException(404) from exc
        chosen = await selected_cases(conn, session_id)
        venues: list[Venue] = list(await list_venues(conn))
    in_session = {v.venue for v in record.venues}
    today = local_now(console).date()
    state = record.state
    context: dict[str, Any] = {
        "s": _session_view(record), "selected": chosen, "errors": errors or [], "failed": failed,
        "values": defaultdict(str, values or {}), "ok": t(f"plan.ok.{ok}") if ok in (*ACTIONS, "planned") else "",
        "venues": [v for v in venues if v.active or v.id in in_session], "in_session": in_session,
        "caps": {v.venue: v.max_kbps for v in record.venues},
        "main": record.main_venue.venue if record.main_venue else "",
        "reasons": choices(SessionReason), "max_venues": MAX_LIVE_VENUES, "tracks": choices(IssuingTrack),
        "can_edit": state in (SessionState.PLANNED, SessionState.PUBLISHED),
        "can_lead": state in (SessionState.PLANNED, SessionState.PUBLISHED, SessionState.POSTPONED),
        "can_select": state in SELECTABLE_STATES,
        "can_publish": state is SessionState.PLANNED,
        "can_postpone": state in (SessionState.PLANNED, SessionState.PUBLISHED, SessionState.OPEN),
        "can_cancel": state in (SessionState.PLANNED, SessionState.PUBLISHED, SessionState.OPEN,
                                SessionState.POSTPONED),
        "can_reschedule": state is SessionState.POSTPONED,
        "last_publication": _day_text(last_publication_day(record.day, console.calendar)),
        "late": state is SessionState.PLANNED and today > last_publication_day(record.day, console.calendar),
    }
    return render_page(console, "planning/session.html", signed, status=status, **context)


@router.get("/lich/phien/{session_id}")
async def session_page(request: Request, console: Console, signed: Manager, session_id: str) -> Response:
    return await _render_session(console, signed, session_id[:64], ok=request.query_params.get("ok", "")[:20])


_ACTION_FIELDS = ("host", "cohosts", "track", "cases", "override_reason", "reason", "note", "day", "opens_at",
                  "closes_at", "main")


async def _apply(console: ConsoleContext, signed: SignedIn, session_id: str, action: str, form: Any) -> None:
    """Parse the form of ``action`` and call its schedules function in one transaction."""
    actor = actor_of(signed)
    who: dict[str, Any] = {"actor": actor.label, "grants": actor.grants, "clock": _clock(console)}
    version = _version(form)
    if action == "venues":
        chosen, main = _venue_choices(form, with_caps=True)
        async with console.engine.begin() as conn:
            await set_session_venues(conn, session_id, venues_chosen=chosen, main=main, expected_version=version,
                                     **who)
    elif action == "leaders":
        host = form_value(form, "host", 64) or None
        cohosts = _slugs(form_value(form, "cohosts", 1000), t("plan.cohosts"))
        track = form_value(form, "track", 16) or None
        async with console.engine.begin() as conn:
            await set_session_leaders(conn, session_id, host=host, cohosts=cohosts, track=track,
                                      expected_version=version, **who)
    elif action == "hours":
        async with console.engine.begin() as conn:
            await set_session_hours(
                conn, session_id, opens_at=parse_time_of_day(form_value(form, "opens_at", 8), t("plan.opens_at")),
                closes_at=parse_time_of_day(form_value(form, "closes_at", 8), t("plan.closes_at")),
                expected_version=version, **who)
    elif action == "cases":
        refs = [line.strip() for line in re.split(r"[\s,;]+", form_value(form, "cases", 4000)) if line.strip()]
        async with console.engine.begin() as conn:
            await select_cases(conn, session_id, cases_chosen=refs, expected_version=version, **who)
    elif action == "publish":
        reason = form_value(form, "override_reason", 1000) or None
        async with console.engine.begin() as conn:
            await publish_session(conn, session_id, calendar=console.calendar, override_reason=reason,
                                  expected_version=version, **who)
    elif action in ("postpone", "cancel"):
        code = SessionReason.parse(form_value(form, "reason", 40))
        note = form_value(form, "note", 1000)
        transition = postpone_session if action == "postpone" else cancel_session
        async with console.engine.begin() as conn:
            await transition(conn, session_id, reason=code, note=note, expected_version=version, **who)
    elif action == "reschedule":
        day = parse_day(form_value(form, "day", 20), t("plan.new_day"))
        opens_text, closes_text = form_value(form, "opens_at", 8), form_value(form, "closes_at", 8)
        opens = parse_time_of_day(opens_text, t("plan.opens_at")) if opens_text else None
        closes = parse_time_of_day(closes_text, t("plan.closes_at")) if closes_text else None
        async with console.engine.begin() as conn:
            await reschedule_session(conn, session_id, day=day, opens_at=opens, closes_at=closes,
                                     expected_version=version, **who)
    else:
        raise HTTPException(404)
    if console.notify_outbox is not None:
        console.notify_outbox()


@router.post("/lich/phien/{session_id}/{action}")
async def session_action(request: Request, console: Console, signed: Manager, session_id: str,
                         action: str) -> Response:
    """One planning action on the session (see the module docstring)."""
    session_id = session_id[:64]
    if action not in ACTIONS:
        raise HTTPException(404)
    form = await request.form()
    values = {name: form_value(form, name, 4000) for name in _ACTION_FIELDS}
    try:
        await _apply(console, signed, session_id, action, form)
    except FormError as exc:
        return await _render_session(console, signed, session_id, status=422, errors=[exc.message], failed=action,
                                     values=values)
    except UnknownSession as exc:
        raise HTTPException(404) from exc
    except SchedulesError as exc:
        return await _render_session(console, signed, session_id, status=status_for(exc), errors=[exc.message_vi],
                                     failed=action, values=values)
    except ComplaintsError as exc:
        return await _render_session(console, signed, session_id, status=422, errors=[exc.message_vi],
                                     failed=action, values=values)
    log.info("session planning action", extra={"ctx": {"session": session_id, "action": action}})
    return RedirectResponse(f"/lich/phien/{session_id}?ok={action}", status_code=303)


# -- the feeds -------------------------------------------------------------------------------------------


@router.get("/lich/ics/{kind}/{key}/{token}.ics")
async def feed(console: Console, kind: str, key: str, token: str) -> Response:
    """A leader's or a venue's published sessions, from last year to two years ahead."""
    links = _feed_links(console)
    if links is None or not _SLUG.fullmatch(key) or not links.valid(kind, key, token[:64]):
        raise HTTPException(404)
    today = local_now(console).date()
    start, end = date(today.year - 1, 1, 1), date(today.year + 2, 12, 31)
    async with console.engine.connect() as conn:
        if kind == "lanh-dao":
            if key not in await known_leaders(conn):
                raise HTTPException(404)
            records = await sessions_between(conn, start, end, leader=key)
            name = t("plan.feed_leader", leader=key)
        else:
            found = {v.id: v for v in await list_venues(conn)}
            if key not in found:
                raise HTTPException(404)
            records = tuple(r for r in await sessions_between(conn, start, end)
                            if any(v.venue == key for v in r.venues))
            name = t("plan.feed_venue", venue=found[key].name)
    body = build_feed(name, records)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"content-disposition": f'inline; filename="{kind}-{key}.ics"'})
