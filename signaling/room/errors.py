"""Errors of the room server, each stating its condition.

::

    SignalingError (signaling.errors)
     └── RoomError
          ├── RoomClosed          the room was closed (session over) or never opened
          ├── AdmissionRefused    a connection cannot be accepted: ``code`` and HTTP ``status``
          └── StoreError          the room-state store failed (translated from redis)

:func:`denial_status` maps a refusal code to the HTTP status of the WebSocket denial response;
close codes after ``accept`` are :class:`signaling.protocol.CloseCode`.
"""

from __future__ import annotations

from ..errors import SignalingError
from ..protocol import ERROR_TEXT_VI, ErrorCode

__all__ = ["RoomError", "RoomClosed", "AdmissionRefused", "StoreError", "denial_status", "denial_text"]


class RoomError(SignalingError):
    """Base of every room-server error."""


class RoomClosed(RoomError):
    """The room is closed; no participant may join or act."""


class AdmissionRefused(RoomError):
    """A WebSocket cannot be accepted; ``code`` is stable (an :class:`ErrorCode` or a token code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    @property
    def status(self) -> int:
        return denial_status(self.code)


class StoreError(RoomError):
    """The room-state store could not save or load."""


_STATUS: dict[str, int] = {
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.WRONG_ROOM: 403,
    ErrorCode.VENUE_NOT_IN_ROOM: 403,
    ErrorCode.ACCOUNT_DISABLED: 403,
    ErrorCode.ROOM_UNKNOWN: 404,
    ErrorCode.ROOM_CLOSED: 410,
    ErrorCode.BAD_MESSAGE: 400,
    ErrorCode.INTERNAL: 503,
}


def denial_status(code: str) -> int:
    """HTTP status of the denial response for ``code`` (every token problem is 401)."""
    if code.startswith("token_"):
        return 401
    return _STATUS.get(code, 403)


def denial_text(code: str) -> str:
    """The Vietnamese text shown for a refusal code."""
    if code == ErrorCode.TOKEN_EXPIRED:
        return ERROR_TEXT_VI[ErrorCode.TOKEN_EXPIRED]
    if code.startswith("token_"):
        return ERROR_TEXT_VI[ErrorCode.TOKEN_INVALID]
    try:
        return ERROR_TEXT_VI[ErrorCode(code)]
    except ValueError:
        return ERROR_TEXT_VI[ErrorCode.FORBIDDEN]
