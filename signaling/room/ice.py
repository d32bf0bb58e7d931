"""ICE servers for the clients, with time-limited TURN credentials (pure functions, no I/O).

TURN REST credentials (the scheme coturn's ``use-auth-secret`` / ``static-auth-secret`` checks)::

    username   = f"{expiry}:{participant}"            # expiry: Unix seconds
    credential = base64(HMAC-SHA1(turn_secret, username))

The TURN server recomputes the credential from its copy of the secret and refuses it after
``expiry``; nothing is stored. STUN URLs carry no credentials. Without a secret, TURN URLs are
left out (a TURN server without credentials is useless to a browser).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from ..protocol import IceServerView

__all__ = ["turn_credentials", "ice_servers_for", "parse_ice_urls"]


def turn_credentials(secret: str, participant: str, *, now: float, ttl_s: int) -> tuple[str, str, int]:
    """``(username, credential, expiry)`` valid until ``now + ttl_s``."""
    expiry = int(now) + int(ttl_s)
    username = f"{expiry}:{participant}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii"), expiry


def parse_ice_urls(text: str) -> tuple[str, ...]:
    """The comma-separated ``stun:``/``turn:``/``turns:`` URLs of the setting (others are rejected)."""
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise ValueError(f"not a STUN/TURN URL: {url!r}")
    return urls


def ice_servers_for(urls: Iterable[str], secret: str | None, participant: str, *, now: float,
                    ttl_s: int) -> tuple[tuple[IceServerView, ...], int | None]:
    """The ``iceServers`` for ``participant`` and when its TURN credentials expire (None: no TURN)."""
    urls = tuple(urls)
    stun = tuple(u for u in urls if u.startswith(("stun:", "stuns:")))
    turn = tuple(u for u in urls if u.startswith(("turn:", "turns:")))
    servers: list[IceServerView] = []
    if stun:
        servers.append(IceServerView(urls=stun))
    expires_at: int | None = None
    if turn and secret:
        username, credential, expires_at = turn_credentials(secret, participant, now=now, ttl_s=ttl_s)
        servers.append(IceServerView(urls=turn, username=username, credential=credential))
    return tuple(servers), expires_at
