"""cases by creation: an index on cases (created_at, id) for search results, newest first

A broad word matches hundreds of thousands of cases at a million; its first page (newest first) is read
from this index instead of sorting every match (complaints.search chooses by the capped count).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_created_at_id", ["created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_created_at_id")
