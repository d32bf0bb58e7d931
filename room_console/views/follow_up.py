"""Page "Theo dõi chỉ đạo": directives by deadline status (overdue, due soon, on track, done); a unit's
officer sees the unit's own only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from complaints.deadlines import DueStatus
from complaints.directives import active_units, follow_up
from signaling.grants import Grant

from ..actor import require_any
from ..api.complaints import local_now
from ..routes import Console, CurrentUser, render_page
from .common import actor_of

router = APIRouter()

_GROUPS = [
    ("overdue", "follow_up.overdue", {DueStatus.OVERDUE}),
    ("due_soon", "follow_up.due_soon", {DueStatus.DUE_SOON}),
    ("on_track", "follow_up.on_track", {DueStatus.ON_TRACK}),
    ("done", "follow_up.done", {DueStatus.DONE_ON_TIME, DueStatus.DONE_LATE}),
]


@router.get("/follow-up")
async def follow_up_page(console: Console, signed: CurrentUser,
                         unit: Annotated[str, Query(max_length=64)] = "") -> Response:
    actor = actor_of(signed)
    require_any(actor, {Grant.DIRECTIVES})
    scope = actor.unit_scope
    chosen = scope if scope is not None else (unit or None)
    async with console.engine.connect() as conn:
        views = await follow_up(conn, today=local_now(console).date(), calendar=console.calendar, unit_id=chosen)
        unit_rows = await active_units(conn)
    groups = [(key, label, [v for v in views if v.status in statuses]) for key, label, statuses in _GROUPS]
    return render_page(console, "follow_up.html", signed, groups=groups, units=unit_rows,
                       unit=chosen or "", scoped=scope is not None)
