"""Recorded files as the replay pages serve them: where they are, byte ranges of them (a ``<video>`` seeks
with ``Range`` requests), decrypted on the fly when sealed, and the verification of a session, cached.

Where: ``<root>/<session>/`` (``TIEPDAN_RECORDING_DIR``); in the scaled topology the control process reads
the same volume the media nodes write (a shared mount), so no signed URLs are needed. A file is served only
when the segment's own record lists it (a venue track) or it is the segment's composite, and every name
is checked against the safe character set first: no path from the request ever reaches the file system.

Sealed files (``….enc``, a confidential segment) are opened with :func:`evidence.stream.open_decrypted`,
which seeks by chunk (it decrypts only the chunks a range covers); plaintext never touches the disk.

Verification (:func:`recorder.verify.verify_path`) hashes every file of a session: it runs in a thread, one
run per session at a time, and its result is kept until a manifest's or a media file's size or time changes.
What the session's manifests say (:meth:`ReplayFiles.disk_recordings`, for the cross-check with the case
store's rows) is read afresh each time: it hashes manifests only.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from starlette.responses import Response, StreamingResponse

from evidence import Keyring

if TYPE_CHECKING:
    from recorder.verify import DiskRecordings

__all__ = ["ReplayFiles", "ServedFile", "ByteRange", "parse_range", "ranged_response", "MEDIA_TYPES", "safe_name",
           "FileMissing", "RangeNotSatisfiable", "read_first"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
MEDIA_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".mp4": "video/mp4"}
_READ_BYTES = 256 * 1024


def safe_name(name: str) -> bool:
    """A segment, session or file name of the safe charset (no separators, no leading dot)."""
    return bool(_SAFE.match(name)) and ".." not in name


class FileMissing(Exception):
    """A file the records list is not on the volume (expired, moved, or the volume is not mounted)."""


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of a ``Range: bytes=…`` header (None: the whole file). Several ranges, or a header of
    another unit or malformed, are ignored (the whole file: RFC 9110 §14.2 lets a server do so); a range
    starting past the end raises :class:`RangeNotSatisfiable`."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiable(size)
            return ByteRange(max(0, size - suffix), size - 1) if size else _unsatisfiable(size)
        start = int(first)
        end = int(last) if last != "" else size - 1
    except ValueError:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    if start < 0 or end < start:
        return None
    return ByteRange(start, min(end, size - 1))


def _unsatisfiable(size: int) -> ByteRange:
    raise RangeNotSatisfiable(size)


@dataclass(frozen=True)
class ServedFile:
    """A file to serve: its path, whether sealed (and the ``aad`` it was sealed with), its media type."""

    path: Path
    name: str
    media_type: str
    sealed: bool = False
    aad: bytes = b""


@dataclass
class ReplayFiles:
    """The replay pages' view of the recordings volume (``app.state.replay``, set by the composition root).
    ``notify``: wakes this process's replay worker when a job is queued (None: no worker here)."""

    root: Path
    keyring: Keyring
    notify: Callable[[], None] | None = None
    _verified: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    _verifying: dict[str, asyncio.Task[dict[str, Any]]] = field(default_factory=dict)

    def session_dir(self, session: str) -> Path:
        if not safe_name(session):
            raise FileMissing(session)
        return self.root / session

    def track(self, session: str, name: str, listed: dict[str, str]) -> ServedFile:
        """A venue's track: ``name`` must be a key of ``listed`` (file name → its path relative to the
        session's directory, as the segment's record lists it)."""
        relative = listed.get(name) if safe_name(name) else None
        if relative is None:
            raise LookupError(name)
        parts = relative.split("/")
        if not all(safe_name(part) for part in parts):
            raise LookupError(name)
        return self._served(self.session_dir(session).joinpath(*parts), name, aad=relative)

    def composite(self, session: str, relative: str) -> ServedFile:
        """The composite at ``relative`` (``replays/<segment>.mp4[.enc]``, as the job row says)."""
        folder, _, name = relative.partition("/")
        if folder != "replays" or not safe_name(name):
            raise LookupError(relative)
        return self._served(self.session_dir(session) / folder / name, name, aad=relative)

    @staticmethod
    def _served(path: Path, name: str, *, aad: str) -> ServedFile:
        sealed = name.endswith(".enc")
        plain_name = name[:-4] if sealed else name
        media_type = MEDIA_TYPES.get(Path(plain_name).suffix.lower(), "application/octet-stream")
        return ServedFile(path=path, name=plain_name, media_type=media_type, sealed=sealed,
                          aad=aad.encode("utf-8") if sealed else b"")

    # -- reading ----------------------------------------------------------------------------------------

    def open(self, served: ServedFile) -> tuple[BinaryIO, int]:
        """Open ``served`` for reading (plaintext) and its size. Blocking: call from a thread.
        Raises :class:`FileMissing`, or :class:`evidence.DecryptionFailed` for an altered sealed file."""
        try:
            if served.sealed:
                from evidence.stream import open_decrypted

                stream = open_decrypted(served.path, self.keyring, aad=served.aad)
            else:
                stream = served.path.open("rb")
        except FileNotFoundError as exc:
            raise FileMissing(served.name) from exc
        try:
            size = stream.seek(0, io.SEEK_END)
        except BaseException:
            stream.close()
            raise
        return stream, size

    # -- verification -----------------------------------------------------------------------------------

    def _fingerprint(self, session_dir: Path) -> tuple[Any, ...]:
        """What the cached verification depends on: the manifests' hashes, every file's size and time."""
        items: list[Any] = []
        for path in sorted(session_dir.rglob("*")):
            if not path.is_file() or "replays" in path.relative_to(session_dir).parts[:1]:
                continue
            stat = path.stat()
            entry: tuple[Any, ...] = (str(path.relative_to(session_dir)), stat.st_size, stat.st_mtime_ns)
            if path.parent.name == "manifests":
                entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
            items.append(entry)
        return tuple(items)

    def _verify(self, session: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from recorder.verify import verify_path

        session_dir = self.session_dir(session)
        if not session_dir.is_dir():
            raise FileMissing(session)
        fingerprint = self._fingerprint(session_dir)
        cached = self._verified.get(session)
        if cached is not None and cached[0] == fingerprint:
            return cached
        report = verify_path(session_dir, self.keyring)
        result = {"ok": bool(report.ok),
                  "findings": [{"kind": str(f.kind), "path": str(f.path), "detail": str(f.detail),
                               "informational": bool(getattr(f, "informational", False))}
                               for f in report.findings]}
        return fingerprint, result

    async def disk_recordings(self, session: str) -> DiskRecordings:
        """The session's manifests as :func:`recorder.verify.recordings_on_disk` lists them (in a thread)."""
        from recorder.verify import recordings_on_disk

        session_dir = self.session_dir(session)
        if not session_dir.is_dir():
            raise FileMissing(session)
        return await asyncio.to_thread(recordings_on_disk, session_dir, self.keyring)

    async def verification(self, session: str) -> dict[str, Any]:
        """The verification of ``session`` (``{"ok", "findings": [{kind, path, detail}]}``), cached; one run per
        session at a time (concurrent callers share it)."""
        running = self._verifying.get(session)
        if running is None:
            async def run() -> dict[str, Any]:
                try:
                    fingerprint, result = await asyncio.to_thread(self._verify, session)
                    self._verified[session] = (fingerprint, result)
                    return result
                finally:
                    self._verifying.pop(session, None)

            running = asyncio.ensure_future(run())
            self._verifying[session] = running
        return await asyncio.shield(running)


def read_first(stream: BinaryIO, byte_range: ByteRange | None, size: int) -> bytes:
    """The first block of the range (blocking): read before the response starts, so that a sealed file that
    fails authentication there is answered with an error rather than a cut-off body."""
    start, length = (0, size) if byte_range is None else (byte_range.start, byte_range.length)
    stream.seek(start)
    return stream.read(min(_READ_BYTES, length))


def ranged_response(stream: BinaryIO, size: int, served: ServedFile, byte_range: ByteRange | None, *,
                    first: bytes, download: bool = False) -> Response:
    """A 200 (whole file) or 206 (one range) streaming ``stream`` (positioned after ``first``, the range's
    first block already read), which it closes when done."""
    length = size if byte_range is None else byte_range.length
    headers = {"accept-ranges": "bytes", "content-length": str(length), "cache-control": "private, no-store"}
    if byte_range is not None:
        headers["content-range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    if download:
        headers["content-disposition"] = f'attachment; filename="{served.name}"'

    def body() -> Iterator[bytes]:
        try:
            yield first
            left = length - len(first)
            while left > 0:
                block = stream.read(min(_READ_BYTES, left))
                if not block:
                    break
                left -= len(block)
                yield block
        finally:
            stream.close()

    return StreamingResponse(body(), status_code=206 if byte_range is not None else 200, headers=headers,
                             media_type=served.media_type)
