"""minutes drafts: the live minutes of each case and every version saved of them

``minutes_drafts`` holds one draft per case and session (``session_id``, ``case_id`` unique): the session and call that opened it, the
called venue, its state (open, closed), its current version and content (JSON), the sealed petitioner that
holds a denouncer's identity typed into the draft (never the identity itself), who opened it and who saved
it last. ``minutes_draft_versions`` keeps every saved version (draft, version, content, who, when, the page
that saved it and the version it was based on). minutes.drafts explains the rules.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("minutes_drafts",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("call_seq", sa.Integer(), nullable=True),
    sa.Column("venue", sa.String(length=64), nullable=True),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("content", sa.JSON(), nullable=False),
    sa.Column("sealed_petitioner", sa.String(length=36), nullable=True),
    sa.Column("opened_by", sa.String(length=200), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(length=200), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_minutes_drafts_state")),
    sa.CheckConstraint("version >= 1", name=op.f("ck_minutes_drafts_version")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_minutes_drafts")),
    sa.UniqueConstraint("session_id", "case_id", name=op.f("uq_minutes_drafts_session_case"))
    )
    op.create_index(op.f("ix_minutes_drafts_case_id"), "minutes_drafts", ["case_id"], unique=False)
    op.create_table("minutes_draft_versions",
    sa.Column("draft_id", sa.String(length=36), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("content", sa.JSON(), nullable=False),
    sa.Column("saved_by", sa.String(length=200), nullable=False),
    sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("client", sa.String(length=64), nullable=True),
    sa.Column("base_version", sa.Integer(), nullable=True),
    sa.CheckConstraint("version >= 1", name=op.f("ck_minutes_draft_versions_version")),
    sa.ForeignKeyConstraint(["draft_id"], ["minutes_drafts.id"],
                            name=op.f("fk_minutes_draft_versions_draft_id_minutes_drafts")),
    sa.PrimaryKeyConstraint("draft_id", "version", name=op.f("pk_minutes_draft_versions"))
    )


def downgrade() -> None:
    op.drop_table("minutes_draft_versions")
    op.drop_index(op.f("ix_minutes_drafts_case_id"), table_name="minutes_drafts")
    op.drop_table("minutes_drafts")
