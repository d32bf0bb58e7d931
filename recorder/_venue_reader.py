"""One venue's media for a replay, decoded in a process of its own (``recorder.compose`` starts one per venue).

PyAV holds the GIL for long stretches while decoding, so venues decoded in threads run one at a time;
processes let the machine's cores decode venues side by side, and the compositor receives only what it
draws: for each output tick the venue's picture already scaled to its tile (or ``None`` when the venue has
no media then: before its first frame, in a gap of the report, or when its last frame is older than
``stale_s``), and its sound as 16-bit mono PCM on the session clock (silence where it has none).

Cost per venue and case-second (VP8 720p30, measured 2026-12-06): decoding ~30 ms with FFmpeg's native
``vp8`` decoder (``libvpx`` was 8–30 % slower) on one thread; scaling only the frames shown, with one
reused libswscale context, ~6 ms at 15 fps (a small tile).

Messages sent on the connection, in order: ``("chunk", index, pictures, pcm)`` for each chunk of
``chunk_ticks`` ticks (the last may be shorter), then ``("done",)``; or ``("error", message)`` at the first
failure, after which the process ends.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence import DataKey, Keyring, SigningKey, open_decrypted

__all__ = ["SourceFile", "VenueJob", "Picture", "run_venue_reader", "fit"]

Picture = tuple[int, int, bytes, bytes, bytes]
"""A scaled picture: width, height and its packed Y, U, V planes (4:2:0)."""

_MAX_DECODE_ERRORS = 50
_AUDIO_TOLERANCE_S = 0.02
_AUDIO_WAIT_S = 1.0


@dataclass(frozen=True)
class SourceFile:
    path: str
    name: str
    t0: float
    encrypted: bool = False
    recovered: bool = False


@dataclass(frozen=True)
class VenueJob:
    """What one venue's reader must produce. ``boxes``: from tick ``boxes[i][0]`` on, the venue's tile is
    ``boxes[i][1] × boxes[i][2]`` (0 × 0: not in the picture)."""

    venue: str
    files: tuple[SourceFile, ...]
    start: float
    fps: int
    ticks: int
    chunk_ticks: int
    boxes: tuple[tuple[int, int, int], ...]
    gaps: tuple[tuple[float, float], ...] = ()
    data_keys: tuple[DataKey, ...] = ()
    sample_rate: int = 48000
    stale_s: float = 2.0
    interpolation: str = "AREA"


def fit(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest even size of the source's aspect ratio inside the box."""
    scale = min(box_w / src_w, box_h / src_h)
    return max(2, int(src_w * scale) // 2 * 2), max(2, int(src_h * scale) // 2 * 2)


def _reader_keyring(keys: tuple[DataKey, ...]) -> Keyring:
    # A keyring that can only open the inputs: their data keys and a throwaway signing key (a Keyring must
    # hold one); the real keyring, with its signing keys, never leaves the parent process.
    private = Ed25519PrivateKey.generate()
    signing = SigningKey(kid="compose-reader", public=private.public_key(), private=private,
                         created_at=datetime.now(UTC).isoformat())
    return Keyring([signing], [replace(k, retired_at=None) for k in keys])


def _pack(frame: av.VideoFrame) -> tuple[bytes, bytes, bytes]:
    out = []
    for plane in frame.planes:
        view = memoryview(plane)  # one copy per plane (bytes(plane) and a slice would be two)
        w, h, ls = plane.width, plane.height, plane.line_size
        out.append(view[:w * h].tobytes() if ls == w else b"".join(view[r * ls:r * ls + w] for r in range(h)))
    return out[0], out[1], out[2]


class _Reader:
    def __init__(self, job: VenueJob, conn: Connection) -> None:
        self.job = job
        self.conn = conn
        self.keyring = _reader_keyring(job.data_keys) if job.data_keys else None
        self.box_ticks = [b[0] for b in job.boxes]
        self.tick = 0
        self.chunk = 0
        self.pictures: list[Picture | None] = []
        self.pending: deque[tuple[int, list[Picture | None]]] = deque()
        self.current: av.VideoFrame | None = None
        self.current_t = -math.inf
        self.cache: tuple[int, int, int, Picture] | None = None
        # One reformatter for every frame keeps libswscale's context (and its filter tables) between frames;
        # ``frame.reformat`` builds a new one per frame, which cost as much as the scaling itself.
        self.scaler = VideoReformatter()
        self.pcm = bytearray()
        self.pcm_base = 0  # sample index (from the segment's start) of pcm[0]
        self.written = 0  # samples placed so far
        self.last_t = -math.inf

    # -- input -------------------------------------------------------------------------------------

    def _open(self, source: SourceFile) -> tuple[Any, Any]:
        if not source.encrypted:
            return av.open(source.path), None
        if self.keyring is None:
            raise ValueError("encrypted input without a data key")
        stream = open_decrypted(Path(source.path), self.keyring, aad=source.name.encode(),
                                allow_truncated=source.recovered)
        try:
            return av.open(stream, format="matroska"), stream
        except BaseException:
            stream.close()
            raise

    def events(self) -> Iterator[tuple[float, av.VideoFrame | None, bytes]]:
        """(session time, video frame, b"") or (session time, None, pcm) in file order."""
        rate = self.job.sample_rate
        for source in self.job.files:
            container, raw = self._open(source)
            try:
                streams = list(container.streams.video[:1]) + list(container.streams.audio[:1])
                for stream in container.streams.video[:1]:
                    # One decoding thread: the venues' processes already keep every core busy, and FFmpeg's
                    # slice threads cost 12 % more CPU for the same frames (measured).
                    stream.thread_count = 1
                if not streams:
                    raise ValueError(f"{source.name} holds neither video nor audio")
                origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
                resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
                errors = 0
                for packet in container.demux(*streams):
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError:
                        errors += 1  # a damaged frame (a crash-recovered tail): skip it, as a player would
                        if errors > _MAX_DECODE_ERRORS:
                            raise
                        continue
                    for frame in frames:
                        if frame.time is None:
                            continue
                        at = source.t0 + frame.time - origin
                        if isinstance(frame, av.VideoFrame):
                            yield at, frame, b""
                        else:
                            data = b"".join(bytes(o.planes[0])[:o.samples * 2] for o in resampler.resample(frame))
                            if data:
                                yield at, None, data
            finally:
                container.close()
                if raw is not None:
                    raw.close()

    # -- output ------------------------------------------------------------------------------------

    def _tick_time(self, tick: int) -> float:
        return self.job.start + tick / self.job.fps

    def _box(self, tick: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.box_ticks, tick) - 1
        if index < 0:
            return 0, 0
        _, w, h = self.job.boxes[index]
        return w, h

    def _in_gap(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.job.gaps)

    def _picture(self, tick: int) -> Picture | None:
        t = self._tick_time(tick)
        frame = self.current
        if frame is None or t - self.current_t > self.job.stale_s or self._in_gap(t):
            return None
        box_w, box_h = self._box(tick)
        if box_w == 0:
            return None
        w, h = fit(frame.width, frame.height, box_w, box_h)
        if self.cache is not None and self.cache[0] == id(frame) and self.cache[1:3] == (w, h):
            return self.cache[3]
        scaled = self.scaler.reformat(frame, width=w, height=h, format="yuv420p",
                                      interpolation=self.job.interpolation)
        picture: Picture = (w, h, *_pack(scaled))
        self.cache = (id(frame), w, h, picture)
        return picture

    def _emit_until(self, limit: float) -> None:
        job = self.job
        while self.tick < job.ticks and self._tick_time(self.tick) < limit:
            self.pictures.append(self._picture(self.tick))
            self.tick += 1
            if len(self.pictures) == job.chunk_ticks or self.tick == job.ticks:
                self.pending.append((self.chunk, self.pictures))
                self.chunk += 1
                self.pictures = []

    def _place_audio(self, at: float, data: bytes) -> None:
        rate = self.job.sample_rate
        tolerance = int(_AUDIO_TOLERANCE_S * rate)
        pos = round((at - self.job.start) * rate)
        if pos > self.written + tolerance:
            self.pcm.extend(bytes(2 * (pos - self.written)))
            self.written = pos
        elif pos < self.written - tolerance:
            data = data[2 * (self.written - pos):]
        if data:
            self.pcm.extend(data)
            self.written += len(data) // 2

    def _chunk_samples(self, index: int) -> tuple[int, int]:
        job = self.job
        first = index * job.chunk_ticks
        last = min(first + job.chunk_ticks, job.ticks)
        return first * job.sample_rate // job.fps, last * job.sample_rate // job.fps

    def _send_ready(self, *, final: bool) -> None:
        while self.pending:
            index, pictures = self.pending[0]
            begin, end = self._chunk_samples(index)
            end_t = self.job.start + end / self.job.sample_rate
            if not final and self.written < end and self.last_t < end_t + _AUDIO_WAIT_S:
                return
            offset = 2 * (begin - self.pcm_base)
            pcm = bytes(self.pcm[offset:offset + 2 * (end - begin)])
            pcm += bytes(2 * (end - begin) - len(pcm))
            del self.pcm[:2 * (end - self.pcm_base)]
            self.pcm_base = end
            if self.written < end:
                self.written = end
            self.conn.send(("chunk", index, pictures, pcm))
            self.pending.popleft()

    def run(self) -> None:
        for at, frame, data in self.events():
            self.last_t = max(self.last_t, at)
            if frame is not None:
                self._emit_until(at - 1e-4)
                self.current, self.current_t = frame, at
            else:
                self._place_audio(at, data)
            self._send_ready(final=False)
        self._emit_until(math.inf)
        self._send_ready(final=True)
        self.conn.send(("done",))


def run_venue_reader(job: VenueJob, conn: Connection) -> None:
    """Process entry point: decode the venue's files and stream chunks to ``conn`` (see the module doc)."""
    try:
        _Reader(job, conn).run()
    except (BrokenPipeError, ConnectionResetError):
        return  # the compositor stopped (failed elsewhere or was cancelled)
    except Exception as exc:  # every failure of one venue ends the replay with its reason
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except (BrokenPipeError, ConnectionResetError):
            pass
    finally:
        conn.close()
