"""minute_documents: the signed documents of the minutes service

``minute_documents`` holds one row per biên bản or thông báo kết luận: its kind, state (draft, signed),
session and case, track, số/ký hiệu and date; the unsigned draft's hash and file; once signed, the signed
original's and the redacted public twin's hashes and files, the signer's certificate (subject, SHA-256
fingerprint), the signing time, and the last signing failure's code. minutes.tables explains each column;
minutes.documents_store writes it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("minute_documents",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("kind", sa.String(length=32), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("session_id", sa.String(length=64), nullable=False),
    sa.Column("case_id", sa.String(length=36), nullable=True),
    sa.Column("track", sa.String(length=8), nullable=False),
    sa.Column("number_symbol", sa.String(length=120), nullable=False),
    sa.Column("issued_on", sa.Date(), nullable=False),
    sa.Column("draft_sha256", sa.String(length=64), nullable=False),
    sa.Column("draft_path", sa.Text(), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=True),
    sa.Column("signed_path", sa.Text(), nullable=True),
    sa.Column("public_sha256", sa.String(length=64), nullable=True),
    sa.Column("public_path", sa.Text(), nullable=True),
    sa.Column("signer_kind", sa.String(length=16), nullable=True),
    sa.Column("signer_subject", sa.Text(), nullable=True),
    sa.Column("signer_fingerprint", sa.String(length=64), nullable=True),
    sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("sign_error", sa.String(length=64), nullable=True),
    sa.Column("created_by", sa.String(length=200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('case_minutes', 'conclusion_notice')", name=op.f("ck_minute_documents_kind")),
    sa.CheckConstraint("state IN ('draft', 'signed')", name=op.f("ck_minute_documents_state")),
    sa.CheckConstraint("track IN ('party', 'state')", name=op.f("ck_minute_documents_track")),
    sa.CheckConstraint("state = 'draft' OR (sha256 IS NOT NULL AND public_sha256 IS NOT NULL AND signed_path IS NOT NULL AND public_path IS NOT NULL AND signed_at IS NOT NULL AND signer_fingerprint IS NOT NULL)", name=op.f("ck_minute_documents_signed_complete")),
    sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_minute_documents_case_id_cases")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_minute_documents")),
    sa.UniqueConstraint("public_sha256", name=op.f("uq_minute_documents_public_sha256")),
    sa.UniqueConstraint("sha256", name=op.f("uq_minute_documents_sha256"))
    )
    op.create_index(op.f("ix_minute_documents_case_id"), "minute_documents", ["case_id"], unique=False)
    op.create_index(op.f("ix_minute_documents_session_id"), "minute_documents", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_minute_documents_session_id"), table_name="minute_documents")
    op.drop_index(op.f("ix_minute_documents_case_id"), table_name="minute_documents")
    op.drop_table("minute_documents")
