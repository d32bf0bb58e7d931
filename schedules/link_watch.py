"""The scheduler's watch on the venues' links: ``room.venue_link_lost`` / ``room.venue_link_restored`` applied
to the session's queue by the pure rule of :mod:`schedules.link_loss`.

* :func:`record_venue_link` is the service function (grant ``call_queue``; in the caller's transaction): it
  takes the queue row, reads the session, its venues and the venue's last applied link event (from the
  audit log: ``queue.venue_link`` rows of the session), applies the rule, saves the venue's availability
  with one audit row, and pauses the case being received through :func:`schedules.calls.pause` (reason
  ``link_lost``: ``case.paused`` in the outbox, its audit row). Events that change nothing are not errors:
  their :class:`~schedules.link_loss.LinkOutcome` says why.
* :func:`confirm_venue_back` is the chair's «venue is back» (grant ``moderate``, the chair's): when the chair
  sees that a venue marked lost is fine (its media came back by a path that announced nothing, or the link
  watch missed the restore), the venue is available again, with an audit row naming who did it. Like a
  restore it never resumes a paused case. Its audit row is the venue's last applied link event, so a loss
  reported earlier that arrives late changes nothing.
* :func:`held_for_link_loss` lists the venues marked lost in the live sessions: the composition root gives
  them to the room server at start, so that a venue's first media after a restart is announced back.
* :func:`link_watch_handler` is the thin bus consumer: it passes only the two link events on, each once
  (:func:`signaling.consumers.idempotent`, by ``event.key``), and wakes the outbox relay after the commit.
  :func:`watch_venue_links` consumes the consumer group :data:`LINK_WATCH_GROUP` until the bus closes (a
  supervised loop of the processes where the scheduler runs: embedded and control). With Redis, two control
  processes share the group, so each event is handled by one of them; the idempotency key and the queue
  row lock make a redelivery or a race apply it once.

Each pause is logged with the session, the venue and the ticket number (never a name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.tables import audit_events
from signaling.bus import Bus, Handler
from signaling.consumers import idempotent
from signaling.errors import BusError
from signaling.events import AnyEvent, Event, VenueLinkLost, VenueLinkRestored
from signaling.grants import Grant

from . import calls
from . import queue as pure
from ._clock import require_aware
from ._service import SLUG, Clock, audit, check_slug, now_of, require_grant
from .errors import ConcurrentChange, InvalidArgument, QueueClosed, QueueError, UnknownSession, UnknownVenue
from .link_loss import LinkChange, LinkDecision, LinkOutcome, LinkState, decide_link_change
from .queue import PauseReason
from .queue_store import claim_queue, load_queue_state, save_queue_state
from .session_state import SessionState
from .tables import reception_sessions, session_venues

__all__ = [
    "LINK_WATCH_ACTOR",
    "LINK_WATCH_CONSUMER",
    "LINK_WATCH_GROUP",
    "LinkResult",
    "confirm_venue_back",
    "held_for_link_loss",
    "link_watch_handler",
    "record_venue_link",
    "watch_venue_links",
]

log = logging.getLogger("schedules.link_watch")

#: The bus consumer group of the link watch (one per deployment: the control processes share it).
LINK_WATCH_GROUP = "schedules-link-watch"
#: The idempotency name under which handled link events are remembered (``processed_events``).
LINK_WATCH_CONSUMER = "schedules.link_watch"
#: Who the audit log names for what the link watch does.
LINK_WATCH_ACTOR = "service:schedules-link-watch"
_GRANTS = frozenset({Grant.CALL_QUEUE})
_AUDIT_ACTION = "queue.venue_link"
_LIVE = (SessionState.OPEN, SessionState.IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What a link event did: the outcome, the queue version after it (None when nothing was written), the
    bus events written (``case.paused`` when it paused), and the ticket number of the paused case."""

    outcome: LinkOutcome
    version: int | None = None
    events: tuple[Event, ...] = ()
    ticket_no: int | None = None


async def _last_applied(conn: AsyncConnection, session_id: str, venue: str) -> datetime | None:
    """When the last link event applied for ``venue`` in this session happened (its audit row), if any."""
    rows = await conn.execute(select(audit_events.c.detail)
                              .where(audit_events.c.action == _AUDIT_ACTION, audit_events.c.target_kind == "session",
                                     audit_events.c.target_id == session_id)
                              .order_by(audit_events.c.id.desc()))
    for (detail,) in rows:
        if isinstance(detail, dict) and detail.get("venue") == venue and isinstance(detail.get("occurred_at"), str):
            return datetime.fromisoformat(detail["occurred_at"])
    return None


async def record_venue_link(conn: AsyncConnection, session_id: str, change: LinkChange, *, actor: str,
                            grants: Collection[Grant], clock: Clock) -> LinkResult:
    """Apply a venue's link change to the queue of ``session_id`` (see the module docstring).

    Raises :class:`~schedules.errors.InvalidArgument` for a change that is not one (a naive time, a venue id
    that is not a slug) and :class:`~schedules.errors.NotPermitted` without ``call_queue``; a session that does
    not exist or is not live, or a venue not in it, is an outcome, not an error (the room server's events
    name rooms, and not every room is a live session).
    """
    require_grant(grants, Grant.CALL_QUEUE, "điều hành thứ tự tiếp công dân")
    require_aware(change.at)
    if not isinstance(change.venue, str) or not SLUG.fullmatch(change.venue):
        raise InvalidArgument(f"Mã điểm cầu «{str(change.venue)[:64]}» không hợp lệ.", code="bad_venue")
    if change.state not in (LinkState.LOST, LinkState.RESTORED):
        raise InvalidArgument(f"Trạng thái đường truyền «{str(change.state)[:20]}» không hợp lệ.",
                              code="bad_link_state")
    if not SLUG.fullmatch(session_id):
        return LinkResult(LinkOutcome.NOT_LIVE)
    try:
        await claim_queue(conn, session_id)  # lines up with the chair's actions and the other link events
    except UnknownSession:
        return LinkResult(LinkOutcome.NOT_LIVE)
    row = (await conn.execute(select(reception_sessions.c.state, reception_sessions.c.opened_at)
                              .where(reception_sessions.c.id == session_id))).first()
    if row is None:
        return LinkResult(LinkOutcome.NOT_LIVE)
    state = SessionState.parse(row[0])
    queue, version = await load_queue_state(conn, session_id)
    linked = (await conn.execute(select(session_venues.c.venue_id, session_venues.c.main)
                                 .where(session_venues.c.session_id == session_id))).all()
    venues = {venue for venue, _ in linked}
    main = next((venue for venue, is_main in linked if is_main), None)
    last = await _last_applied(conn, session_id, change.venue) if change.venue in venues else None
    decision = decide_link_change(queue, change, live=state in _LIVE, in_progress=state is SessionState.IN_PROGRESS,
                                  session_venues=venues, opened_at=row[1], last_applied_at=last, main_venue=main)
    if not decision.record:
        return LinkResult(decision.outcome)
    now = now_of(clock)
    if decision.available is not None:
        step = pure.set_venue_available(queue, change.venue, decision.available, actor=actor, now=now)
        version = await save_queue_state(conn, queue, step.state, version=version, now=now)
    await audit(conn, actor=actor, action=_AUDIT_ACTION, target_kind="session", target_id=session_id, at=now,
                detail=_detail(change, decision, version))
    if not decision.pause:
        return LinkResult(decision.outcome, version=version)
    paused = await calls.pause(conn, session_id, reason=PauseReason.LINK_LOST, actor=actor, grants=grants, clock=clock)
    ticket = paused.state.current_ticket
    return LinkResult(decision.outcome, version=paused.version, events=paused.events,
                      ticket_no=None if ticket is None else ticket.ticket_no)


async def confirm_venue_back(conn: AsyncConnection, session_id: str, venue: str, *, actor: str,
                             grants: Collection[Grant], clock: Clock,
                             expected_version: int | None = None) -> LinkResult:
    """The chair's «venue is back»: ``venue``, marked lost in the live session ``session_id``, is available
    again (its waiting tickets are no longer held); one audit row ``queue.venue_link`` names ``actor``.

    Raises :class:`~schedules.errors.NotPermitted` without ``moderate``, :class:`InvalidArgument` for a venue id
    that is not a slug, :class:`UnknownSession` for no such session, :class:`~schedules.errors.QueueClosed`
    when the session is not open or in progress, :class:`UnknownVenue` for a venue not in it,
    :class:`~schedules.errors.ConcurrentChange` when ``expected_version`` is not the queue's, and a
    :class:`~schedules.errors.QueueError` ``venue_not_lost`` when the venue is not marked lost (someone did
    it first, or its restore arrived). A paused case stays paused: «Tiếp tục» resumes it.
    """
    require_grant(grants, Grant.MODERATE, "xác nhận điểm cầu đã kết nối lại (quyền của người chủ trì)")
    check_slug(venue, "Mã điểm cầu", code="bad_venue")
    if not SLUG.fullmatch(session_id):
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id[:64]}».")
    await claim_queue(conn, session_id)
    row = (await conn.execute(select(reception_sessions.c.state).where(reception_sessions.c.id == session_id))).first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    state = SessionState.parse(row[0])
    queue, version = await load_queue_state(conn, session_id)
    if state not in _LIVE or queue.closed:
        raise QueueClosed(f"Phiên «{session_id}» đang ở trạng thái «{state.label_vi}»; không còn điểm cầu nào "
                          "cần xác nhận kết nối lại.")
    name = (await conn.execute(select(session_venues.c.name).where(session_venues.c.session_id == session_id,
                                                                    session_venues.c.venue_id == venue))).scalar()
    if name is None:
        raise UnknownVenue(f"Điểm cầu «{venue}» không thuộc phiên «{session_id}».")
    if expected_version is not None and version != expected_version:
        raise ConcurrentChange(
            f"Hàng đợi của phiên «{session_id}» đã thay đổi (phiên bản {version}, bạn đang xem phiên bản "
            f"{expected_version}); hãy tải lại.", current=version, expected=expected_version)
    if venue not in queue.unavailable_venues:
        raise QueueError(f"Điểm cầu {name} không ở trạng thái mất kết nối; không cần xác nhận.",
                         code="venue_not_lost")
    now = now_of(clock)
    step = pure.set_venue_available(queue, venue, True, actor=actor, now=now)
    version = await save_queue_state(conn, queue, step.state, version=version, now=now)
    change = LinkChange(venue=venue, state=LinkState.RESTORED, at=now)
    detail = {**_detail(change, LinkDecision(LinkOutcome.AVAILABLE, available=True, record=True), version),
              "by": "chair"}
    await audit(conn, actor=actor, action=_AUDIT_ACTION, target_kind="session", target_id=session_id, at=now,
                detail=detail)
    log.info("venue marked back by the chair", extra={"ctx": {"session": session_id, "venue": venue,
                                                              "code": LinkOutcome.AVAILABLE.value}})
    return LinkResult(LinkOutcome.AVAILABLE, version=version)


async def held_for_link_loss(conn: AsyncConnection) -> dict[str, frozenset[str]]:
    """Session id → the venues marked lost (unavailable), for the sessions open or in progress."""
    rows = await conn.execute(select(reception_sessions.c.id).where(
        reception_sessions.c.state.in_([s.value for s in _LIVE])).order_by(reception_sessions.c.id))
    held: dict[str, frozenset[str]] = {}
    for (session_id,) in rows.all():
        try:
            queue, _ = await load_queue_state(conn, session_id)
        except UnknownSession:  # a live session without its queue row: nothing is held there
            continue
        if queue.unavailable_venues and not queue.closed:
            held[session_id] = queue.unavailable_venues
    return held


def _detail(change: LinkChange, decision: LinkDecision, version: int) -> dict[str, object]:
    return {"venue": change.venue, "link": LinkState(change.state).value, "outcome": decision.outcome.value,
            "occurred_at": change.at.isoformat(), "version": version}


def _change_of(event: VenueLinkLost | VenueLinkRestored) -> LinkChange:
    state = LinkState.LOST if isinstance(event, VenueLinkLost) else LinkState.RESTORED
    return LinkChange(venue=event.venue, state=state, at=event.occurred_at)


def link_watch_handler(engine: AsyncEngine, *, clock: Clock, notify: Callable[[], None] | None = None,
                       consumer: str = LINK_WATCH_CONSUMER) -> Handler:
    """The bus handler of the link watch: link events applied once each (``consumer``: the idempotency
    name), other events passed over; ``notify`` (the outbox relay's) is called after a commit that paused."""

    async def apply(conn: AsyncConnection, event: AnyEvent) -> None:
        if not isinstance(event, VenueLinkLost | VenueLinkRestored):
            return
        ctx: dict[str, object] = {"session": event.room[:64], "venue": event.venue[:64], "event": event.event_id}
        try:
            result = await record_venue_link(conn, event.room, _change_of(event), actor=LINK_WATCH_ACTOR,
                                             grants=_GRANTS, clock=clock)
        except InvalidArgument as exc:  # a malformed event: retrying it would not help
            log.warning("venue link event refused", extra={"ctx": {**ctx, "code": exc.code}})
            return
        ctx["code"] = result.outcome.value  # "code": a key the log formatter writes (tiepdan.logs)
        if result.outcome is LinkOutcome.PAUSED:
            log.warning("case paused: venue link lost", extra={"ctx": {**ctx, "ticket_no": result.ticket_no}})
        elif result.outcome in (LinkOutcome.UNAVAILABLE, LinkOutcome.AVAILABLE):
            log.info("venue availability changed", extra={"ctx": ctx})
        else:
            log.info("venue link event changes nothing", extra={"ctx": ctx})

    once = idempotent(engine, consumer, apply)

    async def handle(event: AnyEvent) -> None:
        if not isinstance(event, VenueLinkLost | VenueLinkRestored):
            return  # not claimed: no transaction for the events of others
        await once(event)
        if notify is not None:
            notify()  # a pause wrote case.paused: relay it now rather than at the next poll

    return handle


async def watch_venue_links(bus: Bus, handler: Handler, *, consumer: str) -> None:
    """Consume :data:`LINK_WATCH_GROUP` as ``consumer`` (this process's name) until the bus closes; anything
    else that ends it is a crash for the supervisor (what was held is delivered again)."""
    try:
        await bus.consume(LINK_WATCH_GROUP, consumer, handler)
    except BusError:
        if bus.closed:
            return
        raise
