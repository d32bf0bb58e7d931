"""The console's options: a frozen dataclass the composition root fills from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ConsoleOptions"]


@dataclass(frozen=True)
class ConsoleOptions:
    mode: Literal["dev", "production"] = "dev"
    cookie_secure: bool = False
    session_idle_s: int = 8 * 3600
    # A session's idle deadline is pushed forward at most this often (one write per minute, not per request).
    session_touch_s: int = 60
    # Login throttling (room_console.accounts): per name and address, free failures, then waits of 2, 4,
    # 8 … s up to the cap, remembered for a day; per address, failures of any name within the window.
    login_free_failures: int = 3
    login_backoff_cap_s: int = 900
    login_backoff_memory_s: int = 86400
    # Per client address: several officials may share one office NAT, so the limit is wider.
    login_ip_max_failures: int = 20
    login_window_s: int = 300
    invitation_ttl_s: int = 72 * 3600
    setup_ttl_s: int = 3600
    connect_ticket_ttl_s: int = 60
    token_ttl_s: int = 600
    public_url: str | None = None
    min_password_length: int = 10

    def __post_init__(self) -> None:
        # A session must outlive every token minted through it, as the verifiers see it (a minute covers
        # their clock-skew allowance): an idle session's expiry is announced to nobody
        # (room_console.accounts, "Tokens of a session").
        if self.session_idle_s < self.token_ttl_s + self.session_touch_s + 60:
            raise ValueError("session_idle_s must exceed token_ttl_s + session_touch_s by a minute at least")

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix pins the cookie to this host and path (no cookie tossing from subdomains);
        # browsers accept it only with Secure.
        return "__Host-tiepdan_session" if self.cookie_secure else "tiepdan_session"

    @property
    def csrf_cookie(self) -> str:
        return "__Host-tiepdan_csrf" if self.cookie_secure else "tiepdan_csrf"
