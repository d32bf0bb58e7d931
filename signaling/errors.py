"""Errors of the signaling package, each stating its condition."""


class SignalingError(Exception):
    """Base of every signaling error."""


class TokenError(SignalingError):
    """A token cannot be accepted; ``code`` is the stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotAuthorized(SignalingError):
    """The caller lacks the grant for what it asked."""


class BusError(SignalingError):
    """The event bus could not publish or deliver."""


class OutboxError(SignalingError):
    """The outbox could not store or relay an event."""
