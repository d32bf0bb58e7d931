"""The console's tables (accounts, login sessions, invitations, login attempts).

Secrets are never stored: a login session is found by the SHA-256 of its cookie value, an
invitation by the SHA-256 of its link token, a password by its argon2 hash. Times are Unix
seconds (float) so that SQLite and PostgreSQL compare them alike.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table

__all__ = ["metadata", "users", "login_sessions", "invitations", "login_attempts"]

metadata = MetaData()

users = Table(
    "console_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("unit", String(64), nullable=True),
    Column("venue", String(64), nullable=True),
    # Role values joined by "," (a closed set, validated on the way in and out).
    Column("roles", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
)

login_sessions = Table(
    "console_login_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_console_login_sessions_user", "user_id"),
)

invitations = Table(
    "console_invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("username", String(64), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("venue", String(64), nullable=True),
    Column("unit", String(64), nullable=True),
    Column("created_by", String(32), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

login_attempts = Table(
    "console_login_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_console_login_attempts_user", "username", "at"),
    Index("ix_console_login_attempts_ip", "client_ip", "at"),
)
