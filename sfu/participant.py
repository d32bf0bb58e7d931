"""Participant: one connected venue (or console) in a room, with its transports, tracks and slots.

API for the room server (signalling is not part of the SFU; it only moves these strings):

Publishing (the venue offers, the SFU answers)::

    answer_sdp = await participant.publish_offer(offer_sdp, names={"0": "camera", "1": "camera-low"})
    await participant.add_ice_candidate(candidate, sdp_mid="0", role="publisher")   # trickled, optional
    # -> TrackPublished events; participant.publications

Subscribing (the SFU offers fixed slots, the venue answers; sources change without renegotiation)::

    offer_sdp = await participant.subscriber_offer()           # Options.video_slots + audio_slots
    await participant.apply_answer(answer_sdp)
    participant.video_slots[0].set_source(room.publication("venue-3/camera"))

Order of operations follows the interop notes: transceivers with codec preferences are created
*before* ``setRemoteDescription``; the publisher answer is munged (Opus ``useinbandfec=1``, Chromium
start/min bitrate); only one video receiver per publisher connection sends REMB; slots start
forwarding (and request keyframes) when the subscriber connection is up, not at offer time.

Links: a transport that fails or does not connect within ``Options.connect_timeout`` is closed and
reported (``LinkLost`` with ``IceTimeout``/``TransportFailed``); its publications end. Negotiating
again (``publish_offer`` / ``subscriber_offer``) restores the link (``LinkUp(restored=True)``); slots
keep their sources across a subscriber reconnect.

A second ``publish_offer`` while the publisher link is alive raises ``AlreadyPublishing``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from sfu import negotiation
from sfu.errors import (
    AlreadyPublishing,
    NegotiationError,
    NegotiationStateError,
    NotFound,
    ParticipantClosed,
    SfuError,
    TransportFailed,
)
from sfu.events import LinkLost, LinkUp, TrackPublished
from sfu.forwarding import ForwardedTrack
from sfu.publication import Publication
from sfu.stats import PublicationStats, SubscriptionStats
from sfu.subscription import Subscription
from sfu.transport import Transport

if TYPE_CHECKING:
    from sfu.room import Room

logger = logging.getLogger(__name__)

PUBLISHER = "publisher"
SUBSCRIBER = "subscriber"

_AIORTC_NEGOTIATION_ERRORS = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AssertionError,
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)


class Participant:
    """A venue in a room. Created by ``Room.join``; owned by the room."""

    def __init__(self, room: Room, participant_id: str) -> None:
        self.room = room
        self.id = participant_id
        self.closed = False
        self._options = room.options
        self._publisher: Transport | None = None
        self._subscriber: Transport | None = None
        self._publications: dict[str, Publication] = {}
        self._video_slots: tuple[Subscription, ...] = ()
        self._audio_slots: tuple[Subscription, ...] = ()
        self._lost_roles: set[str] = set()
        self._rtt: float | None = None

    def __repr__(self) -> str:
        return f"<Participant {self.room.id}/{self.id}{' closed' if self.closed else ''}>"

    # --- read API ------------------------------------------------------------------------------------------

    @property
    def publications(self) -> tuple[Publication, ...]:
        return tuple(p for p in self._publications.values() if not p.closed)

    def publication(self, name: str) -> Publication:
        """The live publication called ``name`` (``NotFound`` otherwise)."""
        pub = self._publications.get(name)
        if pub is None or pub.closed:
            raise NotFound(f"{self.id} publishes no {name}")
        return pub

    @property
    def video_slots(self) -> tuple[Subscription, ...]:
        return self._video_slots

    @property
    def audio_slots(self) -> tuple[Subscription, ...]:
        return self._audio_slots

    @property
    def slots(self) -> tuple[Subscription, ...]:
        return self._video_slots + self._audio_slots

    def link_state(self, role: str) -> str:
        """``none``, ``new``, ``connecting``, ``connected``, ``failed`` or ``closed``."""
        transport = self._transport(role)
        return "none" if transport is None else transport.state

    async def wait_connected(self, role: str = PUBLISHER) -> None:
        """Wait for the ``role`` link; raises ``IceTimeout``/``TransportFailed`` if it fails."""
        transport = self._transport(role)
        if transport is None:
            raise NegotiationStateError(f"{self.id} has no {role} link")
        await transport.wait_connected()

    # --- publishing ---------------------------------------------------------------------------------------

    async def publish_offer(self, sdp: str, names: Mapping[str, str] | None = None,
                            max_kbps: int | None = None) -> str:
        """Answer a publisher offer (send-only camera/microphone m-lines); returns the answer SDP.

        ``names`` maps an m-line ``mid`` to a publication name (default ``video-0``, ``audio-0``, ...); a
        key that is no ``mid`` of the offer is refused (``NegotiationError``, nothing changed).
        Publication ids are ``<participant id>/<name>``. ``max_kbps`` caps each of its video layers
        (the venue's link budget; Chromium enforces it on its encoder).

        Raises ``InvalidSdp``, ``UnsupportedCodec``, ``AlreadyPublishing``, ``NegotiationError``.
        """
        self._check_open()
        if max_kbps is not None and max_kbps <= 0:
            raise ValueError("max_kbps must be positive")
        if self._publisher is not None and self._publisher.state not in ("failed", "closed"):
            raise AlreadyPublishing(f"{self.id} already publishes in {self.room.id}")
        description = negotiation.parse_description(sdp)
        media = negotiation.summarize(description)
        for m in media:
            if m.direction not in ("sendonly", "sendrecv"):
                raise NegotiationError(f"m-line {m.index} ({m.kind}) is {m.direction}; a publisher sends")
        negotiation.check_offered_codecs(media, self.room.video_codec)
        strays = sorted(set(names or {}) - {m.mid for m in media})
        if strays:
            raise NegotiationError(f"names {strays} match no mid of the offer {[m.mid for m in media]}")
        old = self._publisher
        if old is not None:
            await old.close()
            for stale in list(self._publications.values()):
                await stale.close()
        names = dict(names or {})
        chosen: dict[str, str] = {}
        counters = {"audio": 0, "video": 0}
        for m in media:
            name = names.get(m.mid) or f"{m.kind}-{counters[m.kind]}"
            counters[m.kind] += 1
            existing = self._publications.get(name)
            if name in chosen.values() or (existing is not None and not existing.closed):
                raise NegotiationError(f"publication name {name!r} used twice")
            chosen[m.mid] = name

        transport = self._new_transport(PUBLISHER)
        self._publisher = transport
        pc = transport.pc
        transceivers: list[RTCRtpTransceiver] = []
        try:
            for m in media:
                transceiver = pc.addTransceiver(m.kind, direction="recvonly")
                transceiver.setCodecPreferences(negotiation.codec_preferences(m.kind, self.room.video_codec))
                transceivers.append(transceiver)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await transport.set_local_description(await pc.createAnswer())
        except SfuError:
            await transport.close()
            raise
        except _AIORTC_NEGOTIATION_ERRORS as exc:
            await transport.close()
            raise NegotiationError(f"cannot answer the publisher offer: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled: the half-made link closes (its sockets too) and a new offer may come
            await transport.close()
            raise

        video_seen = False
        for m, transceiver in zip(media, transceivers, strict=True):
            receiver = transceiver.receiver
            if m.kind == "video":
                if video_seen:
                    from sfu import hooks

                    hooks.suppress_remb(receiver)
                video_seen = True
            pub = Publication(
                room_id=self.room.id,
                participant_id=self.id,
                name=chosen[m.mid],
                kind=m.kind,
                mid=m.mid,
                codec=negotiation.forwarded_codec(m.kind, self.room.video_codec),
                receiver=receiver,
                ssrc=m.primary_ssrc,
                options=self._options,
                emit=self.room._emit,
                rtt=lambda: self._rtt,
            )
            self._publications[pub.name] = pub
        for name in chosen.values():
            pub = self._publications[name]
            self.room._emit(TrackPublished(self.room.id, self.id, pub.id, pub.kind, pub.name, pub.codec))
        transport.start_watchdog()
        answer = pc.localDescription.sdp
        return negotiation.munge_publisher_answer(
            answer,
            video_codec=self.room.video_codec,
            opus_inband_fec=self._options.opus_inband_fec,
            start_bitrate_kbps=self._options.start_bitrate_kbps,
            min_bitrate_kbps=self._options.min_bitrate_kbps,
            max_bitrate_kbps=max_kbps,
        )

    async def unpublish(self) -> None:
        """End every publication and close the publisher link."""
        for pub in list(self._publications.values()):
            await pub.close()
        if self._publisher is not None:
            await self._publisher.close()

    # --- subscribing --------------------------------------------------------------------------------------

    async def subscriber_offer(self, video_slots: int | None = None, audio_slots: int | None = None) -> str:
        """Create the subscriber connection with fixed send-only slots; returns the offer SDP.

        Slots are created on the first call (counts default to ``Options.video_slots``/``audio_slots``)
        and kept when a failed link is re-negotiated. Raises ``NegotiationStateError`` if a subscriber
        link is already up or being negotiated.
        """
        self._check_open()
        if self._subscriber is not None and self._subscriber.state not in ("failed", "closed"):
            raise NegotiationStateError(f"{self.id} already has a subscriber link")
        if not self._video_slots and not self._audio_slots:
            self._create_slots(
                self._options.video_slots if video_slots is None else video_slots,
                self._options.audio_slots if audio_slots is None else audio_slots,
            )
        old = self._subscriber
        if old is not None:
            await old.close()
        transport = self._new_transport(SUBSCRIBER)
        self._subscriber = transport
        pc = transport.pc
        try:
            for slot in self.slots:
                prefs = negotiation.codec_preferences(slot.kind, self.room.video_codec)
                slot._bind(functools.partial(_add_sender, pc, prefs))
            await transport.set_local_description(await pc.createOffer())
        except SfuError:
            await transport.close()
            raise
        except _AIORTC_NEGOTIATION_ERRORS as exc:
            await transport.close()
            raise NegotiationError(f"cannot create the subscriber offer: {type(exc).__name__}") from exc
        except BaseException:  # cancelled: as in publish_offer
            await transport.close()
            raise
        transport.start_watchdog()
        offer = pc.localDescription.sdp
        return negotiation.munge_subscriber_offer(offer, opus_inband_fec=self._options.opus_inband_fec)

    async def apply_answer(self, sdp: str) -> None:
        """Apply the subscriber's answer to :meth:`subscriber_offer`.

        Raises ``NegotiationStateError`` (no pending offer), ``InvalidSdp``, ``NegotiationError``.
        """
        self._check_open()
        transport = self._subscriber
        if transport is None or transport.closed or transport.pc.signalingState != "have-local-offer":
            raise NegotiationStateError(f"{self.id} has no pending subscriber offer")
        negotiation.parse_description(sdp)
        try:
            await transport.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except _AIORTC_NEGOTIATION_ERRORS as exc:
            raise NegotiationError(f"cannot apply the subscriber answer: {type(exc).__name__}") from exc

    async def add_ice_candidate(
        self,
        candidate: str | None,
        *,
        sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
        role: str = PUBLISHER,
    ) -> None:
        """Add a trickled remote candidate to the ``role`` link. Raises ``InvalidCandidate``."""
        self._check_open()
        transport = self._transport(role)
        if transport is None:
            raise NegotiationStateError(f"{self.id} has no {role} link")
        await transport.add_ice_candidate(candidate, sdp_mid, sdp_mline_index)

    # --- stats and lifecycle ------------------------------------------------------------------------------

    async def stats(self) -> tuple[list[PublicationStats], list[SubscriptionStats]]:
        subs = [await s.stats() for s in self.slots if not s.closed]
        rtts = [s.rtt_ms for s in subs if s.rtt_ms is not None]
        self._rtt = min(rtts) / 1000.0 if rtts else None
        pubs = [await p.stats() for p in self.publications]
        return pubs, subs

    async def close(self) -> None:
        """Leave the room: publications end, slots close, both links close. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for pub in list(self._publications.values()):
            await pub.close()
        for slot in self.slots:
            await slot.close()
        for transport in (self._publisher, self._subscriber):
            if transport is not None:
                await transport.close()
        self.room._forget(self)

    # --- internals ---------------------------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return f"{self.room.id}/{self.id}"

    def _new_transport(self, role: str) -> Transport:
        return Transport(role=role, label=self._label, options=self._options, on_state=self._on_state,
                         on_task_failed=self.room._task_failed)

    def _check_open(self) -> None:
        if self.closed:
            raise ParticipantClosed(f"{self._label} left")

    def _transport(self, role: str) -> Transport | None:
        if role == PUBLISHER:
            return self._publisher
        if role == SUBSCRIBER:
            return self._subscriber
        raise ValueError(f"role must be {PUBLISHER!r} or {SUBSCRIBER!r}")

    def _create_slots(self, video: int, audio: int) -> None:
        def make(kind: str, index: int) -> Subscription:
            return Subscription(
                room_id=self.room.id,
                participant_id=self.id,
                kind=kind,
                index=index,
                codec=negotiation.forwarded_codec(kind, self.room.video_codec),
                options=self._options,
                emit=self.room._emit,
            )

        self._video_slots = tuple(make("video", i) for i in range(video))
        self._audio_slots = tuple(make("audio", i) for i in range(audio))

    def _on_state(self, transport: Transport) -> None:
        if transport is not self._publisher and transport is not self._subscriber:
            return  # a replaced transport closing
        if transport.state == "connected":
            restored = transport.role in self._lost_roles
            self._lost_roles.discard(transport.role)
            if transport.role == SUBSCRIBER:
                for slot in self.slots:
                    slot._set_active(True)
            self.room._emit(LinkUp(self.room.id, self.id, transport.role, restored))
        elif transport.state == "failed":
            self._lost_roles.add(transport.role)
            if transport.role == SUBSCRIBER:
                for slot in self.slots:
                    slot._set_active(False)
            else:
                for pub in list(self._publications.values()):
                    self.room._spawn(pub.close(), "publication-close")
            error = transport.error or TransportFailed(f"{self._label} {transport.role} failed")
            self.room._emit(LinkLost(self.room.id, self.id, transport.role, error))
        elif transport.state == "closed" and transport.role == SUBSCRIBER:
            for slot in self.slots:
                slot._set_active(False)


def _add_sender(
    pc: RTCPeerConnection, prefs: list[RTCRtpCodecCapability], track: ForwardedTrack
) -> RTCRtpSender:
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(prefs)
    return transceiver.sender
