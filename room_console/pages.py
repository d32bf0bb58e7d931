"""Server-rendered pages: one Jinja2 environment (autoescaped, strict about undefined names) whose
templates read every text through ``t(...)`` from the message catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from complaints.workdays import VIETNAM_TZ
from signaling.grants import ROLE_LABELS_VI, Role

from .i18n import Catalogue, catalogue

__all__ = ["Pages", "format_time"]


def format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(VIETNAM_TZ).strftime("%H:%M %d/%m/%Y")


def _role_labels(roles: Iterable[Role | str]) -> str:
    labels = []
    for role in roles:
        try:
            labels.append(ROLE_LABELS_VI[Role(role)])
        except ValueError:
            continue
    return ", ".join(labels)


class Pages:
    def __init__(self, messages: Catalogue | None = None) -> None:
        self.messages = messages or catalogue()
        self.env = Environment(
            loader=PackageLoader("room_console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["t"] = self.messages.t
        self.env.globals["ROLE_LABELS"] = {r.value: label for r, label in ROLE_LABELS_VI.items()}
        self.env.filters["role_labels"] = _role_labels
        self.env.filters["vn_time"] = format_time

    def render_text(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)

    def render(self, name: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
        return HTMLResponse(self.render_text(name, context), status_code=status)
