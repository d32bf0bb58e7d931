"""CSRF tokens, bound to something an attacker cannot choose.

* A signed-in request's token is ``HMAC(key, "session" ‖ session id)``: only a holder of the
  (HttpOnly) session cookie can know it, and only the server can compute it. It needs no storage, is
  the same in every control process, and reveals neither the session id nor its stored hash.
* A request before any session (the login and invitation forms) uses a double-submit token: the
  same value in a cookie and in the form. The value is ``issued.nonce.mac``, signed by the server and
  valid for :attr:`CsrfTokens.form_ttl_s`, so a value a client made up (or an old one) is refused.

The key is derived from the keyring's data keys under a label of its own (no key is used for two
purposes). Every data key in the keyring is accepted when checking, the active one signs: after
``tiepdan keys rotate`` and a restart, the tokens of pages already open stay valid.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence

from evidence import Keyring

__all__ = ["CsrfTokens", "MAX_TOKEN_LENGTH"]

MAX_TOKEN_LENGTH = 128
_LABEL = b"tiepdan/csrf/v1"


def _mac(key: bytes, label: bytes, value: str) -> str:
    return hmac.new(key, label + b"\x00" + value.encode("utf-8"), hashlib.sha256).hexdigest()


class CsrfTokens:
    """Makes and checks CSRF tokens with ``keys`` (the first signs, every one verifies)."""

    def __init__(self, keys: Sequence[bytes], *, form_ttl_s: int = 12 * 3600) -> None:
        if not keys or any(len(k) < 32 for k in keys):
            raise ValueError("CSRF keys must be at least 256 bits")
        self._keys = tuple(keys)
        self.form_ttl_s = form_ttl_s

    @classmethod
    def from_keyring(cls, keyring: Keyring, *, form_ttl_s: int = 12 * 3600) -> CsrfTokens:
        active = keyring.active_data
        others = [k for k in keyring.data_keys() if k.kid != active.kid]
        return cls([cls._derive(k.secret) for k in (active, *others)], form_ttl_s=form_ttl_s)

    @staticmethod
    def _derive(secret: bytes) -> bytes:
        return hmac.new(secret, _LABEL, hashlib.sha256).digest()

    # -- signed-in requests -------------------------------------------------------------------------

    def session_token(self, session_id: str) -> str:
        """The token of the login session ``session_id`` (what its pages send back)."""
        return _mac(self._keys[0], b"session", session_id)

    def session_token_valid(self, provided: str | None, session_id: str) -> bool:
        if not _plausible(provided) or not session_id or len(session_id) > MAX_TOKEN_LENGTH:
            return False
        assert provided is not None
        return _any_equal(provided, (_mac(k, b"session", session_id) for k in self._keys))

    # -- before a session (double submit) -----------------------------------------------------------

    def new_form_token(self, now: float) -> str:
        body = f"{int(now)}.{secrets.token_urlsafe(24)}"
        return f"{body}.{_mac(self._keys[0], b'form', body)}"

    def form_token_valid(self, token: str | None, now: float) -> bool:
        """True for a token this server signed less than ``form_ttl_s`` ago."""
        issued = self._form_issued_at(token)
        return issued is not None and issued - 60 <= now < issued + self.form_ttl_s

    def form_token_fresh(self, token: str | None, now: float) -> bool:
        """Valid with at least half its lifetime left (worth reusing in a new form)."""
        issued = self._form_issued_at(token)
        return issued is not None and issued - 60 <= now < issued + self.form_ttl_s / 2

    def _form_issued_at(self, token: str | None) -> int | None:
        if not _plausible(token):
            return None
        assert token is not None
        body, _, mac = token.rpartition(".")
        issued, _, nonce = body.partition(".")
        if not issued.isdigit() or not nonce:
            return None
        if not _any_equal(mac, (_mac(k, b"form", body) for k in self._keys)):
            return None
        return int(issued)


def _plausible(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH and (token or "").isascii()


def _any_equal(provided: str, expected: Iterable[str]) -> bool:
    ok = False
    for value in expected:  # every key is tried, so the time does not tell which one matched
        ok |= hmac.compare_digest(provided.encode("ascii"), value.encode("ascii"))
    return ok
