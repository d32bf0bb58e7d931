"""The pure rule of what a venue's link event does to the queue: pause only the case of the lost venue,
availability for every venue, and nothing from stale, repeated or foreign events."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from schedules import VIETNAM_TZ
from schedules.call_order import Ticket, TicketStatus
from schedules.errors import InvalidArgument
from schedules.link_loss import LinkChange, LinkDecision, LinkOutcome, LinkState, decide_link_change
from schedules.queue import QueueState

pytestmark = pytest.mark.unit

OPENED = datetime(2026, 12, 10, 8, 0, tzinfo=VIETNAM_TZ)
AT = OPENED + timedelta(hours=1)
VENUES = frozenset({"tru-so-tinh", "xa-tien-du", "phuong-que-vo"})

WAITING = QueueState(session_id="phien", tickets=(
    Ticket("t1", 1, "xa-tien-du", "c1"), Ticket("t2", 2, "phuong-que-vo", "c2")))
CALLING = replace(WAITING, current=1, call_seq=1, tickets=(
    Ticket("t1", 1, "xa-tien-du", "c1", status=TicketStatus.CALLED, last_call_seq=1),
    Ticket("t2", 2, "phuong-que-vo", "c2")))
PAUSED = replace(CALLING, paused=True, pause_no=1)
DOWN = replace(CALLING, unavailable_venues=frozenset({"xa-tien-du"}))
DOWN_PAUSED = replace(DOWN, paused=True, pause_no=1)
CLOSED = replace(WAITING, closed=True)

LOST, RESTORED = LinkState.LOST, LinkState.RESTORED
PAUSE = LinkDecision(LinkOutcome.PAUSED, available=False, pause=True, record=True)
UNAVAILABLE = LinkDecision(LinkOutcome.UNAVAILABLE, available=False, record=True)
AVAILABLE = LinkDecision(LinkOutcome.AVAILABLE, available=True, record=True)
UNCHANGED = LinkDecision(LinkOutcome.UNCHANGED, record=True)
STALE = LinkDecision(LinkOutcome.STALE)
NOT_LIVE = LinkDecision(LinkOutcome.NOT_LIVE)
NOT_IN_SESSION = LinkDecision(LinkOutcome.NOT_IN_SESSION)

# (what, queue, venue, link, in progress, live, last applied, expected)
CASES = [
    ("the called venue lost: pause", CALLING, "xa-tien-du", LOST, True, True, None, PAUSE),
    ("another venue lost: held, no pause", CALLING, "phuong-que-vo", LOST, True, True, None, UNAVAILABLE),
    ("the main venue lost while a commune is heard", CALLING, "tru-so-tinh", LOST, True, True, None, UNAVAILABLE),
    ("lost with nobody called", WAITING, "xa-tien-du", LOST, True, True, None, UNAVAILABLE),
    ("lost during the roll call (open): no pause", CALLING, "xa-tien-du", LOST, False, True, None, UNAVAILABLE),
    ("the called venue lost while the chair paused", PAUSED, "xa-tien-du", LOST, True, True, None,
     LinkDecision(LinkOutcome.UNAVAILABLE, available=False, record=True)),
    ("lost twice: the second changes nothing", DOWN, "xa-tien-du", LOST, True, True, AT - timedelta(minutes=1),
     UNCHANGED),
    ("lost again after the chair resumed: no second pause", DOWN, "xa-tien-du", LOST, True, True, None, UNCHANGED),
    ("restored: available, still paused", DOWN_PAUSED, "xa-tien-du", RESTORED, True, True,
     AT - timedelta(seconds=8), AVAILABLE),
    ("restored before lost", CALLING, "xa-tien-du", RESTORED, True, True, None, UNCHANGED),
    ("lost older than the restore applied", CALLING, "xa-tien-du", LOST, True, True, AT + timedelta(seconds=2), STALE),
    ("the same instant again", CALLING, "xa-tien-du", LOST, True, True, AT, STALE),
    ("an event from before the session opened", CALLING, "xa-tien-du", LOST, True, True, None, STALE),
    ("a venue not in the session", CALLING, "xa-gia-binh", LOST, True, True, None, NOT_IN_SESSION),
    ("a session not live", CALLING, "xa-tien-du", LOST, True, False, None, NOT_LIVE),
    ("a queue closed meanwhile", CLOSED, "xa-tien-du", LOST, False, True, None, NOT_LIVE),
]


@pytest.mark.parametrize(("what", "queue", "venue", "link", "in_progress", "live", "last", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_a_link_event_pauses_only_the_case_of_the_lost_venue_and_never_twice(
    what: str, queue: QueueState, venue: str, link: LinkState, in_progress: bool, live: bool,
    last: datetime | None, expected: LinkDecision,
) -> None:
    at = OPENED - timedelta(minutes=1) if what.startswith("an event from before") else AT
    change = LinkChange(venue=venue, state=link, at=at)
    decision = decide_link_change(queue, change, live=live, in_progress=in_progress, session_venues=VENUES,
                                  opened_at=OPENED, last_applied_at=last)
    assert decision == expected, what


def test_a_restore_never_resumes_and_a_later_loss_after_it_pauses_again() -> None:
    restored = decide_link_change(DOWN_PAUSED, LinkChange(venue="xa-tien-du", state=RESTORED, at=AT),
                                  live=True, in_progress=True, session_venues=VENUES, opened_at=OPENED,
                                  last_applied_at=AT - timedelta(seconds=30))
    assert restored.available is True and restored.pause is False
    # the chair resumed; the link drops again a minute later: a new loss pauses again
    resumed = replace(CALLING, pause_no=1)
    again = decide_link_change(resumed, LinkChange(venue="xa-tien-du", state=LOST, at=AT + timedelta(minutes=1)),
                               live=True, in_progress=True, session_venues=VENUES, opened_at=OPENED,
                               last_applied_at=AT)
    assert again == PAUSE


def test_a_link_change_without_a_time_zone_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="múi giờ"):
        decide_link_change(CALLING, LinkChange(venue="xa-tien-du", state=LOST, at=datetime(2026, 12, 10, 9)),
                           live=True, in_progress=True, session_venues=VENUES, opened_at=OPENED,
                           last_applied_at=None)
