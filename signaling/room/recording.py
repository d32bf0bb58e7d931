"""The room server's driver of the recorder (``recorder.recorder.Recorder``, one per media process).

Ownership: the :class:`~signaling.room.server.RoomServer` owns one :class:`RoomRecording` when it is built
with a recorder factory (``tiepdan`` composition; none when ``TIEPDAN_RECORDING_ENABLED=false``). The
recorder never sees the bus: this driver turns what the room does into recorder calls, and what the
recorder reports into bus events and protocol messages.

What drives what (room = reception session; segment ids ``c<call_seq>-<case>``):

* a room opened, or a venue's first publication in a room restored after a restart → ``open_session``
  (idempotent in the recorder); every venue publication (camera and microphone; the small ``camera-low``
  layer is not recorded) → ``add_publication``, again after a re-publish on a new connection.
* a call accepted by the room (``case.called``, ``case.recalled``: a new ``call_seq``) → the segment of the
  previous call, if still open, is closed, then ``open_segment`` (confidential when a closed segment is
  running at the call) and ``room.segment_opened`` on the bus. A call the room ignored (an older or
  repeated ``call_seq``) opens nothing.
* ``case.closed`` / ``skipped`` / ``absent`` of the open segment's call → ``close_segment``; another
  ``call_seq``, a repeat, or an end without a call changes nothing.
* ``room.closed_segment_started`` / ``ended`` → ``set_closed_segment``; ``room.active_speaker_changed`` →
  ``speaker_changed``; ``room.venue_link_lost`` / ``restored`` → ``link_changed`` (observed on the events
  the room publishes, :meth:`observe`).
* the room closes → the open segment closes, then ``close_session``.
* the recorder's ``on_segment_closed`` (a case's segment, manifest written) → ``room.segment_closed`` with
  the files, their hashes, the manifest's path and hash, speakers and gaps; between-case stretches stay
  in the manifests only. ``on_alarm`` → ``recording.alarm`` to the room's moderators (all rooms for an
  alarm without a session), the alarm gauges; :attr:`alarms` is what ``/healthz`` reports.

The room never waits for the recorder (a cut waits for keyframes): the calls of one room run in order on
a task of the driver per room (:meth:`RoomRecording.drain` waits for them), fed by the room server's
synchronous decisions. A recorder error never reaches the room: each call is guarded, logged with room and
segment, counted in ``tiepdan_recording_errors_total``; the room goes on forwarding.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

import sfu
from recorder.model import ManifestRef, RecorderAlarm, SegmentReport

from ..events import (
    ActiveSpeakerChanged,
    ClosedSegmentEnded,
    ClosedSegmentStarted,
    Event,
    SegmentClosed,
    SegmentFile,
    SegmentGap,
    SegmentOpened,
    SegmentSpan,
    VenueLinkLost,
    VenueLinkRestored,
)
from ..protocol import RecordingAlarm, ServerMessage

__all__ = ["RecorderPort", "RecorderFactory", "RecordingHost", "RoomRecording", "segment_id"]

log = logging.getLogger(__name__)

SegmentClosedCallback = Callable[[SegmentReport, ManifestRef], Awaitable[None]]
AlarmCallback = Callable[[RecorderAlarm], Awaitable[None]]

#: the small layer a venue publishes besides its camera (shown small to others): not recorded
_LOW_LAYER = "camera-low"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SEGMENT_MAX = 80


class RecorderStatusView(Protocol):
    @property
    def recording(self) -> bool: ...

    @property
    def tracks(self) -> int: ...

    @property
    def bytes_written(self) -> int: ...

    @property
    def frames_dropped(self) -> int: ...


class RecorderPort(Protocol):
    """What the room server calls of ``recorder.recorder.Recorder`` (the contract of issue #11)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def open_session(self, session: str, venue_names: Mapping[str, str]) -> None: ...

    async def add_publication(self, session: str, venue: str, publication: sfu.Publication) -> None: ...

    async def open_segment(self, session: str, segment: str, case: str, *, confidential: bool) -> None: ...

    async def close_segment(self, session: str, segment: str) -> SegmentReport | None: ...

    def set_closed_segment(self, session: str, active: bool) -> None: ...

    def speaker_changed(self, session: str, venue: str | None) -> None: ...

    def link_changed(self, session: str, venue: str, lost: bool) -> None: ...

    async def close_session(self, session: str) -> ManifestRef | None: ...

    def status(self) -> RecorderStatusView: ...


RecorderFactory = Callable[[SegmentClosedCallback, AlarmCallback], RecorderPort]
"""Builds the recorder with the driver's two callbacks (``on_segment_closed``, ``on_alarm``)."""


class RecordingHost(Protocol):
    """What the driver needs of the room server."""

    clock: Callable[[], float]

    def broadcast(self, room: str, message: ServerMessage, audience: Literal["room", "moderators"]) -> None: ...

    def room_ids(self) -> list[str]: ...

    async def publish_event(self, event: Event) -> None: ...


def segment_id(call_seq: int, case: str) -> str:
    """``c<call_seq>-<case>`` in the recorder's safe charset (``[A-Za-z0-9._-]``, at most 80 characters)."""
    prefix = f"c{call_seq}-"
    return prefix + _UNSAFE.sub("_", case)[:_SEGMENT_MAX - len(prefix)]


@dataclass
class _Segment:
    segment: str
    case: str
    call_seq: int
    confidential: bool


_Op = Callable[[], Awaitable[None]]


@dataclass
class _RoomRec:
    venue_names: dict[str, str]
    publications: set[str] = field(default_factory=set)
    segment: _Segment | None = None
    calls: dict[str, int] = field(default_factory=dict)  # segment → call_seq (for the closed event)
    ops: asyncio.Queue[_Op | None] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None


class RoomRecording:
    """See the module docstring. ``start`` once, ``close`` at the end (idempotent)."""

    def __init__(self, host: RecordingHost, factory: RecorderFactory, *,
                 metrics: CollectorRegistry | None = None) -> None:
        self._host = host
        self.recorder = factory(self._on_segment_closed, self._on_alarm)
        self._rooms: dict[str, _RoomRec] = {}
        self._ended: set[str] = set()  # rooms closed here: never recorded again by this process
        self._alarms: dict[tuple[str | None, str], RecorderAlarm] = {}
        self._started = False
        self.closed = False
        self.errors = 0
        self._error_counter: Counter | None = None
        if metrics is not None:
            self._register_metrics(metrics)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._guard("start", None, self.recorder.start())

    async def close(self) -> None:
        """Close every open segment and session (the recorder writes their manifests). Idempotent."""
        if self.closed:
            return
        for room in list(self._rooms):
            await self.close_room(room)
        self.closed = True
        await self._guard("close", None, self.recorder.close())

    @property
    def alarms(self) -> tuple[RecorderAlarm, ...]:
        """The active alarms (``/healthz`` is degraded while there is one)."""
        return tuple(self._alarms.values())

    # -- inputs from the room server --------------------------------------------------------------

    async def open_room(self, room: str, venue_names: Mapping[str, str]) -> None:
        """The room opened (or is used for the first time on this node): its recording session opens."""
        if self.closed or room in self._rooms or room in self._ended:
            return
        rec = self._rooms[room] = _RoomRec(dict(venue_names))
        rec.worker = asyncio.create_task(self._work(room, rec), name=f"recording-{room}")
        names = dict(venue_names)

        async def open_session() -> None:
            await self._guard("open_session", room, self.recorder.open_session(room, names))

        rec.ops.put_nowait(open_session)

    async def add_publication(self, room: str, venue: str, publication: sfu.Publication,
                              venue_names: Mapping[str, str]) -> None:
        """A venue's publication started (``TrackPublished``): its tap joins the recording."""
        if self.closed or publication.name == _LOW_LAYER:
            return
        await self.open_room(room, venue_names)
        rec = self._rooms.get(room)
        if rec is None or publication.id in rec.publications:
            return
        rec.publications.add(publication.id)

        async def add() -> None:
            if publication.closed:
                return  # ended while queued
            await self._guard("add_publication", room, self.recorder.add_publication(room, venue, publication))

        rec.ops.put_nowait(add)

    async def drain(self, room: str) -> None:
        """Wait until the recorder calls queued for ``room`` so far are done (tests, shutdown)."""
        rec = self._rooms.get(room)
        if rec is None or rec.worker is None or rec.worker.done():
            return
        done = asyncio.Event()

        async def mark() -> None:
            done.set()

        rec.ops.put_nowait(mark)
        waiter = asyncio.ensure_future(done.wait())
        try:
            await asyncio.wait({waiter, rec.worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def _work(self, room: str, rec: _RoomRec) -> None:
        """Run the room's recorder calls in order until the room closes (``None``)."""
        while True:
            op = await rec.ops.get()
            if op is None:
                return
            try:
                await op()
            except Exception:  # noqa: BLE001 - a recorder error never reaches the room
                self._failed("operation", room, None)

    def publication_ended(self, room: str, publication_id: str) -> None:
        rec = self._rooms.get(room)
        if rec is not None:
            rec.publications.discard(publication_id)

    async def case_called(self, room: str, call_seq: int, case: str, *, confidential: bool) -> None:
        """A call the room accepted: the previous call's segment closes, this call's segment opens."""
        rec = self._rooms.get(room)
        if self.closed or rec is None:
            return
        current = rec.segment
        if current is not None and current.call_seq >= call_seq:
            return  # the same call again (or an older one): its segment is open already
        if current is not None:
            self._close_segment(room, rec)
        segment = _Segment(segment_id(call_seq, case), case, call_seq, confidential)
        rec.segment = segment
        rec.calls[segment.segment] = call_seq
        at = self._now()

        async def open_segment() -> None:
            ok = await self._guard("open_segment", room, self.recorder.open_segment(
                room, segment.segment, case, confidential=confidential), segment=segment.segment)
            if not ok:
                return
            log.info("segment opened", extra={"ctx": {"room": room, "segment": segment.segment, "case": case}})
            await self._host.publish_event(SegmentOpened(
                room=room, occurred_at=at, segment=segment.segment, case=case, confidential=confidential,
                call_seq=call_seq))

        rec.ops.put_nowait(open_segment)

    async def case_ended(self, room: str, call_seq: int) -> None:
        """The call ``call_seq`` ended (closed, skipped, absent): its segment closes; anything else is a no-op."""
        rec = self._rooms.get(room)
        if rec is None or rec.segment is None or rec.segment.call_seq != call_seq:
            return
        self._close_segment(room, rec)

    async def close_room(self, room: str) -> None:
        """The session closed: its open segment closes, then its recording session (session manifest); waits
        for the room's recorder calls to end."""
        self._ended.add(room)
        rec = self._rooms.pop(room, None)
        if rec is None:
            return
        if rec.segment is not None:
            self._close_segment(room, rec)

        async def close_session() -> None:
            await self._guard("close_session", room, self.recorder.close_session(room))

        rec.ops.put_nowait(close_session)
        rec.ops.put_nowait(None)
        if rec.worker is not None:
            await asyncio.gather(rec.worker, return_exceptions=True)

    def observe(self, event: Event) -> None:
        """An event the room published: closed segment, active speaker and link changes reach the recorder."""
        room = getattr(event, "room", None)
        rec = self._rooms.get(room) if isinstance(room, str) else None
        if self.closed or room is None or rec is None:
            return
        if isinstance(event, ClosedSegmentStarted | ClosedSegmentEnded):
            active = isinstance(event, ClosedSegmentStarted)

            async def closed_segment() -> None:  # in order with the segments opened and closed around it
                self.recorder.set_closed_segment(room, active)

            rec.ops.put_nowait(closed_segment)
            return
        try:
            if isinstance(event, ActiveSpeakerChanged):
                self.recorder.speaker_changed(room, event.venue)
            elif isinstance(event, VenueLinkLost | VenueLinkRestored):
                self.recorder.link_changed(room, event.venue, isinstance(event, VenueLinkLost))
        except Exception:  # noqa: BLE001 - a recorder error never reaches the room
            self._failed("observe", room, None)

    # -- callbacks of the recorder ----------------------------------------------------------------

    async def _on_segment_closed(self, report: SegmentReport, ref: ManifestRef) -> None:
        if report.case is None:
            return  # a stretch between cases: in the manifests, not a case's segment
        rec = self._rooms.get(report.session)
        call_seq = rec.calls.pop(report.segment, None) if rec is not None else None
        try:
            event = closed_event(report, ref, call_seq=call_seq, at=datetime.fromtimestamp(report.closed_at, UTC))
        except ValueError:  # a report the event cannot carry: logged, the manifest stays the record
            log.exception("segment closed event not built", extra={"ctx": {"room": report.session,
                                                                            "segment": report.segment}})
            return
        log.info("segment closed", extra={"ctx": {"room": report.session, "segment": report.segment,
                                                  "count": len(report.files)}})
        await self._host.publish_event(event)

    async def _on_alarm(self, alarm: RecorderAlarm) -> None:
        key = (alarm.session, alarm.code)
        if alarm.active:
            self._alarms[key] = alarm
            log.error("recording alarm", extra={"ctx": {"room": alarm.session, "code": alarm.code}})
        else:
            if key not in self._alarms:
                return
            del self._alarms[key]
            log.warning("recording alarm cleared", extra={"ctx": {"room": alarm.session, "code": alarm.code}})
        message = RecordingAlarm(code=alarm.code, active=alarm.active)
        for room in [alarm.session] if alarm.session is not None else self._host.room_ids():
            self._host.broadcast(room, message, "moderators")

    def alarm_messages(self, room: str) -> list[RecordingAlarm]:
        """The active alarms of ``room`` (and those of the whole recorder) for a moderator who (re)joins."""
        return [RecordingAlarm(code=a.code, active=True) for a in self._alarms.values()
                if a.session in (None, room)]

    # -- helpers ----------------------------------------------------------------------------------

    def _close_segment(self, room: str, rec: _RoomRec) -> None:
        segment = rec.segment
        if segment is None:
            return
        rec.segment = None

        async def close_segment() -> None:
            await self._guard("close_segment", room, self.recorder.close_segment(room, segment.segment),
                              segment=segment.segment)

        rec.ops.put_nowait(close_segment)

    async def _guard(self, what: str, room: str | None, call: Awaitable[object], *,
                     segment: str | None = None) -> bool:
        try:
            await call
        except Exception:  # noqa: BLE001 - a recorder error never reaches the room
            self._failed(what, room, segment)
            return False
        return True

    def _failed(self, what: str, room: str | None, segment: str | None) -> None:
        self.errors += 1
        if self._error_counter is not None:
            self._error_counter.labels(what).inc()
        log.exception("recorder call failed", extra={"ctx": {"room": room, "segment": segment, "code": what}})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._host.clock(), UTC)

    def _status(self) -> RecorderStatusView | None:
        try:
            return self.recorder.status()
        except Exception:  # noqa: BLE001 - a scrape never fails on the recorder
            return None

    def _register_metrics(self, registry: CollectorRegistry) -> None:
        def value(read: Callable[[RecorderStatusView], float]) -> Callable[[], float]:
            def get() -> float:
                status = self._status()
                return 0.0 if status is None else float(read(status))
            return get

        Gauge("tiepdan_recording_active", "1 while the recorder of this node writes media, else 0",
              registry=registry).set_function(value(lambda s: 1.0 if s.recording else 0.0))
        Gauge("tiepdan_recording_tracks", "Tracks the recorder of this node writes",
              registry=registry).set_function(value(lambda s: s.tracks))
        Gauge("tiepdan_recording_bytes_written", "Bytes of media the recorder of this node has written",
              registry=registry).set_function(value(lambda s: s.bytes_written))
        Gauge("tiepdan_recording_frames_dropped", "Frames the recorder of this node could not write",
              registry=registry).set_function(value(lambda s: s.frames_dropped))
        Gauge("tiepdan_recording_alarms", "Active recording alarms (disk full, write failed …) on this node",
              registry=registry).set_function(lambda: float(len(self._alarms)))
        self._error_counter = Counter("tiepdan_recording_errors", "Recorder calls that failed (the room went on)",
                                      ["call"], registry=registry)


def closed_event(report: SegmentReport, ref: ManifestRef, *, call_seq: int | None, at: datetime) -> SegmentClosed:
    """``room.segment_closed`` for a case's closed segment (``report.case`` set)."""
    if report.case is None:
        raise ValueError("a stretch between cases has no segment event")
    return SegmentClosed(
        room=report.session, occurred_at=at, segment=report.segment, case=report.case,
        files=tuple(f.path for f in report.files), sha256=ref.sha256, media_t0=report.media_t0,
        confidential=report.confidential, call_seq=call_seq, manifest_path=ref.path,
        duration_s=report.duration, opened_at=datetime.fromtimestamp(report.opened_at, UTC),
        tracks=tuple(SegmentFile(path=f.path, venue=f.venue, sha256=f.sha256, size=f.size, t0=f.t0,
                                 duration=f.duration, kinds=f.kinds, encrypted=f.encrypted) for f in report.files),
        speakers=tuple(SegmentSpan(venue=s.venue, start=s.start, end=s.end) for s in report.speakers),
        gaps=tuple(SegmentGap(venue=g.venue, start=g.start, end=g.end, reason=g.reason) for g in report.gaps),
    )
