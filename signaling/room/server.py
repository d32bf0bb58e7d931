"""The room server: owns the live rooms of this media node and routes between peers, rooms and the bus.

Ownership: the lifespan owns the :class:`RoomServer`; the server owns its rooms, its room-state
store, its background loops (bus consumer, sweeper: supervised tasks of the process's
:class:`~signaling.supervisor.Supervisor`, restarted after a crash) and a registry of the peers attached to it
(each peer is run by its ``/ws`` handler; :meth:`RoomServer.close` asks every peer to end with
1001 and waits for them).

Inputs and what they do:

* bus ``SessionOpened`` → open the room with the session's venues; ``SessionClosed`` → every
  participant gets ``room.closed`` and is disconnected (4010), the room's record is deleted;
  ``UserDisabled`` → that user's connections end with 4005 and new ones are refused;
  ``LoginSessionEnded`` → the connections opened with tokens of that console login session (their
  ``sid`` claim) end with 4006 and their participants leave; its tokens and resume tokens are refused.
* the denylists (disabled accounts, ended login sessions) are kept in the room store too, and every
  sweep reads them back: one node of a group consumes each account event, and the others (or this
  node after a restart) learn it from the store within ``sweep_interval_s``.
* a peer's messages → :class:`~signaling.room.moderation.Room` → effects: messages are serialised
  once and queued on each recipient peer, events are published on the bus in order, and the
  room's record is saved when it changed. One lock per room keeps the order of effects equal to
  the order of inputs.
* at start, every stored record is restored (participants disconnected, grace running), so that a
  node killed with SIGKILL keeps floor, lobby, hands and lock, and participants resume.
* media (when built with ``media=MediaOptions(...)``): the server owns a
  :class:`~signaling.room.media.MediaPlane` (the SFU of this node); ``media.*`` messages go to it,
  and after every change of a room it reconciles slots and closed-segment restrictions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Gauge

from ..bus import Bus
from ..errors import BusError, TokenError
from ..events import (
    AnyEvent,
    CaseAbsent,
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseRecalled,
    CaseResumed,
    CaseSkipped,
    Event,
    LoginSessionEnded,
    SessionClosed,
    SessionOpened,
    UserDisabled,
    VenueInfo,
)
from ..grants import Grant, Role
from ..protocol import (
    Admitted,
    CallView,
    ClientMessage,
    CloseCode,
    ErrorCode,
    Join,
    Refresh,
    ServerMessage,
    TokenRefreshed,
    Welcome,
    You,
    dump_message,
    error,
)
from ..supervisor import Supervised, Supervisor
from ..tokens import Claims, TokenIssuer, TokenVerifier
from .errors import AdmissionRefused, RoomClosed, StoreError
from .media import MEDIA_MESSAGES, MediaMessage, MediaOptions, MediaPlane
from .moderation import Broadcast, Disconnect, Effect, Identity, Publish, Room, Send
from .options import RoomOptions
from .peer import Peer, Transport
from .recording import RecorderFactory, RoomRecording
from .store import RoomStore

__all__ = ["RoomServer"]

log = logging.getLogger(__name__)


@dataclass
class _LiveRoom:
    state: Room
    peers: dict[str, Peer] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    saved_version: int = -1


class RoomServer:
    """See the module docstring. Call :meth:`start` once, :meth:`close` at the end (idempotent)."""

    def __init__(self, *, options: RoomOptions, issuer: TokenIssuer, verifier: TokenVerifier, bus: Bus,
                 store: RoomStore, clock: Callable[[], float] = time.time,
                 metrics: CollectorRegistry | None = None, media: MediaOptions | None = None,
                 supervisor: Supervisor | None = None, recorder: RecorderFactory | None = None) -> None:
        self.options = options
        self.clock = clock
        self._issuer = issuer
        self._verifier = verifier
        self._bus = bus
        self._store = store
        self._rooms: dict[str, _LiveRoom] = {}
        self._closed_rooms: set[str] = set()
        self._disabled: dict[str, float] = {}
        self._ended_sessions: dict[str, float] = {}  # sid → until (epoch seconds)
        self._store_failing = False
        self._peers: set[Peer] = set()
        # the process's supervisor runs the background loops; a server used alone makes its own
        self._supervisor = supervisor if supervisor is not None else Supervisor(registry=metrics)
        self._owns_supervisor = supervisor is None
        self._loops: list[Supervised] = []
        self._started = False
        self._closed = False
        self._close_done: asyncio.Event | None = None
        self.media: MediaPlane | None = (MediaPlane(self, media, metrics=metrics, supervisor=self._supervisor)
                                         if media is not None else None)
        # the recorder of this node (it records the media plane's publications: none without media)
        self.recording: RoomRecording | None = (RoomRecording(self, recorder, metrics=metrics)
                                                if recorder is not None and self.media is not None else None)
        if self.media is not None:
            self.media.recording = self.recording
        if metrics is not None:
            self._register_metrics(metrics)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def room(self, room: str) -> Room | None:
        """The state of an open room (read-only use: tests, metrics)."""
        live = self._rooms.get(room)
        return live.state if live is not None else None

    def open_rooms(self) -> list[tuple[str, tuple[VenueInfo, ...]]]:
        """The rooms open on this node with their venues, in opening order (read-only: the console lists them)."""
        return [(room, live.state.venues) for room, live in self._rooms.items() if not live.state.closed]

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    async def start(self) -> None:
        """Restore stored rooms and start consuming the bus."""
        if self._closed:
            raise RoomClosed("room server is closed")
        if self._started:
            return
        self._started = True
        if self.media is not None:
            await self.media.start()  # the SFU self-test: fail fast when aiortc changed
        if self.recording is not None:
            await self.recording.start()
        now = self.clock()
        await self._sync_denylists()
        for record in await self._store.load_all():
            state = Room.restore(record, now)
            self._rooms[record.room] = _LiveRoom(state, saved_version=record.version)
            log.info("room restored", extra={"ctx": {"room": record.room, "count": len(record.members)}})
        self._loops = [self._supervisor.run("room-server-consumer", self._consume),
                       self._supervisor.run("room-server-sweeper", self._sweep)]

    async def close(self) -> None:
        """End every connection (1001), stop the tasks, close the store. Idempotent."""
        if self._close_done is not None:
            await self._close_done.wait()
            return
        self._close_done = asyncio.Event()
        self._closed = True
        try:
            peers = list(self._peers)
            for peer in peers:
                peer.close_soon(1001)
            if peers:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.close_timeout_s + 1):
                        await asyncio.gather(*(p.wait_closed() for p in peers))
            for loop in self._loops:
                await self._supervisor.stop(loop)
            if self.recording is not None:
                await self.recording.close()  # open segments and sessions get their manifests
            if self.media is not None:
                await self.media.close()
            if self._owns_supervisor:
                await self._supervisor.close()
            await self._store.close()
        finally:
            self._close_done.set()

    # -- bus --------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Consume the bus until it closes. Anything else that ends it is a crash: the supervisor logs
        and counts it and starts consuming again (what was held unacknowledged is delivered again)."""
        try:
            await self._bus.consume(self.options.consumer_group, self.options.node, self.on_event)
        except BusError:
            if self._bus.closed:
                return  # the bus closed under us (shutdown): consuming is over, not a crash
            raise

    async def on_event(self, event: AnyEvent) -> None:
        """Handle one bus event (idempotent: a redelivered event changes nothing more)."""
        if isinstance(event, SessionOpened):
            await self.open_room(event.session, event.venues)
        elif isinstance(event, SessionClosed):
            await self.close_room(event.session)
        elif isinstance(event, UserDisabled):
            await self.disable_user(event.user)
        elif isinstance(event, LoginSessionEnded):
            await self.end_login_session(event.sid)
        elif isinstance(event, CaseCalled):
            call = CallView(call_seq=event.call_seq, ticket_no=event.ticket_no, venue=event.venue,
                            announcement_text=event.announcement_text,
                            announcement_audio_url=event.announcement_audio_url)
            await self._call_order(event.session, lambda state: state.case_called(call, self.clock()))
            await self._record_call(event.session, event.call_seq, event.case)
        elif isinstance(event, CaseRecalled):
            again = CallView(call_seq=event.call_seq, ticket_no=event.ticket_no, venue=event.venue,
                             announcement_text=event.announcement_text or "",
                             announcement_audio_url=event.announcement_audio_url)
            await self._call_order(event.session,
                                   lambda state: state.case_called(again, self.clock(), recalled=True))
            await self._record_call(event.session, event.call_seq, event.case)
        elif isinstance(event, CasePaused):
            paused = event
            await self._call_order(event.session,
                                   lambda state: state.case_paused(paused.call_seq, paused.pause_no, paused.reason))
        elif isinstance(event, CaseResumed):
            resumed = event
            await self._call_order(event.session,
                                   lambda state: state.case_resumed(resumed.call_seq, resumed.pause_no))
        elif isinstance(event, CaseClosed | CaseSkipped | CaseAbsent):
            outcome: Literal["closed", "skipped", "absent"] = (
                "closed" if isinstance(event, CaseClosed) else "skipped" if isinstance(event, CaseSkipped)
                else "absent")
            seq = event.call_seq
            await self._call_order(event.session, lambda state: state.case_ended(seq, outcome, self.clock()))
            if self.recording is not None:
                await self.recording.case_ended(event.session, seq)

    async def _call_order(self, room: str, act: Callable[[Room], list[Effect]]) -> None:
        """Apply a call-order event to ``room`` when it is open on this node (others ignore it)."""
        live = self._rooms.get(room)
        if live is None:
            return
        async with live.lock:
            await self._apply(live, act(live.state))

    async def _record_call(self, room: str, call_seq: int, case: str) -> None:
        """A call the room accepted (it is the room's current call) opens the call's recording segment;
        confidential when a closed segment runs at the call (the bus never says a case is confidential)."""
        live = self._rooms.get(room)
        if self.recording is None or live is None or room in self._closed_rooms:
            return
        state = live.state
        if state.closed or state.calling is None or state.calling.call_seq != call_seq:
            return
        await self.recording.open_room(room, {v.venue: v.name for v in state.venues})
        closed = state.closed_segment is not None and state.closed_segment.state == "active"
        await self.recording.case_called(room, call_seq, case, confidential=closed)

    async def open_room(self, room: str, venues: tuple[VenueInfo, ...]) -> None:
        if self._closed or room in self._rooms or room in self._closed_rooms:
            return
        live = _LiveRoom(Room(room, venues))
        self._rooms[room] = live
        async with live.lock:
            await self._save(live)
        log.info("room opened", extra={"ctx": {"room": room, "count": len(venues)}})
        if self.recording is not None:
            await self.recording.open_room(room, {v.venue: v.name for v in venues})

    async def close_room(self, room: str) -> None:
        self._closed_rooms.add(room)
        if self.recording is not None:
            await self.recording.close_room(room)  # before the SFU room closes: the last frames are written
        live = self._rooms.get(room)
        if live is not None:
            async with live.lock:
                await self._apply(live, live.state.close(self.clock()))
            self._rooms.pop(room, None)
        if self.media is not None:
            await self.media.close_room(room)
        with contextlib.suppress(StoreError):
            await self._store.delete(room)
        log.info("room closed", extra={"ctx": {"room": room}})

    async def disable_user(self, sub: str) -> None:
        self._disabled[sub] = self.clock()
        try:  # remembered across a restart of this node and by the other nodes (Redis)
            await self._store.remember_disabled(sub, time.time() + self.options.disabled_memory_s)
        except StoreError:
            log.exception("disabled account not stored", extra={"ctx": {"code": "store_error"}})
        await self._end_account(sub)

    async def _end_account(self, sub: str) -> None:
        for live in list(self._rooms.values()):
            async with live.lock:
                await self._apply(live, live.state.disable(sub, self.clock()))
        for peer in list(self._peers):
            if peer.sub == sub:
                peer.close_soon(CloseCode.ACCOUNT_DISABLED)

    async def end_login_session(self, sid: str) -> None:
        """The console login session ``sid`` ended: refuse its tokens and resume tokens from now on (here,
        on the other nodes and after a restart, for ``disabled_memory_s``), and end its connections."""
        until = time.time() + self.options.disabled_memory_s
        self._ended_sessions[sid] = until
        try:
            await self._store.remember_ended_session(sid, until)
        except StoreError:
            log.exception("ended login session not stored", extra={"ctx": {"code": "store_error"}})
        self._end_session_peers(sid)

    def _end_session_peers(self, sid: str) -> None:
        for peer in list(self._peers):
            if peer.claims.sid == sid:
                peer.left = True  # its participant leaves now: nobody can resume it with this session
                peer.close_soon(CloseCode.SESSION_ENDED)

    async def _sync_denylists(self) -> None:
        """Take in the disabled accounts and ended login sessions the store holds that this node has not
        handled itself (another node consumed the event, or this node restarted) and end their
        connections. A store outage is logged once and leaves the memory as it is."""
        wall = time.time()
        try:
            disabled = await self._store.load_disabled(wall)
            ended = await self._store.load_ended_sessions(wall)
        except StoreError:
            if not self._store_failing:
                log.warning("denylists not read from the room store", extra={"ctx": {"code": "store_error"}})
            self._store_failing = True
            return
        self._store_failing = False
        now = self.clock()
        for sub, until in disabled.items():
            if sub not in self._disabled:
                # remembered for what is left of its time (the sweep counts from the moment of disabling)
                self._disabled[sub] = now - max(0.0, self.options.disabled_memory_s - (until - wall))
                await self._end_account(sub)
        for sid, until in ended.items():
            if sid not in self._ended_sessions:
                self._ended_sessions[sid] = until
                self._end_session_peers(sid)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_interval_s)
            await self.sweep()

    async def sweep(self) -> None:
        """Take in the store's denylists; remove participants lost for longer than the grace; forget old
        disabled accounts and ended login sessions."""
        await self._sync_denylists()
        now = self.clock()
        for live in list(self._rooms.values()):
            due = live.state.next_expiry(self.options.reconnect_grace_s)
            if due is not None and due <= now:
                async with live.lock:
                    await self._apply(live, live.state.expire(now, self.options.reconnect_grace_s))
        for sub, at in list(self._disabled.items()):
            if now - at > self.options.disabled_memory_s:
                del self._disabled[sub]
        wall = time.time()
        for sid, until in list(self._ended_sessions.items()):
            if until <= wall:
                del self._ended_sessions[sid]

    # -- admission --------------------------------------------------------------------------------

    def authenticate(self, token: str, room: str) -> Claims:
        """Verify an access token for ``room`` before the WebSocket is accepted.

        Raises:
            AdmissionRefused: with a stable code (a token code such as ``token_expired``, or
                ``token_revoked`` for a token of an ended console login session, or
                ``account_disabled``, ``wrong_room``, ``room_unknown``, ``room_closed``,
                ``forbidden``, ``venue_not_in_room``).
        """
        if self._closed:
            raise AdmissionRefused(ErrorCode.INTERNAL)
        try:
            claims = self._verifier.verify(token, now=self.clock())
        except TokenError as exc:
            raise AdmissionRefused(exc.code) from exc
        if claims.sub in self._disabled:
            raise AdmissionRefused(ErrorCode.ACCOUNT_DISABLED)
        if claims.sid is not None and claims.sid in self._ended_sessions:
            raise AdmissionRefused("token_revoked")
        if claims.room != room:
            raise AdmissionRefused(ErrorCode.WRONG_ROOM)
        live = self._rooms.get(room)
        if live is None:
            raise AdmissionRefused(ErrorCode.ROOM_CLOSED if room in self._closed_rooms else ErrorCode.ROOM_UNKNOWN)
        if not claims.has(Grant.SUBSCRIBE):
            raise AdmissionRefused(ErrorCode.FORBIDDEN)
        if Role.VENUE in claims.roles and claims.venue is None:
            raise AdmissionRefused(ErrorCode.FORBIDDEN)
        if claims.venue is not None and not live.state.has_venue(claims.venue):
            raise AdmissionRefused(ErrorCode.VENUE_NOT_IN_ROOM)
        return claims

    def new_peer(self, transport: Transport, claims: Claims, room: str) -> Peer:
        """A peer for an authenticated connection; the caller accepts the socket and runs it."""
        if self._closed:
            raise AdmissionRefused(ErrorCode.INTERNAL)
        peer = Peer(transport, claims, room, self, self.options, peer_id=secrets.token_hex(6))
        self._peers.add(peer)
        return peer

    async def attach(self, peer: Peer, join: Join) -> None:
        """Join (or resume) ``peer``'s participant; queues ``welcome`` first."""
        live = self._rooms.get(peer.room)
        if live is None or live.state.closed:
            raise AdmissionRefused(ErrorCode.ROOM_CLOSED)
        claims = peer.claims
        async with live.lock:
            if live.state.closed:
                raise AdmissionRefused(ErrorCode.ROOM_CLOSED)
            now = self.clock()
            participant, effects, resume_failed = None, list[Effect](), False
            if join.resume is not None:
                participant = self._resume_target(join.resume, claims, peer.room)
                if participant is not None:
                    try:
                        effects = live.state.resume(participant, claims.sub)
                    except KeyError:
                        participant = None
                resume_failed = participant is None
                if participant is not None:
                    old = live.peers.get(participant)
                    if old is not None and old is not peer:
                        old.close_soon(4009)
            if participant is None:
                participant = f"p-{secrets.token_hex(6)}"
                identity = Identity(claims.sub, tuple(r.value for r in claims.roles), claims.venue, claims.name)
                effects = live.state.join(participant, identity, now)
            peer.participant = participant
            live.peers[participant] = peer
            member = live.state.members[participant]
            welcome = Welcome(
                you=You(participant=participant, venue=claims.venue, roles=tuple(r.value for r in claims.roles),
                        grants=tuple(sorted(g.value for g in claims.grants))),
                status=member.status,
                resumed=join.resume is not None and not resume_failed,
                resume_token=self._resume_token(claims, participant),
                resume_grace_s=self.options.reconnect_grace_s,
                token_expires_at=claims.exp,
                room=live.state.view_for(participant) if member.status == "admitted" else None,
                max_kbps=(self.media.venue_cap(live.state, claims.venue)
                          if self.media is not None and claims.has(Grant.PUBLISH) else None),
            )
            peer.send(dump_message(welcome))
            if resume_failed:
                peer.send(dump_message(error(ErrorCode.RESUME_FAILED, ref=join.id)))
            if self.media is not None and member.status == "admitted":
                peer.send(dump_message(self.media.ice_servers(participant)))
                if welcome.resumed:
                    await self.media.resumed(peer.room, participant)  # the client publishes again
            if self.recording is not None and member.status == "admitted" and claims.has(Grant.MODERATE):
                for alarm in self.recording.alarm_messages(peer.room):
                    peer.send(dump_message(alarm))  # an alarm raised before this moderator joined
            log.info("participant attached", extra={"ctx": {"room": peer.room, "participant": participant,
                                                            "venue": claims.venue, "peer": peer.peer_id}})
            await self._apply(live, effects)

    def _resume_target(self, token: str, claims: Claims, room: str) -> str | None:
        try:
            resume = self._verifier.verify(token, kind="resume", now=self.clock())
        except TokenError:
            return None
        if resume.sid is not None and resume.sid in self._ended_sessions:
            return None  # a resume token dies with the login session of the token it was issued to
        if resume.sub != claims.sub or resume.room != room or resume.venue != claims.venue:
            return None
        return resume.participant

    def _resume_token(self, claims: Claims, participant: str) -> str:
        return self._issuer.issue(claims.sub, roles=claims.roles, room=claims.room, venue=claims.venue,
                                  unit=claims.unit, kind="resume", participant=participant, sid=claims.sid,
                                  ttl_s=self.options.resume_token_ttl_s, now=self.clock())

    async def refresh(self, peer: Peer, msg: Refresh) -> bool:
        """Replace ``peer``'s access token; True when accepted (then ``token.refreshed`` is queued)."""
        try:
            claims = self._verifier.verify(msg.token, now=self.clock())
        except TokenError as exc:
            code = ErrorCode.TOKEN_EXPIRED if exc.code == "token_expired" else ErrorCode.TOKEN_INVALID
            peer.send(dump_message(error(code, ref=msg.id, detail=exc.code)))
            return False
        if claims.sid is not None and claims.sid in self._ended_sessions:
            peer.send(dump_message(error(ErrorCode.TOKEN_INVALID, ref=msg.id, detail="token_revoked")))
            return False
        old = peer.claims
        if (claims.sub, claims.room, claims.venue, claims.roles) != (old.sub, old.room, old.venue, old.roles):
            peer.send(dump_message(error(ErrorCode.TOKEN_MISMATCH, ref=msg.id)))
            return False
        peer.claims = claims
        resume = self._resume_token(claims, peer.participant) if peer.participant else ""
        peer.send(dump_message(TokenRefreshed(expires_at=claims.exp, resume_token=resume)))
        if self.media is not None and peer.participant:
            peer.send(dump_message(self.media.ice_servers(peer.participant)))
        return True

    async def handle(self, peer: Peer, msg: ClientMessage) -> None:
        """Apply one moderation message of an attached peer."""
        live = self._rooms.get(peer.room)
        participant = peer.participant
        if live is None or participant is None:
            peer.send(dump_message(error(ErrorCode.ROOM_CLOSED, ref=msg.id)))
            return
        if isinstance(msg, MEDIA_MESSAGES):
            await self._handle_media(live, peer, participant, msg)
            return
        async with live.lock:
            if live.peers.get(participant) is not peer:
                peer.send(dump_message(error(ErrorCode.NOT_IN_ROOM, ref=msg.id)))
                return
            await self._apply(live, live.state.act(participant, msg, self.clock()))

    async def _handle_media(self, live: _LiveRoom, peer: Peer, participant: str, msg: MediaMessage) -> None:
        """Media messages are checked under the room lock and negotiated outside it (ICE gathering
        may take a while; the room's moderation never waits for it)."""
        async with live.lock:
            member = live.state.member(participant)
            if live.peers.get(participant) is not peer or member is None or live.state.closed:
                peer.send(dump_message(error(ErrorCode.NOT_IN_ROOM, ref=msg.id)))
                return
            if member.status != "admitted":
                peer.send(dump_message(error(ErrorCode.IN_LOBBY, ref=msg.id)))
                return
        if self.media is None:
            peer.send(dump_message(error(ErrorCode.MEDIA_UNAVAILABLE, ref=msg.id)))
            return
        await self.media.handle(peer.room, member, peer.peer_id, msg)

    async def detach(self, peer: Peer) -> None:
        """The peer's connection ended: leave (after ``leave``) or keep the place for the grace."""
        self._peers.discard(peer)
        live = self._rooms.get(peer.room)
        participant = peer.participant
        if live is None or participant is None:
            return
        async with live.lock:
            if live.peers.get(participant) is not peer:
                return
            del live.peers[participant]
            now = self.clock()
            effects = live.state.leave(participant, now) if peer.left else live.state.disconnect(participant, now)
            await self._apply(live, effects)

    # -- effects ----------------------------------------------------------------------------------

    async def _apply(self, live: _LiveRoom, effects: list[Effect]) -> None:
        """Carry out ``effects`` in order; the caller holds ``live.lock``.

        The new state is saved first: what a peer has been told survives a crash right after.
        """
        await self._save(live)
        events: list[Event] = []
        for effect in effects:
            match effect:
                case Send(to=to, message=message):
                    target = live.peers.get(to)
                    if target is not None:
                        target.send(dump_message(message))
                        if isinstance(message, Admitted) and self.media is not None:
                            target.send(dump_message(self.media.ice_servers(to)))
                case Broadcast(message=message, audience=audience, exclude=exclude):
                    text = dump_message(message)
                    for pid in live.state.recipients(audience, exclude):
                        target = live.peers.get(pid)
                        if target is not None:
                            target.send(text)
                case Disconnect(participant=pid, code=code):
                    target = live.peers.pop(pid, None)
                    if target is not None:
                        target.close_soon(code)
                case Publish(event=event):
                    events.append(event)
        for event in events:
            await self.publish_event(event)
        if self.media is not None:
            await self.media.after_change(live.state)

    async def publish_event(self, event: Event) -> None:
        """Publish one event on the bus; an outage is logged, never raised (the room goes on)."""
        if self.recording is not None:
            self.recording.observe(event)  # closed segment, speaker and link changes go to the recorder
        try:
            await self._bus.publish(event)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a bus outage must not stop the room
            log.exception("room event not published", extra={"ctx": {"room": getattr(event, "room", None),
                                                                      "event": event.event_id}})

    # -- for the media plane ----------------------------------------------------------------------

    def send_to(self, room: str, participant: str, message: ServerMessage) -> None:
        live = self._rooms.get(room)
        target = live.peers.get(participant) if live is not None else None
        if target is not None:
            target.send(dump_message(message))

    def broadcast(self, room: str, message: ServerMessage, audience: Literal["room", "moderators"]) -> None:
        live = self._rooms.get(room)
        if live is None:
            return
        text = dump_message(message)
        for pid in live.state.recipients(audience):
            target = live.peers.get(pid)
            if target is not None:
                target.send(text)

    async def _save(self, live: _LiveRoom) -> None:
        if live.state.closed or live.state.version == live.saved_version:
            return
        try:
            await self._store.save(live.state.record())
            live.saved_version = live.state.version
        except StoreError:
            log.exception("room state not saved", extra={"ctx": {"room": live.state.room}})

    # -- metrics ----------------------------------------------------------------------------------

    def _register_metrics(self, registry: CollectorRegistry) -> None:
        Gauge("tiepdan_room_peers", "WebSocket peers attached to the room server",
              registry=registry).set_function(lambda: float(len(self._peers)))
        Gauge("tiepdan_rooms", "Live rooms open on this node",
              registry=registry).set_function(lambda: float(len(self._rooms)))
