"""One file part: a venue's encoded video and audio muxed into WebM/Matroska with PyAV, never decoded.

Runs in a session's writer thread only (see ``recorder.recorder``). A part is opened on a video keyframe
(or on the first audio frame of a venue without video), so it starts decodable; its packets carry
milliseconds since the part's ``t0`` (session seconds), with a strictly increasing dts per stream.

Crash safety: the Matroska muxer writes a cluster at most every ``cluster_ms`` of media
(``cluster_time_limit``) and ``flush_packets`` hands every written byte to the file at once;
:meth:`PartWriter.flush` (called about every second) seals the encryption chunk and fsyncs. A killed
process therefore leaves a file that decodes up to its last written cluster (see ``recorder.recovery``).

Encryption: a confidential part is written through ``evidence.stream.EncryptingWriter`` from its first
byte (the muxer sees a non-seekable stream and writes unknown-size elements, which play as they are).
"""

from __future__ import annotations

import fractions
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from evidence import EncryptingWriter, Keyring
from sfu.forwarding import vp8_frame_size

__all__ = ["VideoFormat", "PartWriter", "video_format", "DurableFile", "CODEC_NAMES"]

_MS = fractions.Fraction(1, 1000)

#: sfu codec name -> (PyAV codec name, name in reports)
CODEC_NAMES = {"VP8": ("vp8", "vp8"), "H264": ("h264", "h264"), "opus": ("opus", "opus")}


@dataclass(frozen=True)
class VideoFormat:
    """What a part's video stream header needs; a keyframe with another format starts a new part."""

    codec: str
    width: int
    height: int
    #: H.264 only: the Annex B SPS and PPS NAL units of the part's first keyframe (avcC is built from them)
    parameter_sets: bytes = b""
    #: H.264 only: that keyframe, parsed once (never decoded) to fill the stream header
    keyframe: bytes = field(default=b"", compare=False, repr=False)


def _nal_units(data: bytes) -> list[bytes]:
    units: list[bytes] = []
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00") if n + 1 < len(starts) else data[start:end]
        if unit:
            units.append(unit)
    return units


def video_format(codec: str, keyframe: bytes) -> VideoFormat | None:
    """The format of a video keyframe, or None when it cannot start a file (no size / no SPS+PPS)."""
    if codec == "VP8":
        size = vp8_frame_size(keyframe)
        return None if size is None or 0 in size else VideoFormat("VP8", size[0], size[1])
    if codec == "H264":
        sets = [u for u in _nal_units(keyframe) if u[0] & 0x1F in (7, 8)]
        if not any(u[0] & 0x1F == 7 for u in sets) or not any(u[0] & 0x1F == 8 for u in sets):
            return None
        # the size is read by the container's parser from the SPS; equal parameter sets = same format
        return VideoFormat("H264", 0, 0, b"".join(b"\x00\x00\x00\x01" + u for u in sets), keyframe)
    return None


class DurableFile(io.FileIO):
    """A file created exclusively, counting bytes written, fsynced on close."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "xb")
        self.bytes_written = 0

    def write(self, b: Any, /) -> int:
        n = super().write(b)
        self.bytes_written += n or 0
        return n or 0

    def sync(self) -> None:
        if not self.closed:
            os.fsync(self.fileno())

    def close(self) -> None:
        if not self.closed:
            try:
                os.fsync(self.fileno())
            finally:
                super().close()


class PartWriter:
    """One open part (``path``); ``video``/``audio`` say which streams it has."""

    def __init__(self, path: Path, *, video: VideoFormat | None, audio: bool, t0: float, cluster_ms: int,
                 keyring: Keyring | None = None, aad: bytes = b"", chunk_bytes: int = 65536) -> None:
        if video is None and not audio:
            raise ValueError("a part needs a video or an audio stream")
        self.path = path
        self.video = video
        self.audio = audio
        self.t0 = t0
        self.encrypted = keyring is not None
        self.kid: str | None = None
        self.frames = 0
        self.last_t = t0
        self._last_pts: dict[str, int] = {}
        self._raw = DurableFile(path)
        self._sink: DurableFile | EncryptingWriter = self._raw
        try:
            if keyring is not None:
                writer = EncryptingWriter(self._raw, keyring, aad=aad, chunk_bytes=chunk_bytes)
                self.kid = writer.kid
                self._sink = writer
            h264 = video is not None and video.codec == "H264"
            options = {"cluster_time_limit": str(cluster_ms), "max_interleave_delta": "500000",
                       "flush_packets": "1"}
            self._container: Any = av.open(self._sink, "w", format="matroska" if h264 else "webm",
                                           options=options)
            self._streams: dict[str, Any] = {}
            if video is not None:
                self._streams["video"] = self._add_video(video)
            if audio:
                self._streams["audio"] = self._container.add_mux_stream("opus", rate=48000)
            for stream in self._streams.values():
                stream.time_base = _MS
            self._container.start_encoding()
        except BaseException:
            self.abort()
            raise

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._streams)

    @property
    def codecs(self) -> tuple[str, ...]:
        out = []
        if self.video is not None:
            out.append(CODEC_NAMES[self.video.codec][1])
        if self.audio:
            out.append("opus")
        return tuple(out)

    @property
    def bytes_written(self) -> int:
        return self._raw.bytes_written

    @property
    def duration(self) -> float:
        return max(0.0, self.last_t - self.t0)

    def _add_video(self, video: VideoFormat) -> Any:
        if video.codec == "VP8":
            return self._container.add_mux_stream("vp8", width=video.width, height=video.height)
        # H.264: the muxer needs avcC; a template stream parsed from the parameter sets carries them as
        # extradata (Annex B), which the Matroska muxer turns into avcC (and packets into length-prefixed NALs)
        probe: Any = av.open(io.BytesIO(video.keyframe), "r", format="h264")
        try:
            return self._container.add_stream_from_template(probe.streams.video[0], opaque=True)
        finally:
            probe.close()

    def write(self, kind: str, t: float, data: bytes, keyframe: bool) -> None:
        """Mux one encoded frame of session time ``t`` (seconds)."""
        stream = self._streams.get(kind)
        if stream is None:
            raise KeyError(kind)
        pts = round((t - self.t0) * 1000)
        last = self._last_pts.get(kind)
        if last is not None and pts <= last:
            pts = last + 1
        if pts < 0:
            return
        self._last_pts[kind] = pts
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = _MS
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        self.frames += 1
        end = self.t0 + pts / 1000 + (0.02 if kind == "audio" else 0.0)
        if end > self.last_t:
            self.last_t = end

    def flush(self) -> None:
        """Hand everything written to the disk (encryption: seal the current chunk)."""
        self._sink.flush()
        self._raw.sync()

    def close(self) -> None:
        """Write the trailer (cues, durations) and close the file durably."""
        try:
            self._container.close()
        finally:
            if not self._sink.closed:
                self._sink.close()

    def abort(self) -> None:
        """Close the file descriptor without finishing the container (after a write error)."""
        try:
            if isinstance(self._sink, EncryptingWriter):
                self._sink.abort()
        finally:
            try:
                io.FileIO.close(self._raw)
            except OSError:
                pass
