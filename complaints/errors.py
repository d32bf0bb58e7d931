"""The exception hierarchy of the complaints package.

Every message is Vietnamese (it may reach a person through the UI) and never contains personal data:
no ID number, name or address appears in an exception message (CONVENTIONS.md rule 14). Each error also
carries a stable English ``code`` for programs and tests.
"""

from __future__ import annotations


class ComplaintsError(Exception):
    """Base of every error raised by the complaints package."""

    code: str = "complaints_error"

    def __init__(self, message_vi: str, *, code: str | None = None) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi
        if code is not None:
            self.code = code


class UnknownEnumValue(ComplaintsError, ValueError):
    """A value that is not a member of a domain enumeration."""

    code = "unknown_enum_value"


class InvalidPersonalId(ComplaintsError, ValueError):
    """A personal ID number (CCCD, CMND, passport) that fails validation."""

    code = "invalid_personal_id"


class InvalidTrackingCode(ComplaintsError, ValueError):
    """A case tracking code (mã tra cứu) that is malformed or fails its check character."""

    code = "invalid_tracking_code"


class InvalidDelegation(ComplaintsError, ValueError):
    """A group delegation whose representatives break LTCD Điều 29."""

    code = "invalid_delegation"


class CalendarError(ComplaintsError, ValueError):
    """Invalid working-day calendar data or arguments."""

    code = "calendar_error"


class DeadlineError(ComplaintsError, ValueError):
    """A deadline that cannot be computed as asked (e.g. more extensions than the law allows)."""

    code = "deadline_error"


class IdentityAccessDenied(ComplaintsError, PermissionError):
    """The caller lacks the grant to read or write a sealed identity (the attempt is audited)."""

    code = "forbidden"


class NotAuthorized(ComplaintsError, PermissionError):
    """The caller's grants do not allow this use of the complaint database (checked by the service layer,
    :mod:`complaints.service`, whoever calls it: the console, the CLI, the minutes writer)."""

    code = "forbidden"


class IdentityKeyError(ComplaintsError):
    """A sealed identity cannot be opened: the keyring lacks its key, or the value was altered."""

    code = "identity_key"


class InvalidInput(ComplaintsError, ValueError):
    """A field of a request that breaks a rule (a future date, an empty text, a file too large…).

    ``field`` names the offending field (English, as in the API) when there is one.
    """

    code = "invalid_input"

    def __init__(self, message_vi: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message_vi, code=code)
        self.field = field


class NotFound(ComplaintsError, LookupError):
    """The record asked for does not exist."""

    code = "not_found"


class StaleVersion(ComplaintsError):
    """Somebody else changed the record since it was read (optimistic locking)."""

    code = "conflict"
