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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpSender

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
from sfu.options import Options
from sfu.stats import DelaySampler, RateMeter, SubscriptionStats

if TYPE_CHECKING:
    from sfu.publication import Publication

#: at most one SinkLagging event per slot per this many seconds
_LAG_EVENT_INTERVAL = 1.0


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
                for entry in report.values():
                    kind = getattr(entry, "type", None)
                    if kind == "outbound-rtp":
                        packets = int(getattr(entry, "packetsSent", 0) or 0)
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
            overflows=self._queue.overflows,
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
        self._sender = sender_ready(track)
        hooks.on_keyframe_request(self._sender, self._on_pli)

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
            self._attached._detach(self)
        self._attached = want
        if want is not None:
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
