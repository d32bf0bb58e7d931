"""Crash bookkeeping of a session directory (``recorder-state.json``) and repair of unfinished parts.

The writer records every part it opens or closes, and the segments not yet written into a manifest, in
``<session>/recorder-state.json`` (written atomically). After a crash, ``open_session`` finds the parts
still marked open: each is *repaired* by remuxing the packets that can be read into a properly closed
file of the same name (encrypted parts are decrypted with ``allow_truncated`` and re-encrypted), so the
manifest lists a complete file whose hash stays valid. Blocking: call from a thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from evidence import EncryptingWriter, Keyring, open_decrypted
from recorder.track import DurableFile

__all__ = ["SessionState", "RepairResult", "repair_part", "STATE_FILE"]

logger = logging.getLogger(__name__)

STATE_FILE = "recorder-state.json"


class SessionState:
    """The bookkeeping of one session directory. Thread-safe; :meth:`save` writes it atomically."""

    def __init__(self, session_dir: Path, session: str, epoch: float) -> None:
        self.path = session_dir / STATE_FILE
        self.session = session
        self.epoch = epoch
        self.b_next = 1
        self.closed = False
        self.venue_names: dict[str, str] = {}
        #: segment id -> {"case", "confidential", "opened_at", "t_open"} for segments without a manifest yet
        self.segments: dict[str, dict[str, Any]] = {}
        #: part path (relative to the session dir) -> {"segment", "venue", "t0", "duration", "kinds", "codecs",
        #: "encrypted", "kid", "closed"}
        self.parts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # the writer thread and the loop's helper threads both save

    @classmethod
    def load(cls, session_dir: Path) -> SessionState | None:
        """The state left in ``session_dir``, or None (none, or unreadable: then it is set aside)."""
        path = session_dir / STATE_FILE
        try:
            doc = json.loads(path.read_text("utf-8"))
            state = cls(session_dir, str(doc["session"]), float(doc["epoch"]))
            state.b_next = int(doc.get("b_next", 1))
            state.closed = bool(doc.get("closed", False))
            state.venue_names = {str(k): str(v) for k, v in dict(doc.get("venue_names", {})).items()}
            state.segments = {str(k): dict(v) for k, v in dict(doc.get("segments", {})).items()}
            state.parts = {str(k): dict(v) for k, v in dict(doc.get("parts", {})).items()}
            return state
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("unreadable recorder state %s (%s): set aside", path, type(exc).__name__)
            try:
                os.replace(path, path.with_name(STATE_FILE + ".unreadable"))
            except OSError:
                pass
            return None

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def set_segment(self, segment: str, info: dict[str, Any] | None) -> None:
        with self._lock:
            if info is None:
                self.segments.pop(segment, None)
                for path in [p for p, part in self.parts.items() if part["segment"] == segment]:
                    del self.parts[path]
            else:
                self.segments[segment] = info

    def set_part(self, path: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.parts[path] = info

    def save(self) -> None:
        with self._save_lock:
            with self._lock:
                doc = {"session": self.session, "epoch": self.epoch, "b_next": self.b_next, "closed": self.closed,
                       "venue_names": self.venue_names, "segments": self.segments, "parts": self.parts}
                data = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
            tmp = self.path.with_name(STATE_FILE + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class RepairResult:
    """What a repaired part holds: seconds of media from its first packet, its streams."""

    duration: float
    kinds: tuple[str, ...]
    codecs: tuple[str, ...]
    packets: int


def repair_part(session_dir: Path, rel: str, *, encrypted: bool, keyring: Keyring) -> RepairResult | None:
    """Remux what can be read of the unfinished part ``rel`` into a closed file of the same name.

    Returns None when nothing can be read (the file is then left as it is: nothing is deleted).
    """
    path = session_dir / rel
    aad = rel.encode("utf-8")
    tmp = path.with_name(path.name + ".repair")
    tmp.unlink(missing_ok=True)
    try:
        source: Any = open_decrypted(path, keyring, aad=aad, allow_truncated=True) if encrypted else open(path, "rb")
    except Exception as exc:  # unreadable header, wrong key: keep the file as evidence
        logger.error("cannot open unfinished part %s for repair: %s", rel, type(exc).__name__)
        return None
    result: RepairResult | None = None
    try:
        result = _remux(source, tmp, keyring if encrypted else None, aad, matroska=".mkv" in path.name)
    finally:
        source.close()
    if result is None or result.packets == 0:
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, path)
    return result


def _remux(source: Any, tmp: Path, keyring: Keyring | None, aad: bytes, *, matroska: bool) -> RepairResult | None:
    try:
        inp: Any = av.open(source, "r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        logger.error("unfinished part not readable: %s", type(exc).__name__)
        return None
    raw = DurableFile(tmp)
    sink: Any = EncryptingWriter(raw, keyring, aad=aad) if keyring is not None else raw
    out: Any = None
    first: float | None = None
    last = 0.0
    count = 0
    try:
        out = av.open(sink, "w", format="matroska" if matroska else "webm")
        streams = {}
        kinds: list[str] = []
        codecs: list[str] = []
        for stream in inp.streams:
            if stream.type not in ("video", "audio"):
                continue
            streams[stream.index] = out.add_stream_from_template(stream, opaque=True)
            kinds.append(stream.type)
            codecs.append(stream.codec_context.name)
        try:
            for packet in inp.demux(*[s for s in inp.streams if s.index in streams]):
                if packet.dts is None or packet.pts is None or packet.is_corrupt:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                first = start if first is None else min(first, start)
                last = max(last, end)
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
                count += 1
        except (av.FFmpegError, OSError) as exc:  # the torn end of the file
            logger.info("repair stopped at a torn packet: %s", type(exc).__name__)
        out.close()
        if not sink.closed:
            sink.close()  # encrypted: the final chunk; then the file is fsynced and closed
    except BaseException:
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
        if isinstance(sink, EncryptingWriter):
            sink.abort()
        if not raw.closed:
            io_close(raw)
        raise
    finally:
        inp.close()
    if first is None:
        return RepairResult(0.0, tuple(kinds), tuple(codecs), 0)
    return RepairResult(max(0.0, last - first), tuple(kinds), tuple(codecs), count)


def io_close(raw: DurableFile) -> None:
    try:
        raw.close()
    except OSError:
        pass
