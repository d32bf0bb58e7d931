"""Signaling: the published light modules (tokens, grants, events, bus, protocol, supervisor, room_state).

The room server lives in ``signaling.room`` and is imported by the composition root only.
Importing this package loads neither aiortc nor fastapi.
"""

from .errors import BusError, NotAuthorized, SignalingError, SupervisorClosed, TokenError
from .grants import ROLE_GRANTS, Grant, Role, grants_for
from .supervisor import Backoff, Supervised, Supervisor, TaskStatus
from .tokens import Claims, TokenIssuer, TokenOptions, TokenVerifier

__all__ = [
    "ROLE_GRANTS",
    "Backoff",
    "BusError",
    "Claims",
    "Grant",
    "NotAuthorized",
    "Role",
    "SignalingError",
    "Supervised",
    "Supervisor",
    "SupervisorClosed",
    "TaskStatus",
    "TokenError",
    "TokenIssuer",
    "TokenOptions",
    "TokenVerifier",
    "grants_for",
]
