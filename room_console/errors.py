"""Errors of the console, each stating its condition.

Every error carries ``message_key``: the catalogue entry a person reads (in Vietnamese); the
English text is for developers and never contains a name, a password or a token.
:func:`http_status` is the one place that maps an error to an HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping

from .i18n import duration_text, size_text

__all__ = [
    "ConsoleError", "InvalidCredentials", "LoginRateLimited", "InvalidUsername", "InvalidDisplayName",
    "WeakPassword", "UsernameTaken", "UserNotFound", "InvitationInvalid", "InvalidRoles", "NotSignedIn",
    "Forbidden", "CsrfRejected", "BodyTooLarge", "http_status",
]


class ConsoleError(Exception):
    """Base of every console error. ``params`` fill the placeholders of the message (never personal data)."""

    message_key = "error.generic"

    def __init__(self, *args: object, params: Mapping[str, object] | None = None) -> None:
        super().__init__(*args)
        self.params: dict[str, object] = dict(params or {})


class InvalidCredentials(ConsoleError):
    """Unknown user, wrong password or disabled account (deliberately one error: no enumeration)."""

    message_key = "login.error.invalid"


class LoginRateLimited(ConsoleError):
    """Too many failed logins for this username from this address, or from this address for any name:
    the next attempt must wait ``retry_after`` seconds."""

    message_key = "login.error.rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, params={"wait": duration_text(retry_after)})
        self.retry_after = retry_after


class InvalidUsername(ConsoleError):
    message_key = "account.error.username"


class InvalidDisplayName(ConsoleError):
    message_key = "account.error.name"


class WeakPassword(ConsoleError):
    message_key = "account.error.password"


class UsernameTaken(ConsoleError):
    message_key = "account.error.username_taken"


class UserNotFound(ConsoleError):
    message_key = "account.error.not_found"


class InvalidRoles(ConsoleError):
    message_key = "account.error.roles"


class InvitationInvalid(ConsoleError):
    """The invitation link is unknown, already used or expired (one error: no oracle)."""

    message_key = "invite.error.invalid"


class NotSignedIn(ConsoleError):
    message_key = "error.401"


class Forbidden(ConsoleError):
    message_key = "error.403"


class CsrfRejected(ConsoleError):
    message_key = "error.csrf"


class BodyTooLarge(ConsoleError):
    """The request body is (or declares to be) larger than its route accepts."""

    message_key = "error.body_too_large"

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, params={"limit": size_text(limit)})
        self.limit = limit


_STATUS: dict[type[ConsoleError], int] = {
    InvalidCredentials: 401,
    LoginRateLimited: 429,
    InvalidUsername: 422,
    InvalidDisplayName: 422,
    WeakPassword: 422,
    InvalidRoles: 422,
    UsernameTaken: 409,
    UserNotFound: 404,
    InvitationInvalid: 410,
    NotSignedIn: 401,
    Forbidden: 403,
    CsrfRejected: 403,
    BodyTooLarge: 413,
}


def http_status(error: ConsoleError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]  # type: ignore[index]
    return 400
