"""Publication: one track (camera, low camera, microphone) a participant publishes into a room.

A publication is the fan-out point of the hot path. Its receiver hook (``sfu.hooks``) feeds every RTP
packet to an assembler (``sfu.forwarding``); each complete encoded frame is pushed, without decoding
or copying, into the bounded queue of every attached sink: subscriber slots
(:class:`~sfu.subscription.Subscription`) and recorder taps (:class:`~sfu.tap.Tap`).

Contracts
---------
- Keyframes: attaching a video sink requests a keyframe; so do a subscriber's PLI, a sink overflow,
  an unrecoverable ingest loss and a sink still waiting after ``Options.keyframe_retry_after``. All go
  through one throttle: at most one PLI per ``Options.keyframe_min_interval`` (500 ms) per publication.
- ``restrict(allowed_participant_ids)`` limits who receives it (a closed segment): slots of other
  participants are detached at once and re-attached (with a keyframe request) when the restriction is
  lifted with ``restrict(None)``. Recorder taps are never restricted.
- ``mute(True)`` (audio only) stops forwarding to every sink, taps included, and reporting levels: a
  microphone the room server muted stays silent whatever the client sends. Sinks stay attached;
  ``mute(False)`` resumes with the next packet.
- ``attach_tap()`` is the recorder hook: it yields :class:`~sfu.forwarding.EncodedFrame` (bytes, pts,
  keyframe flag; ``to_packet()`` makes an ``av.Packet``), starting at a keyframe requested on attach.
- ``sender_report``: the publisher's latest RTCP sender report of the media SSRC, its RTP timestamp put
  on the frames' timeline (:class:`~sfu.forwarding.SenderReport`; None before the first SR that follows a
  frame). A recorder places frames by it: the sender's clock is shared by its audio and video.
- Audio level: RFC 6464 levels are read from each packet's header extension on ingest; ``audio_level``
  is the loudest level of the last interval, ``speaking`` compares it to ``Options.speaking_threshold``.
- ``close()`` (idempotent; also called when the publisher leaves or its link fails) ends the
  publication: every slot pointing at it is emptied (``SourceChanged`` with ``None``), every tap ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from sfu import hooks
from sfu.errors import PublicationClosed
from sfu.events import AudioLevel, Event, KeyframeRequested, SpeakingChanged, TaskFailed, TrackUnpublished
from sfu.forwarding import AudioAssembler, EncodedFrame, KeyframeRequester, SenderReport, SinkQueue, VideoAssembler
from sfu.options import Options
from sfu.stats import PublicationStats, RateMeter

if TYPE_CHECKING:
    from sfu.subscription import Subscription
    from sfu.tap import Tap

logger = logging.getLogger(__name__)

#: how long a level below the threshold keeps a venue "speaking" (smooths syllable gaps)
_SPEAKING_HOLD = 0.3


class Sink(Protocol):
    """What a publication pushes frames to (a subscriber slot or a recorder tap)."""

    @property
    def id(self) -> str: ...

    @property
    def queue(self) -> SinkQueue: ...


class Publication:
    """One published track. Created by ``Participant.publish_offer``; owned by its participant."""

    def __init__(
        self,
        *,
        room_id: str,
        participant_id: str,
        name: str,
        kind: str,
        mid: str,
        codec: str,
        receiver: RTCRtpReceiver,
        ssrc: int | None,
        options: Options,
        emit: Callable[[Event], None],
        rtt: Callable[[], float | None],
    ) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self.name = name
        self.kind = kind
        self.mid = mid
        self.codec = codec
        self.clock_rate = 90000 if kind == "video" else 48000
        self.id = f"{participant_id}/{name}"
        self.closed = False
        self._options = options
        self._emit = emit
        self._rtt = rtt
        self._receiver = receiver
        self._ssrc = ssrc
        self._allowed: frozenset[str] | None = None
        self._muted = False
        self.packets_muted = 0
        self._sinks: list[Sink] = []
        #: subscriber slots forwarded at the RTP level (``Options.rtp_forwarding``), attached
        self._rtp_slots: list[Subscription] = []
        #: every slot whose source is this publication, attached or not (blocked, inactive)
        self._pointing: set[Subscription] = set()
        self._taps: set[Tap] = set()
        self._assembler: AudioAssembler | VideoAssembler
        if kind == "video":
            self._assembler = VideoAssembler(codec, self.clock_rate, options.video_loss_wait)
        else:
            self._assembler = AudioAssembler(codec, self.clock_rate)
        self._requester = KeyframeRequester(self._send_pli, options.keyframe_min_interval, self._on_pli_sent,
                                            on_task_failed=self._task_failed)
        self._packets = RateMeter()
        self._frames = RateMeter()
        self.keyframes = 0
        self.frames_received = 0
        # audio level (RFC 6464: 0 loudest .. 127 silence)
        self._level_window_min = 127
        self._level_window_start = 0.0
        self._level: int | None = None
        self._last_loud = -1.0
        self._speaking = False
        self.sender_report: SenderReport | None = None
        hooks.install_ingest(receiver, self)
        hooks.on_sender_report(receiver, self.on_sender_report)
        #: the REMB this track's receiver sends the publisher (None: audio, or a second video track)
        self._remb = hooks.throttle_remb(receiver, options.remb_interval_ms)

    def __repr__(self) -> str:
        return f"<Publication {self.id} {self.kind} {self.codec}{' closed' if self.closed else ''}>"

    # --- public API -------------------------------------------------------------------------------------

    @property
    def allowed(self) -> frozenset[str] | None:
        """The allow-list set by :meth:`restrict`, or ``None`` (everyone)."""
        return self._allowed

    @property
    def live(self) -> bool:
        """Whether media has been received."""
        return self.frames_received > 0

    @property
    def audio_level(self) -> int | None:
        """Loudest RFC 6464 level (-dBov) of the last interval; ``None`` for video or before any level."""
        return self._level

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def sink_count(self) -> int:
        return len(self._sinks) + len(self._rtp_slots)

    def allows(self, participant_id: str) -> bool:
        """Whether ``participant_id`` may receive this publication."""
        if participant_id == self.participant_id or self._allowed is None:
            return True
        return participant_id in self._allowed

    def restrict(self, allowed_participant_ids: Iterable[str] | None) -> None:
        """Restrict to an allow-list (``None`` lifts it). Takes effect at once for every slot."""
        if self.closed:
            raise PublicationClosed(self.id)
        self._allowed = None if allowed_participant_ids is None else frozenset(allowed_participant_ids)
        for slot in list(self._pointing):
            slot._refresh()

    @property
    def muted(self) -> bool:
        return self._muted

    def mute(self, muted: bool) -> None:
        """Stop (``True``) or resume forwarding this audio publication (see the module docstring)."""
        if self.kind != "audio":
            raise ValueError(f"{self.id}: only audio publications are muted")
        if self.closed or muted == self._muted:
            return
        self._muted = muted
        if muted and self._speaking:
            self._speaking = False
            self._emit(SpeakingChanged(self.room_id, self.participant_id, self.id, False))

    def request_keyframe(self, reason: str = "api") -> None:
        """Ask the publisher for a keyframe (throttled, see module docstring)."""
        if self.kind == "video" and not self.closed:
            self._requester.request(reason)

    def attach_tap(self, max_queue: int | None = None) -> Tap:
        """Attach a recorder tap; a keyframe is requested so that it starts decodable."""
        from sfu.tap import Tap

        if self.closed:
            raise PublicationClosed(self.id)
        options = self._options
        default = options.video_queue_frames if self.kind == "video" else options.audio_queue_frames
        tap = Tap(self, max_queue or default)
        self._taps.add(tap)
        self._attach(tap)
        return tap

    async def stats(self) -> PublicationStats:
        """A snapshot; loss and jitter come from the receiver's RTP statistics of the media SSRC."""
        now = time.monotonic()
        pps, bps = self._packets.rates(now)
        fps, _ = self._frames.rates(now)
        lost = 0
        jitter_ms: float | None = None
        media = None if self.closed else hooks.receive_statistics(self._receiver, self._ssrc)
        if media is not None:  # the media SSRC only: its RTX stream is not the link's loss
            _, lost, jitter = media
            jitter_ms = 1000.0 * jitter / self.clock_rate
        rtt = self._rtt()
        return PublicationStats(
            publication_id=self.id,
            participant_id=self.participant_id,
            kind=self.kind,
            codec=self.codec,
            bitrate_bps=8 * bps,
            packets=self._packets.count,
            packets_lost=lost,
            frames=self.frames_received,
            frames_per_second=fps,
            frames_lost=self._assembler.frames_lost,
            keyframes=self.keyframes,
            keyframe_requests=self._requester.sent,
            jitter_ms=jitter_ms,
            rtt_ms=None if rtt is None else 1000.0 * rtt,
            sinks=len(self._sinks) + len(self._rtp_slots),
            audio_level=self._level,
            bandwidth_estimate_bps=None if self._remb is None else self._remb.last_bitrate,
            remb_sent=0 if self._remb is None else self._remb.sent,
            remb_held=0 if self._remb is None else self._remb.held,
        )

    async def close(self) -> None:
        """End the publication: slots pointing at it are emptied, taps end. Idempotent."""
        if self.closed:
            return
        self.closed = True
        await self._requester.close()
        for slot in list(self._pointing):
            slot._source_ended(self)
        for tap in list(self._taps):
            tap._source_ended()
        self._sinks.clear()
        self._rtp_slots.clear()
        self._pointing.clear()
        self._taps.clear()
        self._emit(TrackUnpublished(self.room_id, self.participant_id, self.id))

    # --- sinks (used by Subscription and Tap) ------------------------------------------------------------

    def _attach(self, sink: Sink) -> None:
        if sink in self._sinks:
            return
        sink.queue.switch_source()
        self._sinks.append(sink)
        self.request_keyframe("sink")

    def _detach(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def _attach_rtp(self, slot: Subscription) -> None:
        if slot in self._rtp_slots:
            return
        self._rtp_slots.append(slot)
        self.request_keyframe("sink")

    def _detach_rtp(self, slot: Subscription) -> None:
        if slot in self._rtp_slots:
            self._rtp_slots.remove(slot)

    def _forget_tap(self, tap: Tap) -> None:
        self._taps.discard(tap)
        self._detach(tap)

    # --- hot path (called by the receiver hook for every RTP packet) --------------------------------------

    def on_rtp(self, packet: RtpPacket, data: bytes) -> None:
        if self.closed:
            return
        now = time.monotonic()
        self._ssrc = packet.ssrc
        self._packets.add(now, len(packet.payload))
        if self.kind == "audio":
            if self._muted:
                self.packets_muted += 1
                return
            level = packet.extensions.audio_level
            if level is not None:
                self._on_level(level[1], now)
        slots = self._rtp_slots
        if slots:
            wall = time.time()
            waiting = False
            for slot in slots:
                if slot.forward_rtp(packet, self, wall, now):
                    waiting = True
            if waiting and now - self._requester.last_sent >= self._options.keyframe_retry_after:
                self.request_keyframe("retry")
        assembler = self._assembler
        frames = assembler.push(
            packet.sequence_number, packet.timestamp, bool(packet.marker), packet.payload, data, now
        )
        if assembler.keyframe_wanted:
            assembler.keyframe_wanted = False
            self.request_keyframe("loss")
        for frame in frames:
            self._deliver(frame, now)

    def on_sender_report(self, ssrc: int, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """An RTCP sender report of the publisher (called by the receiver hook): kept for the media SSRC."""
        if self.closed or ssrc != self._ssrc:
            return  # another SSRC of the publisher (RTX), or before the first packet
        timestamp = self._assembler.timeline(rtp_timestamp)
        if timestamp is None:
            return  # no frame yet to put it on the timeline: the next report will do
        self.sender_report = SenderReport(SenderReport.ntp_seconds(ntp_timestamp), timestamp, self.clock_rate,
                                          time.monotonic())

    def _deliver(self, frame: EncodedFrame, now: float) -> None:
        self.frames_received += 1
        self._frames.add(now, len(frame.data))
        if frame.keyframe and self.kind == "video":
            self.keyframes += 1
            self._requester.keyframe_arrived()
        waiting = False
        for sink in self._sinks:
            queue = sink.queue
            queue.push(frame, self)
            if queue.waiting_keyframe:
                waiting = True
        if waiting and now - self._requester.last_sent >= self._options.keyframe_retry_after:
            self.request_keyframe("retry")

    def _on_level(self, level: int, now: float) -> None:
        threshold = self._options.speaking_threshold
        if level < threshold:
            self._last_loud = now
        speaking = self._last_loud >= 0 and now - self._last_loud < _SPEAKING_HOLD
        if speaking != self._speaking:
            self._speaking = speaking
            self._emit(SpeakingChanged(self.room_id, self.participant_id, self.id, speaking))
        if level < self._level_window_min:
            self._level_window_min = level
        interval = self._options.audio_level_interval or 0.5
        if now - self._level_window_start >= interval:
            self._level = self._level_window_min
            self._level_window_min = 127
            self._level_window_start = now
            if self._options.audio_level_interval is not None:
                event = AudioLevel(self.room_id, self.participant_id, self.id, self._level, self._speaking)
                self._emit(event)

    async def _send_pli(self) -> None:
        if self._ssrc is not None:
            await hooks.send_pli(self._receiver, self._ssrc)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self._emit(TaskFailed(self.room_id, name, type(exc).__name__))

    def _on_pli_sent(self, reason: str) -> None:
        self._emit(KeyframeRequested(self.room_id, self.id, reason))
