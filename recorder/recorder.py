"""The recording engine: sfu taps written to WebM/Matroska without re-encoding, cut into segments.

Theory of operation
-------------------
The room server drives a :class:`Recorder` (it never sees the bus). Per session:

- **Feeding** (event loop): each publication added gets a tap; a task per tap maps every encoded frame to
  the session clock (``recorder.clock``: by the publisher's RTCP sender reports, shared by the tracks of
  one publisher connection, else by arrival) and puts it, without blocking, on the session's bounded queue.
  A full queue drops the frame (``frames_dropped``; video then waits for a keyframe, requested) and
  records a ``lagging`` gap.
- **Writing** (one thread per session, :class:`_Writer`): one *part* file per venue holding its video and
  audio (``recorder.track``), opened on a video keyframe (audio before it is held back and dropped when
  older), flushed and fsynced every ``flush_interval_s``. A keyframe of another size or parameter set, or a
  stream joining or leaving, starts the next part.
- **Segments**: the session is recorded continuously as a sequence of segments: ``b<n>`` between cases
  and the caller's case segments. Opening or closing one *cuts* every venue at its next video keyframe
  (requested; forced after ``cut_timeout`` s); a confidential segment or a closed segment (phiên kín) is
  cut at once and written encrypted (``evidence.stream``) from its first byte. A closed segment's parts are
  hashed in a thread, written into a signed manifest (``recorder.manifest``) and reported through
  ``on_segment_closed``.
- **Failures**: any write error (ENOSPC above all) or free space below ``min_free_bytes`` stops that
  session's recording with an alarm; the room goes on. When space returns the session resumes in new
  parts (``disk_full`` gap) and the alarm is cleared.
- **Crashes**: ``recorder-state.json`` lists open parts and unreported segments; ``open_session`` after a
  crash repairs them (``recorder.recovery``), writes their manifests (``recovered=True``, ``crash`` gap)
  and continues in new parts on the same session clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidence import Keyring
from recorder import manifest as manifests
from recorder.clock import SenderClock, TrackClock
from recorder.errors import DiskFull, UnknownSession
from recorder.model import Gap, GapReason, ManifestRef, RecorderAlarm, SegmentReport, SpeakerSpan, TrackFile
from recorder.options import RecorderOptions
from recorder.recovery import STATE_FILE, SessionState, repair_part
from recorder.track import PartWriter, VideoFormat, video_format
from sfu.forwarding import EncodedFrame
from sfu.publication import Publication
from sfu.tap import Tap

__all__ = ["Recorder", "RecorderStatus", "STATE_FILE", "valid_id"]

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
#: how long held-back audio waits for its venue's first keyframe
_AUDIO_HOLD = 2.0


def valid_id(value: str, what: str) -> str:
    """``value`` if it is a safe id (as ``recorder.manifest.validate_name``), else ValueError."""
    if not isinstance(value, str) or not _ID.match(value) or value.startswith(".") or value == "session":
        raise ValueError(f"invalid {what} id {value!r}: use 1-80 characters of A-Z a-z 0-9 . _ - "
                         "(not starting with a dot, not 'session')")
    return value


@dataclass(frozen=True)
class RecorderStatus:
    """For ``/metrics``: whether any session records, active alarms, taps, bytes, drops, free space."""

    recording: bool
    alarms: tuple[RecorderAlarm, ...]
    tracks: int
    bytes_written: int
    frames_dropped: int
    free_bytes: int | None


# --- messages to a session's writer thread ---------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    venue: str
    kind: str
    codec: str
    t: float
    data: bytes
    keyframe: bool


@dataclass(slots=True)
class _Track:
    venue: str
    kind: str
    codec: str | None  # None: the venue's track of that kind ended


@dataclass(slots=True)
class _Cut:
    segment: str
    encrypt: bool
    force: bool
    token: int
    t: float


@dataclass(slots=True)
class _Sync:
    token: int


_STOP = object()
#: a session's writer thread takes the frames queued for it this often (control messages at once)
_BATCH_S = 0.05


def _sealed(info: Mapping[str, Any]) -> bool:
    """A part written under a closed segment or a confidential segment (older state files: "encrypted")."""
    return bool(info.get("sealed", info.get("encrypted")))


@dataclass
class _Venue:
    name: str
    video: str | None = None
    audio: bool = False
    part: PartWriter | None = None
    part_rel: str = ""
    part_sealed: bool = False  # written while the segment was confidential or a closed segment ran
    segment: str = ""
    cut_pending: bool = False
    #: session time of the pending cut: frames older than it (still queued when it was asked) stay in the old part
    cut_t: float = 0.0
    held: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    #: set by a forced cut: the next part also takes the held audio from this session time on
    floor: float | None = None


class _Writer:
    """A session's writer thread: owns every open part of the session (see the module docstring)."""

    def __init__(self, session: _Session, options: RecorderOptions, keyring: Keyring,
                 loop: asyncio.AbstractEventLoop, segment: str, encrypt: bool) -> None:
        self.s = session
        self.options = options
        self.keyring = keyring
        self.loop = loop
        # frames and control messages in one order. The loop appends without waking the thread for a frame
        # (a wake-up per frame costs a GIL hand-over each: 12 % of a 9-venue node's loop); the thread drains
        # every ``_BATCH_S`` or at once for a control message. Frames are bounded by ``max_frames`` (never
        # block the loop); each counter has one writer thread.
        self.pending: collections.deque[object] = collections.deque()
        self._wake = threading.Event()
        self.max_frames = max(16, options.queue_frames)
        self.frames_put = 0
        self.frames_taken = 0
        self.segment = segment
        self.encrypt = encrypt
        self.venues: dict[str, _Venue] = {}
        self.cuts: dict[int, str] = {}
        self.failed = False
        self.thread = threading.Thread(target=self._run, name=f"recorder-{session.id}", daemon=True)
        self._flush_interval = max(0.05, options.flush_interval_s)

    def start(self) -> None:
        self.thread.start()

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is gone (process shutting down): nobody is left to tell
            logger.warning("recorder writer of %s outlived its event loop", self.s.id)

    @property
    def frames_queued(self) -> int:
        return self.frames_put - self.frames_taken

    def put(self, item: _Frame) -> bool:
        """Queue a frame unless the writer is ``max_frames`` behind (or failed). Never blocks."""
        if self.failed or self.frames_put - self.frames_taken >= self.max_frames:
            return False
        self.frames_put += 1
        self.pending.append(item)
        return True

    def put_control(self, item: object) -> None:
        """Control messages are never dropped, and wake the thread."""
        if not self.failed:
            self.pending.append(item)
            self._wake.set()

    # --- thread ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        next_flush = time.monotonic() + self._flush_interval
        try:
            self._check_space()
            pending = self.pending
            while True:
                self._wake.wait(max(0.0, min(_BATCH_S, next_flush - time.monotonic())))
                self._wake.clear()
                while pending:
                    item = pending.popleft()
                    if item is _STOP:
                        self._close_all()
                        return
                    self._handle(item)
                if time.monotonic() >= next_flush:
                    self._flush()
                    next_flush = time.monotonic() + self._flush_interval
        except BaseException as exc:  # any failure stops this session's recording, never the room
            self.failed = True
            self._abort_all()
            code = "disk_full" if isinstance(exc, DiskFull) or _is_enospc(exc) else "write_failed"
            logger.error("recording of session %s stopped: %s %s", self.s.id, code, type(exc).__name__)
            self._notify(self.s.writer_failed, self, code, f"{type(exc).__name__}: {exc}")

    def _handle(self, item: object) -> None:
        if isinstance(item, _Frame):
            self.frames_taken += 1
            self._frame(item)
        elif isinstance(item, _Track):
            self._track(item)
        elif isinstance(item, _Cut):
            self._cut(item)
        elif isinstance(item, _Sync):
            self._flush()
            self._notify(self.s.synced, item.token)

    def _venue(self, name: str) -> _Venue:
        venue = self.venues.get(name)
        if venue is None:
            venue = self.venues[name] = _Venue(name, segment=self.segment)
        return venue

    def _track(self, item: _Track) -> None:
        venue = self._venue(item.venue)
        if item.kind == "video":
            changed = venue.video != item.codec
            venue.video = item.codec
            if changed and venue.part is not None:
                self._close_part(venue)
        else:
            has = item.codec is not None
            changed = venue.audio != has
            venue.audio = has
            if changed and venue.part is not None and (has or venue.part.video is None):
                self._close_part(venue)
            if not has:
                venue.held.clear()

    def _frame(self, f: _Frame) -> None:
        venue = self._venue(f.venue)
        if f.kind == "video":
            if not f.keyframe:
                if venue.part is not None and venue.part.video is not None:
                    venue.part.write("video", f.t, f.data, False)
                return
            fmt = video_format(f.codec, f.data)
            if fmt is None:
                return
            part = venue.part
            if part is not None and ((venue.cut_pending and f.t >= venue.cut_t) or part.video != fmt):
                self._drain_held(venue, before=f.t)
                self._close_part(venue)
                part = None
            if part is None:
                part = self._open_part(venue, fmt, f.t)
            part.write("video", f.t, f.data, True)
            return
        # audio
        part = venue.part
        if venue.cut_pending and part is not None and part.audio and f.t >= venue.cut_t:
            venue.held.append((f.t, f.data))  # old part or next one: decided by the keyframe's time
            return
        if part is not None and part.audio:
            part.write("audio", f.t, f.data, True)
            return
        if part is None and venue.video is None:
            self._open_part(venue, None, f.t).write("audio", f.t, f.data, True)
            return
        if venue.audio and part is None:
            held = venue.held
            held.append((f.t, f.data))
            while held and held[0][0] < f.t - _AUDIO_HOLD:
                held.popleft()

    def _open_part(self, venue: _Venue, fmt: VideoFormat | None, t: float) -> PartWriter:
        self._check_space()
        segment = self.segment
        venue.segment = segment
        venue.cut_pending = False
        ext = ".mkv" if fmt is not None and fmt.codec == "H264" else ".webm"
        directory = self.s.dir / "media" / segment
        directory.mkdir(parents=True, exist_ok=True)
        n = 1
        while any((directory / f"{venue.name}-{n}{ext}{suffix}").exists() for suffix in ("", ".enc")):
            n += 1
        encrypt = self.encrypt or self.options.encrypt_all  # ``self.encrypt``: sealed (confidential)
        name = f"{venue.name}-{n}{ext}" + (".enc" if encrypt else "")
        rel = f"media/{segment}/{name}"
        floor = t if venue.floor is None else min(t, venue.floor)
        held = [(ht, data) for ht, data in venue.held if ht >= floor]
        venue.held.clear()
        venue.floor = None
        # a forced cut keeps the audio between the cut and the keyframe: the part then starts with audio
        t0 = min(t, held[0][0]) if fmt is not None and held else t
        part = PartWriter(self.s.dir / rel, video=fmt, audio=venue.audio or fmt is None, t0=t0,
                          cluster_ms=max(100, int(self.options.flush_interval_s * 1000)),
                          keyring=self.keyring if encrypt else None, aad=rel.encode("utf-8"),
                          chunk_bytes=self.options.encrypt_chunk_bytes)
        venue.part, venue.part_rel, venue.part_sealed = part, rel, self.encrypt
        self.s.state.set_part(rel, self._part_info(venue, part, closed=False))
        self.s.state.save()
        for ht, data in held:
            if part.audio:
                part.write("audio", ht, data, True)
        return part

    def _drain_held(self, venue: _Venue, before: float | None = None) -> None:
        """Write the held audio older than ``before`` (all if None) into the open part."""
        part = venue.part
        if part is None or not part.audio:
            return
        while venue.held and (before is None or venue.held[0][0] < before):
            t, data = venue.held.popleft()
            part.write("audio", t, data, True)

    def _part_info(self, venue: _Venue, part: PartWriter, *, closed: bool) -> dict[str, Any]:
        return {"segment": venue.segment, "venue": venue.name, "t0": part.t0, "duration": part.duration,
                "kinds": list(part.kinds), "codecs": list(part.codecs), "encrypted": part.encrypted,
                "sealed": venue.part_sealed, "kid": part.kid, "closed": closed}

    def _close_part(self, venue: _Venue) -> None:
        part = venue.part
        if part is None:
            return
        venue.part = None
        before = part.bytes_written
        part.close()
        self.s.add_bytes(part.bytes_written - before)
        info = self._part_info(venue, part, closed=True)
        self.s.state.set_part(venue.part_rel, info)
        self.s.state.save()
        self._notify(self.s.part_closed, venue.part_rel, info)

    def _cut(self, cut: _Cut) -> None:
        self.segment = cut.segment
        self.encrypt = cut.encrypt
        for venue in self.venues.values():
            if venue.part is None:  # nothing to cut: its next part opens in the new segment
                venue.segment = cut.segment
                venue.cut_pending = False
                if cut.force:
                    venue.floor = cut.t
                continue
            if cut.force or venue.video is None or venue.part.video is None:
                venue.floor = cut.t if cut.force else None
                # an earlier cut may still wait for this venue's keyframe: this one is done with it (a
                # venue that vanished sends none, and the forced cut would wait its whole timeout)
                venue.cut_pending = False
                self._drain_held(venue, before=cut.t)
                self._close_part(venue)
            else:
                venue.cut_pending = True
                venue.cut_t = cut.t
        self.cuts[cut.token] = cut.segment
        self._check_cuts()

    def _check_cuts(self) -> None:
        if not self.cuts:
            return
        pending = any(v.cut_pending for v in self.venues.values())
        if pending:
            return
        for token in list(self.cuts):
            del self.cuts[token]
            self._notify(self.s.cut_done, token)

    def _flush(self) -> None:
        for venue in self.venues.values():
            if venue.part is not None:
                venue.part.flush()
        self._check_cuts()
        self._check_space()

    def _check_space(self) -> None:
        free = shutil.disk_usage(self.s.dir).free
        self.s.free_bytes = free
        if free < self.options.min_free_bytes:
            raise DiskFull(f"{free} bytes free, {self.options.min_free_bytes} needed")

    def _close_all(self) -> None:
        for venue in self.venues.values():
            self._drain_held(venue)
            self._close_part(venue)
        self._check_cuts()

    def _abort_all(self) -> None:
        for venue in self.venues.values():
            part = venue.part
            if part is None:
                continue
            venue.part = None
            try:
                part.close()
                closed = True
            except BaseException:
                part.abort()
                closed = False
            info = self._part_info(venue, part, closed=closed)
            self.s.state.set_part(venue.part_rel, info)
            with contextlib.suppress(OSError):
                self.s.state.save()
            if closed:
                self._notify(self.s.part_closed, venue.part_rel, info)
            else:
                self._notify(self.s.part_broken, venue.part_rel, info)

    # the loop side reads the writer's part counters through this (approximate, for /metrics)
    def open_bytes(self) -> int:
        return sum(v.part.bytes_written for v in list(self.venues.values()) if v.part is not None)


def _is_enospc(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


# --- the loop side ------------------------------------------------------------------------------------------


@dataclass
class _Segment:
    id: str
    case: str | None
    confidential: bool
    opened_at: float
    t_open: float
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    broken: dict[str, dict[str, Any]] = field(default_factory=dict)
    speakers: list[SpeakerSpan] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    encrypted: bool = False


@dataclass
class _Feed:
    venue: str
    publication: Publication
    tap: Tap
    clock: TrackClock
    task: asyncio.Task[None] | None = None
    need_keyframe: bool = False
    lag_from: float | None = None


class _Session:
    """One recorded session on the loop side (segments, feeds, speakers, gaps) and its writer."""

    def __init__(self, recorder: Recorder, session: str, directory: Path, state: SessionState) -> None:
        self.r = recorder
        self.id = session
        self.dir = directory
        self.state = state
        self.epoch = state.epoch
        self.epoch_mono = recorder._monotonic() - (recorder._wall() - state.epoch)
        self.venue_names: dict[str, str] = dict(state.venue_names)
        self.feeds: dict[tuple[str, str], _Feed] = {}
        #: per publisher connection (sfu participant): its tracks share the sender's clock
        self.sender_clocks: dict[str, SenderClock] = {}
        self.segment: _Segment | None = None
        self.closed_active = False
        self.writer: _Writer | None = None
        self.lock = asyncio.Lock()
        self.cut_waiters: dict[int, asyncio.Future[None]] = {}
        self.tokens = 0
        self.speaker: str | None = None
        self.speaker_since = 0.0
        self.link_lost: dict[str, float] = {}
        self.stopped_at: float | None = None
        self.alarm: RecorderAlarm | None = None
        self.bytes_done = 0
        self.frames_dropped = 0
        self.free_bytes: int | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        #: segment ids with a manifest in this session's directory
        self.used: set[str] = set()
        self.closed = False

    # --- clock ---------------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.r._monotonic() - self.epoch_mono

    # --- writer callbacks (run on the loop) -------------------------------------------------------------------

    def add_bytes(self, n: int) -> None:  # called from the writer thread; an int add is atomic enough
        self.bytes_done += n

    def part_closed(self, rel: str, info: dict[str, Any]) -> None:
        segment = self._segment_named(info["segment"])
        if segment is not None:
            segment.parts[rel] = info
            segment.encrypted = segment.encrypted or _sealed(info)

    def part_broken(self, rel: str, info: dict[str, Any]) -> None:
        segment = self._segment_named(info["segment"])
        if segment is not None:
            segment.broken[rel] = info

    def _segment_named(self, name: str) -> _Segment | None:
        if self.segment is not None and self.segment.id == name:
            return self.segment
        return self.r._closing.get((self.id, name))

    def cut_done(self, token: int) -> None:
        waiter = self.cut_waiters.pop(token, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def synced(self, token: int) -> None:
        self.cut_done(token)

    def writer_failed(self, writer: _Writer, code: str, detail: str) -> None:
        if writer is not self.writer:
            return
        self.writer = None
        self.stopped_at = self.now()
        for waiter in self.cut_waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        self.cut_waiters.clear()
        alarm = RecorderAlarm(self.id, "disk_full" if code == "disk_full" else "write_failed", True, detail)
        self.alarm = alarm
        self.r._raise_alarm(alarm)

    # --- writer control --------------------------------------------------------------------------------------

    def start_writer(self) -> None:
        assert self.segment is not None
        writer = _Writer(self, self.r.options, self.r.keyring, asyncio.get_running_loop(), self.segment.id,
                         self.encrypting())
        self.writer = writer
        for (venue, kind), feed in self.feeds.items():
            writer.put_control(_Track(venue, kind, feed.publication.codec))
            if kind == "video":
                feed.need_keyframe = True
                feed.publication.request_keyframe("recorder")
        writer.start()

    def encrypting(self) -> bool:
        return self.closed_active or (self.segment is not None and self.segment.confidential)

    async def cut(self, *, force: bool) -> None:
        """Cut every venue (at its next keyframe unless ``force``) into ``self.segment``."""
        begun = self.begin_cut(force=force)
        if begun is not None:
            await self.finish_cut(*begun)

    def begin_cut(self, *, force: bool) -> tuple[_Writer, asyncio.Future[None]] | None:
        """Queue the cut now (frames queued after this go to the new parts); request keyframes."""
        writer = self.writer
        if writer is None or self.segment is None:
            return None
        self.tokens += 1
        token = self.tokens
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.cut_waiters[token] = waiter
        writer.put_control(_Cut(self.segment.id, self.encrypting(), force, token, self.now()))
        for (_, kind), feed in self.feeds.items():
            if kind == "video":
                feed.publication.request_keyframe("segment")
        return writer, waiter

    async def finish_cut(self, writer: _Writer, waiter: asyncio.Future[None]) -> None:
        """Wait for the cut; force it after ``cut_timeout`` (a venue that sends no keyframe)."""
        if self.segment is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.r.cut_timeout)
            return
        except TimeoutError:
            pass
        if self.writer is not writer:
            return
        # a venue sent no keyframe in time: cut it anyway (its next part starts at its next keyframe)
        self.tokens += 1
        token = self.tokens
        forced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.cut_waiters[token] = forced
        writer.put_control(_Cut(self.segment.id, self.encrypting(), True, token, self.now()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(forced, self.r.cut_timeout * 2)

    async def stop_writer(self) -> None:
        writer = self.writer
        if writer is None:
            return
        self.writer = None
        writer.put_control(_STOP)
        await asyncio.to_thread(writer.thread.join)
        await asyncio.sleep(0)  # the writer's last part_closed callbacks run before this resumes

    # --- feeding ---------------------------------------------------------------------------------------------

    async def feed(self, feed: _Feed) -> None:
        try:
            async for frame in feed.tap:
                self.on_frame(feed, frame)
        finally:
            if self.feeds.get((feed.venue, feed.publication.kind)) is feed:
                del self.feeds[(feed.venue, feed.publication.kind)]
                if not self.closed:
                    left = feed.clock.last if feed.clock.last is not None else self.now()
                    self.add_gap(feed.venue, left, None, "publisher_left")
                if self.writer is not None:
                    self.writer.put_control(_Track(feed.venue, feed.publication.kind, None))

    def on_frame(self, feed: _Feed, frame: EncodedFrame) -> None:
        report = feed.tap.sender_report
        sender = None if report is None else report.sender_time(frame.timestamp)
        mapped = feed.clock.map(frame.timestamp, frame.arrival, sender)
        if mapped.gap is not None:
            self.add_gap(feed.venue, mapped.gap[0], mapped.gap[1], "link_lost")
        writer = self.writer
        if writer is None:
            return
        video = frame.kind == "video"
        if video and feed.need_keyframe:
            if not frame.keyframe:
                return
            feed.need_keyframe = False
            if feed.lag_from is not None:
                self.add_gap(feed.venue, feed.lag_from, mapped.t, "lagging")
                feed.lag_from = None
        item = _Frame(feed.venue, frame.kind, frame.codec, mapped.t, frame.data, frame.keyframe)
        if not writer.put(item):
            self.frames_dropped += 1
            if video:
                feed.need_keyframe = True
                feed.lag_from = mapped.t
                feed.publication.request_keyframe("recorder lagging")

    # --- timeline ------------------------------------------------------------------------------------------

    def add_gap(self, venue: str, start: float, end: float | None, reason: GapReason) -> None:
        segment = self.segment
        if segment is None:
            return
        for gap in segment.gaps:
            if gap.venue == venue and (gap.end is None or gap.end >= start) and (end is None or gap.start <= end):
                return  # already covered (a link loss the room server told us about)
        segment.gaps.append(Gap(venue, start, end, reason))

    def end_segment_timeline(self, old: _Segment, t: float) -> list[Gap]:
        """Close ``old``'s speaker span and open gaps at ``t``; returns gaps to carry into the next one."""
        old.speakers.append(SpeakerSpan(self.speaker, max(self.speaker_since, old.t_open), t))
        carry: list[Gap] = []
        for gap in old.gaps:
            if gap.end is None:
                carry.append(Gap(gap.venue, t, None, gap.reason))
        for venue, since in self.link_lost.items():
            if not any(g.venue == venue and g.end is None for g in old.gaps):
                old.gaps.append(Gap(venue, max(since, old.t_open), None, "link_lost"))
                carry.append(Gap(venue, t, None, "link_lost"))
        return carry


class Recorder:
    """Records the sessions of one media process (see the module docstring). Owned by the room server."""

    def __init__(self, options: RecorderOptions, keyring: Keyring, *,
                 on_segment_closed: Callable[[SegmentReport, ManifestRef], Awaitable[None]],
                 on_alarm: Callable[[RecorderAlarm], Awaitable[None]],
                 wall_clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 cut_timeout: float = 3.0, space_check_interval: float = 2.0) -> None:
        self.options = options
        self.keyring = keyring
        self.cut_timeout = cut_timeout
        self.space_check_interval = space_check_interval
        self._on_segment_closed = on_segment_closed
        self._on_alarm = on_alarm
        self._wall = wall_clock
        self._monotonic = monotonic
        self._sessions: dict[str, _Session] = {}
        self._closing: dict[tuple[str, str], _Segment] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._free: int | None = None
        self.started = False
        self.closed = False

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the recordings root and start watching free space (resumes sessions stopped on a full disk)."""
        if self.started or not self.options.enabled:
            self.started = True
            return
        self.started = True
        await asyncio.to_thread(self.options.root.mkdir, parents=True, exist_ok=True)
        self._monitor = asyncio.create_task(self._watch_space(), name="recorder-space")

    async def close(self) -> None:
        """Close every open session cleanly (manifests written). Idempotent."""
        if self.closed:
            return
        self.closed = True
        for session in list(self._sessions):
            await self.close_session(session)
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        tasks = list(self._tasks)
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- sessions ----------------------------------------------------------------------------------------

    async def open_session(self, session: str, venue_names: Mapping[str, str]) -> None:
        """Start recording ``session`` (idempotent); recovers what a killed earlier run left in its directory."""
        valid_id(session, "session")
        names = {valid_id(str(k), "venue"): str(v) for k, v in venue_names.items()}
        if not self.options.enabled or self.closed:
            return
        existing = self._sessions.get(session)
        if existing is not None:
            existing.venue_names.update(names)
            existing.state.update(venue_names=dict(existing.venue_names))
            return
        directory = self.options.root / session
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        self._free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
        old = await asyncio.to_thread(SessionState.load, directory)
        if old is not None and not old.closed:
            state = old
            await self._recover(directory, old)
        else:
            state = SessionState(directory, session, self._wall())
            if old is not None:
                state.b_next = old.b_next
        if session in self._sessions:  # opened concurrently while we recovered
            return
        state.closed = False
        state.venue_names.update(names)
        rec = _Session(self, session, directory, state)
        rec.used = await asyncio.to_thread(_manifested, directory)
        self._sessions[session] = rec
        rec.segment = self._new_segment(rec, self._next_b(rec), None, confidential=False)
        rec.speaker_since = rec.segment.t_open
        await asyncio.to_thread(state.save)
        rec.start_writer()

    def _next_b(self, rec: _Session) -> str:
        n = rec.state.b_next
        rec.state.update(b_next=n + 1)
        return f"b{n}"

    def _new_segment(self, rec: _Session, segment: str, case: str | None, *, confidential: bool) -> _Segment:
        seg = _Segment(segment, case, confidential, self._wall(), rec.now())
        rec.state.set_segment(segment, {"case": case, "confidential": confidential, "opened_at": seg.opened_at,
                                        "t_open": seg.t_open})
        return seg

    async def add_publication(self, session: str, venue: str, publication: Publication) -> None:
        """Record ``publication`` (audio or video of ``venue``) from now on; one file part per venue."""
        valid_id(venue, "venue")
        if not self.options.enabled:
            return
        rec = self._session(session)
        kind = publication.kind
        if kind not in ("audio", "video"):
            raise ValueError(f"cannot record a {kind} publication")
        if publication.codec.upper() not in (("VP8", "H264") if kind == "video" else ("OPUS",)):
            raise ValueError(f"cannot record codec {publication.codec}")
        previous = rec.feeds.pop((venue, kind), None)
        if previous is not None:
            await previous.tap.close()
        tap = publication.attach_tap(self.options.queue_frames)
        sender_clock = rec.sender_clocks.setdefault(publication.participant_id, SenderClock())
        clock = TrackClock(publication.clock_rate, rec.epoch_mono, gap_after=1.0 if kind == "video" else 0.5,
                           sender_clock=sender_clock)
        feed = _Feed(venue, publication, tap, clock, need_keyframe=kind == "video")
        rec.feeds[(venue, kind)] = feed
        if rec.segment is not None:
            gaps = rec.segment.gaps
            for i, gap in enumerate(gaps):
                if gap.venue == venue and gap.end is None and gap.reason == "publisher_left":
                    gaps[i] = Gap(venue, gap.start, max(gap.start, rec.now()), gap.reason)
        if rec.writer is not None:
            rec.writer.put_control(_Track(venue, kind, publication.codec))
        feed.task = asyncio.create_task(rec.feed(feed), name=f"recorder-tap-{session}-{venue}-{kind}")
        rec.tasks.add(feed.task)
        feed.task.add_done_callback(rec.tasks.discard)

    def _session(self, session: str) -> _Session:
        rec = self._sessions.get(session)
        if rec is None:
            raise UnknownSession(session)
        return rec

    # --- segments ------------------------------------------------------------------------------------------

    async def open_segment(self, session: str, segment: str, case: str, *, confidential: bool) -> None:
        """Cut every venue and start the case segment ``segment`` (the current one is closed and reported)."""
        valid_id(segment, "segment")
        if not self.options.enabled:
            return
        rec = self._session(session)
        async with rec.lock:
            if rec.segment is not None and rec.segment.id == segment:
                return
            segment = self._unused_segment_id(rec, segment)
            old = rec.segment
            new = self._new_segment(rec, segment, case, confidential=confidential)
            await self._switch(rec, old, new, force=confidential or rec.closed_active)

    async def _switch(self, rec: _Session, old: _Segment | None, new: _Segment, *,
                      force: bool) -> SegmentReport | None:
        """Make ``new`` current, cut every venue into it, then report ``old``."""
        t = rec.now()
        if old is not None:
            new.gaps.extend(rec.end_segment_timeline(old, t))
            self._closing[(rec.id, old.id)] = old
        rec.speaker_since = t
        rec.segment = new
        report: SegmentReport | None = None
        try:
            await rec.cut(force=force)
        finally:
            if old is not None:
                report = await self._finish(rec, old, t)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(rec.state.save)
        return report

    def _unused_segment_id(self, rec: _Session, segment: str) -> str:
        """``segment``, or ``segment.r<n>`` when a manifest of that id exists already (a case re-opened
        after a crash keeps its recovered manifest)."""
        taken = rec.used | {s for (sid, s) in self._closing if sid == rec.id}
        candidate, n = segment, 1
        while candidate in taken:
            candidate = f"{segment}.r{n}"
            n += 1
        return candidate

    async def close_segment(self, session: str, segment: str) -> SegmentReport | None:
        """Close case segment ``segment`` (cut at keyframes) and report it; None when it is not open."""
        rec = self._sessions.get(session)
        if rec is None or not self.options.enabled:
            return None
        async with rec.lock:
            current = rec.segment
            if current is None or current.case is None or (current.id != segment
                                                           and not current.id.startswith(segment + ".r")):
                return None
            new = self._new_segment(rec, self._next_b(rec), None, confidential=False)
            return await self._switch(rec, current, new, force=rec.closed_active)

    def set_closed_segment(self, session: str, active: bool) -> None:
        """Closed segment (phiên kín) starts/ends: cut now; parts are encrypted while it is active."""
        rec = self._sessions.get(session)
        if rec is None or rec.closed or rec.closed_active == active:
            return
        rec.closed_active = active
        if rec.segment is not None and active:
            rec.segment.encrypted = True  # the report says confidential; the case itself may not be

        begun = rec.begin_cut(force=active)  # at once: not one more frame of a closed segment in plaintext
        if begun is not None:
            self._spawn(rec.finish_cut(*begun), f"recorder-closed-segment-{session}")

    def speaker_changed(self, session: str, venue: str | None) -> None:
        """The active speaker is now ``venue`` (None: nobody); goes into the segment's timeline."""
        rec = self._sessions.get(session)
        if rec is None or rec.segment is None or venue == rec.speaker:
            return
        t = rec.now()
        start = max(rec.speaker_since, rec.segment.t_open)
        if t > start:
            rec.segment.speakers.append(SpeakerSpan(rec.speaker, start, t))
        rec.speaker, rec.speaker_since = venue, t

    def link_changed(self, session: str, venue: str, lost: bool) -> None:
        """``venue``'s link was lost (True) or is back: a gap in the segment's report."""
        rec = self._sessions.get(session)
        if rec is None or rec.segment is None:
            return
        t = rec.now()
        if lost:
            if venue not in rec.link_lost:
                rec.link_lost[venue] = t
            return
        since = rec.link_lost.pop(venue, None)
        if since is None:
            return
        gaps = rec.segment.gaps
        for i, gap in enumerate(gaps):
            if gap.venue == venue and gap.end is None:
                gaps[i] = Gap(venue, gap.start, t, gap.reason)
                return
        for i, gap in enumerate(gaps):  # a gap the media clock saw inside the loss: widen it to the loss
            if gap.venue == venue and gap.end is not None and gap.end >= since and gap.start <= t:
                gaps[i] = Gap(venue, min(gap.start, since), max(gap.end, t), "link_lost")
                return
        gaps.append(Gap(venue, max(since, rec.segment.t_open), t, "link_lost"))

    async def close_session(self, session: str) -> ManifestRef | None:
        """Close the current segment, stop the writer, write the session manifest. None if not open."""
        rec = self._sessions.get(session)
        if rec is None:
            return None
        async with rec.lock:
            if rec.closed:
                return None
            rec.closed = True
            for feed in list(rec.feeds.values()):
                await feed.tap.close()
            tasks = list(rec.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            old = rec.segment
            t = rec.now()
            if old is not None:
                rec.end_segment_timeline(old, t)
                self._closing[(rec.id, old.id)] = old
            await rec.stop_writer()
            if old is not None:
                await self._finish(rec, old, t)
            rec.segment = None
            ref: ManifestRef | None = None
            try:
                ref = await asyncio.to_thread(manifests.write_session_manifest, rec.dir, self.keyring,
                                              session=session, closed_at=self._wall())
            except Exception as exc:
                logger.exception("session manifest of %s not written", session)
                self._raise_alarm(RecorderAlarm(session, "write_failed", True, type(exc).__name__))
            rec.state.update(closed=True)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(rec.state.save)
            del self._sessions[session]
            return ref

    # --- reports ----------------------------------------------------------------------------------------------

    async def _finish(self, rec: _Session, seg: _Segment, t_close: float) -> SegmentReport | None:
        """Hash ``seg``'s parts, write its manifest and report it (b-stretches without files are dropped)."""
        self._closing.pop((rec.id, seg.id), None)
        parts = dict(seg.parts)
        for rel, info in seg.broken.items():  # left unfinished by a write error: repaired like after a crash
            result = await asyncio.to_thread(repair_part, rec.dir, rel, encrypted=bool(info["encrypted"]),
                                             keyring=self.keyring)
            parts[rel] = dict(info, duration=result.duration if result is not None else info["duration"])
        if seg.case is None and not parts:
            rec.state.set_segment(seg.id, None)
            return None
        report = await asyncio.to_thread(self._build_report, rec, seg, parts, t_close)
        ref: ManifestRef | None = None
        try:
            ref = await asyncio.to_thread(manifests.write_segment_manifest, rec.dir, report, self.keyring)
        except Exception as exc:
            logger.exception("manifest of segment %s/%s not written", rec.id, seg.id)
            self._raise_alarm(RecorderAlarm(rec.id, "write_failed", True, f"manifest: {type(exc).__name__}"))
            return report
        rec.state.set_segment(seg.id, None)
        rec.used.add(seg.id)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(rec.state.save)
        try:
            await self._on_segment_closed(report, ref)
        except Exception:
            logger.exception("on_segment_closed failed for %s/%s", rec.id, seg.id)
        return report

    def _build_report(self, rec: _Session, seg: _Segment, parts: Mapping[str, Mapping[str, Any]],
                      t_close: float, *, recovered: frozenset[str] = frozenset()) -> SegmentReport:
        files = []
        for rel, info in sorted(parts.items(), key=lambda kv: (kv[1]["t0"], kv[0])):
            path = rec.dir / rel
            if not path.exists():
                continue
            digest, size = _sha256(path)
            files.append(TrackFile(path=rel, venue=str(info["venue"]), kinds=tuple(info["kinds"]),
                                   codecs=tuple(info["codecs"]), sha256=digest, size=size, t0=float(info["t0"]),
                                   duration=float(info["duration"]), encrypted=bool(info["encrypted"]),
                                   kid=info.get("kid"), recovered=rel in recovered or not info.get("closed", True)))
        media_t0 = min((f.t0 for f in files), default=seg.t_open)
        media_t1 = max((f.t0 + f.duration for f in files), default=t_close)
        return SegmentReport(
            session=rec.id, segment=seg.id, case=seg.case, confidential=seg.confidential or seg.encrypted,
            session_epoch=rec.epoch, opened_at=seg.opened_at, closed_at=self._wall(), media_t0=media_t0,
            media_t1=max(media_t0, media_t1), files=tuple(files), speakers=tuple(seg.speakers),
            gaps=tuple(seg.gaps), venue_names=dict(rec.venue_names))

    async def flush(self, session: str) -> None:
        """Wait until everything queued for ``session`` so far is written and fsynced (tests, shutdown)."""
        rec = self._sessions.get(session)
        if rec is None or rec.writer is None:
            return
        rec.tokens += 1
        token = rec.tokens
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec.cut_waiters[token] = waiter
        rec.writer.put_control(_Sync(token))
        await waiter

    # --- crash recovery ----------------------------------------------------------------------------------------

    async def _recover(self, directory: Path, state: SessionState) -> None:
        rec = _Session(self, state.session, directory, state)
        recovered_files = 0
        for seg_id, info in sorted(state.segments.items(), key=lambda kv: float(kv[1].get("t_open", 0.0))):
            parts = {rel: dict(p) for rel, p in state.parts.items() if p["segment"] == seg_id}
            repaired: set[str] = set()
            gaps: list[Gap] = []
            for rel, part in parts.items():
                if part.get("closed"):
                    continue
                result = await asyncio.to_thread(repair_part, directory, rel, encrypted=bool(part["encrypted"]),
                                                 keyring=self.keyring)
                if result is not None:
                    part["duration"] = result.duration
                repaired.add(rel)
                part["closed"] = False
                gaps.append(Gap(str(part["venue"]), float(part["t0"]) + float(part["duration"]), None, "crash"))
            if info.get("case") is None and not parts:
                state.set_segment(seg_id, None)
                continue
            seg = _Segment(seg_id, info.get("case"), bool(info.get("confidential")), float(info["opened_at"]),
                           float(info["t_open"]), gaps=gaps)
            seg.encrypted = any(_sealed(p) for p in parts.values())
            t_close = max((float(p["t0"]) + float(p["duration"]) for p in parts.values()), default=seg.t_open)
            report = await asyncio.to_thread(self._build_report, rec, seg, parts, t_close,
                                             recovered=frozenset(repaired))
            recovered_files += len(repaired)
            try:
                ref = await asyncio.to_thread(manifests.write_segment_manifest, directory, report, self.keyring)
            except Exception as exc:
                logger.exception("manifest of recovered segment %s/%s not written", state.session, seg_id)
                self._raise_alarm(RecorderAlarm(state.session, "write_failed", True, type(exc).__name__))
                continue
            state.set_segment(seg_id, None)
            await asyncio.to_thread(state.save)
            try:
                await self._on_segment_closed(report, ref)
            except Exception:
                logger.exception("on_segment_closed failed for recovered %s/%s", state.session, seg_id)
        if recovered_files:
            logger.warning("session %s: %d unfinished files recovered after a crash", state.session, recovered_files)
            self._raise_alarm(RecorderAlarm(state.session, "recovered_files", True, f"{recovered_files}"))

    # --- alarms and free space -------------------------------------------------------------------------------

    def _raise_alarm(self, alarm: RecorderAlarm) -> None:
        self._spawn(self._deliver_alarm(alarm), "recorder-alarm")

    async def _deliver_alarm(self, alarm: RecorderAlarm) -> None:
        try:
            await self._on_alarm(alarm)
        except Exception:
            logger.exception("on_alarm failed")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("recorder task %s failed: %r", task.get_name(), task.exception())

    async def _watch_space(self) -> None:
        while True:
            await asyncio.sleep(self.space_check_interval)
            await self.check_space()

    async def check_space(self) -> None:
        """Measure free space; resume sessions stopped on a full disk once there is room again."""
        try:
            usage = await asyncio.to_thread(shutil.disk_usage, self.options.root)
        except OSError:
            return
        self._free = usage.free
        if usage.free < self.options.min_free_bytes:
            return
        for rec in list(self._sessions.values()):
            if rec.writer is not None or rec.closed or rec.alarm is None or rec.alarm.code != "disk_full":
                continue
            async with rec.lock:
                if rec.writer is not None or rec.closed:
                    continue
                stopped = rec.stopped_at if rec.stopped_at is not None else rec.now()
                t = rec.now()
                for venue in {v for v, _ in rec.feeds}:
                    rec.add_gap(venue, stopped, t, "disk_full")
                rec.stopped_at = None
                cleared = RecorderAlarm(rec.id, "disk_full", False, "")
                rec.alarm = None
                rec.start_writer()
            await self._deliver_alarm(cleared)

    def status(self) -> RecorderStatus:
        """A snapshot for ``/metrics``."""
        sessions = list(self._sessions.values())
        free = self._free
        for rec in sessions:
            if rec.free_bytes is not None:
                free = rec.free_bytes if free is None else min(free, rec.free_bytes)
        return RecorderStatus(
            recording=any(rec.writer is not None for rec in sessions),
            alarms=tuple(rec.alarm for rec in sessions if rec.alarm is not None),
            tracks=sum(len(rec.feeds) for rec in sessions),
            bytes_written=sum(rec.bytes_done + (rec.writer.open_bytes() if rec.writer else 0) for rec in sessions),
            frames_dropped=sum(rec.frames_dropped for rec in sessions),
            free_bytes=free,
        )


def _manifested(session_dir: Path) -> set[str]:
    folder = session_dir / "manifests"
    if not folder.is_dir():
        return set()
    return {p.name.split("-", 1)[1][:-5] for p in folder.glob("*.json") if "-" in p.name}


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size

