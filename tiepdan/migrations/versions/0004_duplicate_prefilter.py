"""duplicate prefilter: covering index on petitioner_keys, petition_parties by petitioner, place keys

The duplicate check now counts the blocking keys a petitioner shares with the query in SQL and keeps
the best-scored few (complaints.duplicates.shortlist). ``ix_petitioner_keys_key`` becomes
``ix_petitioner_keys_key_petitioner_id`` (key, petitioner_id), so the count reads the index alone;
``ix_petition_parties_petitioner_id`` finds a candidate's cases without scanning petition_parties.
The keys of existing open petitioners are rebuilt with complaints.duplicates.blocking_keys, which now
also pairs name words with the commune or district of the address (``np:`` keys).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 1000


def _rebuild_keys(bind: sa.Connection) -> None:
    """Recompute the blocking keys of every open petitioner, a batch of petitioners at a time."""
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
    with op.batch_alter_table("petitioner_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_petitioner_keys_key")
        batch_op.create_index("ix_petitioner_keys_key_petitioner_id", ["key", "petitioner_id"], unique=False)
    with op.batch_alter_table("petition_parties", schema=None) as batch_op:
        batch_op.create_index("ix_petition_parties_petitioner_id", ["petitioner_id"], unique=False)
    _rebuild_keys(op.get_bind())


def downgrade() -> None:
    op.execute("DELETE FROM petitioner_keys WHERE key LIKE 'np:%'")
    with op.batch_alter_table("petition_parties", schema=None) as batch_op:
        batch_op.drop_index("ix_petition_parties_petitioner_id")
    with op.batch_alter_table("petitioner_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_petitioner_keys_key_petitioner_id")
        batch_op.create_index("ix_petitioner_keys_key", ["key"], unique=False)
