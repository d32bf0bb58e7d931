"""Unguessable links to the iCalendar feeds (calendar applications cannot sign in).

A feed of a leader or a venue is served at ``/lich/ics/<kind>/<key>/<token>.ics`` where ``token`` is
``HMAC-SHA256(feed key, kind ‖ key)`` (128 bits, hex). The feed key is derived from the keyring's data
keys under a label of its own (as the CSRF keys are, :mod:`room_console.csrf`: no key serves two
purposes, and every control process computes the same links without storage). The active data key
signs; every data key in the keyring verifies, so a link handed out before ``tiepdan keys rotate``
keeps working. The calendar page shows the links to holders of the ``manage`` grant; whoever holds a
link reads that feed (published sessions only), nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from evidence import Keyring

__all__ = ["FEED_KINDS", "FeedKind", "FeedLinks"]

FeedKind = Literal["lanh-dao", "diem-cau"]
FEED_KINDS: tuple[FeedKind, ...] = ("lanh-dao", "diem-cau")
_LABEL = b"tiepdan/ical-feed/v1"
_TOKEN_HEX = 32


class FeedLinks:
    """Makes and checks feed tokens with ``keys`` (the first signs, every one verifies)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) < 32 for k in keys):
            raise ValueError("feed keys must be at least 256 bits")
        self._keys = tuple(keys)

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> FeedLinks:
        active = keyring.active_data
        others = [k for k in keyring.data_keys() if k.kid != active.kid]
        return cls([hmac.new(k.secret, _LABEL, hashlib.sha256).digest() for k in (active, *others)])

    @staticmethod
    def _token(key: bytes, kind: str, subject: str) -> str:
        return hmac.new(key, f"{kind}\x00{subject}".encode(), hashlib.sha256).hexdigest()[:_TOKEN_HEX]

    def token(self, kind: FeedKind, subject: str) -> str:
        return self._token(self._keys[0], kind, subject)

    def path(self, kind: FeedKind, subject: str) -> str:
        return f"/lich/ics/{kind}/{subject}/{self.token(kind, subject)}.ics"

    def valid(self, kind: str, subject: str, token: str) -> bool:
        if kind not in FEED_KINDS or len(token) != _TOKEN_HEX:
            return False
        return any(hmac.compare_digest(self._token(key, kind, subject), token) for key in self._keys)
