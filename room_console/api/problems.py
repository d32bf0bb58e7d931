"""How errors of the complaint database reach a person: one mapping to HTTP statuses, JSON under
``/api`` (``{"error": code, "message": Vietnamese text, "errors": [...]}``), an error page elsewhere."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from complaints.errors import (
    ComplaintsError,
    IdentityAccessDenied,
    IdentityKeyError,
    InvalidInput,
    NotFound,
    StaleVersion,
)
from complaints.schemas import describe_errors

__all__ = ["complaints_status", "problem", "install_problem_handlers"]

log = logging.getLogger("room_console.api")


def complaints_status(exc: ComplaintsError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StaleVersion):
        return 409
    if isinstance(exc, IdentityAccessDenied):
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
