"""confidential search documents: no petitioner's name in the search document of a confidential case

complaints.confidentiality makes one rule of confidentiality: a case is confidential when it is marked
so, is a denunciation, or holds a denunciation petition; its search document then carries no
petitioner's name (complaints.search.refresh_search_document). Cases written before the rule (a known
citizen's denunciation, a denunciation attached to a complaint case, a case re-classified as a
denunciation) may still hold their parties' names in ``cases.search_norm``: this rebuilds the document
of every case that is confidential by the rule, with the same parts as the code, without the names.
Sealing those parties needs the keyring, which a migration does not have: the next write to such a
case seals them (see the module doc of complaints.confidentiality). No schema change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_CONFIDENTIAL = (
    "SELECT c.id, c.summary_norm FROM cases c WHERE c.confidential OR c.kind = 'denunciation' OR EXISTS "
    "(SELECT 1 FROM petitions p WHERE p.case_id = c.id AND p.kind = 'denunciation') ORDER BY c.id"
)


def upgrade() -> None:
    bind = op.get_bind()
    for case_id, summary in bind.execute(sa.text(_CONFIDENTIAL)).all():
        parts = [summary]
        parts += [r[0] for r in bind.execute(sa.text(
            "SELECT content_norm FROM petitions WHERE case_id = :c ORDER BY created_at"), {"c": case_id})]
        parts += [r[0] for r in bind.execute(sa.text(
            "SELECT name_norm FROM respondents WHERE case_id = :c ORDER BY id"), {"c": case_id})]
        bind.execute(sa.text("UPDATE cases SET search_norm = :d WHERE id = :c AND search_norm <> :d"),
                     {"d": " ".join(p for p in parts if p), "c": case_id})


def downgrade() -> None:
    """Nothing to undo: the documents are what the code writes."""
