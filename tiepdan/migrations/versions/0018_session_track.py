"""session track and the reception a draft records: what closing and the documents used to guess

``reception_sessions.track`` (party | state): the system whose bodies issue the session's documents, chosen
when the session is planned (schedules.SessionTrack; default from the host, schedules.default_track). Sessions
planned before this revision are the Party track (the product's first use: the Provincial Party Secretary's
sessions).

``minutes_drafts.reception_type`` / ``reception_form`` / ``host``: the session's loại tiếp, hình thức tiếp and
host as the case was called, kept on the draft so that the reception entry written at closing says what the
session was (minutes does not read the scheduler's tables). Drafts opened before this revision were all of
online periodic sessions.

The checks are added on PostgreSQL; SQLite cannot add a constraint to a table without rebuilding it (and the
tables that refer to it), so there the services' enumerations are the guard (as in 0008).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_DRAFT_COLUMNS = ("host", "reception_form", "reception_type")


def upgrade() -> None:
    op.add_column("reception_sessions", sa.Column("track", sa.String(length=8), nullable=False,
                                                  server_default=sa.text("'party'")))
    op.add_column("minutes_drafts", sa.Column("reception_type", sa.String(length=16), nullable=False,
                                              server_default="periodic"))
    op.add_column("minutes_drafts", sa.Column("reception_form", sa.String(length=16), nullable=False,
                                              server_default="online"))
    op.add_column("minutes_drafts", sa.Column("host", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_check_constraint(op.f("ck_reception_sessions_track"), "reception_sessions",
                                   "track IN ('party', 'state')")
        op.create_check_constraint(op.f("ck_minutes_drafts_reception_type"), "minutes_drafts",
                                   "reception_type IN ('periodic', 'ad_hoc', 'routine')")
        op.create_check_constraint(op.f("ck_minutes_drafts_reception_form"), "minutes_drafts",
                                   "reception_form IN ('in_person', 'online')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_minutes_drafts_reception_form"), "minutes_drafts", type_="check")
        op.drop_constraint(op.f("ck_minutes_drafts_reception_type"), "minutes_drafts", type_="check")
        op.drop_constraint(op.f("ck_reception_sessions_track"), "reception_sessions", type_="check")
        for column in _DRAFT_COLUMNS:
            op.drop_column("minutes_drafts", column)
        op.drop_column("reception_sessions", "track")
        return
    # SQLite (3.35 and later) drops a column in place (see 0008)
    for column in _DRAFT_COLUMNS:
        op.execute(f"ALTER TABLE minutes_drafts DROP COLUMN {column}")
    op.execute("ALTER TABLE reception_sessions DROP COLUMN track")
