"""session hours: the planned opening and closing time of each reception session

``reception_sessions.opens_at`` / ``closes_at``: times of day in Vietnam (schedules.session_hours), the
room opens at the first (published → open, by the timekeeper) and the session ends at the second (in
progress → closed, once no case is being heard). Sessions planned before this revision get the default
morning sitting, 07:30–11:30. The check ``opens_at < closes_at`` is added on PostgreSQL; SQLite cannot
add a constraint to a table without rebuilding it (and the tables that refer to it), so there the
service's validation (schedules.SessionHours) is the guard.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reception_sessions", sa.Column("opens_at", sa.Time(), nullable=False,
                                                  server_default=sa.text("'07:30:00'")))
    op.add_column("reception_sessions", sa.Column("closes_at", sa.Time(), nullable=False,
                                                  server_default=sa.text("'11:30:00'")))
    if op.get_bind().dialect.name == "postgresql":
        op.create_check_constraint(op.f("ck_reception_sessions_hours"), "reception_sessions",
                                   "opens_at < closes_at")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_reception_sessions_hours"), "reception_sessions", type_="check")
        op.drop_column("reception_sessions", "closes_at")
        op.drop_column("reception_sessions", "opens_at")
        return
    # SQLite (3.35 and later) drops a column in place; a batch rebuild would drop the table the session
    # venues, cohosts and queues refer to
    op.execute("ALTER TABLE reception_sessions DROP COLUMN closes_at")
    op.execute("ALTER TABLE reception_sessions DROP COLUMN opens_at")
