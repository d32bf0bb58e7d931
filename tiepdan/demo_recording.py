"""The demo's recording check (``tiepdan demo --headless``): every called case of the session has a closed
segment in the case store (``recording_segments``, written by the consumer of ``room.segment_closed``) whose
manifest and files verify against the server's keyring (:func:`recorder.verify.verify_path`), and whose files
decode with no error (decrypted in memory when encrypted: ``TIEPDAN_RECORDING_ENCRYPT_ALL`` is on by default)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.recordings import SegmentRecord, segments_of_session
from evidence import Keyring
from evidence.stream import open_decrypted
from recorder.verify import verify_path

__all__ = ["RecordingCheck", "check_recordings"]


@dataclass(frozen=True)
class RecordingCheck:
    """``segments``: the closed case segments found; ``problems``: what fails (empty: the check passes)."""

    segments: tuple[SegmentRecord, ...]
    files: int
    problems: tuple[str, ...]


def decoded_frames(session_dir: Path, rel: str, keyring: Keyring, *, encrypted: bool) -> Counter[str]:
    """Decode one recorded file (plaintext only in memory) and count its frames per kind; raises
    :class:`av.FFmpegError` or :class:`evidence.DecryptionFailed` when it does not decode."""
    counts: Counter[str] = Counter()
    source = (open_decrypted(session_dir / rel, keyring, aad=rel.encode("utf-8")) if encrypted
              else (session_dir / rel).open("rb"))
    with source, av.open(source, "r") as container:
        for frame in container.decode(*container.streams):
            counts[frame.__class__.__name__.removesuffix("Frame").lower()] += 1
    return counts


async def _closed_segments(engine: AsyncEngine, session: str) -> list[SegmentRecord]:
    async with engine.connect() as conn:
        return [s for s in await segments_of_session(conn, session) if s.closed]


async def check_recordings(engine: AsyncEngine, keyring: Keyring, root: Path, session: str,
                           called: Sequence[int], *, timeout_s: float = 30.0) -> RecordingCheck:
    """Wait (at most ``timeout_s``) until the ``called`` call numbers (``call_seq``) each have a closed segment,
    then verify the session's recordings. Problems are Vietnamese, for the person running the demo."""
    deadline = time.monotonic() + timeout_s
    wanted = set(called)
    while True:
        segments = await _closed_segments(engine, session)
        missing = wanted - {s.call_seq for s in segments}
        if not missing or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    problems = [f"lượt gọi thứ {seq} không có đoạn ghi hình đã đóng" for seq in sorted(missing)]
    files = 0
    for segment in segments:
        # a case ended before its venues' next keyframe has no file of its own (the stretch around it keeps
        # the media): only a session with no file at all fails
        files += len(segment.files)
        if segment.manifest_path is None or not (root / segment.manifest_path).is_file():
            problems.append(f"đoạn ghi hình {segment.segment} thiếu biên bản (manifest)")
        for track in segment.files:
            rel = str(track["path"])
            try:
                counts = await asyncio.to_thread(decoded_frames, root / session, rel, keyring,
                                                 encrypted=bool(track.get("encrypted")))
            except Exception as exc:  # noqa: BLE001 - any failure to read back is what the check reports
                problems.append(f"tệp {rel} không giải mã được: {type(exc).__name__}")
                continue
            if not counts:
                problems.append(f"tệp {rel} không có khung hình nào")
    if segments and files == 0:
        problems.append("không đoạn ghi hình nào có tệp")
    report = await asyncio.to_thread(verify_path, root / session, keyring)
    # the session is still open: its current stretch is "pending" (informational), never a problem
    problems.extend(f"kiểm tra toàn vẹn: {f.kind} {f.path}" for f in report.findings if not f.informational)
    return RecordingCheck(tuple(segments), files, tuple(problems))
