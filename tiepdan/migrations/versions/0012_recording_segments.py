"""recording segments: ``recording_segments``, one row per case segment of a reception session's recording

Written by the case store's consumer of ``room.segment_opened`` / ``room.segment_closed``
(complaints.recordings): the segment id (``c<call_seq>-<case>``), the session, the case when it is on file,
the call, whether the media is encrypted (a closed segment), the signed manifest's path (relative to the
recordings root) and SHA-256, the media start on the session clock and the duration, the files with their
hashes, the speaker timeline and the link-loss gaps (JSON text), when it opened and closed, and when the
row was written (database time).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_segments",
        sa.Column("segment", sa.String(length=80), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("call_seq", sa.Integer(), nullable=True),
        sa.Column("confidential", sa.Boolean(), nullable=False),
        sa.Column("manifest_path", sa.Text(), nullable=True),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column("media_t0", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("files_json", sa.Text(), nullable=False),
        sa.Column("speakers_json", sa.Text(), nullable=False),
        sa.Column("gaps_json", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_recording_segments_case_id_cases")),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_recording_segments")),
    )
    with op.batch_alter_table("recording_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recording_segments_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recording_segments_session"), ["session"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recording_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_segments_session"))
        batch_op.drop_index(batch_op.f("ix_recording_segments_case_id"))
    op.drop_table("recording_segments")
