"""Streaming authenticated encryption for files written as they are recorded (confidential media).

Theory of operation
-------------------
A stream is a header followed by frames. Each frame seals one *chunk* of at most ``chunk_bytes`` of
plaintext with AES-256-GCM under a keyring data key::

    header = MAGIC(4) | version(1) | len(kid)(1) | kid | nonce_prefix(8) | chunk_bytes(u32)
    frame  = flags(1, bit 0 = final) | len(ciphertext)(u32) | ciphertext (plaintext + 16-byte tag)

The nonce of chunk ``i`` is ``nonce_prefix || i`` (u32, big-endian); the prefix is random per file.
The associated data of chunk ``i`` is ``SHA-256(header | len(aad) | aad) | i (u64) | final (u8)``, so
a chunk moved to another place, another file (``aad`` is the file's name), or another stream, a
chunk whose final flag was flipped, and an altered header or ciphertext all fail authentication.
Exactly one chunk, the last, carries the final flag: a stream that stops without it was truncated
(or its writer was killed) and is refused unless the reader asks for ``allow_truncated``.

The writer keeps plaintext in memory only. ``flush()`` seals what is buffered as one chunk and
flushes the underlying file, so a killed process loses at most what was written since the last
flush; ``close()`` seals the rest as the final chunk. The reader builds an index of the frames from
their length fields (no decryption), so it can seek: a read decrypts only the chunk it needs.

Standard library and ``cryptography`` only.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionFailed, UnknownKey
from .keyring import Keyring

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "MAGIC",
    "EncryptingWriter",
    "StreamInfo",
    "inspect_stream",
    "open_decrypted",
    "StreamFormatError",
]

MAGIC = b"TDSE"
_VERSION = 1
_PREFIX_BYTES = 8
_TAG_BYTES = 16
_FRAME_HEAD = struct.Struct(">BI")
_FLAG_FINAL = 0x01
_MIN_CHUNK = 1024
_MAX_CHUNK = 16 * 1024 * 1024
_MAX_CHUNKS = 2**32


class StreamFormatError(DecryptionFailed):
    """The file is not an encrypted stream of this format, or its framing is broken."""


def _aad_base(header: bytes, aad: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(header)
    h.update(struct.pack(">I", len(aad)))
    h.update(aad)
    return h.digest()


def _chunk_aad(base: bytes, index: int, final: bool) -> bytes:
    return base + struct.pack(">QB", index, 1 if final else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _write_all(raw: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = raw.write(view)
        if written is None:
            raise BlockingIOError("the underlying file would block")
        view = view[written:]


class EncryptingWriter(io.RawIOBase):
    """A write-only, non-seekable binary file that encrypts everything written to ``raw``.

    ``aad`` binds the ciphertext to a name (the file's path relative to its session directory).
    Dropping the writer without :meth:`close` leaves the stream without its final chunk, which a
    reader treats as truncated: that is what a crash leaves too. :meth:`abort` does the same on
    purpose (close ``raw`` without marking the end).
    """

    def __init__(self, raw: BinaryIO, keyring: Keyring, *, aad: bytes, chunk_bytes: int = 65536) -> None:
        super().__init__()
        if not _MIN_CHUNK <= chunk_bytes <= _MAX_CHUNK:
            raise ValueError(f"chunk_bytes must be between {_MIN_CHUNK} and {_MAX_CHUNK}")
        key = keyring.active_data
        kid = key.kid.encode("utf-8")
        if not 0 < len(kid) < 256:
            raise ValueError("the data key's kid is empty or too long for the stream header")
        self._raw = raw
        self._kid = key.kid
        self._aead = AESGCM(key.secret)
        self._prefix = os.urandom(_PREFIX_BYTES)
        self._chunk_bytes = chunk_bytes
        header = MAGIC + struct.pack(">BB", _VERSION, len(kid)) + kid + self._prefix + struct.pack(">I", chunk_bytes)
        self._aad = _aad_base(header, aad)
        self._buffer = bytearray()
        self._index = 0
        self._position = 0
        self._failed: BaseException | None = None
        self._finished = False
        self._guarded(lambda: _write_all(raw, header))

    # -- file protocol ----------------------------------------------------------------------------

    @property
    def kid(self) -> str:
        """The kid of the data key this stream is encrypted with."""
        return self._kid

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self._position

    def write(self, b: ReadableBuffer, /) -> int:
        self._check_open()
        data = memoryview(b).cast("B")
        self._buffer += data
        self._position += len(data)
        while len(self._buffer) >= self._chunk_bytes:
            chunk = bytes(self._buffer[: self._chunk_bytes])
            del self._buffer[: self._chunk_bytes]
            self._seal(chunk, final=False)
        return len(data)

    def flush(self) -> None:
        """Seal the buffered plaintext as one chunk (if any) and flush the underlying file."""
        if self.closed or self._finished:
            return
        self._check_open()
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._seal(chunk, final=False)
        self._guarded(self._raw.flush)

    def close(self) -> None:
        """Seal the rest as the final chunk and close the underlying file. Idempotent."""
        if self.closed:
            return
        self._finished = True
        try:
            if self._failed is None:
                chunk = bytes(self._buffer)
                self._buffer.clear()
                self._seal(chunk, final=True)
                self._guarded(self._raw.flush)
        finally:
            self._buffer.clear()
            try:
                self._raw.close()
            finally:
                super().close()

    def abort(self) -> None:
        """Close the underlying file without the final chunk (the stream reads as truncated)."""
        if self.closed:
            return
        self._finished = True
        self._buffer.clear()
        try:
            self._raw.close()
        finally:
            super().close()

    def __del__(self) -> None:
        # Deliberately not close(): an abandoned writer must not mark its stream as complete.
        pass

    # -- internals --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("write to a closed EncryptingWriter")
        if self._failed is not None:
            raise OSError("an earlier write to the underlying file failed") from self._failed

    def _guarded(self, op: Callable[[], object]) -> None:
        try:
            op()
        except BaseException as exc:
            self._failed = exc
            raise

    def _seal(self, chunk: bytes, *, final: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise OverflowError("the stream has too many chunks")
        ct = self._aead.encrypt(_nonce(self._prefix, self._index), chunk, _chunk_aad(self._aad, self._index, final))
        frame = _FRAME_HEAD.pack(_FLAG_FINAL if final else 0, len(ct)) + ct
        self._index += 1
        self._guarded(lambda: _write_all(self._raw, frame))


@dataclass(frozen=True)
class StreamInfo:
    """The structure of an encrypted stream, read without any key."""

    kid: str
    chunk_bytes: int
    chunks: int
    plaintext_size: int
    complete: bool
    trailing_bytes: int


@dataclass(frozen=True)
class _Frame:
    offset: int
    length: int
    start: int
    final: bool


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    return data if data is not None else b""


def _read_header(fh: BinaryIO) -> tuple[bytes, str, bytes, int]:
    fixed = _read_exact(fh, 6)
    if len(fixed) < 6 or fixed[:4] != MAGIC:
        raise StreamFormatError("not an encrypted stream (bad magic)")
    version, kid_len = fixed[4], fixed[5]
    if version != _VERSION:
        raise StreamFormatError(f"unknown encrypted stream version {version}")
    rest = _read_exact(fh, kid_len + _PREFIX_BYTES + 4)
    if len(rest) < kid_len + _PREFIX_BYTES + 4 or kid_len == 0:
        raise StreamFormatError("the encrypted stream's header is cut short")
    try:
        kid = rest[:kid_len].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamFormatError("the encrypted stream's key id is malformed") from exc
    prefix = rest[kid_len : kid_len + _PREFIX_BYTES]
    (chunk_bytes,) = struct.unpack(">I", rest[kid_len + _PREFIX_BYTES :])
    if not _MIN_CHUNK <= chunk_bytes <= _MAX_CHUNK:
        raise StreamFormatError("the encrypted stream's chunk size is out of range")
    return fixed + rest, kid, prefix, chunk_bytes


def _scan(fh: BinaryIO, chunk_bytes: int) -> tuple[list[_Frame], int]:
    """Frames in order and the count of trailing bytes that do not form a whole frame."""
    frames: list[_Frame] = []
    start = 0
    offset = fh.tell()
    size = fh.seek(0, io.SEEK_END)
    fh.seek(offset)
    while offset < size:
        head = _read_exact(fh, _FRAME_HEAD.size)
        if len(head) < _FRAME_HEAD.size:
            return frames, size - offset
        flags, length = _FRAME_HEAD.unpack(head)
        if flags & ~_FLAG_FINAL or not _TAG_BYTES <= length <= chunk_bytes + _TAG_BYTES:
            raise StreamFormatError(f"chunk {len(frames)} has a malformed frame header")
        if offset + _FRAME_HEAD.size + length > size:
            return frames, size - offset
        final = bool(flags & _FLAG_FINAL)
        frames.append(_Frame(offset + _FRAME_HEAD.size, length, start, final))
        start += length - _TAG_BYTES
        offset = fh.seek(length, io.SEEK_CUR)
        if final:
            if offset < size:
                raise StreamFormatError("data follows the final chunk")
            break
    return frames, 0


def inspect_stream(path: Path) -> StreamInfo:
    """The stream's structure (key id, chunks, whether the final chunk is there); needs no key."""
    with path.open("rb") as fh:
        _, kid, _, chunk_bytes = _read_header(fh)
        frames, trailing = _scan(fh, chunk_bytes)
    size = frames[-1].start + frames[-1].length - _TAG_BYTES if frames else 0
    complete = bool(frames) and frames[-1].final
    return StreamInfo(kid, chunk_bytes, len(frames), size, complete, trailing)


class _DecryptingReader(io.RawIOBase):
    def __init__(self, fh: BinaryIO, keyring: Keyring, *, aad: bytes, allow_truncated: bool) -> None:
        super().__init__()
        self._fh = fh
        header, kid, self._prefix, chunk_bytes = _read_header(fh)
        try:
            key = keyring.data_key(kid)
        except UnknownKey as exc:
            raise DecryptionFailed(f"the stream was encrypted with key {kid!r}, which this keyring lacks") from exc
        self.kid = kid
        self._aead = AESGCM(key.secret)
        self._aad = _aad_base(header, aad)
        self._frames, trailing = _scan(fh, chunk_bytes)
        complete = bool(self._frames) and self._frames[-1].final
        if not complete and not allow_truncated:
            detail = "a partial chunk" if trailing else "no final chunk"
            raise DecryptionFailed(f"the encrypted stream is truncated ({detail})")
        self._starts = [f.start for f in self._frames]
        last = self._frames[-1] if self._frames else None
        self._size = last.start + last.length - _TAG_BYTES if last else 0
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        if complete:
            # Authenticate the end-of-stream marker now: an empty final chunk is never read for its bytes.
            self._chunk(len(self._frames) - 1)

    @property
    def plaintext_size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if self.closed:
            raise ValueError("seek on a closed stream")
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        frame = self._frames[index]
        self._fh.seek(frame.offset)
        ct = _read_exact(self._fh, frame.length)
        if len(ct) != frame.length:
            raise DecryptionFailed(f"chunk {index} changed while it was read")
        try:
            plain = self._aead.decrypt(
                _nonce(self._prefix, index), ct, _chunk_aad(self._aad, index, frame.final)
            )
        except InvalidTag as exc:
            raise DecryptionFailed(f"chunk {index} was altered, moved or is under another key") from exc
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self.closed:
            raise ValueError("read from a closed stream")
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._pos < self._size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            plain = self._chunk(index)
            within = self._pos - self._frames[index].start
            take = min(len(out) - written, len(plain) - within)
            out[written : written + take] = plain[within : within + take]
            written += take
            self._pos += take
        return written

    def close(self) -> None:
        if self.closed:
            return
        self._cached = None
        try:
            self._fh.close()
        finally:
            super().close()


def open_decrypted(path: Path, keyring: Keyring, *, aad: bytes, allow_truncated: bool = False) -> BinaryIO:
    """A readable, seekable stream of the plaintext of the encrypted file at ``path``.

    Raises :class:`evidence.DecryptionFailed` when the file is not such a stream, the key is not in
    the keyring, or the final chunk is missing (unless ``allow_truncated``: a crash-recovered file
    then reads up to its last whole chunk). A read raises it when a chunk was altered or moved.
    """
    fh = path.open("rb")
    try:
        reader = _DecryptingReader(fh, keyring, aad=aad, allow_truncated=allow_truncated)
    except BaseException:
        fh.close()
        raise
    return io.BufferedReader(reader, buffer_size=64 * 1024)
