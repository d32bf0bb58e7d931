"""The tables of the signaling package, on one ``MetaData`` (``signaling.outbox.metadata``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ID = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("aggregate", String(200), nullable=False),
    Column("type", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("relayed_at", DateTime(timezone=True), nullable=True),
    Column("error", String(200), nullable=True),
    Index("ix_outbox_unrelayed", "id", postgresql_where=Column("relayed_at").is_(None),
          sqlite_where=Column("relayed_at").is_(None)),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_key", String(300), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, index=True),
)
