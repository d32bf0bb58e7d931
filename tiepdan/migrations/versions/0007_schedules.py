"""schedules: venues, reception sessions (hosts, venues), the queue of each session and its tickets

schedules.tables explains each table. Ticket numbers are gapless per session through the counter
``session_queues.last_ticket_no`` (incremented in the transaction that inserts the ticket) and the
unique constraint on (session_id, ticket_no). A ticket's venue must be one of its session's
(foreign key on session_venues) and its case a case of the complaint database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("venues",
    sa.Column("id", sa.String(length=64), nullable=False),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("level", sa.String(length=16), nullable=False),
    sa.Column("admin_code", sa.String(length=8), nullable=True),
    sa.Column("old_admin_codes", sa.JSON(), nullable=False),
    sa.Column("max_kbps", sa.Integer(), nullable=True),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("level IN ('main', 'commune', 'ward', 'district')", name=op.f("ck_venues_level")),
    sa.CheckConstraint("max_kbps IS NULL OR (max_kbps >= 100 AND max_kbps <= 20000)", name=op.f("ck_venues_max_kbps")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_venues"))
    )
    op.create_table("reception_sessions",
    sa.Column("id", sa.String(length=64), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("form", sa.String(length=16), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("host", sa.String(length=64), nullable=True),
    sa.Column("title", sa.String(length=200), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("reason", sa.String(length=32), nullable=True),
    sa.Column("reason_note", sa.Text(), nullable=False),
    sa.Column("publish_override", sa.Text(), nullable=False),
    sa.Column("rule_key", sa.String(length=64), nullable=True),
    sa.Column("nominal_day", sa.Date(), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("form IN ('in_person', 'online')", name=op.f("ck_reception_sessions_form")),
    sa.CheckConstraint("kind IN ('periodic', 'ad_hoc')", name=op.f("ck_reception_sessions_kind")),
    sa.CheckConstraint("state IN ('planned', 'published', 'open', 'in_progress', 'closed', 'postponed', 'cancelled')", name=op.f("ck_reception_sessions_state")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_reception_sessions")),
    sa.UniqueConstraint("rule_key", "nominal_day", name="uq_reception_sessions_rule_key_nominal_day")
    )
    op.create_index(op.f("ix_reception_sessions_day"), "reception_sessions", ["day"], unique=False)
    op.create_index(op.f("ix_reception_sessions_host"), "reception_sessions", ["host"], unique=False)
    op.create_table("session_cohosts",
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("leader", sa.String(length=64), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"], name=op.f("fk_session_cohosts_session_id_reception_sessions")),
    sa.PrimaryKeyConstraint("session_id", "leader", name=op.f("pk_session_cohosts"))
    )
    op.create_index("ix_session_cohosts_leader", "session_cohosts", ["leader"], unique=False)
    op.create_table("session_venues",
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("venue_id", sa.String(length=64), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("main", sa.Boolean(), nullable=False),
    sa.Column("max_kbps", sa.Integer(), nullable=True),
    sa.CheckConstraint("max_kbps IS NULL OR (max_kbps >= 100 AND max_kbps <= 20000)", name=op.f("ck_session_venues_max_kbps")),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"], name=op.f("fk_session_venues_session_id_reception_sessions")),
    sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name=op.f("fk_session_venues_venue_id_venues")),
    sa.PrimaryKeyConstraint("session_id", "venue_id", name=op.f("pk_session_venues")),
    sa.UniqueConstraint("session_id", "position", name="uq_session_venues_session_id_position")
    )
    op.create_index("ix_session_venues_venue_id", "session_venues", ["venue_id"], unique=False)
    op.create_index("uq_session_venues_main", "session_venues", ["session_id"], unique=True,
                    sqlite_where=sa.text("main = 1"), postgresql_where=sa.text("main"))
    op.create_table("session_queues",
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("last_ticket_no", sa.Integer(), nullable=False),
    sa.Column("call_seq", sa.Integer(), nullable=False),
    sa.Column("current_ticket_no", sa.Integer(), nullable=True),
    sa.Column("paused", sa.Boolean(), nullable=False),
    sa.Column("pause_no", sa.Integer(), nullable=False),
    sa.Column("requeue_seq", sa.Integer(), nullable=False),
    sa.Column("unavailable_venues", sa.JSON(), nullable=False),
    sa.Column("closed", sa.Boolean(), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"], name=op.f("fk_session_queues_session_id_reception_sessions")),
    sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_queues"))
    )
    op.create_table("queue_tickets",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("ticket_no", sa.Integer(), nullable=False),
    sa.Column("venue_id", sa.String(length=64), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=False),
    sa.Column("priorities", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("no_shows", sa.Integer(), nullable=False),
    sa.Column("requeue_seq", sa.Integer(), nullable=False),
    sa.Column("last_call_seq", sa.Integer(), nullable=False),
    sa.Column("issued_by", sa.String(length=200), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("called_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('waiting', 'called', 'deferred', 'closed', 'absent')", name=op.f("ck_queue_tickets_status")),
    sa.CheckConstraint("ticket_no >= 1", name=op.f("ck_queue_tickets_ticket_no")),
    sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_queue_tickets_case_id_cases")),
    sa.ForeignKeyConstraint(["session_id", "venue_id"], ["session_venues.session_id", "session_venues.venue_id"], name="fk_queue_tickets_session_venue"),
    sa.ForeignKeyConstraint(["session_id"], ["reception_sessions.id"], name=op.f("fk_queue_tickets_session_id_reception_sessions")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_tickets")),
    sa.UniqueConstraint("session_id", "case_id", name="uq_queue_tickets_session_id_case_id"),
    sa.UniqueConstraint("session_id", "ticket_no", name="uq_queue_tickets_session_id_ticket_no")
    )
    op.create_index(op.f("ix_queue_tickets_case_id"), "queue_tickets", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_queue_tickets_case_id"), table_name="queue_tickets")
    op.drop_table("queue_tickets")
    op.drop_table("session_queues")
    op.drop_index("uq_session_venues_main", table_name="session_venues")
    op.drop_index("ix_session_venues_venue_id", table_name="session_venues")
    op.drop_table("session_venues")
    op.drop_index("ix_session_cohosts_leader", table_name="session_cohosts")
    op.drop_table("session_cohosts")
    op.drop_index(op.f("ix_reception_sessions_host"), table_name="reception_sessions")
    op.drop_index(op.f("ix_reception_sessions_day"), table_name="reception_sessions")
    op.drop_table("reception_sessions")
    op.drop_table("venues")
