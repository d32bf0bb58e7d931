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
from signaling.bus import Bus
from signaling.connect_tickets import ConnectTicketStore
from signaling.tokens import TokenIssuer, TokenVerifier

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
