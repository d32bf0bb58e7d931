"""The live room's moderation state machine (sans-I/O: no awaits, no clock reads, ``now`` passed in).

Theory of operation
-------------------
A :class:`Room` is opened for one reception session with the session's venues. Each connection
that passes authentication becomes a *participant* through :meth:`Room.join`; every later input is
one call (:meth:`Room.act`, :meth:`Room.disconnect`, :meth:`Room.resume`, :meth:`Room.leave`,
:meth:`Room.expire`, :meth:`Room.disable`, :meth:`Room.close`) that changes the state and returns
a list of *effects* for the driver to carry out, in order: :class:`Send` (one participant),
:class:`Broadcast` (every connected admitted participant, or the moderators), :class:`Publish`
(an event for the bus) and :class:`Disconnect` (close that participant's connection).

Participant states::

    join ──► lobby ──admit──► admitted ──leave/remove/timeout/disable──► gone
               │                 │  ▲
               └─deny/leave──► gone  disconnect │ resume (within the grace)
                                 ▼  │
                             admitted, connected=False

Rules (who may trigger what; every refusal is an ``error`` to the sender and changes nothing):

* Lobby: moderators (grant MODERATE) are admitted directly. Everyone else is admitted directly
  while the room is unlocked, and waits in the lobby while it is locked or when the same subject
  was removed earlier in this session. Moderators admit or deny.
* Floor (quyền phát biểu): exclusive, held by one venue of the session. ``floor.give`` (MODERATE)
  moves it and revokes the previous holder; ``floor.take`` returns it to the main venue. The
  server unmutes the participants of the new holder and force-mutes those of the previous holder
  (unless it is the main venue).
* Microphone: the server's state is authoritative. ``mic.mute`` (MODERATE) forces a mute; a
  force-muted participant may unmute itself (``mic.set``) only after ``mic.unmute_request`` or
  while its venue holds the floor. Only publishers (grant PUBLISH) set their microphone.
* Hands (xin phát biểu): any admitted participant raises its own hand; the queue is FIFO and
  separate from the citizens' ticket queue, which it never touches. One lowers one's own hand,
  a moderator lowers anyone's.
* Lock, remove, closed segment start/end: MODERATE. Closed segment request: CLOSED_SEGMENT.
* An act that changes nothing (giving the floor to its holder, locking a locked room) returns no
  effect.

Every change increments :attr:`Room.version`; the driver persists :meth:`Room.record` when the
version moved. :meth:`Room.restore` rebuilds a room from a record with every participant
disconnected, so that participants take their place back by resuming within the grace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..events import (
    ClosedSegmentEnded,
    ClosedSegmentRequested,
    ClosedSegmentStarted,
    Event,
    FloorGranted,
    FloorRevoked,
    HandLowered,
    HandRaised,
    LobbyAdmitted,
    LobbyDenied,
    Muted,
    ParticipantJoined,
    ParticipantLeft,
    Removed,
    RoomLocked,
    RoomUnlocked,
    UnmuteRequested,
    VenueInfo,
)
from ..grants import Grant, grants_for
from ..protocol import (
    Admitted,
    CallView,
    CaseCalledNotice,
    CaseEndedNotice,
    CasePausedNotice,
    CaseResumedNotice,
    ClientMessage,
    CloseCode,
    ClosedSegmentChanged,
    ClosedSegmentEnd,
    ClosedSegmentRequest,
    ClosedSegmentStart,
    ClosedSegmentView,
    ErrorCode,
    FloorChanged,
    FloorGive,
    FloorTake,
    HandLower,
    HandRaise,
    HandsChanged,
    LobbyAdmit,
    LobbyDeny,
    LobbyEntered,
    LobbyLeft,
    LockChanged,
    MicChanged,
    MicMute,
    MicSet,
    MicUnmuteRequest,
    ParticipantRemove,
    ParticipantView,
    PresenceJoined,
    PresenceLeft,
    PresenceUpdated,
    RemovedNotice,
    RoomClosedNotice,
    RoomLock,
    RoomUnlock,
    RoomView,
    ServerMessage,
    VenueView,
    error,
)
from ..protocol import (
    LobbyDenied as LobbyDeniedNotice,
)
from ..protocol import (
    UnmuteRequested as UnmuteRequestedNotice,
)

__all__ = [
    "Room", "Identity", "Member", "RoomRecord", "MemberRecord",
    "Effect", "Send", "Broadcast", "Publish", "Disconnect", "LeaveReason", "SCHEDULER",
]

LeaveReason = Literal["left", "timeout", "removed", "disabled", "room_closed"]


#: who acts when the call order moves the floor (``by`` of ``floor.changed``)
SCHEDULER = "system:schedules"


@dataclass(frozen=True)
class Identity:
    """Who a participant is, from its verified token."""

    sub: str
    roles: tuple[str, ...]
    venue: str | None = None
    name: str | None = None

    @property
    def grants(self) -> frozenset[Grant]:
        return grants_for(self.roles)

    def has(self, grant: Grant) -> bool:
        return grant in self.grants


@dataclass
class Member:
    participant: str
    identity: Identity
    status: Literal["lobby", "admitted"]
    muted: bool = True
    forced: bool = False
    unmute_requested: bool = False
    connected: bool = True
    disconnected_at: float | None = None

    def view(self) -> ParticipantView:
        return ParticipantView(
            participant=self.participant, venue=self.identity.venue, roles=self.identity.roles,
            name=self.identity.name, muted=self.muted, connected=self.connected,
        )


# -- effects --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    to: str
    message: ServerMessage


@dataclass(frozen=True)
class Broadcast:
    """To every connected admitted participant (``moderators``: only those with MODERATE)."""

    message: ServerMessage
    audience: Literal["room", "moderators"] = "room"
    exclude: str | None = None


@dataclass(frozen=True)
class Publish:
    event: Event


@dataclass(frozen=True)
class Disconnect:
    participant: str
    code: CloseCode


Effect = Send | Broadcast | Publish | Disconnect


# -- persisted record -----------------------------------------------------------------------------


class MemberRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    participant: str
    sub: str
    roles: tuple[str, ...]
    venue: str | None = None
    name: str | None = None
    status: Literal["lobby", "admitted"]
    muted: bool = True
    forced: bool = False
    unmute_requested: bool = False


class RoomRecord(BaseModel):
    """What survives a restart: presence, floor, lobby, hands, lock, closed segment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    room: str
    venues: tuple[VenueInfo, ...]
    members: tuple[MemberRecord, ...]
    lobby: tuple[str, ...]
    floor: str | None
    hands: tuple[str, ...]
    locked: bool
    closed_segment: ClosedSegmentView | None
    removed_subs: tuple[str, ...] = ()
    calling: CallView | None = None
    version: int = 0


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


@dataclass
class _Acc:
    """Accumulates the effects of one input."""

    effects: list[Effect] = field(default_factory=list)

    def send(self, to: str, message: ServerMessage) -> None:
        self.effects.append(Send(to, message))

    def broadcast(self, message: ServerMessage, audience: Literal["room", "moderators"] = "room",
                  exclude: str | None = None) -> None:
        self.effects.append(Broadcast(message, audience, exclude))

    def publish(self, event: Event) -> None:
        self.effects.append(Publish(event))


class Room:
    """The state of one live room; see the module docstring for the rules."""

    def __init__(self, room: str, venues: Iterable[VenueInfo]) -> None:
        self.room = room
        self.venues: tuple[VenueInfo, ...] = tuple(venues)
        self._venue_ids = frozenset(v.venue for v in self.venues)
        self.main_venue: str | None = next((v.venue for v in self.venues if v.main), None)
        self.members: dict[str, Member] = {}
        self.lobby: list[str] = []
        self.floor: str | None = self.main_venue
        self.hands: list[str] = []
        self.locked = False
        self.closed_segment: ClosedSegmentView | None = None
        self.calling: CallView | None = None
        self.removed_subs: set[str] = set()
        self.closed = False
        self.version = 0

    # -- queries ----------------------------------------------------------------------------------

    def has_venue(self, venue: str) -> bool:
        return venue in self._venue_ids

    def member(self, participant: str) -> Member | None:
        return self.members.get(participant)

    def recipients(self, audience: Literal["room", "moderators"], exclude: str | None = None) -> list[str]:
        """The participants a broadcast reaches: connected, admitted (and moderators)."""
        return [
            m.participant for m in self.members.values()
            if m.connected and m.status == "admitted" and m.participant != exclude
            and (audience == "room" or m.identity.has(Grant.MODERATE))
        ]

    def view_for(self, participant: str) -> RoomView:
        viewer = self.members.get(participant)
        moderator = viewer is not None and viewer.identity.has(Grant.MODERATE)
        return RoomView(
            room=self.room,
            venues=tuple(VenueView(venue=v.venue, name=v.name, main=v.main) for v in self.venues),
            participants=tuple(m.view() for m in self.members.values() if m.status == "admitted"),
            floor=self.floor,
            hands=tuple(self.hands),
            locked=self.locked,
            closed_segment=self.closed_segment,
            lobby=tuple(self.members[p].view() for p in self.lobby) if moderator else (),
            calling=self.calling,
        )

    # -- presence ---------------------------------------------------------------------------------

    def join(self, participant: str, identity: Identity, now: float) -> list[Effect]:
        """Add a new participant (admitted or in the lobby, by the lobby rule)."""
        self._require_open()
        if participant in self.members:
            raise ValueError(f"participant {participant} already in room")
        to_lobby = not identity.has(Grant.MODERATE) and (self.locked or identity.sub in self.removed_subs)
        member = Member(participant, identity, "lobby" if to_lobby else "admitted")
        self.members[participant] = member
        acc = _Acc()
        if to_lobby:
            self.lobby.append(participant)
            acc.broadcast(LobbyEntered(participant=member.view()), "moderators")
        else:
            self._admit(member, now, acc)
        self.version += 1
        return acc.effects

    def _admit(self, member: Member, now: float, acc: _Acc) -> None:
        member.status = "admitted"
        member.muted = not (member.identity.venue is not None and member.identity.venue == self.floor
                            and member.identity.has(Grant.PUBLISH))
        acc.publish(ParticipantJoined(room=self.room, occurred_at=_at(now), participant=member.participant,
                                      venue=member.identity.venue, roles=member.identity.roles))
        acc.broadcast(PresenceJoined(participant=member.view()), exclude=member.participant)

    def resume(self, participant: str, sub: str) -> list[Effect]:
        """Reattach ``participant`` to a new connection; the caller checked the resume token.

        Raises:
            KeyError: the participant is gone (grace over, removed) or belongs to another subject.
        """
        self._require_open()
        member = self.members.get(participant)
        if member is None or member.identity.sub != sub:
            raise KeyError(participant)
        acc = _Acc()
        if not member.connected:
            member.connected = True
            member.disconnected_at = None
            if member.status == "admitted":
                acc.broadcast(PresenceUpdated(participant=member.view()), exclude=participant)
            self.version += 1
        return acc.effects

    def disconnect(self, participant: str, now: float) -> list[Effect]:
        """The connection was lost: keep the place for the grace (a lobby entry just leaves)."""
        member = self.members.get(participant)
        if member is None or not member.connected or self.closed:
            return []
        acc = _Acc()
        if member.status == "lobby":
            self._drop(member)
            acc.broadcast(LobbyLeft(participant=participant, outcome="left"), "moderators")
        else:
            member.connected = False
            member.disconnected_at = now
            acc.broadcast(PresenceUpdated(participant=member.view()))
        self.version += 1
        return acc.effects

    def leave(self, participant: str, now: float, reason: LeaveReason = "left") -> list[Effect]:
        """The participant is gone for good."""
        member = self.members.get(participant)
        if member is None:
            return []
        acc = _Acc()
        self._leave(member, now, reason, acc)
        return acc.effects

    def _leave(self, member: Member, now: float, reason: LeaveReason, acc: _Acc) -> None:
        was_admitted = member.status == "admitted"
        in_hands = member.participant in self.hands
        self._drop(member)
        if was_admitted:
            acc.publish(ParticipantLeft(room=self.room, occurred_at=_at(now), participant=member.participant,
                                        venue=member.identity.venue, reason=reason))
            acc.broadcast(PresenceLeft(participant=member.participant, reason=reason))
            if in_hands:
                acc.broadcast(HandsChanged(hands=tuple(self.hands)))
        else:
            acc.broadcast(LobbyLeft(participant=member.participant, outcome="left"), "moderators")
        self.version += 1

    def _drop(self, member: Member) -> None:
        self.members.pop(member.participant, None)
        if member.participant in self.lobby:
            self.lobby.remove(member.participant)
        if member.participant in self.hands:
            self.hands.remove(member.participant)

    def expire(self, now: float, grace_s: float) -> list[Effect]:
        """Participants disconnected for ``grace_s`` or longer leave (reason ``timeout``)."""
        acc = _Acc()
        for member in list(self.members.values()):
            if not member.connected and member.disconnected_at is not None \
                    and now - member.disconnected_at >= grace_s:
                self._leave(member, now, "timeout", acc)
        return acc.effects

    def next_expiry(self, grace_s: float) -> float | None:
        """When :meth:`expire` next has work, or None."""
        times = [m.disconnected_at + grace_s for m in self.members.values()
                 if not m.connected and m.disconnected_at is not None]
        return min(times) if times else None

    def disable(self, sub: str, now: float) -> list[Effect]:
        """An account was disabled: its participants are disconnected and leave."""
        acc = _Acc()
        for member in [m for m in self.members.values() if m.identity.sub == sub]:
            if member.connected:
                acc.effects.append(Disconnect(member.participant, CloseCode.ACCOUNT_DISABLED))
            self._leave(member, now, "disabled", acc)
        return acc.effects

    def close(self, now: float) -> list[Effect]:
        """The session closed: everyone is told, disconnected and leaves. Idempotent."""
        if self.closed:
            return []
        acc = _Acc()
        for member in list(self.members.values()):
            if member.connected:
                acc.send(member.participant, RoomClosedNotice())
                acc.effects.append(Disconnect(member.participant, CloseCode.ROOM_CLOSED))
            if member.status == "admitted":
                acc.publish(ParticipantLeft(room=self.room, occurred_at=_at(now), participant=member.participant,
                                            venue=member.identity.venue, reason="room_closed"))
            self._drop(member)
        self.closed = True
        self.version += 1
        return acc.effects

    def _require_open(self) -> None:
        if self.closed:
            from .errors import RoomClosed

            raise RoomClosed(self.room)

    # -- acts -------------------------------------------------------------------------------------

    def act(self, participant: str, message: ClientMessage, now: float) -> list[Effect]:
        """Apply one moderation message from ``participant``; refusals are ``error`` sends."""
        member = self.members.get(participant)
        if member is None or self.closed:
            return [Send(participant, error(ErrorCode.ROOM_CLOSED if self.closed else ErrorCode.NOT_IN_ROOM,
                                            ref=message.id))]
        if member.status == "lobby":
            return [Send(participant, error(ErrorCode.IN_LOBBY, ref=message.id))]
        acc = _Acc()
        refusal = self._dispatch(member, message, now, acc)
        if refusal is not None:
            # Every refusal is decided before any change: nothing to undo.
            return [Send(participant, error(refusal, ref=message.id))]
        return acc.effects

    def _dispatch(self, actor: Member, msg: ClientMessage, now: float, acc: _Acc) -> ErrorCode | None:
        match msg:
            case FloorGive():
                return self._floor_give(actor, msg.venue, now, acc)
            case FloorTake():
                if not actor.identity.has(Grant.MODERATE):
                    return ErrorCode.FORBIDDEN
                if self.main_venue is None:
                    return ErrorCode.VENUE_NOT_IN_ROOM
                return self._floor_give(actor, self.main_venue, now, acc)
            case MicMute():
                return self._mic_mute(actor, msg.participant, now, acc)
            case MicUnmuteRequest():
                return self._mic_unmute_request(actor, msg.participant, now, acc)
            case MicSet():
                return self._mic_set(actor, msg.muted, now, acc)
            case LobbyAdmit() | LobbyDeny():
                return self._lobby(actor, msg, now, acc)
            case ParticipantRemove():
                return self._remove(actor, msg.participant, now, acc)
            case HandRaise():
                if actor.participant not in self.hands:
                    self.hands.append(actor.participant)
                    acc.publish(HandRaised(room=self.room, occurred_at=_at(now), participant=actor.participant))
                    self._hands_changed(acc)
                return None
            case HandLower():
                return self._hand_lower(actor, msg.participant, now, acc)
            case RoomLock() | RoomUnlock():
                if not actor.identity.has(Grant.MODERATE):
                    return ErrorCode.FORBIDDEN
                lock = isinstance(msg, RoomLock)
                if self.locked != lock:
                    self.locked = lock
                    self.version += 1
                    by = actor.identity.sub
                    acc.publish(RoomLocked(room=self.room, occurred_at=_at(now), by=by) if lock
                                else RoomUnlocked(room=self.room, occurred_at=_at(now), by=by))
                    acc.broadcast(LockChanged(locked=lock, by=by))
                return None
            case ClosedSegmentRequest() | ClosedSegmentStart() | ClosedSegmentEnd():
                return self._closed_segment(actor, msg, now, acc)
            case _:
                # join/leave/ping/refresh belong to the connection driver, not to the room.
                return ErrorCode.UNKNOWN_TYPE

    def _floor_give(self, actor: Member, venue: str, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        if venue not in self._venue_ids:
            return ErrorCode.VENUE_NOT_IN_ROOM
        self._move_floor(venue, actor.identity.sub, now, acc)
        return None

    def _move_floor(self, venue: str, by: str, now: float, acc: _Acc) -> None:
        if self.floor == venue:
            return
        previous = self.floor
        self.floor = venue
        self.version += 1
        if previous is not None:
            acc.publish(FloorRevoked(room=self.room, occurred_at=_at(now), venue=previous, by=by))
        acc.publish(FloorGranted(room=self.room, occurred_at=_at(now), venue=venue, by=by))
        acc.broadcast(FloorChanged(venue=venue, previous=previous, by=by))
        for member in self._admitted():
            if not member.identity.has(Grant.PUBLISH):
                continue
            if member.identity.venue == venue:
                self._set_mic(member, muted=False, forced=False, by=by, now=now, acc=acc)
            elif previous is not None and previous != self.main_venue and member.identity.venue == previous:
                self._set_mic(member, muted=True, forced=True, by=by, now=now, acc=acc)

    # -- the call order (``schedules`` on the bus) --------------------------------------------------

    def case_called(self, call: CallView, now: float, *, recalled: bool = False) -> list[Effect]:
        """A case is called (or called again, ``recalled``: a new ``call_seq``): everyone is told (with the
        announcement), the called venue gets the floor. A call already seen (same or older ``call_seq``)
        changes nothing: the bus may deliver twice."""
        acc = _Acc()
        if self.closed or (self.calling is not None and self.calling.call_seq >= call.call_seq):
            return acc.effects
        self.calling = call
        self.version += 1
        acc.broadcast(CaseCalledNotice(call=call, recalled=recalled))
        if call.venue in self._venue_ids:
            self._move_floor(call.venue, SCHEDULER, now, acc)
        return acc.effects

    def case_ended(self, call_seq: int, outcome: Literal["closed", "skipped", "absent"], now: float) -> list[Effect]:
        """The called case ended: everyone is told, the floor returns to the main venue. Only the case
        being received can end (a late or repeated event changes nothing)."""
        acc = _Acc()
        call = self.calling
        if self.closed or call is None or call.call_seq != call_seq:
            return acc.effects
        self.calling = None
        self.version += 1
        acc.broadcast(CaseEndedNotice(call_seq=call.call_seq, ticket_no=call.ticket_no, venue=call.venue,
                                      outcome=outcome))
        if self.main_venue is not None:
            self._move_floor(self.main_venue, SCHEDULER, now, acc)
        return acc.effects

    def case_paused(self, call_seq: int, pause_no: int | None, reason: str | None) -> list[Effect]:
        """The case being received is paused: everyone is told; the floor stays. Only the current call
        pauses, once (a repeated event changes nothing)."""
        acc = _Acc()
        call = self.calling
        if self.closed or call is None or call.call_seq != call_seq or call.paused:
            return acc.effects
        self.calling = call.model_copy(update={"paused": True})
        self.version += 1
        acc.broadcast(CasePausedNotice(call_seq=call.call_seq, ticket_no=call.ticket_no, venue=call.venue,
                                       pause_no=pause_no, reason=reason))
        return acc.effects

    def case_resumed(self, call_seq: int, pause_no: int | None) -> list[Effect]:
        """The paused case goes on: everyone is told."""
        acc = _Acc()
        call = self.calling
        if self.closed or call is None or call.call_seq != call_seq or not call.paused:
            return acc.effects
        self.calling = call.model_copy(update={"paused": False})
        self.version += 1
        acc.broadcast(CaseResumedNotice(call_seq=call.call_seq, ticket_no=call.ticket_no, venue=call.venue,
                                        pause_no=pause_no))
        return acc.effects

    def _set_mic(self, member: Member, *, muted: bool, forced: bool, by: str, now: float, acc: _Acc) -> None:
        if member.muted == muted and member.forced == forced:
            return
        member.muted, member.forced = muted, forced
        member.unmute_requested = False
        self.version += 1
        acc.publish(Muted(room=self.room, occurred_at=_at(now), participant=member.participant, muted=muted, by=by))
        acc.broadcast(MicChanged(participant=member.participant, muted=muted, forced=forced, by=by))

    def _target(self, participant: str) -> Member | None:
        member = self.members.get(participant)
        return member if member is not None and member.status == "admitted" else None

    def _mic_mute(self, actor: Member, participant: str, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        target = self._target(participant)
        if target is None:
            return ErrorCode.NOT_IN_ROOM
        self._set_mic(target, muted=True, forced=True, by=actor.identity.sub, now=now, acc=acc)
        return None

    def _mic_unmute_request(self, actor: Member, participant: str, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        target = self._target(participant)
        if target is None:
            return ErrorCode.NOT_IN_ROOM
        if not target.identity.has(Grant.PUBLISH) or not target.muted:
            return None
        target.unmute_requested = True
        self.version += 1
        by = actor.identity.sub
        acc.publish(UnmuteRequested(room=self.room, occurred_at=_at(now), participant=participant, by=by))
        acc.send(participant, UnmuteRequestedNotice(by=by))
        return None

    def _mic_set(self, actor: Member, muted: bool, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.PUBLISH):
            return ErrorCode.FORBIDDEN
        if not muted and actor.forced and not actor.unmute_requested \
                and not (actor.identity.venue is not None and actor.identity.venue == self.floor):
            return ErrorCode.FORBIDDEN
        forced = actor.forced if muted else False
        self._set_mic(actor, muted=muted, forced=forced, by=actor.identity.sub, now=now, acc=acc)
        return None

    def _lobby(self, actor: Member, msg: LobbyAdmit | LobbyDeny, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        if msg.participant not in self.lobby:
            return ErrorCode.NOT_IN_LOBBY
        target = self.members[msg.participant]
        by = actor.identity.sub
        self.lobby.remove(msg.participant)
        self.version += 1
        if isinstance(msg, LobbyAdmit):
            self.removed_subs.discard(target.identity.sub)
            acc.publish(LobbyAdmitted(room=self.room, occurred_at=_at(now), participant=msg.participant, by=by))
            acc.broadcast(LobbyLeft(participant=msg.participant, outcome="admitted"), "moderators")
            self._admit(target, now, acc)
            if target.connected:
                acc.send(msg.participant, Admitted(room=self.view_for(msg.participant)))
        else:
            self._drop(target)
            acc.publish(LobbyDenied(room=self.room, occurred_at=_at(now), participant=msg.participant, by=by))
            acc.broadcast(LobbyLeft(participant=msg.participant, outcome="denied"), "moderators")
            if target.connected:
                acc.send(msg.participant, LobbyDeniedNotice(by=by))
                acc.effects.append(Disconnect(msg.participant, CloseCode.FORBIDDEN))
        return None

    def _remove(self, actor: Member, participant: str, now: float, acc: _Acc) -> ErrorCode | None:
        if not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        target = self._target(participant)
        if target is None:
            return ErrorCode.NOT_IN_ROOM
        by = actor.identity.sub
        self.removed_subs.add(target.identity.sub)
        acc.publish(Removed(room=self.room, occurred_at=_at(now), participant=participant, by=by))
        if target.connected:
            acc.send(participant, RemovedNotice(by=by))
            acc.effects.append(Disconnect(participant, CloseCode.REMOVED))
        self._leave(target, now, "removed", acc)
        return None

    def _hand_lower(self, actor: Member, participant: str | None, now: float, acc: _Acc) -> ErrorCode | None:
        target = participant or actor.participant
        if target != actor.participant and not actor.identity.has(Grant.MODERATE):
            return ErrorCode.FORBIDDEN
        if target not in self.members:
            return ErrorCode.NOT_IN_ROOM
        if target in self.hands:
            self.hands.remove(target)
            self.version += 1
            acc.publish(HandLowered(room=self.room, occurred_at=_at(now), participant=target, by=actor.identity.sub))
            self._hands_changed(acc)
        return None

    def _hands_changed(self, acc: _Acc) -> None:
        self.version += 1
        acc.broadcast(HandsChanged(hands=tuple(self.hands)))

    def _closed_segment(self, actor: Member, msg: ClosedSegmentRequest | ClosedSegmentStart | ClosedSegmentEnd,
                        now: float, acc: _Acc) -> ErrorCode | None:
        by = actor.identity.sub
        current = self.closed_segment
        if isinstance(msg, ClosedSegmentRequest):
            if not actor.identity.has(Grant.CLOSED_SEGMENT):
                return ErrorCode.FORBIDDEN
            if msg.venue not in self._venue_ids:
                return ErrorCode.VENUE_NOT_IN_ROOM
            if current is not None and current.venue == msg.venue:
                return None
            if current is not None and current.state == "active":
                return ErrorCode.FORBIDDEN
            self.closed_segment = ClosedSegmentView(state="requested", venue=msg.venue, by=by)
            acc.publish(ClosedSegmentRequested(room=self.room, occurred_at=_at(now), venue=msg.venue, by=by))
        elif isinstance(msg, ClosedSegmentStart):
            if not actor.identity.has(Grant.MODERATE):
                return ErrorCode.FORBIDDEN
            venue = msg.venue or (current.venue if current is not None else None)
            if venue is None:
                return ErrorCode.NO_CLOSED_SEGMENT
            if venue not in self._venue_ids:
                return ErrorCode.VENUE_NOT_IN_ROOM
            if current is not None and current.state == "active":
                return None if current.venue == venue else ErrorCode.FORBIDDEN
            self.closed_segment = ClosedSegmentView(state="active", venue=venue, by=by)
            acc.publish(ClosedSegmentStarted(room=self.room, occurred_at=_at(now), venue=venue, by=by))
        else:
            if not actor.identity.has(Grant.MODERATE):
                return ErrorCode.FORBIDDEN
            if current is None:
                return ErrorCode.NO_CLOSED_SEGMENT
            self.closed_segment = None
            acc.publish(ClosedSegmentEnded(room=self.room, occurred_at=_at(now), venue=current.venue, by=by))
        self.version += 1
        acc.broadcast(ClosedSegmentChanged(closed_segment=self.closed_segment, by=by))
        return None

    def _admitted(self) -> list[Member]:
        return [m for m in self.members.values() if m.status == "admitted"]

    # -- persistence ------------------------------------------------------------------------------

    def record(self) -> RoomRecord:
        return RoomRecord(
            room=self.room,
            venues=self.venues,
            members=tuple(
                MemberRecord(participant=m.participant, sub=m.identity.sub, roles=m.identity.roles,
                             venue=m.identity.venue, name=m.identity.name, status=m.status, muted=m.muted,
                             forced=m.forced, unmute_requested=m.unmute_requested)
                for m in self.members.values()
            ),
            lobby=tuple(self.lobby),
            floor=self.floor,
            hands=tuple(self.hands),
            locked=self.locked,
            closed_segment=self.closed_segment,
            removed_subs=tuple(sorted(self.removed_subs)),
            calling=self.calling,
            version=self.version,
        )

    @classmethod
    def restore(cls, record: RoomRecord, now: float) -> Room:
        """Rebuild a room after a restart; every participant starts disconnected at ``now``."""
        room = cls(record.room, record.venues)
        for m in record.members:
            room.members[m.participant] = Member(
                m.participant, Identity(m.sub, m.roles, m.venue, m.name), m.status, muted=m.muted,
                forced=m.forced, unmute_requested=m.unmute_requested, connected=False, disconnected_at=now,
            )
        room.lobby = [p for p in record.lobby if p in room.members]
        room.floor = record.floor
        room.hands = [p for p in record.hands if p in room.members]
        room.locked = record.locked
        room.closed_segment = record.closed_segment
        room.removed_subs = set(record.removed_subs)
        room.calling = record.calling
        room.version = record.version
        return room
