"""The tables of the minutes service (one MetaData; revisions 0014 and 0015 create them).

Each section below belongs to one part of the service: the issued documents (biên bản, thông báo kết luận,
their redacted public twins and signatures) and the drafts of the live minutes with their versions.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Date, DateTime, ForeignKey, MetaData, String, Table, Text

from complaints.tables import cases

__all__ = ["metadata", "minute_documents"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# -- issued documents (revision 0014) ------------------------------------------------------------------------

# One row per document of the minutes service (minutes.documents_store). A row is written as a draft first
# (the unsigned PDF, encrypted at rest, ``draft_*``), so nothing is lost when the token is absent; signing
# fills the signed original (encrypted at rest: it may name a denouncer), its redacted public twin (signed
# too, in clear) and the signer's certificate. Paths are relative to the documents directory. The session is
# named, not referenced: its table belongs to ``schedules``, which this package does not import.
minute_documents = Table(
    "minute_documents", metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),                 # minutes.documents.DocumentKind
    Column("state", String(16), nullable=False),                # draft | signed
    Column("session_id", String(64), nullable=False, index=True),
    Column("case_id", String(36), ForeignKey(cases.c.id), nullable=True, index=True),
    Column("track", String(8), nullable=False),                 # minutes.documents.Track
    Column("number_symbol", String(120), nullable=False),       # "Số 15-TB/BNCTU" as printed
    Column("issued_on", Date, nullable=False),
    Column("draft_sha256", String(64), nullable=False),
    Column("draft_path", Text, nullable=False),
    Column("sha256", String(64), nullable=True, unique=True),         # the signed original
    Column("signed_path", Text, nullable=True),
    Column("public_sha256", String(64), nullable=True, unique=True),  # the signed public twin
    Column("public_path", Text, nullable=True),
    Column("signer_kind", String(16), nullable=True),                 # pkcs12 | pkcs11
    Column("signer_subject", Text, nullable=True),
    Column("signer_fingerprint", String(64), nullable=True),          # SHA-256 of the DER certificate
    Column("signed_at", DateTime(timezone=True), nullable=True),
    Column("sign_error", String(64), nullable=True),                  # the last failure's code, if any
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind IN ('case_minutes', 'conclusion_notice')", name="kind"),
    CheckConstraint("state IN ('draft', 'signed')", name="state"),
    CheckConstraint("track IN ('party', 'state')", name="track"),
    CheckConstraint("state = 'draft' OR (sha256 IS NOT NULL AND public_sha256 IS NOT NULL AND signed_path IS NOT "
                    "NULL AND public_path IS NOT NULL AND signed_at IS NOT NULL AND signer_fingerprint IS NOT NULL)",
                    name="signed_complete"),
)

# -- minutes drafts and their versions (revision 0015) -------------------------------------------------------
# One draft per case and session (the live minutes the secretary writes while the case is heard, minutes.drafts)
# and every version ever saved of it. ``content`` is the form as JSON (minutes.drafts_content); it never holds a
# denouncer's identity: that is sealed in complaints' identity_vault under the petitioner ``sealed_petitioner``
# (a sealed row the draft created), which the draft names and nothing else. ``version`` counts the saves (1:
# the draft as opened, prefilled); a save names the version it was based on, so two secretaries never
# overwrite each other silently. ``client`` is the page that saved (a random id per browser tab).
import sqlalchemy as sa  # noqa: E402 - each section of this shared module imports what it uses

minutes_drafts = sa.Table(
    "minutes_drafts", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("case_id", sa.String(36), nullable=False, index=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("call_seq", sa.Integer, nullable=True),
    sa.Column("venue", sa.String(64), nullable=True),
    # the session's loại tiếp and hình thức tiếp and its host as the case was called (revision 0018): the
    # reception entry written at closing says them (minutes does not read the scheduler's tables)
    sa.Column("reception_type", sa.String(16), nullable=False, server_default="periodic"),
    sa.Column("reception_form", sa.String(16), nullable=False, server_default="online"),
    sa.Column("host", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("sealed_petitioner", sa.String(36), nullable=True),
    sa.Column("opened_by", sa.String(200), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('open', 'closed')", name="state"),
    sa.CheckConstraint("version >= 1", name="version"),
    sa.CheckConstraint("reception_type IN ('periodic', 'ad_hoc', 'routine')", name="reception_type"),
    sa.CheckConstraint("reception_form IN ('in_person', 'online')", name="reception_form"),
    sa.UniqueConstraint("session_id", "case_id", name="uq_minutes_drafts_session_case"),
)

minutes_draft_versions = sa.Table(
    "minutes_draft_versions", metadata,
    sa.Column("draft_id", sa.String(36), sa.ForeignKey("minutes_drafts.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("saved_by", sa.String(200), nullable=False),
    sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("base_version", sa.Integer, nullable=True),
    sa.CheckConstraint("version >= 1", name="version"),
)

__all__ += ["minutes_drafts", "minutes_draft_versions"]

# -- read-back, confirmation, approval and closing (revision 0016) -----------------------------------------
# The read-back of a draft (minutes.approval): the version shown to the citizen with its content hash, the
# citizen's confirmation (a signature drawn on screen, kept in ``minutes_signatures`` with its SHA-256, or the
# secretary's note "confirmed verbally" at a recording time), the chair's approval bound to the confirmed hash,
# and the ``case.closed`` the scheduler announced. ``problems`` lists, field by field, why the case could not be
# written yet. ``minutes_case_records`` is what closing wrote into the complaint database (minutes.closing):
# one row per draft, so a replayed event or a second approval never writes twice.
minutes_signatures = sa.Table(
    "minutes_signatures", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("draft_id", sa.String(36), sa.ForeignKey("minutes_drafts.id"), nullable=False, index=True),
    sa.Column("readback_sha256", sa.String(64), nullable=False),    # the content the citizen confirmed
    sa.Column("sha256", sa.String(64), nullable=False),             # of the PNG below
    sa.Column("png", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("submitted_by", sa.String(200), nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
)

minutes_approvals = sa.Table(
    "minutes_approvals", metadata,
    sa.Column("draft_id", sa.String(36), sa.ForeignKey("minutes_drafts.id"), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("case_id", sa.String(36), nullable=False, index=True),
    sa.Column("readback_version", sa.Integer, nullable=True),
    sa.Column("readback_sha256", sa.String(64), nullable=True),
    sa.Column("requested_by", sa.String(200), nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("confirmation", sa.String(16), nullable=True),       # signature | verbal
    sa.Column("confirmed_sha256", sa.String(64), nullable=True),
    sa.Column("confirmed_by", sa.String(200), nullable=True),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("signature_id", sa.String(36), sa.ForeignKey("minutes_signatures.id"), nullable=True),
    sa.Column("verbal_media_s", sa.Integer, nullable=True),        # the recording time of the verbal confirmation
    sa.Column("approved_sha256", sa.String(64), nullable=True),
    sa.Column("approved_by", sa.String(200), nullable=True),
    sa.Column("approved_name", sa.String(200), nullable=True),      # recorded as the officer of the reception
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("case_closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("case_closed_by", sa.String(200), nullable=True),
    sa.Column("problems", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("confirmation IS NULL OR confirmation IN ('signature', 'verbal')", name="confirmation"),
    sa.CheckConstraint("confirmation IS NULL OR confirmed_sha256 IS NOT NULL", name="confirmed_hash"),
    sa.CheckConstraint("confirmation <> 'signature' OR signature_id IS NOT NULL", name="signature"),
    sa.CheckConstraint("confirmation <> 'verbal' OR verbal_media_s IS NOT NULL", name="verbal"),
)

minutes_case_records = sa.Table(
    "minutes_case_records", metadata,
    sa.Column("draft_id", sa.String(36), sa.ForeignKey("minutes_drafts.id"), primary_key=True),
    sa.Column("case_id", sa.String(36), nullable=False, index=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),     # the minutes as approved
    sa.Column("draft_version", sa.Integer, nullable=False),
    sa.Column("reception_id", sa.String(36), nullable=False),
    sa.Column("decision_id", sa.String(36), nullable=False),
    sa.Column("directives", sa.JSON, nullable=False),               # the directive ids, in the minutes' order
    sa.Column("segments", sa.JSON, nullable=False),                 # the recording segments of the case's call(s)
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

__all__ += ["minutes_signatures", "minutes_approvals", "minutes_case_records"]


# -- the case timeline (revision 0017) ---------------------------------------------------------------------
# One row per event of a case's timeline (minutes.timeline): the queue's calls, the room's floor, venue links and
# closed segments, the recorder's segments. ``case_id``/``call_seq`` of a room event and every row's ``segment``,
# ``segment_t0`` and ``media_at`` (seconds on the recording's session clock) are its placement, settled again
# whenever an event of the session arrives. A closed segment's row keeps no venue. The key is the event id.
minutes_timeline = sa.Table(
    "minutes_timeline", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),                # the event's type
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("case_id", sa.String(36), nullable=True, index=True),
    sa.Column("call_seq", sa.Integer, nullable=True),
    sa.Column("venue", sa.String(64), nullable=True),
    sa.Column("segment", sa.String(80), nullable=True),
    sa.Column("segment_t0", sa.Float, nullable=True),
    sa.Column("segment_opened_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("media_at", sa.Float, nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_minutes_timeline_session_occurred", "session_id", "occurred_at"),
)

__all__ += ["minutes_timeline"]
