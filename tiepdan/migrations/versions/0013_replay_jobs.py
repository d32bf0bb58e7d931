"""replay jobs: composing a case segment's recording into one MP4 (the ``worker`` role)

``replay_jobs`` holds one job per recording segment (``segment`` unique, a foreign key to
``recording_segments``, revision 0012): its state (queued, running, done, failed), progress 0…1, the file
it wrote (relative to the session's recordings directory), the failure reason, who asked and when, when
it started and ended, which worker runs it and its last heartbeat, and how many attempts it took.
complaints.replays explains each column and the state machine.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("replay_jobs",
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("segment", sa.String(length=80), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("progress", sa.Float(), nullable=False),
    sa.Column("output_path", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("requested_by", sa.String(length=200), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("worker", sa.String(length=200), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_replay_jobs_state")),
    sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_replay_jobs_progress")),
    sa.ForeignKeyConstraint(["segment"], ["recording_segments.segment"],
                            name=op.f("fk_replay_jobs_segment_recording_segments")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_replay_jobs")),
    sa.UniqueConstraint("segment", name=op.f("uq_replay_jobs_segment"))
    )


def downgrade() -> None:
    op.drop_table("replay_jobs")
