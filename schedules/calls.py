"""The chair's queue actions in the database: call next, recall, skip, mark absent, end case, defer,
release, pause, resume.

Each function (grant ``call_queue``; the session must be in progress) takes the session's queue row,
loads the queue, applies the pure action of :mod:`schedules.queue`, saves what changed and writes one
audit row and one bus event per queue event (outbox), in the caller's transaction:

================  ===================================================================================
pure event        bus event (``signaling.events``)
================  ===================================================================================
CaseCalled        ``case.called``: ticket number, venue, ``call_seq``, the reorder reason if any, and
                  the announcement text of :func:`schedules.announcement.announcement_text` built from
                  the ticket number and the venue's name as announced to this session.
                  ``announcement_audio_url``: what the caller's ``announce`` answered for that very
                  text (the URL of its WAV, :func:`schedules.announcement.synthesize_async`), else None.
CaseRecalled      ``case.recalled`` with the announcement text and audio URL as above (a new ``call_seq``)
CaseSkipped       ``case.skipped`` with ``reason`` no_show / deferred
CaseAbsent        ``case.absent``
CaseClosed        ``case.closed``
CasePaused        ``case.paused`` with ``pause_no`` and ``reason``
CaseResumed       ``case.resumed`` with ``pause_no``
================  ===================================================================================

``call_next`` is refused (:class:`~schedules.errors.RollCallMissing`) until the venues' roll call is
recorded (:mod:`schedules.roll_call`), and tickets of a venue absent at the latest roll call are held.

Two processes racing one action are lined up on the queue row: the second applies its action to the
first's result (two "call next" at once: the second is refused, a case being in progress).
``expected_version`` (the queue version a page showed) refuses a stale request with
:class:`~schedules.errors.ConcurrentChange`.

The queue is read once per action, under the queue row's lock, and the announcement's text is known only
there: ``announce`` (text → audio URL) is awaited inside the transaction, so it should find the audio in
the cache (the console synthesises the next number's announcement after each action). An action that
names no ticket (call next, skip, end, defer, pause, resume) reads only the session's open tickets
(waiting, called, deferred, in person: :data:`OPEN_STATUSES`), not those closed or absent, which no such
action and no call order looks at; its :class:`QueueOutcome` holds those tickets only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling import events as bus
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from . import queue as pure
from ._clock import check_not_before
from ._service import Clock, audit, now_of, require_grant
from .announcement import announcement_text
from .errors import ConcurrentChange, MainVenueLinkLost, SessionNotInProgress, UnknownSession
from .queue import PauseReason, QueueEvent, QueueState, QueueStep
from .queue_store import OPEN_STATUSES, claim_queue, load_open_queue_state, load_queue_state, save_queue_state
from .roll_call import require_roll_call
from .session_state import SessionState
from .tables import reception_sessions, session_venues

__all__ = [
    "OPEN_STATUSES",
    "Announce",
    "QueueOutcome",
    "call_next",
    "defer",
    "end_case",
    "load_queue",
    "mark_absent",
    "pause",
    "recall",
    "release",
    "resume",
    "skip",
    "spoken_venue_name",
    "venue_names",
]

#: Administrative units whose word opens a venue's name and is spoken in lower case mid-sentence
#: ("tại điểm cầu xã Tiên Du", GLOSSARY.md), longest first.
_UNIT_WORDS = ("Thành phố", "Thị trấn", "Thị xã", "Đặc khu", "Phường", "Huyện", "Quận", "Tỉnh", "Xã")


#: The tickets an action that names no ticket reads: the others (closed, absent) are the session's history.

#: Given an announcement's text, the URL of its audio, or None (no audio): awaited inside the transaction.
Announce = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """The queue after an action, its version, the bus events written, and the session's venue names
    (id → name as announced). ``state`` holds the open tickets only when the action named no ticket."""

    state: QueueState
    version: int
    events: tuple[bus.Event, ...]
    venue_names: Mapping[str, str] = field(default_factory=dict)


def spoken_venue_name(name: str) -> str:
    """A venue's name as said after "tại điểm cầu": the unit word in lower case ("Xã Tiên Du" → "xã Tiên Du")."""
    for word in _UNIT_WORDS:
        if name.startswith(word + " "):
            return word.lower() + name[len(word):]
    return name


async def load_queue(conn: AsyncConnection, session_id: str) -> tuple[QueueState, int]:
    """The queue of a session and its version (a read: for pages and the queue board)."""
    return await load_queue_state(conn, session_id)


async def venue_names(conn: AsyncConnection, session_id: str) -> dict[str, str]:
    """The venues of a session: id → name as announced to it."""
    rows = await conn.execute(select(session_venues.c.venue_id, session_venues.c.name)
                              .where(session_venues.c.session_id == session_id))
    return {str(v): str(n) for v, n in rows.all()}


async def _bus_event(event: QueueEvent, names: Mapping[str, str], announce: Announce | None) -> bus.Event:
    common = {"session": event.session_id, "case": event.case, "ticket_no": event.ticket_no, "venue": event.venue,
              "call_seq": event.call_seq, "by": event.actor, "occurred_at": event.at}
    if isinstance(event, pure.CaseCalled | pure.CaseRecalled):
        text = announcement_text(event.ticket_no, spoken_venue_name(names.get(event.venue, event.venue)))
        url = None if announce is None else await announce(text)
        if isinstance(event, pure.CaseCalled):
            return bus.CaseCalled(**common, announcement_text=text, announcement_audio_url=url,
                                  reorder=event.reorder.value if event.reorder is not None else None)
        return bus.CaseRecalled(**common, announcement_text=text, announcement_audio_url=url)
    if isinstance(event, pure.CaseSkipped):
        return bus.CaseSkipped(**common, reason=event.reason.value)
    if isinstance(event, pure.CaseAbsent):
        return bus.CaseAbsent(**common)
    if isinstance(event, pure.CaseClosed):
        return bus.CaseClosed(**common)
    if isinstance(event, pure.CasePaused):
        return bus.CasePaused(**common, pause_no=event.pause_no, reason=event.reason.value)
    if isinstance(event, pure.CaseResumed):
        return bus.CaseResumed(**common, pause_no=event.pause_no)
    raise TypeError(f"no bus event for {type(event).__name__}")


def _audit_detail(event: QueueEvent, published: bus.Event) -> dict[str, object]:
    detail: dict[str, object] = {"session": event.session_id, "ticket_no": event.ticket_no, "venue": event.venue,
                                 "call_seq": event.call_seq, "case": event.case}
    for name in ("reorder", "reason", "pause_no"):
        value = getattr(published, name, None)
        if value is not None:
            detail[name] = value
    return detail


async def _refuse_without_main_venue(conn: AsyncConnection, session_id: str, queue: QueueState) -> None:
    """No citizen is called while the main venue's link is lost (the link watch holds it unavailable)."""
    if not queue.unavailable_venues:
        return
    main = await conn.scalar(select(session_venues.c.venue_id).where(session_venues.c.session_id == session_id,
                                                                      session_venues.c.main.is_(True)))
    if main is not None and main in queue.unavailable_venues:
        raise MainVenueLinkLost("Đường truyền của điểm cầu chính đang mất; chưa thể gọi công dân. Hãy chờ đường "
                                "truyền phục hồi, hoặc xác nhận «Điểm cầu đã kết nối lại».")


async def _act(
    conn: AsyncConnection, session_id: str, what: str, apply: Callable[[QueueState, datetime], QueueStep], *,
    expected_version: int | None, actor: str, grants: Collection[Grant], clock: Clock,
    announce: Announce | None = None, open_only: bool = True,
) -> QueueOutcome:
    require_grant(grants, Grant.CALL_QUEUE, "điều hành thứ tự tiếp công dân")
    await claim_queue(conn, session_id)
    row = (await conn.execute(select(reception_sessions.c.state, reception_sessions.c.changed_at)
                              .where(reception_sessions.c.id == session_id))).first()
    if row is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id}».")
    session_state, session_changed_at = SessionState.parse(row[0]), row[1]
    if session_state is not SessionState.IN_PROGRESS:
        raise SessionNotInProgress(
            f"Phiên «{session_id}» đang ở trạng thái «{session_state.label_vi}»; chỉ điều hành thứ tự khi phiên "
            "đang tiếp công dân.")
    if what == "call_next":
        await require_roll_call(conn, session_id)  # the first call needs the roll call (schedules.roll_call)
    load = load_open_queue_state if open_only else load_queue_state
    before, version = await load(conn, session_id)
    if what in ("call_next", "recall"):
        await _refuse_without_main_venue(conn, session_id, before)
    if expected_version is not None and version != expected_version:
        raise ConcurrentChange(
            f"Hàng đợi của phiên «{session_id}» đã thay đổi (phiên bản {version}, bạn đang xem phiên bản "
            f"{expected_version}); hãy tải lại.", current=version, expected=expected_version)
    now = now_of(clock)
    check_not_before(session_changed_at, now)  # the session's last transition (start) counts too
    step = apply(before, now)
    new_version = await save_queue_state(conn, before, step.state, version=version, now=now)
    names = await venue_names(conn, session_id)
    published: list[bus.Event] = []
    for event in step.events:
        out = await _bus_event(event, names, announce)
        await add_to_outbox(conn, out)
        await audit(conn, actor=actor, action=event.TYPE, target_kind="ticket", target_id=event.ticket_id, at=now,
                    detail=_audit_detail(event, out))
        published.append(out)
    if not step.events:
        await audit(conn, actor=actor, action=f"queue.{what}", target_kind="session", target_id=session_id, at=now,
                    detail={"version": new_version})
    return QueueOutcome(state=step.state, version=new_version, events=tuple(published), venue_names=names)


async def call_next(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                    grants: Collection[Grant], clock: Clock, announce: Announce | None = None) -> QueueOutcome:
    """Call the first ticket of the call order (``case.called``); ``announce`` gives the URL of the
    announcement's audio from its text (see the module docstring)."""
    return await _act(conn, session_id, "call_next", lambda s, now: pure.call_next(s, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock, announce=announce)


async def recall(conn: AsyncConnection, session_id: str, *, ticket_no: int | None = None,
                 expected_version: int | None = None, actor: str, grants: Collection[Grant],
                 clock: Clock, announce: Announce | None = None) -> QueueOutcome:
    """Call again the current case, or (``ticket_no``) a ticket passed over before (``case.recalled``)."""
    return await _act(conn, session_id, "recall",
                      lambda s, now: pure.recall(s, actor=actor, now=now, ticket_no=ticket_no),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock, announce=announce,
                      open_only=ticket_no is None)


async def skip(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
               grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """The called citizen did not come forward: to the end once (``case.skipped``), then ``case.absent``."""
    return await _act(conn, session_id, "skip", lambda s, now: pure.skip(s, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def mark_absent(conn: AsyncConnection, session_id: str, *, ticket_no: int | None = None,
                      expected_version: int | None = None, actor: str, grants: Collection[Grant],
                      clock: Clock) -> QueueOutcome:
    """Mark the current case (or a passed-over ticket) absent (``case.absent``)."""
    return await _act(conn, session_id, "mark_absent",
                      lambda s, now: pure.mark_absent(s, actor=actor, now=now, ticket_no=ticket_no),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock,
                      open_only=ticket_no is None)


async def end_case(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                   grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """The case being received is concluded (``case.closed``)."""
    return await _act(conn, session_id, "end_case", lambda s, now: pure.end_case(s, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def defer(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """Defer the case being received, keeping its number (``case.skipped`` with reason deferred)."""
    return await _act(conn, session_id, "defer", lambda s, now: pure.defer(s, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def release(conn: AsyncConnection, session_id: str, ticket_no: int, *, expected_version: int | None = None,
                  actor: str, grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """A deferred ticket waits again at its own number (no bus event; an audit row)."""
    return await _act(conn, session_id, "release", lambda s, now: pure.release(s, ticket_no, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock, open_only=False)


async def pause(conn: AsyncConnection, session_id: str, *, reason: PauseReason, expected_version: int | None = None,
                actor: str, grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """Pause the case being received (a venue link lost over 5 s, or the chair's word): ``case.paused``."""
    return await _act(conn, session_id, "pause", lambda s, now: pure.pause(s, reason=reason, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock)


async def resume(conn: AsyncConnection, session_id: str, *, expected_version: int | None = None, actor: str,
                 grants: Collection[Grant], clock: Clock) -> QueueOutcome:
    """The paused case goes on (``case.resumed``)."""
    return await _act(conn, session_id, "resume", lambda s, now: pure.resume(s, actor=actor, now=now),
                      expected_version=expected_version, actor=actor, grants=grants, clock=clock)
