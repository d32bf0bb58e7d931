"""The venues (điểm cầu) administration page ``/admin/venues`` (grant ``manage``): list, create, edit
(name, level, new and old administrative codes, bitrate cap, active), deactivate.

Each handler parses the form, calls one :mod:`schedules.venues` function in one transaction and
redirects (303) back, or renders the page again with the error. An edit carries the version it showed:
a stale form gets the conflict message (409). The development sample's codes were read from public
data sets, not the gazette (:data:`schedules.venues.SAMPLE_SOURCE`): a venue still carrying a sample's
codes is marked "chưa kiểm chứng" (unverified).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from complaints.errors import ComplaintsError
from schedules import VenueDraft, VenueLevel, create_venue, list_venues, update_venue
from schedules.errors import SchedulesError, UnknownVenue
from schedules.venues import SAMPLE_SOURCE, SAMPLE_VENUES, Venue

from ..api.complaints import local_now
from ..context import ConsoleContext
from ..i18n import t
from ..routes import Console, Manager, SignedIn, render_page
from .common import actor_of, choices, form_value
from .planning import FormError, status_for

__all__ = ["router"]

log = logging.getLogger("room_console.venues")
router = APIRouter()

_SAMPLE_CODES = {d.id: (d.admin_code, d.old_admin_codes) for d in SAMPLE_VENUES}
_FIELDS = ("id", "name", "level", "admin_code", "old_admin_codes", "max_kbps", "active")


def _unverified(venue: Venue) -> bool:
    return _SAMPLE_CODES.get(venue.id) == (venue.admin_code, venue.old_admin_codes)


def _kbps(text: str) -> int | None:
    value = text.strip()
    if not value:
        return None
    if not re.fullmatch(r"\d{1,6}", value):
        raise FormError(t("plan.error.number", what=t("plan.kbps"), low=100, high=20000))
    return int(value)


def _codes(text: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[\s,;]+", text.strip()) if part)


async def _render(console: ConsoleContext, signed: SignedIn, *, status: int = 200, errors: list[str] | None = None,
                  values: dict[str, str] | None = None, failed: str = "", ok: str = "") -> Response:
    async with console.engine.connect() as conn:
        venues = await list_venues(conn)
    rows = [{"v": v, "unverified": _unverified(v)} for v in venues]
    return render_page(console, "admin/venues.html", signed, status=status, rows=rows, levels=choices(VenueLevel),
                       errors=errors or [], values=defaultdict(str, values or {}), failed=failed,
                       sample_source=SAMPLE_SOURCE,
                       ok=t(f"venues.ok.{ok}") if ok in ("created", "updated", "deactivated") else "")


async def _attempt(console: ConsoleContext, signed: SignedIn, work: Any, values: dict[str, str], failed: str,
                   ok: str) -> Response:
    try:
        await work()
    except FormError as exc:
        return await _render(console, signed, status=422, errors=[exc.message], values=values, failed=failed)
    except SchedulesError as exc:
        status = 404 if isinstance(exc, UnknownVenue) else status_for(exc)
        return await _render(console, signed, status=status, errors=[exc.message_vi], values=values, failed=failed)
    except ComplaintsError as exc:
        return await _render(console, signed, status=422, errors=[exc.message_vi], values=values, failed=failed)
    log.info("venue changed", extra={"ctx": {"action": ok, "venue": failed or values.get("id", "")}})
    return RedirectResponse(f"/admin/venues?ok={ok}", status_code=303)


@router.get("/admin/venues")
async def venues_page(request: Request, console: Console, signed: Manager) -> Response:
    return await _render(console, signed, ok=request.query_params.get("ok", "")[:20])


@router.post("/admin/venues")
async def venue_create(request: Request, console: Console, signed: Manager) -> Response:
    form = await request.form()
    values = {name: form_value(form, name, 1000) for name in _FIELDS}
    actor = actor_of(signed)

    async def work() -> None:
        draft = VenueDraft(id=values["id"], name=values["name"], level=VenueLevel.parse(values["level"] or "commune"),
                           admin_code=values["admin_code"] or None, old_admin_codes=_codes(values["old_admin_codes"]),
                           max_kbps=_kbps(values["max_kbps"]))
        async with console.engine.begin() as conn:
            await create_venue(conn, draft, actor=actor.label, grants=actor.grants, clock=lambda: local_now(console))

    return await _attempt(console, signed, work, values, "", "created")


@router.post("/admin/venues/{venue_id}")
async def venue_update(request: Request, console: Console, signed: Manager, venue_id: str) -> Response:
    form = await request.form()
    values = {name: form_value(form, name, 1000) for name in _FIELDS}
    actor = actor_of(signed)

    async def work() -> None:
        version = form_value(form, "version", 12)
        if not version.isdigit():
            raise FormError(t("plan.error.version"))
        changes: dict[str, Any] = {
            "name": values["name"], "level": VenueLevel.parse(values["level"] or "commune"),
            "admin_code": values["admin_code"] or None, "old_admin_codes": _codes(values["old_admin_codes"]),
            "max_kbps": _kbps(values["max_kbps"]), "active": values["active"] == "1"}
        async with console.engine.begin() as conn:
            await update_venue(conn, venue_id[:64], expected_version=int(version), changes=changes, actor=actor.label,
                               grants=actor.grants, clock=lambda: local_now(console))

    return await _attempt(console, signed, work, values, venue_id[:64], "updated")


@router.post("/admin/venues/{venue_id}/deactivate")
async def venue_deactivate(request: Request, console: Console, signed: Manager, venue_id: str) -> Response:
    form = await request.form()
    actor = actor_of(signed)

    async def work() -> None:
        version = form_value(form, "version", 12)
        if not version.isdigit():
            raise FormError(t("plan.error.version"))
        async with console.engine.begin() as conn:
            await update_venue(conn, venue_id[:64], expected_version=int(version), changes={"active": False},
                               actor=actor.label, grants=actor.grants, clock=lambda: local_now(console))

    return await _attempt(console, signed, work, {}, venue_id[:64], "deactivated")
