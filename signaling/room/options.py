"""Options of the room server (frozen; ``tiepdan.settings`` maps the environment onto them)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RoomOptions"]


@dataclass(frozen=True)
class RoomOptions:
    max_frame_bytes: int = 64 * 1024
    """A larger frame closes the connection with 1009: protects the parser and the room's memory."""
    rate_per_s: float = 20.0
    """Sustained client messages per second per connection (token bucket refill rate)."""
    rate_burst: int = 40
    """Bucket size: a burst of this many messages is accepted at once."""
    flood_close_after: int = 40
    """Messages dropped in a row (``rate_limited``) before the connection is closed with 1008."""
    reconnect_grace_s: float = 30.0
    """How long a lost participant keeps its place (floor, hand, lobby) for a resume."""
    outbound_queue: int = 256
    """Messages queued for one connection; a reader that falls this far behind is disconnected
    (4008) rather than slowing the room."""
    send_timeout_s: float = 10.0
    """One frame that cannot be written within this time marks the reader as too slow."""
    join_timeout_s: float = 10.0
    """Time between accept and ``join`` before the connection is closed with 4000."""
    refresh_lead_s: float = 60.0
    """``token.expiring`` is sent this long before the access token expires (at most half its life)."""
    resume_token_ttl_s: int = 6 * 3600
    """Lifetime of a resume token; it only works while its participant is in the room anyway."""
    sweep_interval_s: float = 0.5
    """How often lost participants past the grace are removed, and the store's denylists read: a node
    learns that another node disabled an account or ended a login session within this time."""
    disabled_memory_s: float = 24 * 3600.0
    """How long a disabled account, or an ended console login session, is refused new connections and
    resumes (at least the longest token lifetime: ``TokenOptions.max_ttl_s``, and the resume tokens')."""
    consumer_group: str = "room-server"
    """Bus consumer group for session and account events."""
    node: str = "node-1"
    """This media node's name (bus consumer name)."""
    close_timeout_s: float = 2.0
    """How long closing one connection may take before it is abandoned."""
