"""Errors of the console, each stating its condition.

Every error carries ``message_key``: the catalogue entry a person reads (in Vietnamese); the
English text is for developers and never contains a name, a password or a token.
:func:`http_status` is the one place that maps an error to an HTTP status.
"""

from __future__ import annotations

__all__ = [
    "ConsoleError", "InvalidCredentials", "LoginRateLimited", "InvalidUsername", "InvalidDisplayName",
    "WeakPassword", "UsernameTaken", "UserNotFound", "InvitationInvalid", "InvalidRoles", "NotSignedIn",
    "Forbidden", "CsrfRejected", "http_status",
]


class ConsoleError(Exception):
    """Base of every console error."""

    message_key = "error.generic"


class InvalidCredentials(ConsoleError):
    """Unknown user, wrong password or disabled account (deliberately one error: no enumeration)."""

    message_key = "login.error.invalid"


class LoginRateLimited(ConsoleError):
    """Too many failed logins for this username or from this address within the window."""

    message_key = "login.error.rate_limited"


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
}


def http_status(error: ConsoleError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]  # type: ignore[index]
    return 400
