"""minutes approvals: read-back, the citizen's confirmation, the chair's approval and what closing wrote

``minutes_signatures`` keeps each signature drawn on screen (the PNG, its SHA-256, the read-back hash it
confirms). ``minutes_approvals`` holds one row per draft: the read-back version and hash, the confirmation
(signature or verbal, with the recording time), the approval bound to the confirmed hash, the ``case.closed``
seen, and the problems that kept the case from being written. ``minutes_case_records`` is one row per draft
written into the complaint database (reception, decision, directives, segments, the minutes' hash).
minutes.approval and minutes.closing explain the rules.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("minutes_signatures",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("draft_id", sa.String(length=36), nullable=False),
    sa.Column("readback_sha256", sa.String(length=64), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("png", sa.LargeBinary(), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("width", sa.Integer(), nullable=False),
    sa.Column("height", sa.Integer(), nullable=False),
    sa.Column("submitted_by", sa.String(length=200), nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["draft_id"], ["minutes_drafts.id"],
                            name=op.f("fk_minutes_signatures_draft_id_minutes_drafts")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_minutes_signatures"))
    )
    op.create_index(op.f("ix_minutes_signatures_draft_id"), "minutes_signatures", ["draft_id"], unique=False)
    op.create_table("minutes_approvals",
    sa.Column("draft_id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=False),
    sa.Column("readback_version", sa.Integer(), nullable=True),
    sa.Column("readback_sha256", sa.String(length=64), nullable=True),
    sa.Column("requested_by", sa.String(length=200), nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("confirmation", sa.String(length=16), nullable=True),
    sa.Column("confirmed_sha256", sa.String(length=64), nullable=True),
    sa.Column("confirmed_by", sa.String(length=200), nullable=True),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("signature_id", sa.String(length=36), nullable=True),
    sa.Column("verbal_media_s", sa.Integer(), nullable=True),
    sa.Column("approved_sha256", sa.String(length=64), nullable=True),
    sa.Column("approved_by", sa.String(length=200), nullable=True),
    sa.Column("approved_name", sa.String(length=200), nullable=True),
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("case_closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("case_closed_by", sa.String(length=200), nullable=True),
    sa.Column("problems", sa.JSON(), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("confirmation IS NULL OR confirmation IN ('signature', 'verbal')",
                       name=op.f("ck_minutes_approvals_confirmation")),
    sa.CheckConstraint("confirmation IS NULL OR confirmed_sha256 IS NOT NULL",
                       name=op.f("ck_minutes_approvals_confirmed_hash")),
    sa.CheckConstraint("confirmation <> 'signature' OR signature_id IS NOT NULL",
                       name=op.f("ck_minutes_approvals_signature")),
    sa.CheckConstraint("confirmation <> 'verbal' OR verbal_media_s IS NOT NULL",
                       name=op.f("ck_minutes_approvals_verbal")),
    sa.ForeignKeyConstraint(["draft_id"], ["minutes_drafts.id"],
                            name=op.f("fk_minutes_approvals_draft_id_minutes_drafts")),
    sa.ForeignKeyConstraint(["signature_id"], ["minutes_signatures.id"],
                            name=op.f("fk_minutes_approvals_signature_id_minutes_signatures")),
    sa.PrimaryKeyConstraint("draft_id", name=op.f("pk_minutes_approvals"))
    )
    op.create_index(op.f("ix_minutes_approvals_case_id"), "minutes_approvals", ["case_id"], unique=False)
    op.create_table("minutes_case_records",
    sa.Column("draft_id", sa.String(length=36), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("content_sha256", sa.String(length=64), nullable=False),
    sa.Column("draft_version", sa.Integer(), nullable=False),
    sa.Column("reception_id", sa.String(length=36), nullable=False),
    sa.Column("decision_id", sa.String(length=36), nullable=False),
    sa.Column("directives", sa.JSON(), nullable=False),
    sa.Column("segments", sa.JSON(), nullable=False),
    sa.Column("recorded_by", sa.String(length=200), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["draft_id"], ["minutes_drafts.id"],
                            name=op.f("fk_minutes_case_records_draft_id_minutes_drafts")),
    sa.PrimaryKeyConstraint("draft_id", name=op.f("pk_minutes_case_records"))
    )
    op.create_index(op.f("ix_minutes_case_records_case_id"), "minutes_case_records", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_minutes_case_records_case_id"), table_name="minutes_case_records")
    op.drop_table("minutes_case_records")
    op.drop_index(op.f("ix_minutes_approvals_case_id"), table_name="minutes_approvals")
    op.drop_table("minutes_approvals")
    op.drop_index(op.f("ix_minutes_signatures_draft_id"), table_name="minutes_signatures")
    op.drop_table("minutes_signatures")
