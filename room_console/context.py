"""What the console's routes need, built by the composition root's lifespan and put on
``app.state.console``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.bus import Bus
from signaling.tickets import TicketStore
from signaling.tokens import TokenIssuer

from .options import ConsoleOptions
from .pages import Pages

__all__ = ["ConsoleContext"]


@dataclass
class ConsoleContext:
    engine: AsyncEngine
    bus: Bus
    issuer: TokenIssuer
    tickets: TicketStore
    options: ConsoleOptions
    pages: Pages = field(default_factory=Pages)
    clock: Callable[[], float] = time.time
