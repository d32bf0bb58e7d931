"""Accounts: users, login sessions, invitations and login throttling.

Pure rules (username and password policy, the throttling decision) are plain functions; the
repository functions below them take an ``AsyncConnection`` (the caller owns the transaction) or an
``AsyncEngine`` when one operation spans several short transactions (login). Argon2 hashing runs in
a thread: the event loop only routes. Every time is passed in as ``now`` (Unix seconds), so tests
drive the clock.

Secrets: a session id (cookie) and an invitation token are 256-bit random strings; only their
SHA-256 is stored. (A session's CSRF token is derived from its id with a server key:
:mod:`room_console.csrf`.)

Login throttling (:func:`login_wait`), counted in the database so every control process agrees:

* per name *and* address: the first ``login_free_failures`` failures cost nothing; after them each
  further attempt from that address for that name waits 2, 4, 8 … seconds after the last failure
  (at most ``login_backoff_cap_s``). A success from that address starts over. Another address is
  not slowed down, so guessing at the chair's name from elsewhere never locks the chair out;
* per address, for any name: at most ``login_ip_max_failures`` failures within ``login_window_s``
  (spraying one password over many names).

A refused attempt is not recorded (hammering does not lengthen the wait) and no password is checked.

Tokens of a session: a JWT minted for a signed-in user (the live room's, ``routes.access_token_for``)
carries ``sid`` = :func:`token_sid`, derived from the stored hash under a third label (neither the
cookie nor the table's key). A login session ended before its time (sign-out, a sign-in over it, a
new password) is deleted and announced in the same transaction with a ``LoginSessionEnded`` event in
the outbox, so the room servers refuse its tokens and end its connections; disabling the account
announces ``UserDisabled`` instead, which ends every token of the account. The REST API checks ``sid``
against this table (:func:`token_session_alive`).
An idle session that expires is not announced (nothing runs at that moment; :func:`session_user`
deletes it when its cookie comes back): the console mints tokens of ``token_ttl_s`` only through a
live session, which pushes its idle deadline forward (at least once per ``session_touch_s``), and
:class:`~room_console.options.ConsoleOptions` requires ``session_idle_s`` to exceed ``token_ttl_s +
session_touch_s`` by a minute, so every token minted for a session has expired before the session can.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import secrets
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from signaling.events import LoginSessionEnded, UserDisabled
from signaling.grants import ROLE_LABELS_VI, Grant, Role, grants_for
from signaling.outbox import add_to_outbox

from .errors import (
    InvalidCredentials,
    InvalidDisplayName,
    InvalidRoles,
    InvalidUsername,
    InvitationInvalid,
    LoginRateLimited,
    UsernameTaken,
    UserNotFound,
    WeakPassword,
)
from .options import ConsoleOptions
from .tables import invitations, login_attempts, login_sessions, users

__all__ = [
    "User", "Invitation", "LoginResult",
    "normalize_username", "attempt_key", "check_display_name", "check_password", "parse_roles",
    "new_secret", "secret_hash", "login_wait",
    "hash_password", "verify_password",
    "add_user", "get_user", "get_user_by_username", "list_users", "disable_user",
    "login", "create_session", "session_user", "end_session", "count_sessions", "token_sid",
    "token_session_alive",
    "create_invitation", "get_invitation", "accept_invitation", "create_setup_invitation", "count_users",
]

_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_PASSWORD_LENGTH = 256
SessionEndReason = Literal["logout", "replaced", "password_changed"]
SETUP_USERNAME = "admin"


# -- pure rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    roles: tuple[Role, ...]
    unit: str | None = None
    venue: str | None = None
    disabled: bool = False
    created_at: float = 0.0

    @property
    def grants(self) -> frozenset[Grant]:
        return grants_for(self.roles)

    def has(self, grant: Grant) -> bool:
        return grant in self.grants

    @property
    def role_labels(self) -> tuple[str, ...]:
        return tuple(ROLE_LABELS_VI[r] for r in self.roles)


@dataclass(frozen=True)
class Invitation:
    id: str
    username: str
    display_name: str
    role: Role
    venue: str | None
    unit: str | None
    expires_at: float


@dataclass(frozen=True)
class LoginResult:
    user: User
    session_id: str


def normalize_username(raw: str) -> str:
    """The canonical form of a username, or :class:`InvalidUsername`."""
    name = unicodedata.normalize("NFKC", raw).strip().lower()
    if not _USERNAME_RE.fullmatch(name):
        raise InvalidUsername("username must be 2-64 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def attempt_key(raw: str) -> str:
    """The key a login attempt is counted under, also for input that is no valid username."""
    return unicodedata.normalize("NFKC", raw).strip().lower()[:64]


def check_display_name(raw: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not 1 <= len(name) <= 200 or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidDisplayName("display name must be 1-200 printable characters")
    return name


def check_slug(raw: str | None, what: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not _SLUG_RE.fullmatch(value):
        raise InvalidRoles(f"{what} must be a slug of letters, digits, '-' or '_'")
    return value


def check_password(password: str, options: ConsoleOptions) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword("password too long")
    if len(password) < options.min_password_length or not password.strip():
        raise WeakPassword("password too short")


def parse_roles(values: Iterable[str]) -> tuple[Role, ...]:
    """Known roles, deduplicated and in table order; :class:`InvalidRoles` for none or an unknown one."""
    wanted: set[Role] = set()
    for value in values:
        try:
            wanted.add(Role(value.strip()))
        except ValueError as exc:
            raise InvalidRoles("unknown role") from exc
    if not wanted:
        raise InvalidRoles("at least one role is required")
    return tuple(r for r in Role if r in wanted)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_sid(session_id: str) -> str:
    """The ``sid`` claim of tokens minted for the login session ``session_id`` (see the module docstring)."""
    return _sid_of_hash(secret_hash(session_id))


def _sid_of_hash(id_hash: str) -> str:
    return hashlib.sha256(b"tiepdan-token-sid\x00" + id_hash.encode("ascii")).hexdigest()[:32]


def login_wait(pair_failures: int, pair_last_failure: float | None, address_failures: Sequence[float], *,
               now: float, options: ConsoleOptions) -> float:
    """Seconds a login attempt must wait before it is tried (0: try it now).

    ``pair_failures``: failures of this name from this address since the pair's last success (within
    ``login_backoff_memory_s``), the last at ``pair_last_failure``; ``address_failures``: the times of
    the failures from this address, any name, within ``login_window_s``.
    """
    wait = 0.0
    extra = pair_failures - options.login_free_failures
    if extra >= 0 and pair_last_failure is not None:
        delay = min(2.0 ** (extra + 1), float(options.login_backoff_cap_s))
        wait = pair_last_failure + delay - now
    over = len(address_failures) - options.login_ip_max_failures
    if over >= 0:
        # Allowed again once enough failures have left the window to be under the limit.
        frees_at = sorted(address_failures)[over] + options.login_window_s
        wait = max(wait, frees_at - now)
    return max(0.0, wait)


# -- password hashing (in a thread) -----------------------------------------------------------------

_hasher = PasswordHasher()
_dummy_hash: str | None = None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify_sync(stored: str, password: str) -> tuple[bool, bool]:
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, _hasher.check_needs_rehash(stored)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). With ``stored=None`` a dummy hash is checked, so that an unknown
    username costs the same time as a wrong password."""
    global _dummy_hash
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = await hash_password(new_secret())
        await asyncio.to_thread(_verify_sync, _dummy_hash, password)
        return False, False
    return await asyncio.to_thread(_verify_sync, stored, password)


# -- users ------------------------------------------------------------------------------------------


def _user_from_row(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        id=m["id"],
        username=m["username"],
        display_name=m["display_name"],
        roles=tuple(Role(r) for r in str(m["roles"]).split(",") if r in Role.__members__.values()),
        unit=m["unit"],
        venue=m["venue"],
        disabled=bool(m["disabled"]),
        created_at=float(m["created_at"]),
    )


async def _insert_user(
    conn: AsyncConnection, *, username: str, display_name: str, roles: tuple[Role, ...], password_hash: str,
    unit: str | None, venue: str | None, now: float,
) -> User:
    user = User(id=uuid.uuid4().hex, username=username, display_name=display_name, roles=roles, unit=unit,
                venue=venue, created_at=now)
    if await get_user_by_username(conn, username) is not None:
        raise UsernameTaken("username is taken")
    try:
        await conn.execute(insert(users).values(
            id=user.id, username=username, display_name=display_name, roles=",".join(r.value for r in roles),
            password_hash=password_hash, unit=unit, venue=venue, disabled=False, created_at=now,
        ))
    except IntegrityError as exc:  # a concurrent insert of the same name; the transaction is lost anyway
        raise UsernameTaken("username is taken") from exc
    return user


async def add_user(
    engine: AsyncEngine, *, username: str, display_name: str, roles: Iterable[str], password: str,
    options: ConsoleOptions, now: float, unit: str | None = None, venue: str | None = None,
) -> User:
    """Validate and create an account (the password is hashed before the transaction opens)."""
    name = normalize_username(username)
    shown = check_display_name(display_name)
    role_set = parse_roles(roles)
    unit_id = check_slug(unit, "unit")
    venue_id = check_slug(venue, "venue")
    check_password(password, options)
    hashed = await hash_password(password)
    async with engine.begin() as conn:
        return await _insert_user(conn, username=name, display_name=shown, roles=role_set, password_hash=hashed,
                                  unit=unit_id, venue=venue_id, now=now)


async def set_password(engine: AsyncEngine, user_id: str, password: str, *, options: ConsoleOptions) -> None:
    """Give an account a new password (checked against the policy) and end its login sessions."""
    check_password(password, options)
    hashed = await hash_password(password)
    async with engine.begin() as conn:
        if await get_user(conn, user_id) is None:
            raise UserNotFound("no such user")
        await conn.execute(update(users).where(users.c.id == user_id).values(password_hash=hashed))
        await _end_sessions(conn, login_sessions.c.user_id == user_id, "password_changed")


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user_from_row(row)


async def get_user_by_username(conn: AsyncConnection, username: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return None if row is None else _user_from_row(row)


async def list_users(conn: AsyncConnection) -> list[User]:
    rows = (await conn.execute(select(users).order_by(users.c.username))).all()
    return [_user_from_row(r) for r in rows]


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def disable_user(conn: AsyncConnection, user_id: str, *, now: float) -> User:
    """Disable an account in the caller's transaction: its login sessions are deleted at once and a
    ``UserDisabled`` event goes to the outbox, so live connections end too (the room servers refuse every
    token of the account, whatever its session: the sessions need no announcement of their own).
    Idempotent."""
    user = await get_user(conn, user_id)
    if user is None:
        raise UserNotFound("no such user")
    await conn.execute(delete(login_sessions).where(login_sessions.c.user_id == user_id))
    if not user.disabled:
        await conn.execute(update(users).where(users.c.id == user_id).values(disabled=True, disabled_at=now))
        await add_to_outbox(conn, UserDisabled(user=user_id))
    return replace(user, disabled=True)


# -- login and sessions -----------------------------------------------------------------------------


async def _history(conn: AsyncConnection, key: str, ip: str, attempt_id: int, now: float,
                   options: ConsoleOptions) -> tuple[int, float | None, list[float]]:
    """What :func:`login_wait` needs, leaving out the attempt ``attempt_id`` being decided: the failures
    of the (name, address) pair since its last success and the last one's time, and the times of the
    address's failures within the window."""
    a = login_attempts.c
    memory_since = now - options.login_backoff_memory_s
    last_success = (await conn.execute(
        select(func.max(a.at)).where(a.username == key, a.client_ip == ip, a.succeeded.is_(True),
                                     a.at >= memory_since)
    )).scalar_one()
    pair_since = max(memory_since, float(last_success)) if last_success is not None else memory_since
    pair_count, pair_last = (await conn.execute(
        select(func.count(), func.max(a.at)).select_from(login_attempts).where(
            a.username == key, a.client_ip == ip, a.succeeded.is_(False), a.at >= pair_since, a.id != attempt_id)
    )).one()
    # The per-address count ignores successes: a success for one name does not excuse guesses at others.
    address = (await conn.execute(
        select(a.at).where(a.client_ip == ip, a.succeeded.is_(False), a.at >= now - options.login_window_s,
                           a.id != attempt_id)
    )).scalars().all()
    return int(pair_count), None if pair_last is None else float(pair_last), [float(at) for at in address]


def _lock_id(label: str, value: str) -> int:
    digest = hashlib.sha256(f"{label}\x00{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _serialize_attempts(conn: AsyncConnection, key: str, ip: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    for lock in sorted({_lock_id("login-user", key), _lock_id("login-ip", ip)}):
        await conn.execute(select(func.pg_advisory_xact_lock(lock)))


async def login(
    engine: AsyncEngine, *, username: str, password: str, client_ip: str, options: ConsoleOptions, now: float,
) -> LoginResult:
    """Check the throttle (:func:`login_wait`), then the password; on success open a login session.

    The attempt is recorded as a failure *before* the password is checked and turned into a
    success afterwards, so parallel guesses cannot slip past the throttle while hashes run.
    Raises :class:`LoginRateLimited` (with the seconds to wait) or :class:`InvalidCredentials`.
    """
    key = attempt_key(username)
    ip = client_ip[:64] or "unknown"
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH + 1]
    async with engine.begin() as conn:
        await _serialize_attempts(conn, key, ip)
        # Recorded first, counted second: concurrent guesses see each other (the insert takes SQLite's
        # write lock; PostgreSQL takes advisory locks on the name and the address).
        attempt_id = (await conn.execute(
            insert(login_attempts).values(username=key, client_ip=ip, succeeded=False, at=now)
            .returning(login_attempts.c.id)
        )).scalar_one()
        pair_failures, pair_last, address_failures = await _history(conn, key, ip, attempt_id, now, options)
        wait = login_wait(pair_failures, pair_last, address_failures, now=now, options=options)
        limited = wait > 0
        if limited:  # a refused attempt does not lengthen the wait
            await conn.execute(delete(login_attempts).where(login_attempts.c.id == attempt_id))
        kept_s = max(86400, options.login_window_s, options.login_backoff_memory_s)
        await conn.execute(delete(login_attempts).where(login_attempts.c.at < now - kept_s))
        row = None
        try:
            name = normalize_username(username)
        except InvalidUsername:
            name = None
        if name is not None and not limited:
            row = (await conn.execute(select(users).where(users.c.username == name))).first()
    if limited:
        raise LoginRateLimited("too many failed logins", retry_after=math.ceil(wait))
    stored = None if row is None else str(row._mapping["password_hash"])
    matches, needs_rehash = await verify_password(stored, password)
    if row is None or not matches or bool(row._mapping["disabled"]):
        raise InvalidCredentials("invalid credentials")
    user = _user_from_row(row)
    new_hash = await hash_password(password) if needs_rehash else None
    async with engine.begin() as conn:
        await conn.execute(update(login_attempts).where(login_attempts.c.id == attempt_id).values(succeeded=True))
        if new_hash is not None:
            await conn.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
        session_id = await create_session(conn, user.id, now=now, idle_s=options.session_idle_s)
    return LoginResult(user=user, session_id=session_id)


async def create_session(conn: AsyncConnection, user_id: str, *, now: float, idle_s: int) -> str:
    session_id = new_secret()
    await conn.execute(insert(login_sessions).values(
        id_hash=secret_hash(session_id), user_id=user_id, created_at=now, last_seen_at=now, expires_at=now + idle_s))
    return session_id


async def session_user(conn: AsyncConnection, session_id: str, *, now: float, options: ConsoleOptions) -> User | None:
    """The enabled user of a live session, or None. Slides the idle deadline (at most once per
    ``session_touch_s``) and deletes an expired session."""
    if not session_id or len(session_id) > 128:
        return None
    id_hash = secret_hash(session_id)
    row = (await conn.execute(
        select(users, login_sessions.c.expires_at, login_sessions.c.last_seen_at)
        .join(login_sessions, login_sessions.c.user_id == users.c.id)
        .where(login_sessions.c.id_hash == id_hash)
    )).first()
    if row is None:
        return None
    m = row._mapping
    if float(m["expires_at"]) <= now or bool(m["disabled"]):
        await conn.execute(delete(login_sessions).where(login_sessions.c.id_hash == id_hash))
        return None
    if now - float(m["last_seen_at"]) >= options.session_touch_s:
        await conn.execute(update(login_sessions).where(login_sessions.c.id_hash == id_hash)
                           .values(last_seen_at=now, expires_at=now + options.session_idle_s))
    return _user_from_row(row)


async def end_session(conn: AsyncConnection, session_id: str, *,
                      reason: Literal["logout", "replaced"] = "logout") -> None:
    """End the login session ``session_id`` (if it exists) and announce it: its tokens die with it."""
    await _end_sessions(conn, login_sessions.c.id_hash == secret_hash(session_id), reason)


async def _end_sessions(conn: AsyncConnection, which: ColumnElement[bool], reason: SessionEndReason) -> int:
    """Delete the login sessions ``which`` selects and put a ``LoginSessionEnded`` per session in the outbox,
    in the caller's transaction; the number ended."""
    ended = (await conn.execute(
        delete(login_sessions).where(which).returning(login_sessions.c.id_hash, login_sessions.c.user_id)
    )).all()
    for id_hash, user_id in ended:
        await add_to_outbox(conn, LoginSessionEnded(user=user_id, sid=_sid_of_hash(id_hash), reason=reason))
    return len(ended)


async def token_session_alive(conn: AsyncConnection, user_id: str, sid: str, *, now: float) -> bool:
    """Whether the login session a token's ``sid`` names is still open for ``user_id`` (not ended, not
    expired, the account enabled). The account's few sessions are read and their ``sid`` derived."""
    rows = (await conn.execute(
        select(login_sessions.c.id_hash)
        .join(users, users.c.id == login_sessions.c.user_id)
        .where(login_sessions.c.user_id == user_id, login_sessions.c.expires_at > now, users.c.disabled.is_(False))
    )).scalars().all()
    return any(hmac.compare_digest(_sid_of_hash(id_hash), sid) for id_hash in rows)


async def count_sessions(conn: AsyncConnection, user_id: str) -> int:
    return int((await conn.execute(
        select(func.count()).select_from(login_sessions).where(login_sessions.c.user_id == user_id))).scalar_one())


# -- invitations ------------------------------------------------------------------------------------


async def create_invitation(
    conn: AsyncConnection, *, username: str, display_name: str, role: Role, venue: str | None,
    unit: str | None, created_by: str | None, now: float, ttl_s: int,
) -> str:
    """A one-time link token for a future account; the caller shows it once. Only its hash is kept."""
    name = normalize_username(username)
    shown = check_display_name(display_name)
    venue_id = check_slug(venue, "venue")
    unit_id = check_slug(unit, "unit")
    if role is Role.VENUE and venue_id is None:
        raise InvalidRoles("a venue operator needs a venue")
    if await get_user_by_username(conn, name) is not None:
        raise UsernameTaken("username is taken")
    token = new_secret()
    await conn.execute(insert(invitations).values(
        id=uuid.uuid4().hex, token_hash=secret_hash(token), username=name, display_name=shown, role=role.value,
        venue=venue_id, unit=unit_id, created_by=created_by, created_at=now, expires_at=now + ttl_s, used_at=None))
    return token


async def get_invitation(conn: AsyncConnection, token: str, *, now: float) -> Invitation:
    """The open invitation of ``token``; :class:`InvitationInvalid` when unknown, used or expired."""
    if not token or len(token) > 128:
        raise InvitationInvalid("invitation is not valid")
    row = (await conn.execute(select(invitations).where(invitations.c.token_hash == secret_hash(token)))).first()
    if row is None:
        raise InvitationInvalid("invitation is not valid")
    m = row._mapping
    if m["used_at"] is not None or float(m["expires_at"]) <= now:
        raise InvitationInvalid("invitation is not valid")
    return Invitation(id=m["id"], username=m["username"], display_name=m["display_name"], role=Role(m["role"]),
                      venue=m["venue"], unit=m["unit"], expires_at=float(m["expires_at"]))


async def accept_invitation(
    engine: AsyncEngine, token: str, *, password: str, options: ConsoleOptions, now: float,
) -> User:
    """Use an invitation once: the account is created with ``password`` and the invitation is
    marked used in the same transaction (a failure leaves the invitation usable)."""
    async with engine.connect() as conn:
        await get_invitation(conn, token, now=now)
    check_password(password, options)
    hashed = await hash_password(password)
    async with engine.begin() as conn:
        invitation = await get_invitation(conn, token, now=now)
        claimed = await conn.execute(
            update(invitations)
            .where(and_(invitations.c.id == invitation.id, invitations.c.used_at.is_(None),
                        invitations.c.expires_at > now))
            .values(used_at=now))
        if claimed.rowcount != 1:
            raise InvitationInvalid("invitation is not valid")
        return await _insert_user(conn, username=invitation.username, display_name=invitation.display_name,
                                  roles=(invitation.role,), password_hash=hashed, unit=invitation.unit,
                                  venue=invitation.venue, now=now)


async def create_setup_invitation(engine: AsyncEngine, *, now: float, ttl_s: int) -> str | None:
    """When there is no account at all: a one-time link that creates the first administrator.

    Earlier unused setup links are revoked, so only the link printed last works. None when an
    account exists.
    """
    async with engine.begin() as conn:
        if await count_users(conn) > 0:
            return None
        await conn.execute(delete(invitations).where(
            invitations.c.created_by.is_(None), invitations.c.used_at.is_(None),
            invitations.c.role == Role.ADMIN.value))
        return await create_invitation(
            conn, username=SETUP_USERNAME, display_name=ROLE_LABELS_VI[Role.ADMIN], role=Role.ADMIN, venue=None,
            unit=None, created_by=None, now=now, ttl_s=ttl_s)
