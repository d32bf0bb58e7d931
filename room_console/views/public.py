"""The citizens' page ``/tra-cuu``: the status of a case by its tracking code (mã tra cứu), without
login. It shows only the status, the date received and the directive deadline (never names, content
or identity). A malformed and an unknown code get the same answer (no oracle for valid codes), and
each client address has a lookup budget per minute."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from complaints.cases import find_case_by_tracking_code
from complaints.errors import InvalidTrackingCode, NotFound
from complaints.tables import directives, petitions, reception_entries

from ..routes import Console, render_page

router = APIRouter()


@router.get("/tra-cuu")
async def lookup_page(request: Request, console: Console,
                      ma: Annotated[str, Query(max_length=64)] = "") -> Response:
    context: dict[str, Any] = {"code": ma[:40], "found": None, "not_found": False, "limited": False}
    status = 200
    if ma.strip():
        client = request.client.host if request.client else "unknown"
        if not console.lookup_limiter.hit(client, console.clock()):
            context["limited"] = True
            return render_page(console, "public/lookup.html", None, status=429, **context)
        try:
            async with console.engine.connect() as conn:
                case = await find_case_by_tracking_code(conn, ma)
                received: date | None = (await conn.execute(select(func.coalesce(
                    select(func.min(petitions.c.received_on)).where(petitions.c.case_id == case.id).scalar_subquery(),
                    select(func.min(reception_entries.c.received_on))
                    .where(reception_entries.c.case_id == case.id).scalar_subquery())))).scalar()
                deadline: date | None = (await conn.execute(
                    select(func.max(directives.c.deadline)).where(directives.c.case_id == case.id,
                                                                  directives.c.status != "done"))).scalar()
            context["found"] = {"status": case.status.label_vi, "received": received or case.created_at.date(),
                                "deadline": deadline}
        except (InvalidTrackingCode, NotFound):
            context["not_found"] = True
    return render_page(console, "public/lookup.html", None, status=status, **context)
