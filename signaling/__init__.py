"""Signaling: the published light modules (tokens, grants, events, bus, protocol).

The room server lives in ``signaling.room`` and is imported by the composition root only.
Importing this package loads neither aiortc nor fastapi.
"""

from .errors import BusError, NotAuthorized, SignalingError, TokenError
from .grants import ROLE_GRANTS, Grant, Role, grants_for
from .tokens import Claims, TokenIssuer, TokenOptions, TokenVerifier

__all__ = [
    "ROLE_GRANTS",
    "BusError",
    "Claims",
    "Grant",
    "NotAuthorized",
    "Role",
    "SignalingError",
    "TokenError",
    "TokenIssuer",
    "TokenOptions",
    "TokenVerifier",
    "grants_for",
]
