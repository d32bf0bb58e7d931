"""The citizens' page ``/tra-cuu``: the status of a case by its tracking code (mã tra cứu), without
login. It shows only the status, the date received and the directive deadline (never names, content
or identity). A malformed and an unknown code get the same answer (no oracle for valid codes), and
each client address has a lookup budget per minute. The facts come from
:func:`complaints.service.public_status`; the page holds no SQL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from complaints.errors import NotFound
from complaints.service import public_status

from ..routes import Console, render_page

router = APIRouter()


@router.get("/tra-cuu")
async def lookup_page(request: Request, console: Console,
                      ma: Annotated[str, Query(max_length=64)] = "") -> Response:
    context: dict[str, Any] = {"code": ma[:40], "found": None, "not_found": False, "limited": False}
    if ma.strip():
        client = request.client.host if request.client else "unknown"
        if not console.lookup_limiter.hit(client, console.clock()):
            context["limited"] = True
            return render_page(console, "public/lookup.html", None, status=429, **context)
        try:
            async with console.engine.connect() as conn:
                found = await public_status(conn, ma)
            context["found"] = {"status": found.status.label_vi, "received": found.received_on,
                                "deadline": found.deadline}
        except NotFound:
            context["not_found"] = True
    return render_page(console, "public/lookup.html", None, **context)
