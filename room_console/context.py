"""What the console's routes need, built by the composition root's lifespan and put on
``app.state.console``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.workdays import WorkCalendar, default_calendar
from evidence import Keyring
from schedules.announcement import SpeechOptions
from signaling.bus import Bus
from signaling.connect_tickets import ConnectTicketStore
from signaling.room_state import RoomStateReader
from signaling.tokens import TokenIssuer, TokenVerifier

from .board_stream import BoardHub
from .csrf import CsrfTokens
from .options import ConsoleOptions
from .pages import Pages
from .ratelimit import RateLimiter

__all__ = ["ConsoleContext"]


@dataclass
class ConsoleContext:
    engine: AsyncEngine
    bus: Bus
    issuer: TokenIssuer
    connect_tickets: ConnectTicketStore
    options: ConsoleOptions
    # Signs and checks CSRF tokens (keys derived from the keyring, so every control process agrees).
    csrf: CsrfTokens
    pages: Pages = field(default_factory=Pages)
    clock: Callable[[], float] = time.time
    # The complaint database: the keyring seals denouncers' identities; the verifier accepts services'
    # bearer tokens; attachments are stored under ``attachments_dir``.
    keyring: Keyring | None = None
    verifier: TokenVerifier | None = None
    calendar: WorkCalendar = field(default_factory=default_calendar)
    attachments_dir: Path | None = None
    # The public tracking page (/tra-cuu): lookups per client address and minute.
    lookup_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(limit=20, window_s=60.0))
    # The call announcements (espeak-ng WAVs cached under ``speech.cache_dir``, served at
    # /api/announcements/<sha256>.wav); None: calls carry no audio.
    speech: SpeechOptions | None = None
    # Wakes the outbox relay after a commit (it polls anyway): ``OutboxRelay.notify``.
    notify_outbox: Callable[[], None] | None = None
    # The live rooms' state as the media nodes store it (Redis; in the embedded mode the room server's
    # in-memory store); None on a process with neither (the pages then show only what ``schedules`` says).
    room_states: RoomStateReader | None = None
    # The queue boards' server-sent events of this process (room_console.board_stream); None: no boards here.
    boards: BoardHub | None = None
