"""Errors of the signaling package, each stating its condition."""

from typing import Literal, get_args


class SignalingError(Exception):
    """Base of every signaling error."""


TokenCode = Literal[
    "token_malformed",     # not a JWT, too long, a required claim or the ``kid`` header missing, bad claims
    "token_algorithm",     # not signed with the pinned algorithm (EdDSA)
    "token_unknown_key",   # the ``kid`` names no key of the keyring
    "token_key_retired",   # signed with a key retired longer ago than the grace
    "token_signature",     # the signature does not verify
    "token_audience",      # ``aud`` is not the audience asked for (``/ws`` or the REST API)
    "token_issuer",        # ``iss`` is another issuer's
    "token_invalid",       # any other JWT failure (e.g. a payload that does not decode, ``nbf`` ahead)
    "token_expired",       # ``exp`` has passed (beyond the clock-skew allowance)
    "token_future",        # ``iat`` lies ahead of now by more than the clock-skew allowance
    "token_lifetime",      # ``exp - iat``, or ``exp - now``, exceeds the longest lifetime
    "token_kind",          # an access token where a resume token belongs, or the reverse
    "token_revoked",       # the console login session the token was minted for has ended
]
"""Why a token was refused: stable codes that clients and tests may rely on (docs/protocol.md §1)."""

TOKEN_CODES: frozenset[str] = frozenset(get_args(TokenCode))


class TokenError(SignalingError):
    """A token cannot be accepted; ``code`` is the stable machine-readable reason."""

    def __init__(self, code: TokenCode, message: str) -> None:
        super().__init__(message)
        self.code: TokenCode = code


class NotAuthorized(SignalingError):
    """The caller lacks the grant for what it asked."""


class BusError(SignalingError):
    """The event bus could not publish or deliver."""


class OutboxError(SignalingError):
    """The outbox could not store or relay an event."""


class SupervisorClosed(SignalingError):
    """The supervisor is closed: it starts no task any more."""
