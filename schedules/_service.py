"""What the service functions of this package share: grants, the injected clock, slugs, audit rows.

Every service function runs inside the caller's transaction (``async with engine.begin() as conn``)
and writes the change, its audit row and its outbox event there; the caller commits, then wakes the
outbox relay. A function that changes a row takes it first (``UPDATE … SET version = version``: the
row lock on PostgreSQL, the write lock on SQLite) and only then reads it, so two processes acting on
one record at once are lined up and the second sees the first's result; it then reads the clock, so
"now" is never earlier than the change it follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.audit import append_audit
from signaling.grants import Grant

from ._clock import require_actor, require_aware
from .errors import InvalidArgument, NotPermitted

__all__ = ["Clock", "SLUG", "audit", "check_slug", "now_of", "require_grant"]

#: Returns the current time, timezone-aware (``lambda: datetime.now(UTC)`` in production, a fake in tests).
Clock = Callable[[], datetime]

#: Session (room), venue and leader ids: lowercase ASCII letters, digits and dashes, at most 64.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def require_grant(grants: Collection[Grant], needed: Grant, what_vi: str) -> None:
    """Refuse with :class:`NotPermitted` unless ``grants`` holds ``needed``."""
    if needed not in grants:
        raise NotPermitted(f"Bạn không có quyền {what_vi}.")


def now_of(clock: Clock) -> datetime:
    return require_aware(clock())


def check_slug(value: str, what_vi: str, *, code: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise InvalidArgument(
            f"{what_vi} «{value}» không hợp lệ: chỉ chữ thường không dấu, số và dấu gạch ngang, tối đa 64 ký tự.",
            code=code,
        )
    return value


async def audit(conn: AsyncConnection, *, actor: str, action: str, target_kind: str, target_id: str,
                at: datetime, detail: Mapping[str, Any] | None = None) -> None:
    """One row of the audit log (ids, codes and numbers only: never a name or free text)."""
    await append_audit(conn, actor=require_actor(actor), action=action, target_kind=target_kind,
                       target_id=target_id, detail=detail or {}, at=at)
