"""minutes timeline: the events of each case heard, with their wall time and their time in the recording

``minutes_timeline`` holds one row per event of a case's timeline (the event id is the key): the session, the
event's type and wall time, the case and call it belongs to, the venue (never for a closed segment), the
recording segment it falls in with the segment's media t0 (and, for a closed segment's row, its wall time of
opening) and its media time on the recording's session clock. minutes.timeline explains the rules.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("minutes_timeline",
    sa.Column("event_id", sa.String(length=64), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("kind", sa.String(length=40), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=True),
    sa.Column("call_seq", sa.Integer(), nullable=True),
    sa.Column("venue", sa.String(length=64), nullable=True),
    sa.Column("segment", sa.String(length=80), nullable=True),
    sa.Column("segment_t0", sa.Float(), nullable=True),
    sa.Column("segment_opened_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("media_at", sa.Float(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("event_id", name=op.f("pk_minutes_timeline"))
    )
    op.create_index(op.f("ix_minutes_timeline_case_id"), "minutes_timeline", ["case_id"], unique=False)
    op.create_index("ix_minutes_timeline_session_occurred", "minutes_timeline", ["session_id", "occurred_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_minutes_timeline_session_occurred", table_name="minutes_timeline")
    op.drop_index(op.f("ix_minutes_timeline_case_id"), table_name="minutes_timeline")
    op.drop_table("minutes_timeline")
