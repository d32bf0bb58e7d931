"""The media plane of the room server: the I/O driver between the live rooms and the SFU (``sfu``).

Ownership: the :class:`~signaling.room.server.RoomServer` owns one :class:`MediaPlane`, which owns
one :class:`sfu.Worker` (started in :meth:`MediaPlane.start`: the aiortc self-test fails fast),
an ``sfu.Room`` per live room that uses media, an ``sfu.Participant`` per connection that publishes
or subscribes (id ``<participant>.<peer id>``), and two loops supervised by the process's
:class:`~signaling.supervisor.Supervisor`: the *pump* (``media-pump``: SFU events, queued by the
worker's synchronous listener) and the *ticker* (``media-ticker``: link health, active speaker,
stats). One event or tick that fails is logged and counted (``media-event``, ``media-tick``) and the
loop goes on; a loop that dies is restarted by the supervisor. Tasks of the SFU that fail arrive as
``sfu.TaskFailed`` and are counted as ``sfu-<task>``.

What drives what:

* ``media.*`` messages of admitted participants → :meth:`handle` → the participant's SFU calls;
  SFU errors become typed ``error`` messages (:func:`error_for`); nothing else changes.
* every change of a room (moderation effects, publications appearing or ending) → :meth:`reconcile`:
  the server's mute state on each venue's microphone (``Publication.mute``: a muted participant's
  audio is not forwarded, whatever its client sends), closed-segment allow-lists
  (``Publication.restrict``) and every subscriber's slots from the pure
  :func:`~signaling.room.layout.assign` (``Subscription.set_source``, never a renegotiation);
  a subscriber whose assignment or roles changed gets ``media.slots``.
* a participant that resumes on a new connection → its old SFU participant is closed
  (:meth:`resumed`); the client publishes and subscribes again and gets its previous slots back.
  A participant that is gone for good (leave, grace over, removed, room closed) → closed too.
* SFU ``LinkUp``/``LinkLost`` → ``media.link`` to the participant; a venue whose media stops for
  ``link_lost_after_s`` (or whose uplink fails) → ``VenueLinkLost`` on the bus and ``media.link`` to
  the room, ``VenueLinkRestored`` when its media flows again: the same publication resuming, or the first
  media of a venue marked lost in :attr:`MediaPlane.link_marks` (a new publication or connection, or this
  process restarted) — each lost venue is marked there until it is announced back. ``SpeakingChanged``/``AudioLevel`` →
  ``ActiveSpeakerChanged`` (bus) and ``media.active_speaker`` (room), at most once per second.
* every ``stats_interval_s``: SFU stats → Prometheus gauges (labels room, venue, kind, direction)
  and ``media.stats`` to the moderators.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Gauge

import sfu

from ..events import ActiveSpeakerChanged, Event, VenueLinkLost, VenueLinkRestored
from ..grants import Grant
from ..protocol import (
    ErrorCode,
    MediaActiveSpeaker,
    MediaAnswer,
    MediaIce,
    MediaIceServers,
    MediaLink,
    MediaPublish,
    MediaPublishAnswer,
    MediaSlots,
    MediaStats,
    MediaStatsEntry,
    MediaSubscribe,
    MediaSubscriberOffer,
    MediaUnpublish,
    ServerMessage,
    SlotSource,
    SlotView,
    error,
)
from ..supervisor import Supervised, Supervisor
from .errors import StoreError
from .health import LinkMonitor, SpeakerTracker
from .ice import ice_servers_for
from .layout import Assignment, LayoutInput, assign, role_of
from .moderation import Member, Room
from .recording import RoomRecording
from .store import LinkMarks, MemoryRoomStore

__all__ = ["MediaOptions", "MediaPlane", "MediaHost", "MediaMessage", "MEDIA_MESSAGES", "error_for"]

log = logging.getLogger(__name__)

MediaMessage = MediaPublish | MediaSubscribe | MediaAnswer | MediaIce | MediaUnpublish
MEDIA_MESSAGES = (MediaPublish, MediaSubscribe, MediaAnswer, MediaIce, MediaUnpublish)

#: preferred publication per kind for the slots (a later low layer is not shown large)
_PREFERRED = {"video": ("camera",), "audio": ("mic",)}
#: the small layer (320×180, 15 fps) a venue may publish besides its camera: shown in ``other`` slots
_LOW_LAYER = "camera-low"
_MID = re.compile(r"^a=mid:(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class MediaOptions:
    sfu: sfu.Options = field(default_factory=sfu.Options)
    ice_urls: tuple[str, ...] = ()
    """STUN/TURN URLs given to the clients (TURN with credentials from ``turn_secret``)."""
    turn_secret: str | None = None
    turn_ttl_s: int = 3600
    stats_interval_s: float = 2.0
    link_lost_after_s: float = 5.0
    """a venue whose received media (frames from its RTP) stops this long is lost (``VenueLinkLost``); 5 s is
    the legal rule (``schedules.LINK_LOSS_PAUSE_AFTER``): the scheduler pauses the case of a venue lost"""
    speaker_interval_s: float = 1.0
    tick_s: float = 0.25
    max_slots: int = 16
    venue_max_kbps: int | None = 1500
    """each video layer of a venue is capped at this (the session's ``VenueInfo.max_kbps`` wins): with 9
    venues each showing 2 large + 6 small pictures, 1500 keeps the hub link under 40 Mbit/s"""


class MediaHost(Protocol):
    """What the media plane needs of the room server."""

    clock: Callable[[], float]

    def room(self, room: str) -> Room | None: ...

    def send_to(self, room: str, participant: str, message: ServerMessage) -> None: ...

    def broadcast(self, room: str, message: ServerMessage, audience: Literal["room", "moderators"]) -> None: ...

    async def publish_event(self, event: Event) -> None: ...


def error_for(exc: sfu.SfuError) -> ErrorCode:
    """The protocol error code of an SFU error (the boundary mapping)."""
    match exc:
        case sfu.InvalidSdp():
            return ErrorCode.INVALID_SDP
        case sfu.UnsupportedCodec():
            return ErrorCode.UNSUPPORTED_CODEC
        case sfu.InvalidCandidate():
            return ErrorCode.INVALID_CANDIDATE
        case sfu.NegotiationStateError():
            return ErrorCode.MEDIA_STATE
        case sfu.AlreadyPublishing():
            return ErrorCode.ALREADY_PUBLISHING
        case sfu.NegotiationError():
            return ErrorCode.INVALID_SDP
        case _:
            return ErrorCode.MEDIA_FAILED


def _layer_for(pubs: Mapping[str, sfu.Publication], kind: str, role: str | None
               ) -> tuple[Literal["high", "low"] | None, sfu.Publication | None]:
    """The publication a slot of ``kind`` shows for a venue in ``role``: the floor holder and the chair
    large (high layer), the others small (the low layer when the venue publishes one)."""
    if kind != "video":
        return None, pubs.get(kind)
    if role == "other" and "video-low" in pubs:
        return "low", pubs["video-low"]
    source = pubs.get("video")
    if source is None:
        return None, None
    return ("low" if source.name == _LOW_LAYER else "high"), source


def _slot_name(subscription: sfu.Subscription) -> str:
    return f"{subscription.kind}-{subscription.index}"


@dataclass
class _Session:
    """The media of one participant on one connection (one ``sfu.Participant``)."""

    room: str
    participant: str
    venue: str | None
    sfu: sfu.Participant
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent: MediaSlots | None = None


@dataclass
class _MediaRoom:
    sfu: sfu.Room
    sessions: dict[str, _Session] = field(default_factory=dict)  # by participant
    publishers: dict[str, str] = field(default_factory=dict)  # venue → participant
    previous: dict[str, Assignment] = field(default_factory=dict)  # participant → slots (kept on resume)
    links: LinkMonitor = field(default_factory=lambda: LinkMonitor(5.0))
    speaker: SpeakerTracker = field(default_factory=lambda: SpeakerTracker(1.0))


def _may_see_closed(state: Room, member: Member, closed_venue: str) -> bool:
    """Who receives a venue in a closed segment: the venue, the main venue, the chair, the secretary."""
    venue = member.identity.venue
    return (venue is not None and venue in (closed_venue, state.main_venue)) or member.identity.has(
        Grant.MODERATE) or member.identity.has(Grant.CLOSED_SEGMENT)


def chair_venue(state: Room) -> str | None:
    """The venue of the chair in the room (a moderator publishing as a venue), else the main venue."""
    for member in state.members.values():
        if member.status == "admitted" and member.identity.has(Grant.MODERATE) and member.identity.venue:
            return member.identity.venue
    return state.main_venue


class MediaPlane:
    """See the module docstring. ``start`` once, ``close`` at the end (idempotent)."""

    def __init__(self, host: MediaHost, options: MediaOptions | None = None, *,
                 metrics: CollectorRegistry | None = None, supervisor: Supervisor | None = None) -> None:
        self.options = options or MediaOptions()
        self._host = host
        self.worker = sfu.Worker(self.options.sfu, listener=self._on_sfu_event)
        self._rooms: dict[str, _MediaRoom] = {}
        self._by_sfu: dict[str, _Session] = {}
        self._queue: asyncio.Queue[sfu.Event] = asyncio.Queue()
        self._supervisor = supervisor if supervisor is not None else Supervisor()
        self._owns_supervisor = supervisor is None
        self._loops: list[Supervised] = []
        self._counters: dict[str, tuple[int, int]] = {}
        #: venues reported lost, kept beyond this process when the composition root gives the room store
        #: (:func:`tiepdan.link_wiring.wire_link_marks`); in memory otherwise
        self.link_marks: LinkMarks = MemoryRoomStore()
        self._next_stats = 0.0
        self.closed = False
        self._gauges: dict[str, Gauge] = {}
        self.recording: RoomRecording | None = None  # set by the room server when it records
        if metrics is not None:
            self._register_metrics(metrics)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.worker.start()  # AiortcHookMissing when aiortc changed: fail at start-up
        self._loops = [self._supervisor.run("media-pump", self._pump),
                       self._supervisor.run("media-ticker", self._ticker)]

    async def close(self) -> None:
        """Close every SFU room and peer connection, stop the tasks. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for loop in self._loops:
            await self._supervisor.stop(loop)
        await self.worker.close()
        self._rooms.clear()
        self._by_sfu.clear()
        if self._owns_supervisor:
            await self._supervisor.close()

    @property
    def peer_connections(self) -> int:
        """Live SFU peer connections (tests: nothing left behind)."""
        count = 0
        for room in self.worker.rooms:
            for participant in room.participants:
                count += sum(1 for role in (sfu.PUBLISHER, sfu.SUBSCRIBER)
                             if participant.link_state(role) not in ("none", "closed", "failed"))
        return count

    def sfu_room(self, room: str) -> sfu.Room | None:
        mr = self._rooms.get(room)
        return None if mr is None else mr.sfu

    # -- client messages --------------------------------------------------------------------------

    def venue_cap(self, state: Room | None, venue: str | None) -> int | None:
        """The cap (kbit/s) of each video layer ``venue`` publishes in ``state``: the session's
        ``VenueInfo.max_kbps`` (the session's cap, else the venue's), else ``venue_max_kbps``; None for
        no venue or a venue not in the session (it cannot publish)."""
        info = next((v for v in state.venues if v.venue == venue), None) if state is not None else None
        if info is None:
            return None
        return info.max_kbps or self.options.venue_max_kbps

    def ice_servers(self, participant: str) -> MediaIceServers:
        servers, expires_at = ice_servers_for(self.options.ice_urls, self.options.turn_secret, participant,
                                              now=self._host.clock(), ttl_s=self.options.turn_ttl_s)
        return MediaIceServers(ice_servers=servers, expires_at=expires_at)

    async def handle(self, room: str, member: Member, peer_id: str, msg: MediaMessage) -> None:
        """One ``media.*`` message of an admitted participant; refusals are ``error`` messages."""
        participant = member.participant
        try:
            reply = await self._handle(room, member, peer_id, msg)
        except sfu.SfuError as exc:
            code = error_for(exc)
            log.info("media request refused", extra={"ctx": {"room": room, "participant": participant,
                                                             "code": code.value}})
            reply = error(code, ref=msg.id, detail=str(exc)[:200])
        if reply is not None:
            self._host.send_to(room, participant, reply)
        state = self._host.room(room)
        if state is None or participant not in state.members:
            await self._close_session(room, participant)  # it left while we negotiated
        self.reconcile(room)

    async def _handle(self, room: str, member: Member, peer_id: str, msg: MediaMessage) -> ServerMessage | None:
        participant = member.participant
        mr = self._room(room)
        if isinstance(msg, MediaPublish):
            venue = member.identity.venue
            if not member.identity.has(Grant.PUBLISH) or venue is None:
                return error(ErrorCode.FORBIDDEN, ref=msg.id, detail="publish needs the publish grant and a venue")
            holder = mr.publishers.get(venue)
            if holder is not None and holder != participant and holder in mr.sessions:
                return error(ErrorCode.ALREADY_PUBLISHING, ref=msg.id, detail="another connection publishes")
            cap = self.venue_cap(self._host.room(room), venue) or self.options.venue_max_kbps
            session = self._session(room, member, peer_id)
            async with session.lock:
                answer = await session.sfu.publish_offer(msg.sdp, names=msg.tracks, max_kbps=cap)
                mr.publishers[venue] = participant
                tracks = {pub.mid: pub.name for pub in session.sfu.publications}
            return MediaPublishAnswer(sdp=answer, tracks=tracks)
        if isinstance(msg, MediaSubscribe):
            if not member.identity.has(Grant.SUBSCRIBE):
                return error(ErrorCode.FORBIDDEN, ref=msg.id)
            state = self._host.room(room)
            default = min(self.options.max_slots, max(1, len(state.venues) if state is not None else 1))
            session = self._session(room, member, peer_id)
            async with session.lock:
                offer = await session.sfu.subscriber_offer(
                    default if msg.video_slots is None else msg.video_slots,
                    default if msg.audio_slots is None else msg.audio_slots)
                mids = _MID.findall(offer)
                slots = tuple(SlotView(slot=_slot_name(s), kind="video" if s.kind == "video" else "audio", mid=mid)
                              for s, mid in zip(session.sfu.slots, mids, strict=False))
                session.sent = None  # the assignment follows the offer (reconcile)
            return MediaSubscriberOffer(sdp=offer, slots=slots)
        session_or_none = mr.sessions.get(participant)
        if session_or_none is None:
            return error(ErrorCode.MEDIA_STATE, ref=msg.id, detail="no media connection")
        session = session_or_none
        async with session.lock:
            if isinstance(msg, MediaAnswer):
                await session.sfu.apply_answer(msg.sdp)
            elif isinstance(msg, MediaIce):
                await session.sfu.add_ice_candidate(msg.candidate, sdp_mid=msg.sdp_mid,
                                                    sdp_mline_index=msg.sdp_mline_index, role=msg.role)
            else:
                await session.sfu.unpublish()
                if session.venue is not None and mr.publishers.get(session.venue) == participant:
                    del mr.publishers[session.venue]
                    mr.links.forget(session.venue)
                    mr.speaker.forget(session.venue)
        return None

    def _room(self, room: str) -> _MediaRoom:
        mr = self._rooms.get(room)
        if mr is None or mr.sfu.closed:
            mr = _MediaRoom(self.worker.create_room(room), links=LinkMonitor(self.options.link_lost_after_s),
                            speaker=SpeakerTracker(self.options.speaker_interval_s))
            self._rooms[room] = mr
        return mr

    def _session(self, room: str, member: Member, peer_id: str) -> _Session:
        mr = self._room(room)
        session = mr.sessions.get(member.participant)
        if session is not None and not session.sfu.closed:
            return session
        sfu_id = f"{member.participant}.{peer_id}"
        session = _Session(room, member.participant, member.identity.venue, mr.sfu.join(sfu_id))
        mr.sessions[member.participant] = session
        self._by_sfu[sfu_id] = session
        return session

    # -- lifecycle of participants and rooms ------------------------------------------------------

    async def resumed(self, room: str, participant: str) -> None:
        """The participant resumed on a new connection: its old media connections are closed."""
        await self._close_session(room, participant)
        self.reconcile(room)

    async def after_change(self, state: Room) -> None:
        """After a room changed: close the media of participants gone for good, then reconcile."""
        mr = self._rooms.get(state.room)
        if mr is None:
            return
        for participant in [p for p in mr.sessions if p not in state.members]:
            await self._close_session(state.room, participant)
        for participant in [p for p in mr.previous if p not in state.members]:
            del mr.previous[participant]
        if state.closed:
            await self.close_room(state.room)
            return
        self.reconcile(state.room)

    async def close_room(self, room: str) -> None:
        mr = self._rooms.pop(room, None)
        if mr is None:
            return
        for session in mr.sessions.values():
            self._by_sfu.pop(session.sfu.id, None)
        await mr.sfu.close()

    async def _close_session(self, room: str, participant: str) -> None:
        mr = self._rooms.get(room)
        if mr is None:
            return
        session = mr.sessions.pop(participant, None)
        if session is None:
            return
        self._by_sfu.pop(session.sfu.id, None)
        if session.venue is not None and mr.publishers.get(session.venue) == participant:
            del mr.publishers[session.venue]
            mr.speaker.forget(session.venue)
        await session.sfu.close()
        log.info("media closed", extra={"ctx": {"room": room, "participant": participant}})

    # -- reconcile: allow-lists and slots ---------------------------------------------------------

    def _publications(self, mr: _MediaRoom) -> dict[str, dict[str, sfu.Publication]]:
        """venue → ``video`` (the high layer, or the only one), ``video-low`` (when the venue publishes a
        ``camera-low`` besides its camera), ``audio`` → the publication shown in slots."""
        result: dict[str, dict[str, sfu.Publication]] = {}
        for venue, participant in mr.publishers.items():
            session = mr.sessions.get(participant)
            if session is None:
                continue
            by_kind: dict[str, sfu.Publication] = {}
            for pub in sorted(session.sfu.publications, key=lambda p: p.name not in _PREFERRED.get(p.kind, ())):
                by_kind.setdefault(pub.kind, pub)
            low = next((p for p in session.sfu.publications if p.kind == "video" and p.name == _LOW_LAYER), None)
            if low is not None and by_kind.get("video") is not low:
                by_kind["video-low"] = low
            if by_kind:
                result[venue] = by_kind
        return result

    def reconcile(self, room: str) -> None:
        """Apply restrictions and slot assignments for the room's current state (synchronous)."""
        mr = self._rooms.get(room)
        state = self._host.room(room)
        if mr is None or state is None or state.closed or mr.sfu.closed:
            return
        pubs = self._publications(mr)
        segment = state.closed_segment
        closed_venue = segment.venue if segment is not None and segment.state == "active" else None
        members = state.members
        allowed: frozenset[str] | None = None
        if closed_venue is not None:
            allowed = frozenset(s.sfu.id for p, s in mr.sessions.items()
                                if p in members and _may_see_closed(state, members[p], closed_venue))
        for venue, participant in mr.publishers.items():
            session = mr.sessions.get(participant)
            if session is None:
                continue
            want = allowed if venue == closed_venue else None
            publisher = members.get(participant)
            for pub in session.sfu.publications:
                if pub.allowed != want:
                    pub.restrict(want)
                if pub.kind == "audio":  # the server's mute state is authoritative, also for the media
                    pub.mute(publisher is None or publisher.muted)
        chair = chair_venue(state)
        available = {kind: frozenset(v for v, kinds in pubs.items() if kind in kinds) for kind in ("video", "audio")}
        order = tuple(v.venue for v in state.venues)
        for participant, session in mr.sessions.items():
            slots = session.sfu.slots
            member = members.get(participant)
            if not slots or member is None or session.sfu.closed:
                continue
            hidden = frozenset({closed_venue}) if closed_venue is not None and not _may_see_closed(
                state, member, closed_venue) else frozenset()
            layout = LayoutInput(order, state.floor, chair, available, own=session.venue, hidden=hidden)
            assignment = assign(layout, video_slots=len(session.sfu.video_slots),
                                audio_slots=len(session.sfu.audio_slots), previous=mr.previous.get(participant))
            mr.previous[participant] = assignment
            layers: dict[str, Literal["high", "low"] | None] = {}
            for slot in slots:
                name = _slot_name(slot)
                shown = assignment.get(name)
                layers[name], source = _layer_for(pubs.get(shown, {}) if shown is not None else {}, slot.kind,
                                                  role_of(shown, state.floor, chair))
                if slot.source is not source:
                    try:
                        slot.set_source(source)
                    except sfu.SfuError as exc:  # e.g. a publication ending right now: shown as empty
                        log.info("slot not repointed", extra={"ctx": {"room": room, "participant": participant,
                                                                      "code": type(exc).__name__}})
                        assignment[name] = None
                        layers[name] = None
                        slot.set_source(None)
            message = MediaSlots(slots=tuple(
                SlotSource(slot=_slot_name(s), kind="video" if s.kind == "video" else "audio",
                           venue=assignment.get(_slot_name(s)),
                           role=role_of(assignment.get(_slot_name(s)), state.floor, chair),
                           layer=layers.get(_slot_name(s)))
                for s in slots))
            if message != session.sent:
                session.sent = message
                self._host.send_to(room, participant, message)

    # -- SFU events -------------------------------------------------------------------------------

    def _on_sfu_event(self, event: sfu.Event) -> None:
        if not self.closed:
            self._queue.put_nowait(event)

    async def _pump(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._on_event(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the media plane
                log.exception("media event failed", extra={"ctx": {"event": type(event).__name__}})
                self._supervisor.record_failure("media-event")

    async def _on_event(self, event: sfu.Event) -> None:
        match event:
            case sfu.TrackPublished() | sfu.TrackUnpublished():
                self.reconcile(event.room_id)
                await self._record(event)
            case sfu.LinkUp() | sfu.LinkLost():
                session = self._by_sfu.get(event.participant_id)
                if session is None:
                    return
                role: Literal["publisher", "subscriber"] = (
                    "publisher" if event.role == sfu.PUBLISHER else "subscriber")
                if isinstance(event, sfu.LinkLost):
                    state: Literal["connected", "lost", "restored"] = "lost"
                else:
                    state = "restored" if event.restored else "connected"
                self._host.send_to(session.room, session.participant, MediaLink(
                    participant=session.participant, venue=session.venue, role=role, state=state))
                mr = self._rooms.get(session.room)
                if isinstance(event, sfu.LinkLost) and role == "publisher" and session.venue and mr is not None:
                    if mr.links.failed(session.venue, time.monotonic()) == "lost":
                        await self._venue_link(session.room, session.venue, "lost")
            case sfu.TaskFailed():
                self._supervisor.record_failure(f"sfu-{event.task}")  # the SFU logged it
            case sfu.SpeakingChanged() | sfu.AudioLevel():
                session = self._by_sfu.get(event.participant_id)
                mr = self._rooms.get(event.room_id)
                if session is None or session.venue is None or mr is None:
                    return
                if mr.publishers.get(session.venue) != session.participant:
                    return
                level = event.level if isinstance(event, sfu.AudioLevel) else None
                mr.speaker.update(session.venue, speaking=event.speaking, level=level)
            case _:
                pass

    async def _venue_link(self, room: str, venue: str, transition: Literal["lost", "restored"]) -> None:
        """Mark (lost) or unmark (restored) the venue in :attr:`link_marks`, then announce the transition."""
        await self._link_mark(room, venue, lost=transition == "lost")
        await self._announce_link(room, venue, transition)

    async def _link_mark(self, room: str, venue: str, *, lost: bool) -> bool:
        """Mark or unmark; for unmark, whether the venue was marked. A store that fails is counted and
        logged: the transition is still announced (the chair's «venue is back» remains for a lost mark)."""
        try:
            if lost:
                await self.link_marks.mark_link_lost(room, venue)
                return True
            return await self.link_marks.clear_link_lost(room, venue)
        except StoreError:
            log.warning("venue link mark not kept",
                        extra={"ctx": {"room": room, "venue": venue, "code": "store_error"}})
            self._supervisor.record_failure("media-link-marks")
            return False

    async def _sample_links(self, room: str, mr: _MediaRoom, counters: Mapping[str, int], now: float) -> None:
        """One link-health sample of the room's publishing venues: the monitor's transitions, and the first
        media of a venue with no flowing publication before (new publication or connection, first after a
        restart) announced as restored when the venue is marked lost."""
        before = {venue: mr.links.state(venue) for venue in counters}
        transitions = mr.links.sample(counters, now)
        for venue, transition in transitions:
            await self._venue_link(room, venue, transition)
        announced = {venue for venue, _ in transitions}
        for venue, was in before.items():
            if venue in announced or was not in (None, "pending") or mr.links.state(venue) != "up":
                continue
            if await self._link_mark(room, venue, lost=False):
                await self._announce_link(room, venue, "restored")

    async def _announce_link(self, room: str, venue: str, transition: Literal["lost", "restored"]) -> None:
        mr = self._rooms.get(room)
        participant = mr.publishers.get(venue) if mr is not None else None
        occurred_at = datetime.fromtimestamp(self._host.clock(), UTC)
        event: Event = (VenueLinkLost(room=room, occurred_at=occurred_at, venue=venue) if transition == "lost"
                        else VenueLinkRestored(room=room, occurred_at=occurred_at, venue=venue))
        log.info("venue link %s", transition, extra={"ctx": {"room": room, "venue": venue}})
        if participant is not None:
            self._host.broadcast(room, MediaLink(participant=participant, venue=venue, role="publisher",
                                                 state=transition), "room")
        await self._host.publish_event(event)

    async def _record(self, event: sfu.TrackPublished | sfu.TrackUnpublished) -> None:
        """A venue's track started (its tap joins the room's recording) or ended."""
        if self.recording is None:
            return
        if isinstance(event, sfu.TrackUnpublished):
            self.recording.publication_ended(event.room_id, event.publication_id)
            return
        session = self._by_sfu.get(event.participant_id)
        state = self._host.room(event.room_id)
        if session is None or session.venue is None or state is None or state.closed:
            return
        pub = next((p for p in session.sfu.publications if p.id == event.publication_id), None)
        if pub is not None:
            await self.recording.add_publication(event.room_id, session.venue, pub,
                                                 {v.venue: v.name for v in state.venues})

    # -- ticker: link health, active speaker, stats -----------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("media tick failed")
                self._supervisor.record_failure("media-tick")

    async def tick(self) -> None:
        now = time.monotonic()
        for room, mr in list(self._rooms.items()):
            counters: dict[str, int] = {}
            for venue, participant in mr.publishers.items():
                session = mr.sessions.get(participant)
                if session is not None:
                    counters[venue] = sum(p.frames_received for p in session.sfu.publications)
            # a publisher whose session was closed (resume, link failure) counts as silent
            await self._sample_links(room, mr, counters, now)
            changed, speaker = mr.speaker.tick(now)
            if changed:
                self._host.broadcast(room, MediaActiveSpeaker(venue=speaker), "room")
                await self._host.publish_event(ActiveSpeakerChanged(
                    room=room, occurred_at=datetime.fromtimestamp(self._host.clock(), UTC), venue=speaker))
        if now >= self._next_stats:
            self._next_stats = now + self.options.stats_interval_s
            await self.report_stats()

    async def report_stats(self) -> None:
        """One stats round: gauges for Prometheus, ``media.stats`` to each room's moderators."""
        reports = await self.worker.stats()
        per_room: dict[str, list[MediaStatsEntry]] = {}
        for report in reports.rooms:
            entries: list[MediaStatsEntry] = []
            for pub in report.publications:
                session = self._by_sfu.get(pub.participant_id)
                if session is not None:
                    entries.append(self._entry(session, "publication", pub.kind, pub.publication_id, None, None,
                                               pub))
            for sub in report.subscriptions:
                session = self._by_sfu.get(sub.participant_id)
                if session is None:
                    continue
                source = self._by_sfu.get(sub.source_id.rpartition("/")[0]) if sub.source_id else None
                entries.append(self._entry(session, "subscription", sub.kind, sub.subscription_id,
                                           sub.subscription_id.rpartition("/")[2],
                                           source.venue if source is not None else None, sub))
            per_room[report.room_id] = entries
        seen = {p.publication_id for r in reports.rooms for p in r.publications}
        seen |= {sub.subscription_id for r in reports.rooms for sub in r.subscriptions}
        for key in [k for k in self._counters if k not in seen]:
            del self._counters[key]  # ended tracks and slots
        self._set_gauges(per_room)
        for room, entries in per_room.items():
            if entries:
                self._host.broadcast(room, MediaStats(entries=tuple(entries)), "moderators")

    def _entry(self, session: _Session, direction: Literal["publication", "subscription"], kind: str, key: str,
               slot: str | None, source: str | None,
               stats: sfu.PublicationStats | sfu.SubscriptionStats) -> MediaStatsEntry:
        packets, lost = stats.packets, stats.packets_lost
        before = self._counters.get(key, (0, 0))
        self._counters[key] = (packets, lost)
        d_packets, d_lost = max(0, packets - before[0]), max(0, lost - before[1])
        loss = d_lost / (d_packets + d_lost) if d_packets + d_lost > 0 else 0.0
        return MediaStatsEntry(
            participant=session.participant, venue=session.venue, direction=direction,
            kind="video" if kind == "video" else "audio", slot=slot, source=source,
            bitrate_bps=round(stats.bitrate_bps, 1), packets=packets, packets_lost=lost, loss=round(loss, 4),
            rtt_ms=None if stats.rtt_ms is None else round(stats.rtt_ms, 1),
            jitter_ms=None if stats.jitter_ms is None else round(stats.jitter_ms, 2),
            fps=round(stats.frames_per_second, 1), keyframe_requests=stats.keyframe_requests)

    # -- metrics ----------------------------------------------------------------------------------

    _METRICS: Mapping[str, str] = {
        "bitrate_bps": "Media bitrate (bits/s), summed over a venue's tracks or slots of that kind",
        "packets": "RTP packets since the track or slot started",
        "packets_lost": "RTP packets lost (publication: reported by the SFU; subscription: by the venue)",
        "loss_ratio": "Fraction of packets lost over the last stats interval",
        "rtt_ms": "Round-trip time to the venue (ms), the worst of its tracks or slots",
        "jitter_ms": "Interarrival jitter (ms), the worst of its tracks or slots",
        "frames_per_second": "Frames per second, summed",
        "keyframe_requests": "Keyframe requests (PLI) since the track or slot started",
    }

    def _register_metrics(self, registry: CollectorRegistry) -> None:
        labels = ["room", "venue", "kind", "direction"]
        for name, doc in self._METRICS.items():
            self._gauges[name] = Gauge(f"tiepdan_media_{name}", doc, labels, registry=registry)
        Gauge("tiepdan_media_peer_connections", "Live SFU peer connections on this node",
              registry=registry).set_function(lambda: float(self.peer_connections))
        Gauge("tiepdan_media_rooms", "SFU rooms on this node",
              registry=registry).set_function(lambda: float(len(self.worker.rooms)))

    def _set_gauges(self, per_room: Mapping[str, list[MediaStatsEntry]]) -> None:
        if not self._gauges:
            return
        totals: dict[tuple[str, str, str, str], dict[str, float]] = {}
        for room, entries in per_room.items():
            for e in entries:
                labels = (room, e.venue or "none", str(e.kind), str(e.direction))
                t = totals.setdefault(labels, {n: 0.0 for n in self._METRICS})
                t["bitrate_bps"] += e.bitrate_bps
                t["packets"] += e.packets
                t["packets_lost"] += e.packets_lost
                t["loss_ratio"] = max(t["loss_ratio"], e.loss)
                t["rtt_ms"] = max(t["rtt_ms"], e.rtt_ms or 0.0)
                t["jitter_ms"] = max(t["jitter_ms"], e.jitter_ms or 0.0)
                t["frames_per_second"] += e.fps
                t["keyframe_requests"] += e.keyframe_requests
        # synchronous from here: a scrape never sees a half-updated set
        for name, gauge in self._gauges.items():
            gauge.clear()
            for labels, values in totals.items():
                gauge.labels(*labels).set(values[name])

