"""registration desk: a ticket's triage (handling of a denunciation, ticket.triaged count); i/y folding

1. ``queue_tickets.handling`` (NULL, ``in_person`` or ``closed_segment``: how a confidential case is
   heard, chosen at the desk, schedules.triage) and ``queue_tickets.triage_version`` (how many
   ``ticket.triaged`` events the ticket has had, 0 for the existing ones); the ticket status
   ``in_person`` (handed to the in-person reception, never called online) joins the status check.
2. complaints.duplicates.fold_text now writes the interchangeable ``y`` of a syllable as ``i`` (Sỹ/Sĩ,
   Kỳ/Kì, Lý/Lí, Mỹ/Mĩ: ``sy`` → ``si`` after an initial consonant). Every stored folded column is
   recomputed with it: petitioners.name_norm and address_norm, cases.summary_norm and search_norm (the
   SQLite FTS table follows through its update trigger), petitions.content_norm, respondents.name_norm.
   The stored values are already folded, so folding them again gives what folding the original text
   gives; only rows holding a ``y`` are read. The blocking keys of open petitioners are rebuilt from
   their names and addresses, as 0004 did.

Downgrade drops the columns and restores the status check; the folded text stays folded the new way
(the old code reads it: a ``y`` syllable written with ``i`` only finds its ``i`` spelling there).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BATCH = 1000
_STATUS_OLD = "status IN ('waiting', 'called', 'deferred', 'closed', 'absent')"
_STATUS_NEW = "status IN ('waiting', 'called', 'deferred', 'closed', 'absent', 'in_person')"
_HANDLING = "handling IS NULL OR handling IN ('in_person', 'closed_segment')"
#: (table, key column, folded columns)
_FOLDED = (
    ("petitioners", "id", ("name_norm", "address_norm")),
    ("cases", "id", ("summary_norm", "search_norm")),
    ("petitions", "id", ("content_norm",)),
    ("respondents", "id", ("name_norm",)),
)


def _refold(bind: sa.Connection) -> None:
    from complaints.duplicates import fold_text

    for table, key, columns in _FOLDED:
        for column in columns:
            last = ""
            while True:
                rows = bind.execute(sa.text(
                    f"SELECT {key}, {column} FROM {table} WHERE {key} > :last AND {column} LIKE '%y%' "
                    f"ORDER BY {key} LIMIT :n"), {"last": last, "n": _BATCH}).all()
                if not rows:
                    break
                changed = [{"k": k, "v": fold_text(v)} for k, v in rows if fold_text(v) != v]
                if changed:
                    bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), changed)
                last = rows[-1][0]


def _rebuild_keys(bind: sa.Connection) -> None:
    from complaints.duplicates import IntakeRecord, blocking_keys

    last = ""
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, full_name, id_number, address_detail FROM petitioners "
            "WHERE NOT sealed AND id > :last ORDER BY id LIMIT :n"), {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        keys = [{"p": pid, "k": key}
                for pid, name, number, address in rows
                for key in sorted(blocking_keys(IntakeRecord(pid, full_name=name or "", id_number=number or "",
                                                             address=address or "")))]
        bind.execute(sa.text("DELETE FROM petitioner_keys WHERE petitioner_id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)), {"ids": [r[0] for r in rows]})
        if keys:
            bind.execute(sa.text("INSERT INTO petitioner_keys (petitioner_id, key) VALUES (:p, :k)"), keys)
        last = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table("queue_tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handling", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("triage_version", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint(op.f("ck_queue_tickets_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_queue_tickets_status"), _STATUS_NEW)
        batch_op.create_check_constraint(op.f("ck_queue_tickets_handling"), _HANDLING)
    bind = op.get_bind()
    _refold(bind)
    _rebuild_keys(bind)


def downgrade() -> None:
    op.execute("UPDATE queue_tickets SET status = 'closed' WHERE status = 'in_person'")
    with op.batch_alter_table("queue_tickets", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_queue_tickets_handling"), type_="check")
        batch_op.drop_constraint(op.f("ck_queue_tickets_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_queue_tickets_status"), _STATUS_OLD)
        batch_op.drop_column("triage_version")
        batch_op.drop_column("handling")
