"""JWT access tokens for services, bots and the live-room WebSocket.

Tokens are signed with the keyring's active Ed25519 key (algorithm pinned to ``EdDSA``; the
``kid`` header names the key). A verifier requires ``exp iat iss aud jti sub`` and the ``kid``
header, and accepts a retired key only for ``retired_grace`` seconds after its retirement (the
longest token lifetime), so that tokens signed before a rotation keep working until they expire
and no longer. Importing this module loads neither aiortc nor fastapi.

Scope: every token is for one :data:`Audience`. ``"ws"`` (the live room, ``/ws``: what pages, bots
and tests get) has ``aud = "<audience>:ws"``; ``"api"`` (the REST API, services only) has
``aud = "<audience>:api"``, ``<audience>`` being :attr:`TokenOptions.audience`. A verifier asks for
one audience, so a live-room token is refused by the REST API and a service token by ``/ws``
(``token_audience``).

Revocation: a token minted for a console login session carries ``sid``, an opaque reference to
that session (``room_console.accounts.token_sid``; never the cookie, never the table's key).
The verifier is stateless and does not look at it: the REST API checks the session in the
database, the room server checks its denylist of ended sessions (``docs/protocol.md`` §1).

Time: with ``leeway_s`` as the clock-skew allowance, a token is refused when it expired
(``exp < now - leeway``: ``token_expired``), when it was issued in the future
(``iat > now + leeway``: ``token_future``), or when its lifetime exceeds ``max_ttl_s`` counted from
``iat`` or from now (``exp - iat > max_ttl`` or ``exp - now > max_ttl + leeway``:
``token_lifetime``), so no token stays valid longer than ``max_ttl_s + leeway`` from any moment.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evidence import Keyring, UnknownKey

from .errors import TokenError
from .grants import Grant, Role, grants_for

__all__ = ["Claims", "TokenIssuer", "TokenVerifier", "TokenOptions", "ALGORITHM", "Audience", "AUDIENCES"]

ALGORITHM = "EdDSA"
TokenKind = Literal["access", "resume"]
Audience = Literal["ws", "api"]
"""What a token is for: ``ws`` the live room (``/ws``), ``api`` the REST API (``/api``)."""
AUDIENCES: tuple[Audience, ...] = get_args(Audience)


class Claims(BaseModel):
    """The verified content of a token."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str = Field(min_length=1, max_length=200)
    iss: str
    aud: str
    exp: int
    iat: int
    jti: str = Field(min_length=8, max_length=100)
    kind: TokenKind = "access"
    roles: tuple[Role, ...] = ()
    unit: str | None = None
    room: str | None = None
    venue: str | None = None
    name: str | None = Field(default=None, max_length=200)
    participant: str | None = None  # resume tokens: the participant they resume
    sid: str | None = Field(default=None, min_length=8, max_length=64)  # the console login session, opaque

    @property
    def grants(self) -> frozenset[Grant]:
        return grants_for(self.roles)

    def has(self, grant: Grant) -> bool:
        return grant in self.grants


@dataclass(frozen=True)
class TokenOptions:
    issuer: str = "tiepdan"
    audience: str = "tiepdan"
    """The deployment's name: the ``aud`` claim is this plus ``:ws`` or ``:api`` (:meth:`aud`)."""
    ttl_s: int = 600
    max_ttl_s: int = 24 * 3600
    leeway_s: int = 5
    """The clock-skew allowance between the issuing and the verifying machine."""
    retired_grace_s: int = 24 * 3600

    def aud(self, audience: Audience) -> str:
        """The ``aud`` claim of tokens for ``audience``."""
        if audience not in AUDIENCES:
            raise ValueError(f"unknown token audience {audience!r}")
        return f"{self.audience}:{audience}"


class TokenIssuer:
    def __init__(self, keyring: Keyring, options: TokenOptions) -> None:
        self._keyring = keyring
        self._options = options

    def issue(
        self,
        sub: str,
        *,
        roles: tuple[Role, ...] | list[Role] = (),
        unit: str | None = None,
        room: str | None = None,
        venue: str | None = None,
        name: str | None = None,
        ttl_s: int | None = None,
        kind: TokenKind = "access",
        participant: str | None = None,
        audience: Audience = "ws",
        sid: str | None = None,
        now: float | None = None,
    ) -> str:
        """A signed token for ``audience`` (default the live room); ``sid`` names the console login
        session it was minted for (it then dies with that session)."""
        ttl = self._options.ttl_s if ttl_s is None else ttl_s
        if not 0 < ttl <= self._options.max_ttl_s:
            raise ValueError(f"token lifetime must be between 1 and {self._options.max_ttl_s} seconds")
        issued = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "sub": sub,
            "iss": self._options.issuer,
            "aud": self._options.aud(audience),
            "iat": issued,
            "exp": issued + ttl,
            "jti": secrets.token_urlsafe(12),
            "kind": kind,
            "roles": [Role(r).value for r in roles],
        }
        for claim, value in (("unit", unit), ("room", room), ("venue", venue), ("name", name),
                             ("participant", participant), ("sid", sid)):
            if value is not None:
                payload[claim] = value
        key = self._keyring.active_signing
        return jwt.encode(payload, key.private_pem(), algorithm=ALGORITHM, headers={"kid": key.kid})


class TokenVerifier:
    def __init__(self, keyring: Keyring, options: TokenOptions) -> None:
        self._keyring = keyring
        self._options = options

    def verify(self, token: str, *, kind: TokenKind = "access", audience: Audience = "ws",
               now: float | None = None) -> Claims:
        """Verify a ``kind`` token for ``audience`` (default the live room) and return its claims, or
        raise :class:`TokenError` with a stable code (:data:`signaling.errors.TOKEN_CODES`).

        ``sid`` is returned, not checked: the caller knows which login sessions ended."""
        if not token or len(token) > 8192:
            raise TokenError("token_malformed", "token missing or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("token_malformed", "token is not a JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenError("token_algorithm", "token algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token_malformed", "token has no key id")
        try:
            key = self._keyring.signing_key(kid)
        except UnknownKey as exc:
            raise TokenError("token_unknown_key", "token signed with an unknown key") from exc
        current = time.time() if now is None else now
        if key.retired_at is not None:
            retired = datetime.fromisoformat(key.retired_at).timestamp()
            if current > retired + self._options.retired_grace_s:
                raise TokenError("token_key_retired", "token signed with a retired key")
        try:
            # Expiry is checked below against ``current``, so that a fake clock works in tests.
            payload = jwt.decode(
                token,
                key.public_pem(),
                algorithms=[ALGORITHM],
                audience=self._options.aud(audience),
                issuer=self._options.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "jti", "sub"], "verify_exp": False,
                         "verify_iat": False},
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenError("token_audience", "token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("token_issuer", "token from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("token_malformed", f"token lacks a required claim: {exc.claim}") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("token_signature", "token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("token_invalid", "token is invalid") from exc
        exp = payload.get("exp")
        if not isinstance(exp, int) or current > exp + self._options.leeway_s:
            raise TokenError("token_expired", "token expired")
        try:
            claims = Claims.model_validate(payload)
        except ValidationError as exc:
            raise TokenError("token_malformed", "token claims are malformed") from exc
        leeway, longest = self._options.leeway_s, self._options.max_ttl_s
        if claims.iat > current + leeway:
            raise TokenError("token_future", "token issued in the future")
        if claims.exp - claims.iat > longest or claims.exp - current > longest + leeway:
            raise TokenError("token_lifetime", "token lifetime exceeds the maximum")
        if claims.kind != kind:
            raise TokenError("token_kind", f"a {claims.kind} token cannot be used here")
        return claims
