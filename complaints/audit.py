"""The audit log (nhật ký truy cập): append-only in the database and hash-chained.

Every identity view or change, every replay and every other access the law cares about is one row
of ``audit_events``. Each row's hash covers its content and the previous row's hash
(:mod:`evidence.hashchain`); database triggers refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL),
so altering the log needs a raw edit by a database superuser — which :func:`verify_audit_log` then
names, as the first bad row. Rows carry ids and actions, never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DDL, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import GENESIS, ChainBreak, chain_hash, verify_chain

from .tables import audit_events, audit_head

__all__ = ["append_audit", "verify_audit_log", "AuditEntry", "install_append_only_triggers"]

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
]
_PG_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
]


def _ddl(statement: str) -> DDL:
    return DDL(statement)  # type: ignore[no-untyped-call]


def install_append_only_triggers() -> None:
    """Attach the triggers to ``CREATE TABLE audit_events`` (migrations run the same statements)."""
    for stmt in _SQLITE_TRIGGERS:
        event.listen(audit_events, "after_create", _ddl(stmt).execute_if(dialect="sqlite"))
    for stmt in _PG_TRIGGERS:
        event.listen(audit_events, "after_create", _ddl(stmt).execute_if(dialect="postgresql"))
    event.listen(
        audit_head, "after_create",
        _ddl(f"INSERT INTO audit_head (id, last_hash, count) VALUES (1, '{GENESIS}', 0)"),
    )


install_append_only_triggers()


def trigger_statements(dialect: str) -> list[str]:
    return list(_PG_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target_kind: str
    target_id: str
    detail: Mapping[str, Any]


def _record(at: str, actor: str, action: str, target_kind: str, target_id: str,
            detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"at": at, "actor": actor, "action": action, "target_kind": target_kind,
            "target_id": target_id, "detail": dict(detail)}


async def append_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target_kind: str,
    target_id: str,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one row in the caller's transaction; returns its id.

    The chain head row is updated first, which takes its lock, so appends from concurrent
    transactions line up one after another.
    """
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(count=audit_head.c.count + 1))
    prev = (await conn.execute(select(audit_head.c.last_hash).where(audit_head.c.id == 1))).scalar_one()
    stamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    record = _record(stamp, actor, action, target_kind, target_id, detail or {})
    digest = chain_hash(prev, record)
    result = await conn.execute(
        insert(audit_events).values(**record, prev_hash=prev, hash=digest).returning(audit_events.c.id)
    )
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_hash=digest))
    return int(result.scalar_one())


async def verify_audit_log(conn: AsyncConnection, *, batch: int = 5000) -> ChainBreak | None:
    """Walk the whole log in id order; the first bad row, or None when the chain is whole.

    Also checks that the head row names the last hash (rows removed at the end are caught).
    """
    last_id, prev_seen = 0, GENESIS
    index = 0
    while True:
        rows = (await conn.execute(
            select(audit_events).where(audit_events.c.id > last_id).order_by(audit_events.c.id).limit(batch)
        )).mappings().all()
        if not rows:
            break
        chain = [
            (r["id"], _record(r["at"], r["actor"], r["action"], r["target_kind"], r["target_id"], r["detail"]),
             r["prev_hash"], r["hash"])
            for r in rows
        ]
        bad = verify_chain(chain, start=prev_seen)
        if bad is not None:
            return ChainBreak(index + bad.index, bad.record_id, bad.reason)
        index += len(rows)
        last_id, prev_seen = rows[-1]["id"], rows[-1]["hash"]
    head = (await conn.execute(select(audit_head.c.last_hash, audit_head.c.count))).one_or_none()
    if head is not None and head.last_hash != prev_seen:
        return ChainBreak(index, None, "the last rows of the log are missing")
    return None
