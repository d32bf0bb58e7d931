"""What a venue's link going down or coming back does to a session's queue: a pure rule.

Theory of operation
-------------------
The room server watches the media each venue sends; when it stops for
:data:`~schedules.queue.LINK_LOSS_PAUSE_AFTER` (5 s, measured on the frames arriving, see
``signaling.room.health.LinkMonitor``) it announces ``room.venue_link_lost``, and
``room.venue_link_restored`` when media flows again. An online reception is legal only while it runs
"by voice and image, online, continuously" (QĐ 748/QĐ-TTCP, domain.md R18), so:

====================================  ==============================================================
the event                              effect on the queue
====================================  ==============================================================
lost, the venue of the case being      the venue is unavailable (its waiting tickets are held) and
received, the case not paused yet      the case pauses (``case.paused``, reason ``link_lost``)
lost, the main venue (the chair's),    the same: the main venue is unavailable and the case pauses,
a case being received, not paused      whichever venue the citizen speaks from (see below)
lost, any other venue (or no case,     the venue is unavailable; no pause
or the case already paused)
restored (the room server's event,     the venue is available again; a paused case stays paused
or the chair's «venue is back»)        until the chair resumes it
the venue is already so (lost twice,   nothing changes (``unchanged``)
restored before lost)
older than the last link event         ignored (``stale``): a late or redelivered event never undoes
applied for that venue, or than the    a newer one
session's opening
a room that is not a live session,     ignored: nothing to pause
a closed queue, a venue not in the
session
====================================  ==============================================================

The main venue: R18 requires every party "at the same time" and the reception "online, continuously".
The chair receives from the main venue; when its link is lost the chair no longer sees or hears the
citizen (and the citizen no longer the chair), so the reception of the case is interrupted exactly as when
the citizen's venue drops: the case pauses (reason ``link_lost``) and is resumed by the chair. The main
venue's own waiting tickets are held like any lost venue's.

Availability is tracked while the session is open (the roll call) and in progress; a pause only while
it is in progress. Nothing here reads the clock or does I/O: the caller gives the queue, the session's
venues and state, and when the last link event of the venue was applied.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ._clock import require_aware
from .queue import QueueState

__all__ = ["LinkChange", "LinkDecision", "LinkOutcome", "LinkState", "decide_link_change"]


class LinkState(StrEnum):
    LOST = "lost"
    RESTORED = "restored"


class LinkOutcome(StrEnum):
    """What a link event did (logged and audited by this value)."""

    PAUSED = "paused"                  # unavailable, and the case being received paused
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"
    UNCHANGED = "unchanged"            # already so: lost twice, restored before lost
    STALE = "stale"                    # older than what was applied for the venue (or the session's opening)
    NOT_LIVE = "not_live"              # no live session of that id, or its queue closed meanwhile
    NOT_IN_SESSION = "not_in_session"  # the venue is not one of the session's


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkChange:
    """A venue's link went down (``lost``) or came back (``restored``) at ``at`` (the room server's time)."""

    venue: str
    state: LinkState
    at: datetime


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """``available``: the venue's availability to record (None: leave it); ``pause``: pause the case being
    received; ``record``: remember ``at`` as the venue's last applied link event (for the order check)."""

    outcome: LinkOutcome
    available: bool | None = None
    pause: bool = False
    record: bool = False


def decide_link_change(
    queue: QueueState, change: LinkChange, *, live: bool, in_progress: bool, session_venues: Collection[str],
    opened_at: datetime | None, last_applied_at: datetime | None, main_venue: str | None = None,
) -> LinkDecision:
    """The effect of ``change`` on ``queue`` (see the module's table).

    ``live``: the session is open or in progress; ``in_progress``: citizens are being received (a pause
    applies); ``opened_at``: when the session opened (events before it are stale); ``last_applied_at``: the
    time of the last link event applied for this venue in this session, if any; ``main_venue``: the session's
    main venue (the chair's), whose loss pauses the case being received wherever its citizen is.
    """
    at = require_aware(change.at)
    if not live or queue.closed:
        return LinkDecision(LinkOutcome.NOT_LIVE)
    if change.venue not in session_venues:
        return LinkDecision(LinkOutcome.NOT_IN_SESSION)
    if (opened_at is not None and at < require_aware(opened_at)) or (
            last_applied_at is not None and at <= require_aware(last_applied_at)):
        return LinkDecision(LinkOutcome.STALE)
    down = change.venue in queue.unavailable_venues
    if change.state is LinkState.RESTORED:
        if not down:
            return LinkDecision(LinkOutcome.UNCHANGED, record=True)
        return LinkDecision(LinkOutcome.AVAILABLE, available=True, record=True)
    if down:
        return LinkDecision(LinkOutcome.UNCHANGED, record=True)
    current = queue.current_ticket
    hearing = current is not None and change.venue in (current.venue, main_venue)
    if in_progress and hearing and not queue.paused:
        return LinkDecision(LinkOutcome.PAUSED, available=False, pause=True, record=True)
    return LinkDecision(LinkOutcome.UNAVAILABLE, available=False, record=True)
