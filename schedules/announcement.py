"""The call announcement: its text (ticket number and venue, never a name) and its speech file.

Theory of operation
-------------------
:func:`announcement_text` fills the one template of the glossary with the ticket number and the
venue's display name. Its signature takes nothing else, so no caller can put a citizen's name into
what the loudspeakers say and the screens show (domain.md §6 item 7: broadcasts show the queue number
only).

:func:`synthesize` turns a text into a WAV file with espeak-ng (Vietnamese voices ``vi``,
``vi-vn-x-central``, ``vi-vn-x-south``). Files live in a cache directory, named by the SHA-256 of
(text, voice, speed, format version): the same announcement is synthesised once and then served from
the cache without running espeak-ng (so the file's URL is stable and can go into ``CaseCalled``). A
file is written under a temporary name and renamed into place, so a reader never sees half a file and
two concurrent syntheses of one text both end with a complete file.

espeak-ng is a blocking subprocess: :func:`synthesize` runs it with a timeout and is meant for a
worker thread; :func:`synthesize_async` is the coroutine for the event loop (``asyncio.to_thread``).
A missing program, a timeout, a failure or an output that is not a WAV file raise typed errors
(:mod:`schedules.errors`) whose messages carry neither the text nor the program's output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidAnnouncement, SynthesisFailed, SynthesisTimeout, SynthesizerMissing

__all__ = [
    "ANNOUNCEMENT_TEMPLATE_VI",
    "SpeechFile",
    "SpeechOptions",
    "announcement_text",
    "speech_key",
    "synthesize",
    "synthesize_async",
]

#: GLOSSARY.md: "Mời công dân có số thứ tự 12, tại điểm cầu xã Tiên Du, chuẩn bị trình bày."
ANNOUNCEMENT_TEMPLATE_VI = "Mời công dân có số thứ tự {ticket_no}, tại điểm cầu {venue}, chuẩn bị trình bày."

_MAX_TICKET_NO = 99_999
_MAX_VENUE = 120
_MAX_TEXT = 500  # CaseCalled.announcement_text
_VENUE_PREFIX = re.compile(r"^điểm\s+cầu(?:\s+|$)", re.IGNORECASE)
_VOICE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")
#: Part of the cache key: raise it when the way files are produced changes.
_FORMAT_VERSION = 1


def announcement_text(ticket_no: int, venue_name: str, /) -> str:
    """The announcement for ``ticket_no`` at the venue whose display name is ``venue_name``.

    ``venue_name`` is the venue's display name ("xã Tiên Du", "phường Vũ Ninh"); a leading "điểm cầu"
    is not repeated. Raises :class:`~schedules.errors.InvalidAnnouncement` for a number outside
    1–99999, an empty or over-long name, or control characters.
    """
    if isinstance(ticket_no, bool) or not isinstance(ticket_no, int) or not 1 <= ticket_no <= _MAX_TICKET_NO:
        raise InvalidAnnouncement(f"Số thứ tự phải là số nguyên từ 1 đến {_MAX_TICKET_NO}.")
    if not isinstance(venue_name, str):
        raise InvalidAnnouncement("Tên điểm cầu phải là chuỗi ký tự.")
    name = unicodedata.normalize("NFC", venue_name)
    if any(unicodedata.category(ch).startswith("C") and ch not in "\t\n\r" for ch in name):
        raise InvalidAnnouncement("Tên điểm cầu chứa ký tự điều khiển.")
    name = _VENUE_PREFIX.sub("", " ".join(name.split()))
    if not name or len(name) > _MAX_VENUE:
        raise InvalidAnnouncement(f"Tên điểm cầu phải có từ 1 đến {_MAX_VENUE} ký tự.")
    return ANNOUNCEMENT_TEMPLATE_VI.format(ticket_no=ticket_no, venue=name)


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """How announcements are spoken; ``speed_wpm`` is espeak-ng's ``-s`` (words per minute)."""

    cache_dir: Path
    voice: str = "vi"
    speed_wpm: int = 150
    executable: str = "espeak-ng"
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not _VOICE.fullmatch(self.voice):
            raise InvalidAnnouncement("Tên giọng đọc không hợp lệ (ví dụ: vi, vi-vn-x-south).")
        if not 80 <= self.speed_wpm <= 450:
            raise InvalidAnnouncement("Tốc độ đọc phải từ 80 đến 450 từ/phút.")
        if not 0 < self.timeout_s <= 120:
            raise InvalidAnnouncement("Thời gian chờ tổng hợp tiếng nói phải từ 0 đến 120 giây.")


@dataclass(frozen=True, slots=True)
class SpeechFile:
    """A synthesised announcement: its path in the cache, its key, and whether the cache served it."""

    path: Path
    key: str
    cached: bool

    @property
    def name(self) -> str:
        """The file name (``<key>.wav``), what an audio URL ends with."""
        return self.path.name


def speech_key(text: str, voice: str, speed_wpm: int) -> str:
    """The cache key of (text, voice, speed): hex SHA-256 of a canonical JSON encoding."""
    canonical = json.dumps(
        [_FORMAT_VERSION, unicodedata.normalize("NFC", text), voice, speed_wpm], ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidAnnouncement("Nội dung cần đọc phải là chuỗi ký tự.")
    text = unicodedata.normalize("NFC", text).strip()
    if not text or len(text) > _MAX_TEXT:
        raise InvalidAnnouncement(f"Nội dung cần đọc phải có từ 1 đến {_MAX_TEXT} ký tự.")
    return text


def _check_wav(path: Path) -> None:
    try:
        with wave.open(str(path), "rb") as audio:
            frames = audio.getnframes()
    except (wave.Error, EOFError, OSError) as exc:
        raise SynthesisFailed("espeak-ng không tạo ra tệp âm thanh WAV hợp lệ.") from exc
    if frames == 0:
        raise SynthesisFailed("espeak-ng tạo ra tệp âm thanh rỗng.")


def synthesize(text: str, options: SpeechOptions) -> SpeechFile:
    """The WAV file of ``text`` in ``options.cache_dir``, synthesised unless already cached (blocking)."""
    text = _check_text(text)
    key = speech_key(text, options.voice, options.speed_wpm)
    target = options.cache_dir / f"{key}.wav"
    if target.is_file():
        return SpeechFile(path=target, key=key, cached=True)
    program = shutil.which(options.executable)
    if program is None:
        raise SynthesizerMissing(
            "Không tìm thấy chương trình espeak-ng để đọc thông báo gọi số; cần cài gói espeak-ng "
            "(scripts/ensure-system-packages.sh)."
        )
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".wav", dir=options.cache_dir)
    os.close(fd)
    temp = Path(temp_name)
    try:
        command = [program, "-b", "1", "-v", options.voice, "-s", str(options.speed_wpm), "-w", str(temp), "--stdin"]
        try:
            result = subprocess.run(
                command, input=text.encode("utf-8"), capture_output=True, timeout=options.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthesisTimeout(
                f"espeak-ng không đọc xong thông báo trong {options.timeout_s:g} giây; đã dừng chương trình."
            ) from exc
        except OSError as exc:
            raise SynthesizerMissing("Không chạy được chương trình espeak-ng để đọc thông báo gọi số.") from exc
        if result.returncode != 0:
            raise SynthesisFailed(f"espeak-ng kết thúc với mã lỗi {result.returncode} (kiểm tra giọng đọc đã cài).")
        _check_wav(temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return SpeechFile(path=target, key=key, cached=False)


async def synthesize_async(text: str, options: SpeechOptions) -> SpeechFile:
    """:func:`synthesize` in a worker thread, so the event loop never waits on espeak-ng."""
    return await asyncio.to_thread(synthesize, text, options)
