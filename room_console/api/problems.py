"""How errors reach a person: one mapping to HTTP statuses per domain package (the complaint database,
the scheduler), JSON under ``/api`` (``{"error": code, "message": Vietnamese text, "errors": [...]}``), an
error page elsewhere."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from complaints.errors import (
    ComplaintsError,
    IdentityAccessDenied,
    IdentityKeyError,
    InvalidInput,
    NotAuthorized,
    NotFound,
    StaleVersion,
)
from complaints.schemas import describe_errors
from schedules.errors import ConcurrentChange, InvalidArgument, NotPermitted, SchedulesError

from ..i18n import t

__all__ = ["complaints_status", "problem", "install_problem_handlers", "json_problem", "schedules_status",
           "schedules_problem", "unknown_session"]

log = logging.getLogger("room_console.api")


def complaints_status(exc: ComplaintsError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StaleVersion):
        return 409
    if isinstance(exc, IdentityAccessDenied | NotAuthorized):
        return 403
    if isinstance(exc, IdentityKeyError):
        return 500
    if isinstance(exc, InvalidInput) and exc.code == "too_large":
        return 413
    if isinstance(exc, InvalidInput) and exc.code == "version_required":
        return 428
    if isinstance(exc, ValueError):
        return 422
    return 400


def problem(exc: ComplaintsError) -> JSONResponse:
    body: dict[str, object] = {"error": exc.code, "message": exc.message_vi}
    if isinstance(exc, InvalidInput) and exc.field:
        body["errors"] = [{"field": exc.field, "message": exc.message_vi}]
    return JSONResponse(body, status_code=complaints_status(exc))


def json_problem(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The JSON error body every console API answers with (never cached)."""
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status,
                        headers={"cache-control": "no-store"})


def schedules_status(exc: SchedulesError) -> int:
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, InvalidArgument | ValueError):
        return 422
    return 409


def schedules_problem(exc: SchedulesError, *, current_key: str = "current_version", **extra: Any) -> JSONResponse:
    """A scheduler error as JSON; a lost race (:class:`ConcurrentChange`) says what is current under
    ``current_key``."""
    if isinstance(exc, ConcurrentChange):
        extra[current_key] = exc.current
    return json_problem(schedules_status(exc), exc.code, exc.message_vi, **extra)


def unknown_session(session_id: str) -> JSONResponse:
    return json_problem(404, "unknown_session", t("api.sessions.unknown", session=session_id[:64]))


async def _complaints_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ComplaintsError)
    status = complaints_status(exc)
    if status >= 500:
        log.error("complaint request failed", extra={"ctx": {"path": request.url.path, "status": status}})
    if request.url.path.startswith("/api/"):
        return problem(exc)
    from ..routes import render_error_text

    return render_error_text(status, exc.message_vi)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = describe_errors(exc.errors())
    return JSONResponse({"error": "invalid_input", "message": "Dữ liệu gửi lên không hợp lệ.", "errors": errors},
                        status_code=422)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ComplaintsError, _complaints_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
