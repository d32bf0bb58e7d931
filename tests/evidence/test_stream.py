from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence import (
    DecryptionFailed,
    EncryptingWriter,
    Keyring,
    StreamFormatError,
    inspect_stream,
    open_decrypted,
)
from evidence.stream import MAGIC

pytestmark = pytest.mark.unit

AAD = b"media/c1-case/venue-1.webm.enc"
EBML_MAGIC = bytes.fromhex("1A45DFA3")


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring.generate(dev=False, path=tmp_path_factory.mktemp("ring") / "keyring.json")


def _write(path: Path, ring: Keyring, parts: list[bytes], *, flush_each: bool = False,
           chunk: int = 1024, close: bool = True, aad: bytes = AAD) -> str:
    writer = EncryptingWriter(path.open("wb"), ring, aad=aad, chunk_bytes=chunk)
    for part in parts:
        assert writer.write(part) == len(part)
        if flush_each:
            writer.flush()
    if close:
        writer.close()
    else:
        writer.abort()
    return writer.kid


def _read(path: Path, ring: Keyring, *, aad: bytes = AAD, allow_truncated: bool = False) -> bytes:
    with open_decrypted(path, ring, aad=aad, allow_truncated=allow_truncated) as fh:
        return fh.read()


def _frames(path: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Header and (flags, ciphertext) of each frame, parsed independently of the module."""
    data = path.read_bytes()
    kid_len = data[5]
    head_len = 6 + kid_len + 8 + 4
    header, pos, frames = data[:head_len], head_len, []
    while pos < len(data):
        flags, length = struct.unpack(">BI", data[pos : pos + 5])
        frames.append((flags, data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return header, frames


def _assemble(header: bytes, frames: list[tuple[int, bytes]]) -> bytes:
    return header + b"".join(struct.pack(">BI", f, len(ct)) + ct for f, ct in frames)


def test_round_trip_over_many_chunks_with_flushes(tmp_path: Path, ring: Keyring) -> None:
    plain = [os.urandom(n) for n in (10, 3000, 1, 0, 5000, 777)]
    path = tmp_path / "a.enc"
    kid = _write(path, ring, plain, flush_each=True)
    assert kid == ring.active_data.kid
    assert _read(path, ring) == b"".join(plain)
    info = inspect_stream(path)
    assert info.complete and info.kid == kid and info.plaintext_size == sum(map(len, plain))
    assert info.chunks >= 10


def test_file_never_holds_the_plaintext_or_the_matroska_magic(tmp_path: Path, ring: Keyring) -> None:
    plain = EBML_MAGIC + b"webm-header " * 500
    path = tmp_path / "a.enc"
    writer = EncryptingWriter(path.open("wb"), ring, aad=AAD, chunk_bytes=1024)
    writer.write(plain)
    writer.flush()
    on_disk_mid = path.read_bytes()
    writer.close()
    for data in (on_disk_mid, path.read_bytes()):
        assert data.startswith(MAGIC)
        assert EBML_MAGIC not in data
        assert b"webm-header" not in data


def test_empty_stream_round_trips(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "e.enc"
    _write(path, ring, [])
    assert _read(path, ring) == b""
    assert inspect_stream(path).complete


def test_seek_and_partial_reads(tmp_path: Path, ring: Keyring) -> None:
    plain = bytes(range(256)) * 40
    path = tmp_path / "s.enc"
    _write(path, ring, [plain[:100], plain[100:5000], plain[5000:]], flush_each=True)
    with open_decrypted(path, ring, aad=AAD) as fh:
        assert fh.seekable()
        fh.seek(4321)
        assert fh.read(1500) == plain[4321:5821]
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == plain[-10:]
        fh.seek(99)
        assert fh.read(3) == plain[99:102]
        assert fh.seek(len(plain) + 50) == len(plain) + 50
        assert fh.read(10) == b""


def test_one_changed_ciphertext_byte_is_detected(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "t.enc"
    _write(path, ring, [os.urandom(4000)])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionFailed, match="altered"):
        _read(path, ring)


def test_reordered_chunks_are_detected(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "r.enc"
    _write(path, ring, [os.urandom(4000)])
    header, frames = _frames(path)
    frames[0], frames[1] = frames[1], frames[0]
    path.write_bytes(_assemble(header, frames))
    with pytest.raises(DecryptionFailed):
        _read(path, ring)


def test_removed_middle_chunk_is_detected(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "m.enc"
    _write(path, ring, [os.urandom(4000)])
    header, frames = _frames(path)
    del frames[1]
    path.write_bytes(_assemble(header, frames))
    with pytest.raises(DecryptionFailed):
        _read(path, ring)


def test_truncation_at_a_chunk_boundary_is_refused_unless_allowed(tmp_path: Path, ring: Keyring) -> None:
    plain = os.urandom(4000)
    path = tmp_path / "c.enc"
    _write(path, ring, [plain])
    header, frames = _frames(path)
    path.write_bytes(_assemble(header, frames[:2]))
    with pytest.raises(DecryptionFailed, match="truncated"):
        _read(path, ring)
    assert not inspect_stream(path).complete
    assert _read(path, ring, allow_truncated=True) == plain[:2048]


def test_final_flag_moved_to_an_earlier_chunk_is_detected(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "f.enc"
    _write(path, ring, [os.urandom(4000)])
    header, frames = _frames(path)
    forged = [(0, frames[0][1]), (1, frames[1][1])]
    path.write_bytes(_assemble(header, forged))
    with pytest.raises(DecryptionFailed):
        _read(path, ring)


def test_crash_leaves_a_readable_prefix_up_to_the_last_flush(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "k.enc"
    writer = EncryptingWriter(path.open("wb"), ring, aad=AAD, chunk_bytes=4096)
    writer.write(b"second one ")
    writer.flush()
    writer.write(b"second two ")
    writer.flush()
    writer.write(b"lost tail")
    data = path.read_bytes()  # what a SIGKILL now leaves: no final chunk, tail only in memory
    writer.abort()
    crashed = tmp_path / "crashed.enc"
    crashed.write_bytes(data + b"\x00\x00\x00")  # and a partly written frame head
    info = inspect_stream(crashed)
    assert not info.complete and info.trailing_bytes == 3
    assert _read(crashed, ring, allow_truncated=True) == b"second one second two "
    with pytest.raises(DecryptionFailed, match="partial chunk"):
        _read(crashed, ring)


def test_abandoned_writer_does_not_mark_the_stream_complete(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "g.enc"
    raw = path.open("wb")
    writer = EncryptingWriter(raw, ring, aad=AAD)
    writer.write(b"x" * 10)
    writer.flush()
    del writer
    raw.close()
    assert not inspect_stream(path).complete


def test_wrong_aad_and_wrong_keyring_are_refused(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "w.enc"
    _write(path, ring, [b"secret"])
    with pytest.raises(DecryptionFailed):
        _read(path, ring, aad=b"media/c1-case/venue-2.webm.enc")
    other = Keyring.generate(dev=False)
    with pytest.raises(DecryptionFailed, match="lacks"):
        _read(path, other)


def test_data_written_under_an_old_key_decrypts_after_rotation(tmp_path: Path) -> None:
    ring = Keyring.generate(dev=False, path=tmp_path / "k.json")
    path = tmp_path / "old.enc"
    old_kid = _write(path, ring, [b"before rotation"])
    ring.rotate()
    reloaded = Keyring.load(tmp_path / "k.json")
    assert reloaded.active_data.kid != old_kid
    assert _read(path, reloaded) == b"before rotation"
    new_path = tmp_path / "new.enc"
    assert _write(new_path, reloaded, [b"after"]) == reloaded.active_data.kid
    assert inspect_stream(new_path).kid != old_kid


def test_altered_header_kid_or_prefix_is_detected(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "h.enc"
    _write(path, ring, [b"payload" * 50])
    data = bytearray(path.read_bytes())
    kid_len = data[5]
    data[6 + kid_len] ^= 0xFF  # first nonce-prefix byte
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionFailed):
        _read(path, ring)


@pytest.mark.parametrize(
    "content",
    [b"", b"TDS", b"RIFF0000WAVE", MAGIC + b"\x09\x03abc", MAGIC + b"\x01\x00"],
    ids=["empty", "short", "other-format", "bad-version", "empty-kid"],
)
def test_garbage_is_a_clear_format_error(tmp_path: Path, ring: Keyring, content: bytes) -> None:
    path = tmp_path / "x.enc"
    path.write_bytes(content)
    with pytest.raises(StreamFormatError):
        open_decrypted(path, ring, aad=AAD)
    with pytest.raises(StreamFormatError):
        inspect_stream(path)


def test_oversized_frame_length_is_refused_without_allocating(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "o.enc"
    _write(path, ring, [b"abc"])
    header, _ = _frames(path)
    path.write_bytes(header + struct.pack(">BI", 1, 2**31) + b"\x00" * 32)
    with pytest.raises(StreamFormatError, match="malformed frame"):
        open_decrypted(path, ring, aad=AAD)


def test_data_after_the_final_chunk_is_refused(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "d.enc"
    _write(path, ring, [b"abc"])
    with path.open("ab") as fh:
        fh.write(b"appended")
    with pytest.raises(StreamFormatError, match="follows the final"):
        _read(path, ring)


def test_writer_refuses_use_after_close_and_bad_chunk_sizes(tmp_path: Path, ring: Keyring) -> None:
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), ring, aad=AAD, chunk_bytes=10)
    writer = EncryptingWriter((tmp_path / "z.enc").open("wb"), ring, aad=AAD)
    assert writer.writable() and not writer.seekable() and not writer.readable()
    writer.close()
    writer.close()
    with pytest.raises(ValueError):
        writer.write(b"x")


class _FailingRaw(io.BytesIO):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def write(self, b: object) -> int:
        data = bytes(b)  # type: ignore[call-overload]
        if self.tell() + len(data) > self.fail_after:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_disk_full_surfaces_as_oserror_and_the_writer_stays_failed(ring: Keyring) -> None:
    raw = _FailingRaw(fail_after=2000)
    writer = EncryptingWriter(raw, ring, aad=AAD, chunk_bytes=1024)
    with pytest.raises(OSError) as err:
        writer.write(b"y" * 5000)
    assert err.value.errno == 28
    with pytest.raises(OSError):
        writer.write(b"more")
    writer.close()  # releases the file, writes no final chunk after a failure
    assert writer.closed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.binary(max_size=3000), max_size=8),
    flushes=st.lists(st.booleans(), min_size=8, max_size=8),
    chunk=st.sampled_from([1024, 1500, 4096]),
)
def test_any_writes_and_flushes_round_trip(
    tmp_path: Path, ring: Keyring, parts: list[bytes], flushes: list[bool], chunk: int
) -> None:
    path = tmp_path / "p.enc"
    writer = EncryptingWriter(path.open("wb"), ring, aad=AAD, chunk_bytes=chunk)
    for part, flush in zip(parts, flushes, strict=False):
        writer.write(part)
        if flush:
            writer.flush()
    writer.close()
    assert _read(path, ring) == b"".join(parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_bit_anywhere_in_the_file_is_detected(tmp_path: Path, ring: Keyring, data: st.DataObject) -> None:
    path = tmp_path / "flip.enc"
    plain = bytes(range(256)) * 12
    _write(path, ring, [plain[:1000], plain[1000:]], flush_each=True)
    original = path.read_bytes()
    where = data.draw(st.integers(0, len(original) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(original)
    flipped[where] ^= 1 << bit
    path.write_bytes(bytes(flipped))
    with pytest.raises(DecryptionFailed):
        _read(path, ring)
