"""Subscription: one fixed slot of a subscriber, forwarding one publication at a time.

A subscriber's peer connection is negotiated once with ``Options.video_slots`` video and
``Options.audio_slots`` audio send-only m-lines (``Participant.subscriber_offer``). The room server
then points slots at publications with :meth:`Subscription.set_source`; no new offer/answer is
needed. On a switch, queued frames of the old source are dropped, the new source is asked for a
keyframe and the slot stays silent until it arrives (about one round trip), so the subscriber's
decoder never sees a delta frame it cannot decode. Outgoing timestamps are rebased so the RTP
stream stays monotonic across sources.

A slot forwards only while (a) it has a source, (b) the subscriber's connection is up and (c) the
source's allow-list (``Publication.restrict``) admits the subscriber. A subscriber PLI/FIR is relayed
to the current source. The slot's queue is bounded: a subscriber that stops reading loses frames
(``SinkLagging`` event, ``SlowConsumer`` error) and nobody else is affected.

With ``Options.rtp_forwarding`` the slot forwards packets instead of frames: once aiortc starts the
slot's sender (the negotiated payload types, header-extension ids and SSRCs are known), a
:class:`~sfu.rtp_forward.SlotRewriter` (or its C twin, ``sfu.native``) rewrites each packet of the source
for this subscriber and sends it
through the subscriber's transport at once, a :class:`~sfu.rtp_forward.SendHistory` answers the
subscriber's NACKs, and the sender's RTCP sender reports carry the rewriter's clock pair and counters.
The slot's ``ForwardedTrack`` is never fed (aiortc's send loop just waits), so the queue stays empty.
A subscriber whose link stops taking packets (``hooks.rtp_send`` holds at most ``RTP_SEND_BACKLOG``
sends that suspend; a UDP or TURN send of aioice 0.13 never does, a test's stuck link does) loses packets,
not the others: ``SinkLagging`` as above, ``packets_dropped`` in its
stats, and its video resumes on a keyframe.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpSender
from aiortc.rtp import RtpPacket

from sfu import native
from sfu.errors import (
    CodecMismatch,
    KindMismatch,
    ParticipantClosed,
    PublicationClosed,
    SlowConsumer,
    SourceRestricted,
)
from sfu.events import Event, SinkLagging, SourceChanged
from sfu.forwarding import ForwardedTrack, SinkQueue
from sfu.native import RewriterLike
from sfu.options import Options
from sfu.rtp_forward import SendHistory
from sfu.stats import DelaySampler, RateMeter, SubscriptionStats

if TYPE_CHECKING:
    from sfu.hooks import SenderReportValues, SendParameters
    from sfu.publication import Publication

logger = logging.getLogger(__name__)

#: at most one SinkLagging event per slot per this many seconds
_LAG_EVENT_INTERVAL = 1.0
#: RTP forwarding: a NACKed packet is resent at most this many times, and not again within this many seconds
#: (a receiver that cannot take the retransmissions, or NACKs all its gaps again, must not cause a storm)
_MAX_RESENDS = 3
_RESEND_INTERVAL = 0.05



def _no_sender() -> native.SenderLike | None:
    return None

class Subscription:
    """A subscriber slot. Created and owned by its :class:`~sfu.participant.Participant`."""

    def __init__(
        self,
        *,
        room_id: str,
        participant_id: str,
        kind: str,
        index: int,
        codec: str,
        options: Options,
        emit: Callable[[Event], None],
    ) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self.kind = kind
        self.index = index
        self.codec = codec
        self.id = f"{participant_id}/{kind}-{index}"
        self.closed = False
        self._options = options
        self._emit = emit
        self._maxsize = options.video_queue_frames if kind == "video" else options.audio_queue_frames
        self._queue = SinkQueue(kind, self._maxsize, self._keyframe_needed, self._overflowed)
        self._source: Publication | None = None
        self._attached: Publication | None = None
        self._active = False
        self._sender: RTCRtpSender | None = None
        self._meter = RateMeter()
        self._delays = DelaySampler()
        self._last_lag_event = -_LAG_EVENT_INTERVAL
        self.keyframe_requests = 0
        #: RTP-level forwarding (``Options.rtp_forwarding``): set up once the slot's sender started
        self.rtp = options.rtp_forwarding
        self._rewriter: RewriterLike | None = None
        self._history: SendHistory | None = None
        self._send_rtp: Callable[[bytes], bool | None] | None = None
        #: the per-packet path in C (``sfu.native``): the function, the transport's sender, the history's rings
        self._forward: native.Forward | None = None
        self._native_sender: Callable[[], native.SenderLike | None] = _no_sender
        self._rings: tuple[list[int], list[bytes]] | tuple[None, None] = (None, None)
        self._frame_bytes = 0
        self.send_errors = 0
        #: RTP forwarding: packets the subscriber's link refused (stuck or closed), episodes of it
        self.packets_dropped = 0
        self.rtp_overflows = 0
        self._stuck = False
        #: per history place: (sequence number, resends, last resend time) of the packet resent from it
        self._resends: list[tuple[int, int, float]] = []
        self.resends_skipped = 0

    def __repr__(self) -> str:
        return f"<Subscription {self.id} source={self._source.id if self._source else None}>"

    @property
    def queue(self) -> SinkQueue:
        return self._queue

    @property
    def source(self) -> Publication | None:
        """The publication this slot points at (it may be blocked by a restriction)."""
        return self._source

    @property
    def rewriter(self) -> RewriterLike | None:
        """The slot's RTP rewriter (RTP forwarding, once the sender started), else None."""
        return self._rewriter

    @property
    def history(self) -> SendHistory | None:
        """The slot's NACK history (RTP forwarding of video, once the sender started), else None."""
        return self._history

    @property
    def forwarding(self) -> bool:
        """Whether frames of the source currently flow into this slot."""
        return self._attached is not None

    def set_source(self, publication: Publication | None) -> None:
        """Point this slot at ``publication`` (``None`` empties it); effective within a keyframe RTT.

        Raises :class:`KindMismatch`, :class:`CodecMismatch`, :class:`SourceRestricted` (allow-list
        excludes this participant), :class:`PublicationClosed` or :class:`ParticipantClosed`.
        """
        if self.closed:
            raise ParticipantClosed(self.id)
        if publication is not None:
            if publication.closed:
                raise PublicationClosed(publication.id)
            if publication.kind != self.kind:
                raise KindMismatch(f"{self.id} is a {self.kind} slot; {publication.id} is {publication.kind}")
            if publication.codec != self.codec:
                raise CodecMismatch(f"{self.id} sends {self.codec}; {publication.id} is {publication.codec}")
            if not publication.allows(self.participant_id):
                raise SourceRestricted(f"{publication.id} is restricted; {self.participant_id} not allowed")
        if publication is self._source:
            return
        if self._source is not None:
            self._source._pointing.discard(self)
        self._source = publication
        if publication is not None:
            publication._pointing.add(self)
        self._refresh()
        source_id = None if publication is None else publication.id
        self._emit(SourceChanged(self.room_id, self.participant_id, self.id, source_id))

    async def stats(self) -> SubscriptionStats:
        now = time.monotonic()
        fps, bps = self._meter.rates(now)
        packets = 0
        lost = 0
        jitter_ms: float | None = None
        rtt_ms: float | None = None
        if self._sender is not None and not self.closed:
            try:
                report = await self._sender.getStats()
            except Exception:  # the transport may be closing; stats are best effort
                report = None
            if report is not None:
                clock = 90000 if self.kind == "video" else 48000
                rewriter = self._rewriter
                for entry in report.values():
                    kind = getattr(entry, "type", None)
                    if kind == "outbound-rtp":
                        packets = int(getattr(entry, "packetsSent", 0) or 0)
                        if rewriter is not None:  # aiortc's send loop sends nothing
                            packets = rewriter.packets_sent
                    elif kind == "remote-inbound-rtp":
                        lost = int(getattr(entry, "packetsLost", 0) or 0)
                        jitter = getattr(entry, "jitter", None)
                        if jitter is not None:
                            jitter_ms = 1000.0 * float(jitter) / clock
                        rtt = getattr(entry, "roundTripTime", None)
                        if rtt is not None:
                            rtt_ms = 1000.0 * float(rtt)
        delay_p50, delay_p99 = self._delays.percentiles_ms()
        return SubscriptionStats(
            subscription_id=self.id,
            participant_id=self.participant_id,
            kind=self.kind,
            source_id=None if self._source is None else self._source.id,
            bitrate_bps=8 * bps,
            packets=packets,
            packets_lost=lost,
            frames=self._meter.count,
            frames_per_second=fps,
            frames_dropped=self._queue.dropped,
            overflows=self._queue.overflows + self.rtp_overflows,
            packets_dropped=self.packets_dropped,
            keyframe_requests=self.keyframe_requests,
            jitter_ms=jitter_ms,
            rtt_ms=rtt_ms,
            queued=len(self._queue),
            delay_p50_ms=delay_p50,
            delay_p99_ms=delay_p99,
        )

    async def rtt(self) -> float | None:
        """Round-trip time to the subscriber in seconds, from its receiver reports."""
        if self._sender is None or self.closed:
            return None
        report = await self._sender.getStats()
        for entry in report.values():
            if getattr(entry, "type", None) == "remote-inbound-rtp":
                rtt = getattr(entry, "roundTripTime", None)
                return None if rtt is None else float(rtt)
        return None

    async def close(self) -> None:
        """Empty the slot and end its track. Idempotent."""
        if self.closed:
            return
        if self._source is not None:
            self._source._pointing.discard(self)
        self._source = None
        self._active = False
        self._refresh()
        self._queue.close()
        self.closed = True

    # --- owner API (Participant, Publication) -------------------------------------------------------------

    def _bind(self, sender_ready: Callable[[ForwardedTrack], RTCRtpSender]) -> None:
        """Bind to a new subscriber connection: fresh queue and track, keyframe requests hooked."""
        from sfu import hooks

        self._queue.close()
        self._queue = SinkQueue(self.kind, self._maxsize, self._keyframe_needed, self._overflowed)
        track = ForwardedTrack(self.kind, self._queue, self._meter, self._delays)
        self._rewriter = None
        self._history = None
        self._send_rtp = None
        self._forward = None
        self._sender = sender = sender_ready(track)
        hooks.on_keyframe_request(sender, self._on_pli)
        if self.rtp:
            hooks.on_send_parameters(sender, functools.partial(self._on_send_parameters, sender))
            hooks.on_retransmit(sender, self._on_nack)
            hooks.on_sender_report_sent(sender, self._sender_report_values)

    def _on_send_parameters(self, sender: RTCRtpSender, parameters: SendParameters) -> None:
        """aiortc started the slot's sender: the outgoing stream can be built (RTP forwarding)."""
        from sfu import hooks

        if sender is not self._sender or self.closed:
            return  # a sender of a replaced connection
        rewriter = native.make_rewriter(
            native=self._options.native_forwarding,
            ssrc=parameters.ssrc,
            payload_type=parameters.payload_type,
            clock_rate=parameters.clock_rate,
            codec=parameters.codec,
            mid=parameters.mid,
            mid_id=parameters.mid_id,
            abs_send_time_id=parameters.abs_send_time_id,
            audio_level_id=parameters.audio_level_id,
        )
        if self.kind == "video":
            rtx = parameters.rtx_payload_type
            self._history = SendHistory(
                rtx_payload_type=rtx,
                rtx_ssrc=None if rtx is None else parameters.rtx_ssrc,
                abs_send_time_id=parameters.abs_send_time_id,
            )
            self._resends = [(-1, 0, 0.0)] * self._history.size
        self._send_rtp = hooks.rtp_send(sender.transport, native=self._options.native_forwarding)
        # the per-packet path in C (sfu.native.forward), while the transport has a native sender
        self._forward = native.forward_function(rewriter)
        self._native_sender = hooks.native_sender_lookup(sender.transport)
        self._rings = (None, None) if self._history is None else self._history.rings()
        rewriter.set_source(self._attached)
        self._rewriter = rewriter
        if self._attached is not None:  # its keyframe may have come before the slot could forward it
            self._attached.request_keyframe("sink")

    def forward_rtp(self, packet: RtpPacket, source: Publication, wall: float, now: float) -> bool:
        """Send ``packet`` of ``source`` (received at ``now``, monotonic; ``wall``: ``time.time()``) to the
        subscriber; True when the slot waits for a keyframe of the source (the caller asks for one)."""
        rewriter = self._rewriter
        send = self._send_rtp
        if rewriter is None or send is None:
            return False
        forward = self._forward
        fast = None if forward is None else self._native_sender()
        if forward is not None and fast is not None:
            try:
                result = forward(rewriter, fast, packet, source, wall, *self._rings)
            except Exception as exc:  # as a failed send below: counted, the packet lost for this subscriber
                self._send_failed(exc)
                return False
            if result is None:
                return rewriter.waiting_keyframe
            if type(result) is int and result < 0:  # the socket's transport closes: so does the link, and this slot
                return False
        else:
            result = rewriter.rewrite(packet, source, wall)
            if result is None:
                return rewriter.waiting_keyframe
        if type(result) is not int:  # rewritten, not sent (Python path, or a stale native sender it renews)
            data = bytes(result)
            try:
                sent = send(data)
            except Exception as exc:  # never let a subscriber's transport break the publisher's ingest
                self._send_failed(exc)
                sent = True  # not the link's backlog: counted as a send error only
            if not sent:
                if sent is None:  # not connected: the link is closing, and so is this slot
                    return False
                return self._refused(rewriter, now)
            history = self._history
            if history is not None:
                history.add(data)
        self._stuck = False
        self._frame_bytes += len(packet.payload)
        if packet.marker or self.kind == "audio":
            self._meter.add(now, self._frame_bytes)
            self._frame_bytes = 0
            self._delays.add(time.monotonic() - now)
        return False

    def _send_failed(self, exc: Exception) -> None:
        self.send_errors += 1
        if self.send_errors == 1:
            logger.warning("RTP send of %s failed (%s: %s)", self.id, type(exc).__name__, exc)

    def _refused(self, rewriter: RewriterLike, now: float) -> bool:
        """The subscriber's link took no more packets (its sends are stuck): the packet is
        dropped for this subscriber only, and reported like a frame queue's overflow (``SinkLagging``,
        ``packets_dropped``, one ``overflows`` per episode). Video then waits for a keyframe, so the
        subscriber's decoder resumes on a picture it can decode; True asks the source for one."""
        self.packets_dropped += 1
        if not self._stuck:
            self._stuck = True
            self.rtp_overflows += 1
        self._overflowed(1)
        rewriter.request_keyframe()
        return rewriter.waiting_keyframe

    def _on_nack(self, sequence_number: int) -> None:
        history = self._history
        send = self._send_rtp
        if history is None or send is None or self.closed:
            return
        now = time.monotonic()
        place = sequence_number & (len(self._resends) - 1)
        seq, resends, last = self._resends[place]
        if seq == sequence_number:
            if resends >= _MAX_RESENDS or now - last < _RESEND_INTERVAL:
                self.resends_skipped += 1
                return
            self._resends[place] = (seq, resends + 1, now)
        else:
            self._resends[place] = (sequence_number, 1, now)
        data = history.retransmission(sequence_number, time.time())
        if data is not None:
            try:
                send(data)
            except Exception:  # a closing transport: the retransmission is moot
                self.send_errors += 1

    def _sender_report_values(self) -> SenderReportValues | None:
        rewriter = self._rewriter
        if rewriter is None:
            return None
        pair = rewriter.sender_report(time.time())
        if pair is None:
            return None
        return pair[0], pair[1], rewriter.packets_sent, rewriter.octets_sent

    def _set_active(self, active: bool) -> None:
        self._active = active
        self._refresh()

    def _refresh(self) -> None:
        source = self._source
        want = None
        if self._active and source is not None and not source.closed and source.allows(self.participant_id):
            want = source
        if want is self._attached:
            return
        if self._attached is not None:
            if self.rtp:
                self._attached._detach_rtp(self)
            else:
                self._attached._detach(self)
        self._attached = want
        if self.rtp:
            if self._rewriter is not None:
                self._rewriter.set_source(want)
            if want is not None:
                want._attach_rtp(self)
        elif want is not None:
            want._attach(self)

    def _source_ended(self, publication: Publication) -> None:
        if self._source is not publication:
            return
        self._source = None
        self._refresh()
        self._emit(SourceChanged(self.room_id, self.participant_id, self.id, None))

    def _on_pli(self) -> None:
        self.keyframe_requests += 1
        if self._attached is not None:
            self._attached.request_keyframe("subscriber")

    def _keyframe_needed(self, reason: str) -> None:
        if self._attached is not None:
            self._attached.request_keyframe(reason)

    def _overflowed(self, dropped: int) -> None:
        now = time.monotonic()
        if now - self._last_lag_event >= _LAG_EVENT_INTERVAL:
            self._last_lag_event = now
            self._emit(SinkLagging(self.room_id, self.id, dropped, SlowConsumer(f"{self.id} fell behind")))
