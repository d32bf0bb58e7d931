"""complaints API: petitions.content_norm, attachments, full-text search indexes (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_SEARCH_INDEXES = {
    "ix_cases_summary_fts": ("cases", "summary_norm"),
    "ix_petitions_content_fts": ("petitions", "content_norm"),
    "ix_respondents_name_fts": ("respondents", "name_norm"),
    "ix_petitioners_name_fts": ("petitioners", "name_norm"),
}


def upgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_norm', sa.Text(), nullable=False, server_default=''))
    op.create_table('attachments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('petition_id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_attachments_size')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_attachments_case_id_cases')),
    sa.ForeignKeyConstraint(['petition_id'], ['petitions.id'], name=op.f('fk_attachments_petition_id_petitions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_attachments_stored_name'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachments_petition_id'), ['petition_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, column) in _SEARCH_INDEXES.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                       f"USING gin (to_tsvector('simple', coalesce({column}, '')))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _SEARCH_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_petition_id'))
        batch_op.drop_index(batch_op.f('ix_attachments_case_id'))
    op.drop_table('attachments')
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.drop_column('content_norm')
