"""roll call and venue readiness checks of a session

``roll_calls`` numbers the roll calls (điểm danh) of a session: the first before the first call, each
amendment a new row (the earlier ones stay). ``roll_call_venues`` holds, per venue, present or not, the
officials attending (name and position) and the count of citizens present. ``readiness_checks`` keeps
every technical check of a venue (round trip, bandwidth estimate, TURN, camera and microphone) with its
verdict. schedules.tables explains each column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("roll_calls",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("roll_call_no", sa.Integer(), nullable=False),
    sa.Column("recorded_by", sa.String(length=200), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("roll_call_no >= 1", name=op.f("ck_roll_calls_roll_call_no")),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"],
                            name=op.f("fk_roll_calls_session_id_reception_sessions")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_roll_calls")),
    sa.UniqueConstraint("session_id", "roll_call_no", name="uq_roll_calls_session_id_roll_call_no")
    )
    op.create_table("roll_call_venues",
    sa.Column("roll_call_id", sa.String(length=36), nullable=False),
    sa.Column("venue_id", sa.String(length=64), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("present", sa.Boolean(), nullable=False),
    sa.Column("citizens", sa.Integer(), nullable=False),
    sa.Column("officials", sa.JSON(), nullable=False),
    sa.CheckConstraint("citizens >= 0 AND citizens <= 10000", name=op.f("ck_roll_call_venues_citizens")),
    sa.ForeignKeyConstraint(["roll_call_id"], ["roll_calls.id"],
                            name=op.f("fk_roll_call_venues_roll_call_id_roll_calls")),
    sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name=op.f("fk_roll_call_venues_venue_id_venues")),
    sa.PrimaryKeyConstraint("roll_call_id", "venue_id", name=op.f("pk_roll_call_venues"))
    )
    op.create_table("readiness_checks",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("venue_id", sa.String(length=64), nullable=False),
    sa.Column("checked_by", sa.String(length=200), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rtt_ms", sa.Float(), nullable=True),
    sa.Column("rtt_source", sa.String(length=16), nullable=True),
    sa.Column("outgoing_kbps", sa.Integer(), nullable=True),
    sa.Column("turn", sa.String(length=16), nullable=False),
    sa.Column("camera", sa.Boolean(), nullable=False),
    sa.Column("microphone", sa.Boolean(), nullable=False),
    sa.Column("browser", sa.String(length=200), nullable=False),
    sa.Column("ready", sa.Boolean(), nullable=False),
    sa.Column("problems", sa.JSON(), nullable=False),
    sa.CheckConstraint("rtt_ms IS NULL OR rtt_ms >= 0", name=op.f("ck_readiness_checks_rtt_ms")),
    sa.CheckConstraint("outgoing_kbps IS NULL OR outgoing_kbps >= 0",
                       name=op.f("ck_readiness_checks_outgoing_kbps")),
    sa.CheckConstraint("turn IN ('reachable', 'unreachable', 'not_configured')",
                       name=op.f("ck_readiness_checks_turn")),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"],
                            name=op.f("fk_readiness_checks_session_id_reception_sessions")),
    sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name=op.f("fk_readiness_checks_venue_id_venues")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_checks"))
    )
    op.create_index("ix_readiness_checks_session_id_venue_id", "readiness_checks", ["session_id", "venue_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_readiness_checks_session_id_venue_id", table_name="readiness_checks")
    op.drop_table("readiness_checks")
    op.drop_table("roll_call_venues")
    op.drop_table("roll_calls")
