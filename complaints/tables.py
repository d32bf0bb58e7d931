"""The schema of the complaint database (SQLAlchemy Core, one ``metadata``).

Entities follow domain.md §2: petitioners (persons and organisations), delegations (đoàn đông người),
respondents, petitions (đơn), cases (vụ việc) grouping petitions and reception entries (lượt tiếp),
handling decisions, directives and their reports, units, recording-segment references, and the
append-only, hash-chained audit log.

Confidentiality: a denouncer's name, ID number, address and phone never sit in ``petitioners``; they
live sealed (AES-GCM under the keyring's data key) in ``identity_vault`` and the petitioner row keeps a
pseudonymous ``handle``. ``id_blind_index`` is an HMAC of the normalised ID number under the data key,
so an exact-ID duplicate check still works without decrypting. Every party of a confidential case is
such a sealed row, used by that case alone (complaints.confidentiality); a sealed copy of a record on
file names that record only inside its sealed identity.

Enumerations are stored as their English values (``complaints.enums``), checked at the edge.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

__all__ = [
    "metadata", "units", "petitioners", "identity_vault", "delegations", "delegation_members", "cases",
    "petitions", "petition_parties", "respondents", "reception_entries", "handling_decisions", "directives",
    "directive_reports", "segment_refs", "audit_events",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 36  # uuid4 text

units = Table(
    "units", metadata,
    Column("id", String(64), primary_key=True),               # slug, e.g. "so-tnmt"
    Column("name", String(300), nullable=False),
    Column("track", String(16), nullable=False),              # party | state
    Column("parent_id", String(64), ForeignKey("units.id"), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    CheckConstraint("track IN ('party', 'state')", name="track"),
)

petitioners = Table(
    "petitioners", metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(32), nullable=False),               # PetitionerType
    Column("handle", String(32), nullable=False, unique=True),  # pseudonym shown when sealed
    Column("sealed", Boolean, nullable=False, default=False),  # identity lives in identity_vault
    Column("full_name", String(200), nullable=True),
    Column("name_norm", String(200), nullable=True, index=True),  # diacritic-free, for search and blocking
    Column("sex", String(16), nullable=True),
    Column("birth_date", Date, nullable=True),
    Column("id_kind", String(32), nullable=True),
    Column("id_number", String(32), nullable=True),
    Column("id_blind_index", String(64), nullable=True, index=True),
    Column("phone", String(32), nullable=True),
    Column("address_detail", String(500), nullable=True),
    Column("address_norm", String(500), nullable=True),
    Column("province_code", String(8), nullable=True),        # post-2025 administrative codes
    Column("commune_code", String(8), nullable=True),
    Column("old_province_code", String(8), nullable=True),    # pre-2025 codes, kept for history
    Column("old_district_code", String(8), nullable=True),
    Column("old_commune_code", String(8), nullable=True),
    Column("organisation_name", String(300), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("NOT sealed OR (full_name IS NULL AND id_number IS NULL AND phone IS NULL "
                    "AND address_detail IS NULL AND name_norm IS NULL AND address_norm IS NULL)",
                    name="sealed_has_no_identity"),
)

identity_vault = Table(
    "identity_vault", metadata,
    Column("petitioner_id", String(ID), ForeignKey("petitioners.id", ondelete="RESTRICT"), primary_key=True),
    Column("kid", String(64), nullable=False),
    Column("sealed", Text, nullable=False),                   # kid.nonce.ciphertext of the identity JSON
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

cases = Table(
    "cases", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tracking_code", String(32), nullable=False, unique=True),
    Column("national_id", String(64), nullable=True, unique=True),
    Column("kind", String(32), nullable=False),               # PetitionKind
    Column("status", String(32), nullable=False),             # CaseStatus
    Column("subject_area", String(64), nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("summary_norm", Text, nullable=False, default=""),  # for diacritic-insensitive search
    # The case's search document (complaints.search): folded summary, petition contents, respondents'
    # and open petitioners' names (none in a confidential case: complaints.confidentiality); kept
    # current by the store functions, indexed for full text.
    Column("search_norm", Text, nullable=False, default="", server_default=""),
    Column("novelty", String(16), nullable=True),
    Column("complex", Boolean, nullable=False, default=False),
    Column("crowd", Boolean, nullable=False, default=False),
    Column("confidential", Boolean, nullable=False, default=False),
    Column("venue", String(64), nullable=True),
    Column("version", Integer, nullable=False, default=1),    # optimistic locking
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

delegations = Table(
    "delegations", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("headcount", Integer, nullable=False),
    Column("appointment_document", String(300), nullable=True),
    CheckConstraint("headcount >= 1", name="headcount"),
)

delegation_members = Table(
    "delegation_members", metadata,
    Column("delegation_id", String(ID), ForeignKey("delegations.id"), primary_key=True),
    Column("petitioner_id", String(ID), ForeignKey("petitioners.id"), primary_key=True),
    Column("representative", Boolean, nullable=False, default=False),
)

petitions = Table(
    "petitions", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("source", String(32), nullable=False),             # PetitionSource
    Column("kind", String(32), nullable=False),               # PetitionKind
    Column("written_on", Date, nullable=True),
    Column("received_on", Date, nullable=False),
    Column("content", Text, nullable=False),
    Column("content_norm", Text, nullable=False, default=""),  # folded, for diacritic-insensitive search
    Column("request", Text, nullable=False, default=""),
    Column("admissibility", String(32), nullable=True),
    Column("competence", String(32), nullable=True),
    Column("competent_system", String(32), nullable=True),
    Column("prior_handling", String(32), nullable=True),
    Column("prior_bodies", JSON, nullable=False, default=list),
    Column("signatories", String(32), nullable=True),
    Column("anonymous", Boolean, nullable=False, default=False),
    Column("forwarded_by", String(300), nullable=True),       # body, document number and date
    Column("created_at", DateTime(timezone=True), nullable=False),
)

petition_parties = Table(
    "petition_parties", metadata,
    Column("petition_id", String(ID), ForeignKey("petitions.id"), primary_key=True),
    Column("petitioner_id", String(ID), ForeignKey("petitioners.id"), primary_key=True),
    Column("role", String(32), nullable=False),               # PetitionerRole
)

respondents = Table(
    "respondents", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),               # person | organisation
    Column("name", String(300), nullable=False),
    Column("name_norm", String(300), nullable=False),
    Column("position", String(200), nullable=True),
    Column("workplace", String(300), nullable=True),
    CheckConstraint("kind IN ('person', 'organisation')", name="kind"),
)

reception_entries = Table(
    "reception_entries", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("petitioner_id", String(ID), ForeignKey("petitioners.id"), nullable=True),
    Column("delegation_id", String(ID), ForeignKey("delegations.id"), nullable=True),
    Column("received_on", Date, nullable=False),
    Column("session_id", String(64), nullable=True, index=True),
    Column("reception_type", String(32), nullable=False),     # ReceptionType
    Column("form", String(16), nullable=False),               # ReceptionForm: in_person | online
    Column("host", String(200), nullable=True),               # copied from the session events
    Column("venue", String(64), nullable=True),
    Column("officer", String(200), nullable=True),
    Column("nth", Integer, nullable=False),                   # lần tiếp thứ n
    Column("with_petition", Boolean, nullable=False),
    Column("outcome", String(32), nullable=True),             # ReceptionOutcome
    Column("notes", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("nth >= 1", name="nth"),
)

handling_decisions = Table(
    "handling_decisions", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("petition_id", String(ID), ForeignKey("petitions.id"), nullable=True),
    Column("direction", String(32), nullable=False),          # HandlingDirection
    Column("decided_on", Date, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("forwarded_to", String(300), nullable=True),
    Column("notes", Text, nullable=False, default=""),
)

directives = Table(
    "directives", metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("unit_id", String(64), ForeignKey("units.id"), nullable=False, index=True),
    Column("content", Text, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("deadline", Date, nullable=False, index=True),
    Column("status", String(16), nullable=False),             # open | reported | done | overdue
    Column("issued_by", String(200), nullable=False),
    Column("version", Integer, nullable=False, default=1),
)

directive_reports = Table(
    "directive_reports", metadata,
    Column("id", String(ID), primary_key=True),
    Column("directive_id", String(ID), ForeignKey("directives.id"), nullable=False, index=True),
    Column("reported_on", Date, nullable=False),
    Column("content", Text, nullable=False),
    Column("reported_by", String(200), nullable=False),
    Column("completed", Boolean, nullable=False, default=False),
)

segment_refs = Table(
    "segment_refs", metadata,
    Column("segment_id", String(64), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("session_id", String(64), nullable=False),
    Column("files", JSON, nullable=False, default=list),
    Column("sha256", String(64), nullable=False),
    Column("confidential", Boolean, nullable=False, default=False),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),                 # ISO-8601 UTC, hashed as written
    Column("actor", String(200), nullable=False),             # user id or service name
    Column("action", String(64), nullable=False),             # e.g. identity.view, replay.segment
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),     # never personal data
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

Index("ix_cases_status_kind", cases.c.status, cases.c.kind)
# search results are newest first: a broad word's first page is read from this index (complaints.search)
Index("ix_cases_created_at_id", cases.c.created_at, cases.c.id)
# A petitioner's cases (the duplicate check shows each candidate's latest case).
Index("ix_petition_parties_petitioner_id", petition_parties.c.petitioner_id)
UniqueConstraint(reception_entries.c.case_id, reception_entries.c.nth, name="uq_reception_entries_case_nth")

# The head of the audit chain: one row, locked by every append (a row lock on PostgreSQL, the write
# lock on SQLite), so concurrent appends never fork the chain.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("last_hash", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)
__all__ += ["audit_head"]

# Blocking keys of open (not sealed) petitioners for the duplicate prefilter (complaints.duplicates).
# Sealed petitioners have none: they are found only through ``petitioners.id_blind_index``.
# The index on (key, petitioner_id) covers the prefilter: it counts shared keys per petitioner from the
# index alone (index-only scan on PostgreSQL, covering index on SQLite).
petitioner_keys = Table(
    "petitioner_keys", metadata,
    Column("petitioner_id", String(ID), ForeignKey("petitioners.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Index("ix_petitioner_keys_key_petitioner_id", "key", "petitioner_id"),
)
__all__ += ["petitioner_keys"]

# Files handed in with a petition (tài liệu kèm theo). The file lives under ``data_dir/attachments``
# named by ``stored_name`` (a random id, never the client's file name); ``display_name`` is the
# client's name cleaned for display only.
attachments = Table(
    "attachments", metadata,
    Column("id", String(ID), primary_key=True),
    Column("petition_id", String(ID), ForeignKey("petitions.id"), nullable=False, index=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    Column("stored_name", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploaded_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("size >= 0", name="size"),
)
__all__ += ["attachments"]

# The recording segments of the reception sessions (complaints.recordings): one row per case segment, written
# by the bus consumer of room.segment_opened (closed_at NULL) and room.segment_closed (the signed manifest's
# path relative to the recordings root and its SHA-256, the files with their hashes, speakers and gaps as
# JSON text). ``case_id`` is set when the case is in the database. ``recorded_at``: the database's time.
recording_segments = Table(
    "recording_segments", metadata,
    Column("segment", String(80), primary_key=True),
    Column("session", String(64), nullable=False, index=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=True, index=True),
    Column("call_seq", Integer, nullable=True),
    Column("confidential", Boolean, nullable=False, default=False),
    Column("manifest_path", Text, nullable=True),
    Column("manifest_sha256", String(64), nullable=True),
    Column("media_t0", Float, nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("files_json", Text, nullable=False, default="[]"),
    Column("speakers_json", Text, nullable=False, default="[]"),
    Column("gaps_json", Text, nullable=False, default="[]"),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
__all__ += ["recording_segments"]

# Replay jobs (complaints.replays): composing one segment's recording into one MP4 in the worker role.
replay_jobs = Table(
    "replay_jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # one job per segment: requests while it is queued, running or done find it; a retry re-queues it
    Column("segment", String(80), ForeignKey("recording_segments.segment"), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("output_path", Text, nullable=True),                # relative to the session's directory
    Column("error", Text, nullable=True),                      # a reason code and short detail, never personal data
    Column("requested_by", String(200), nullable=False),       # Actor.label
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("worker", String(200), nullable=True),              # who runs it (host:pid)
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
    CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
)
__all__ += ["replay_jobs"]

# Full-text search (complaints.search) on PostgreSQL: a GIN index over the case's search document, with
# the very expression the search query uses. SQLite uses the FTS5 table below.
SEARCH_INDEXES: dict[str, tuple[str, str]] = {
    "ix_cases_search_fts": ("cases", "search_norm"),
}
__all__ += ["SEARCH_INDEXES", "search_index_statements"]


def search_index_statements() -> list[str]:
    """The PostgreSQL DDL of the search indexes (migrations run the same statements)."""
    return [
        f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (to_tsvector('simple', coalesce({column}, '')))"
        for name, (table, column) in SEARCH_INDEXES.items()
    ]


def _install_search_indexes() -> None:
    import sqlalchemy.dialects.postgresql  # noqa: F401 - registers to_tsvector's PostgreSQL types
    from sqlalchemy import func, literal_column

    tables = {t.name: t for t in (cases, petitions, respondents, petitioners)}
    for name, (table, column) in SEARCH_INDEXES.items():
        target = tables[table]
        expression = func.to_tsvector(literal_column("'simple'"),
                                      func.coalesce(target.c[column], literal_column("''")))
        target.append_constraint(Index(name, expression, postgresql_using="gin").ddl_if(dialect="postgresql"))


_install_search_indexes()

# SQLite: an FTS5 index over cases.search_norm (external content, kept in step by triggers).
SQLITE_FTS_STATEMENTS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS cases_fts USING fts5(search_norm, content='cases', content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_ai AFTER INSERT ON cases BEGIN "
    "INSERT INTO cases_fts(rowid, search_norm) VALUES (new.rowid, new.search_norm); END",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_ad AFTER DELETE ON cases BEGIN "
    "INSERT INTO cases_fts(cases_fts, rowid, search_norm) VALUES ('delete', old.rowid, old.search_norm); END",
    "CREATE TRIGGER IF NOT EXISTS cases_fts_au AFTER UPDATE OF search_norm ON cases BEGIN "
    "INSERT INTO cases_fts(cases_fts, rowid, search_norm) VALUES ('delete', old.rowid, old.search_norm); "
    "INSERT INTO cases_fts(rowid, search_norm) VALUES (new.rowid, new.search_norm); END",
]
__all__ += ["SQLITE_FTS_STATEMENTS", "is_search_shadow_table"]


def is_search_shadow_table(name: str) -> bool:
    """The FTS5 table and its shadow tables, which live outside the metadata."""
    return name == "cases_fts" or name.startswith("cases_fts_")


def _install_sqlite_fts() -> None:
    from sqlalchemy import DDL, event

    for statement in SQLITE_FTS_STATEMENTS:
        ddl = DDL(statement)  # type: ignore[no-untyped-call]
        event.listen(cases, "after_create", ddl.execute_if(dialect="sqlite"))


_install_sqlite_fts()
