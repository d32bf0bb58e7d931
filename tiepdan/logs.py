"""JSON logs with context (room, venue, peer, case, ticket number), never personal data or tokens.

Context travels in ``extra={"ctx": {...}}``; only whitelisted keys are written, so a careless
``extra`` cannot leak a name or a token into the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["configure_logging", "JsonFormatter", "HandshakeAccessFilter", "ALLOWED_CONTEXT"]

ALLOWED_CONTEXT = frozenset(
    {"room", "venue", "peer", "participant", "case", "ticket_no", "session", "event", "code", "user_id",
     "path", "status", "method", "duration_ms", "node", "role", "count", "kid", "task"}
)
# A JWT (three base64url parts) or a bearer value never reaches the log, even inside a message.
# A /ws URL carries a connect ticket in ``connect=``; invitation links carry their one-time token in
# the path (/invite/<token>).
_TOKEN_RE = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}|(?i:bearer)\s+\S+|connect=[\w-]+|(?<=/invite/)[\w-]+")


def redact(text: str) -> str:
    return _TOKEN_RE.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict):
            for key, value in ctx.items():
                if key in ALLOWED_CONTEXT:
                    doc[key] = value if isinstance(value, int | float | bool) or value is None else redact(str(value))
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc"] = record.exc_info[0].__name__
        return json.dumps(doc, ensure_ascii=False)


class HandshakeAccessFilter(logging.Filter):
    """Drops the lines uvicorn and websockets write (on ``uvicorn.error``) for every WebSocket handshake:
    the client's address with the path and query, and "connection rejected". They are the WebSocket half
    of the access log, off like ``uvicorn.access``; our own line says what happened (``/ws`` logs each
    refusal with its code). Only these INFO lines go: warnings and errors always pass."""

    TEMPLATES = frozenset({
        '%s - "WebSocket %s" [accepted]', '%s - "WebSocket %s" 403', '%s - "WebSocket %s" %d',  # uvicorn
        "connection rejected (%d %s)", "HTTP response sent (%d %s)",  # websockets
    })

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.msg not in self.TEMPLATES


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs carry query strings (connect tickets): ours are written by the request middleware.
    logging.getLogger("uvicorn.access").disabled = True
    server_log = logging.getLogger("uvicorn.error")
    for old in [f for f in server_log.filters if isinstance(f, HandshakeAccessFilter)]:
        server_log.removeFilter(old)
    server_log.addFilter(HandshakeAccessFilter())
