"""session planning: the cases the chair pre-selected for a session (schedules.planning)

``session_selected_cases`` holds, in order, the cases chosen for a session before it opens (domain.md
§3 step 2); a ticket issued later for one of them carries the ``chair_selected`` priority ground.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("session_selected_cases",
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("selected_by", sa.String(length=200), nullable=False),
    sa.Column("selected_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_session_selected_cases_case_id_cases")),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"],
                            name=op.f("fk_session_selected_cases_session_id_reception_sessions")),
    sa.PrimaryKeyConstraint("session_id", "case_id", name=op.f("pk_session_selected_cases")),
    sa.UniqueConstraint("session_id", "position", name="uq_session_selected_cases_session_id_position")
    )
    op.create_index("ix_session_selected_cases_case_id", "session_selected_cases", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_session_selected_cases_case_id", table_name="session_selected_cases")
    op.drop_table("session_selected_cases")
