"""case search document: cases.search_norm, one full-text index (GIN on PostgreSQL, FTS5 on SQLite)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OLD_PG_INDEXES = ["ix_cases_summary_fts", "ix_petitions_content_fts", "ix_respondents_name_fts",
                   "ix_petitioners_name_fts"]
_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS cases_fts USING fts5(search_norm, content='cases', content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_ai AFTER INSERT ON cases BEGIN "
    "INSERT INTO cases_fts(rowid, search_norm) VALUES (new.rowid, new.search_norm); END",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_ad AFTER DELETE ON cases BEGIN "
    "INSERT INTO cases_fts(cases_fts, rowid, search_norm) VALUES ('delete', old.rowid, old.search_norm); END",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_au AFTER UPDATE OF search_norm ON cases BEGIN "
    "INSERT INTO cases_fts(cases_fts, rowid, search_norm) VALUES ('delete', old.rowid, old.search_norm); "
    "INSERT INTO cases_fts(rowid, search_norm) VALUES (new.rowid, new.search_norm); END",
]


def _backfill(bind: sa.Connection) -> None:
    """Build the search document of the cases that exist (same parts as complaints.search)."""
    for (case_id, summary) in bind.execute(sa.text("SELECT id, summary_norm FROM cases")).all():
        parts = [summary]
        parts += [r[0] for r in bind.execute(sa.text(
            "SELECT content_norm FROM petitions WHERE case_id = :c ORDER BY created_at"), {"c": case_id})]
        parts += [r[0] for r in bind.execute(sa.text(
            "SELECT name_norm FROM respondents WHERE case_id = :c ORDER BY id"), {"c": case_id})]
        parts += [r[0] for r in bind.execute(sa.text(
            "SELECT DISTINCT pe.name_norm FROM petition_parties pp JOIN petitions p ON p.id = pp.petition_id "
            "JOIN petitioners pe ON pe.id = pp.petitioner_id WHERE p.case_id = :c AND NOT pe.sealed "
            "AND pe.name_norm IS NOT NULL ORDER BY pe.name_norm"), {"c": case_id})]
        bind.execute(sa.text("UPDATE cases SET search_norm = :d WHERE id = :c"),
                     {"d": " ".join(p for p in parts if p), "c": case_id})


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_norm", sa.Text(), nullable=False, server_default=""))
    _backfill(bind)
    if bind.dialect.name == "postgresql":
        for name in _OLD_PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("CREATE INDEX IF NOT EXISTS ix_cases_search_fts ON cases "
                   "USING gin (to_tsvector('simple', coalesce(search_norm, '')))")
    elif bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        op.execute("INSERT INTO cases_fts(cases_fts) VALUES ('rebuild')")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_cases_search_fts")
    elif bind.dialect.name == "sqlite":
        for name in ("cases_fts_ai", "cases_fts_ad", "cases_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS cases_fts")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("search_norm")
