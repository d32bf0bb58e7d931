"""Checks of recorded files for the recorder's tests: ffprobe, a full PyAV decode, stream end times."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from evidence import Keyring, open_decrypted

MATROSKA_MAGIC = bytes.fromhex("1a45dfa3")


@dataclass(frozen=True)
class Decoded:
    """A fully decoded file: frames per kind, first/last frame times (seconds, file time), sizes seen."""

    frames: dict[str, int]
    first: dict[str, float]
    last: dict[str, float]
    sizes: tuple[tuple[int, int], ...]
    errors: int
    messages: tuple[str, ...] = ()

    def end(self, kind: str) -> float:
        """When the last frame of ``kind`` ends (its time plus one frame interval)."""
        if kind == "audio":
            return self.last[kind] + 0.02
        step = (self.last[kind] - self.first[kind]) / max(1, self.frames[kind] - 1)
        return self.last[kind] + step

    @property
    def length(self) -> float:
        return max(self.end(k) for k in self.last) - min(self.first.values())


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], capture_output=True, text=True, timeout=60, check=True)
    assert out.stderr.strip() == "", f"ffprobe complains about {path}: {out.stderr}"
    return json.loads(out.stdout)  # type: ignore[no-any-return]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def decode(source: Path | bytes) -> Decoded:
    """Decode every frame of every stream; libav error logs count as errors."""
    frames: dict[str, int] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    sizes: list[tuple[int, int]] = []
    handler = _Errors()
    logger = logging.getLogger("libav")
    logger.addHandler(handler)
    av.logging.set_level(av.logging.WARNING)
    errors = 0
    try:
        container: Any = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        with container:
            for packet in container.demux():  # the empty packets at the end drain the decoders
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    errors += 1
                    continue
                for frame in decoded:
                    kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
                    frames[kind] = frames.get(kind, 0) + 1
                    t = float(frame.time) if frame.time is not None else 0.0
                    first.setdefault(kind, t)
                    last[kind] = t
                    if isinstance(frame, av.VideoFrame) and (frame.width, frame.height) not in sizes:
                        sizes.append((frame.width, frame.height))
    finally:
        logger.removeHandler(handler)
        av.logging.set_level(None)
    return Decoded(frames, first, last, tuple(sizes), errors + len(handler.messages), tuple(handler.messages))


def decrypted(path: Path, session_dir: Path, keyring: Keyring, *, allow_truncated: bool = False) -> bytes:
    rel = path.relative_to(session_dir).as_posix()
    with open_decrypted(path, keyring, aad=rel.encode("utf-8"), allow_truncated=allow_truncated) as fh:
        return fh.read()
