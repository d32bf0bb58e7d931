"""The scheduler's tables (SQLAlchemy Core, one ``metadata``; migration 0007 builds the same).

* ``venues`` — the video endpoints (điểm cầu) as data: a slug id, the display name, the level (the
  main venue, a commune, a ward, a legacy district), the administrative code after the 1 July 2025
  reform (QĐ 19/2025/QĐ-TTg) and the codes of the units merged into it, a bitrate cap, an active flag.
* ``reception_sessions`` — one row per reception session (phiên tiếp công dân); its id is the live
  room's id. Date, form (trực tiếp / trực tuyến), kind (định kỳ / đột xuất), the host leader and the
  state of :mod:`schedules.session_state` with its reason code and note, ``version`` for optimistic
  locking, the time of each transition. A periodic session remembers its rule (``rule_key``) and the
  rule's nominal date: creating a rule's sessions twice creates nothing the second time.
  ``opens_at`` / ``closes_at`` are its planned hours, times of day in Vietnam (migration 0008).
* ``session_cohosts`` — the leaders hosting with the host.
* ``session_venues`` — the venues of a session in order, the main one marked (one per session), the
  name as it was announced and the session's own cap.
* ``session_selected_cases`` — the cases the chair pre-selected for a session (domain.md §3 step 2),
  in order (migration 0009): a ticket later issued for one of them carries the ``chair_selected``
  priority ground (:mod:`schedules.planning`).
* ``session_queues`` — one row per session: the queue state of :class:`schedules.queue.QueueState`
  (call sequence, the case being received, the pause) and ``last_ticket_no``, the counter that numbers
  tickets without gaps: a ticket is issued by ``UPDATE … SET last_ticket_no = last_ticket_no + 1
  RETURNING`` in the transaction that inserts it, so the row lock (PostgreSQL) or the write lock
  (SQLite) lines two desks up, and a rolled-back issue gives its number back.
* ``queue_tickets`` — the tickets (phiếu số thứ tự): unique number within a session, the venue (which
  must be one of the session's: a foreign key on ``session_venues``), the case in the complaint
  database (a foreign key on ``cases``: both packages live in one database), priority grounds and the
  call bookkeeping of :class:`schedules.call_order.Ticket`. One ticket per case and session.

Times are stored in UTC and read back timezone-aware on SQLite too (:class:`UTCDateTime`).
Enumerations are stored as their English values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

from complaints.tables import cases

__all__ = [
    "UTCDateTime",
    "metadata",
    "queue_tickets",
    "readiness_checks",
    "reception_sessions",
    "roll_call_venues",
    "roll_calls",
    "session_cohosts",
    "session_queues",
    "session_selected_cases",
    "session_venues",
    "venues",
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

SLUG = 64
ID = 36  # uuid4 text


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; SQLite (which drops the offset) reads back UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a naive datetime cannot be stored: its zone would be a guess")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


venues = Table(
    "venues", metadata,
    Column("id", String(SLUG), primary_key=True),                 # slug, e.g. "xa-tien-du"
    Column("name", String(200), nullable=False),                  # "Xã Tiên Du"
    Column("level", String(16), nullable=False),                  # VenueLevel
    Column("admin_code", String(8), nullable=True),               # code after 1/7/2025 (QĐ 19/2025/QĐ-TTg)
    Column("old_admin_codes", JSON, nullable=False, default=list),  # codes of the units merged into it
    Column("max_kbps", Integer, nullable=True),                   # cap of each video layer; None: server default
    Column("active", Boolean, nullable=False, default=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("level IN ('main', 'commune', 'ward', 'district')", name="level"),
    CheckConstraint("max_kbps IS NULL OR (max_kbps >= 100 AND max_kbps <= 20000)", name="max_kbps"),
)

reception_sessions = Table(
    "reception_sessions", metadata,
    Column("id", String(SLUG), primary_key=True),                 # the live room's id
    Column("day", Date, nullable=False, index=True),
    Column("form", String(16), nullable=False),                   # ReceptionForm: in_person | online
    Column("kind", String(16), nullable=False),                   # ReceptionType: periodic | ad_hoc
    Column("host", String(SLUG), nullable=True, index=True),      # leader id (position slug); None: not named
    # SessionTrack: party | state, the system whose bodies issue the session's documents (migration 0018)
    Column("track", String(8), nullable=False, server_default=text("'party'")),
    Column("title", String(200), nullable=False, default=""),     # e.g. the rule's label
    Column("state", String(16), nullable=False),                  # SessionState
    Column("reason", String(32), nullable=True),                  # SessionReason (postponed, cancelled)
    Column("reason_note", Text, nullable=False, default=""),
    Column("publish_override", Text, nullable=False, default=""),  # written reason for a late publication
    Column("rule_key", String(SLUG), nullable=True),              # the calendar rule of a periodic session
    Column("nominal_day", Date, nullable=True),                   # the rule's date before a day-off move
    Column("version", Integer, nullable=False, default=1),        # optimistic locking
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),          # the last transition
    Column("published_at", UTCDateTime(), nullable=True),
    Column("opened_at", UTCDateTime(), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("closed_at", UTCDateTime(), nullable=True),
    # the planned hours, local time of ``day`` in Vietnam (schedules.session_hours; migration 0008)
    Column("opens_at", Time(), nullable=False, server_default=text("'07:30:00'")),
    Column("closes_at", Time(), nullable=False, server_default=text("'11:30:00'")),
    CheckConstraint("opens_at < closes_at", name="hours"),
    CheckConstraint("form IN ('in_person', 'online')", name="form"),
    CheckConstraint("kind IN ('periodic', 'ad_hoc')", name="kind"),
    CheckConstraint("track IN ('party', 'state')", name="track"),
    CheckConstraint(
        "state IN ('planned', 'published', 'open', 'in_progress', 'closed', 'postponed', 'cancelled')",
        name="state",
    ),
    UniqueConstraint("rule_key", "nominal_day", name="uq_reception_sessions_rule_key_nominal_day"),
)

session_cohosts = Table(
    "session_cohosts", metadata,
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), primary_key=True),
    Column("leader", String(SLUG), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_session_cohosts_leader", "leader"),
)

session_venues = Table(
    "session_venues", metadata,
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), primary_key=True),
    Column("venue_id", String(SLUG), ForeignKey("venues.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),                  # as announced to this session
    Column("main", Boolean, nullable=False, default=False),
    Column("max_kbps", Integer, nullable=True),                   # this session's cap; None: the venue's
    UniqueConstraint("session_id", "position", name="uq_session_venues_session_id_position"),
    CheckConstraint("max_kbps IS NULL OR (max_kbps >= 100 AND max_kbps <= 20000)", name="max_kbps"),
    Index("ix_session_venues_venue_id", "venue_id"),
    # one main venue per session
    Index("uq_session_venues_main", "session_id", unique=True,
          sqlite_where=text("main = 1"), postgresql_where=text("main")),
)

session_selected_cases = Table(
    "session_selected_cases", metadata,
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), primary_key=True),
    Column("case_id", String(ID), ForeignKey(cases.c.id), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("selected_by", String(200), nullable=False),
    Column("selected_at", UTCDateTime(), nullable=False),
    UniqueConstraint("session_id", "position", name="uq_session_selected_cases_session_id_position"),
    Index("ix_session_selected_cases_case_id", "case_id"),
)

session_queues = Table(
    "session_queues", metadata,
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), primary_key=True),
    Column("last_ticket_no", Integer, nullable=False, default=0),  # the gapless ticket counter
    Column("call_seq", Integer, nullable=False, default=0),
    Column("current_ticket_no", Integer, nullable=True),           # the case being received
    Column("paused", Boolean, nullable=False, default=False),
    Column("pause_no", Integer, nullable=False, default=0),
    Column("requeue_seq", Integer, nullable=False, default=0),
    Column("unavailable_venues", JSON, nullable=False, default=list),
    Column("closed", Boolean, nullable=False, default=False),
    Column("changed_at", UTCDateTime(), nullable=True),
    Column("version", Integer, nullable=False, default=1),
)

queue_tickets = Table(
    "queue_tickets", metadata,
    Column("id", String(ID), primary_key=True),
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), nullable=False),
    Column("ticket_no", Integer, nullable=False),
    Column("venue_id", String(SLUG), nullable=False),
    Column("case_id", String(ID), ForeignKey(cases.c.id), nullable=False, index=True),
    Column("priorities", JSON, nullable=False, default=list),      # PriorityGround values
    Column("status", String(16), nullable=False),                 # TicketStatus
    Column("no_shows", Integer, nullable=False, default=0),
    Column("requeue_seq", Integer, nullable=False, default=0),
    Column("last_call_seq", Integer, nullable=False, default=0),
    Column("issued_by", String(200), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("called_at", UTCDateTime(), nullable=True),            # the last call
    Column("ended_at", UTCDateTime(), nullable=True),             # closed or absent
    # a confidential case's handling chosen at the desk (schedules.triage.ConfidentialHandling), else NULL;
    # shown to the chair and the secretary only
    Column("handling", String(16), nullable=True),
    Column("triage_version", Integer, nullable=False, default=0, server_default="0"),  # ticket.triaged count
    UniqueConstraint("session_id", "ticket_no", name="uq_queue_tickets_session_id_ticket_no"),
    UniqueConstraint("session_id", "case_id", name="uq_queue_tickets_session_id_case_id"),
    ForeignKeyConstraint(["session_id", "venue_id"], ["session_venues.session_id", "session_venues.venue_id"],
                         name="fk_queue_tickets_session_venue"),
    CheckConstraint("ticket_no >= 1", name="ticket_no"),
    CheckConstraint("status IN ('waiting', 'called', 'deferred', 'closed', 'absent', 'in_person')", name="status"),
    CheckConstraint("handling IS NULL OR handling IN ('in_person', 'closed_segment')", name="handling"),
)

roll_calls = Table(
    "roll_calls", metadata,
    Column("id", String(ID), primary_key=True),
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), nullable=False),
    Column("roll_call_no", Integer, nullable=False),               # 1, 2 … per session: 2+ amend the first
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    UniqueConstraint("session_id", "roll_call_no", name="uq_roll_calls_session_id_roll_call_no"),
    CheckConstraint("roll_call_no >= 1", name="roll_call_no"),
)

roll_call_venues = Table(
    "roll_call_venues", metadata,
    Column("roll_call_id", String(ID), ForeignKey("roll_calls.id"), primary_key=True),
    Column("venue_id", String(SLUG), ForeignKey("venues.id"), primary_key=True),
    Column("position", Integer, nullable=False),                  # the venue's place in the session
    Column("present", Boolean, nullable=False),
    Column("citizens", Integer, nullable=False, default=0),        # citizens present (a count, no names)
    Column("officials", JSON, nullable=False, default=list),       # [{"name": …, "position": …}]
    CheckConstraint("citizens >= 0 AND citizens <= 10000", name="citizens"),
)

readiness_checks = Table(
    "readiness_checks", metadata,
    Column("id", String(ID), primary_key=True),
    Column("session_id", String(SLUG), ForeignKey("reception_sessions.id"), nullable=False),
    Column("venue_id", String(SLUG), ForeignKey("venues.id"), nullable=False),
    Column("checked_by", String(200), nullable=False),
    Column("checked_at", UTCDateTime(), nullable=False),
    Column("rtt_ms", Float, nullable=True),                        # round trip; None: not measured
    Column("rtt_source", String(16), nullable=True),               # RttSource: media | signalling
    Column("outgoing_kbps", Integer, nullable=True),               # availableOutgoingBitrate / 1000
    Column("turn", String(16), nullable=False),                    # TurnResult
    Column("camera", Boolean, nullable=False),
    Column("microphone", Boolean, nullable=False),
    Column("browser", String(200), nullable=False, default=""),
    Column("ready", Boolean, nullable=False),
    Column("problems", JSON, nullable=False, default=list),        # ReadinessProblem values
    Index("ix_readiness_checks_session_id_venue_id", "session_id", "venue_id"),
    CheckConstraint("rtt_ms IS NULL OR rtt_ms >= 0", name="rtt_ms"),
    CheckConstraint("outgoing_kbps IS NULL OR outgoing_kbps >= 0", name="outgoing_kbps"),
    CheckConstraint("turn IN ('reachable', 'unreachable', 'not_configured')", name="turn"),
)
