from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from evidence import GENESIS, EncryptingWriter, Keyring, open_decrypted
from recorder import Gap, ManifestRef, SegmentReport, SpeakerSpan, TrackFile, UnknownSegment
from recorder.manifest import (
    HEAD_NAME,
    ManifestError,
    entry_hash,
    list_manifests,
    list_segments,
    load_segment,
    write_segment_manifest,
    write_session_manifest,
)

pytestmark = pytest.mark.media

EPOCH = 1_780_000_000.0
VENUES = ("hn", "bn")


def encode_webm(yuv: tuple[int, int, int], frames: int = 6) -> bytes:
    """A tiny real VP8 WebM: ``frames`` solid-colour frames (Y, U, V values) at 10 fps."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane, value in zip(frame.planes, yuv, strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


@functools.cache
def sample_media() -> dict[str, bytes]:
    """One small real WebM per venue (encoded once per test process)."""
    return {"hn": encode_webm((81, 90, 240)), "bn": encode_webm((41, 240, 110))}


@pytest.fixture
def webm_by_venue() -> dict[str, bytes]:
    return sample_media()


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.generate(dev=False, path=tmp_path / "keys" / "keyring.json")


def add_segment(
    session_dir: Path, ring: Keyring, media: dict[str, bytes], segment: str, *, index: int,
    confidential: bool = False, case: str | None = "case-1", write: bool = True,
) -> tuple[SegmentReport, ManifestRef | None]:
    """Write the venues' files of one segment (encrypted when confidential) and, with ``write``, its manifest."""
    files = []
    t0 = index * 10.0
    for venue, data in media.items():
        rel = f"media/{segment}/{venue}-1.webm" + (".enc" if confidential else "")
        path = session_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        kid = None
        if confidential:
            writer = EncryptingWriter(path.open("wb"), ring, aad=rel.encode(), chunk_bytes=1024)
            writer.write(data[: len(data) // 2])
            writer.flush()
            writer.write(data[len(data) // 2 :])
            writer.close()
            kid = writer.kid
        else:
            path.write_bytes(data)
        raw = path.read_bytes()
        files.append(TrackFile(path=rel, venue=venue, kinds=("video",), codecs=("vp8",),
                               sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), t0=t0, duration=0.6,
                               encrypted=confidential, kid=kid))
    report = SegmentReport(
        session=session_dir.name, segment=segment, case=case, confidential=confidential, session_epoch=EPOCH,
        opened_at=EPOCH + t0, closed_at=EPOCH + t0 + 9.0, media_t0=t0, media_t1=t0 + 0.6, files=tuple(files),
        speakers=(SpeakerSpan("hn", t0, t0 + 0.3), SpeakerSpan(None, t0 + 0.3, t0 + 0.6)),
        gaps=(Gap("bn", t0 + 0.1, t0 + 0.2, "link_lost"),), venue_names={"hn": "Hà Nội", "bn": "Bắc Ninh"},
    )
    ref = write_segment_manifest(session_dir, report, ring) if write else None
    return report, ref


def build_session(
    root: Path, ring: Keyring, media: dict[str, bytes], session: str = "phien-1", *, close: bool = True,
    confidential_second: bool = True,
) -> Path:
    """A session with a plain case segment, a between-cases stretch and a (confidential) case segment."""
    session_dir = root / session
    session_dir.mkdir(parents=True)
    add_segment(session_dir, ring, media, "c1-case-1", index=0)
    add_segment(session_dir, ring, media, "b1", index=1, case=None)
    add_segment(session_dir, ring, media, "c2-case-2", index=2, confidential=confidential_second, case="case-2")
    if close:
        write_session_manifest(session_dir, ring, session=session, closed_at=EPOCH + 40)
    return session_dir


def test_segment_manifest_round_trips_and_chains(tmp_path: Path, ring: Keyring,
                                                 webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    report, ref1 = add_segment(session_dir, ring, webm_by_venue, "c1-case-1", index=0)
    _, ref2 = add_segment(session_dir, ring, webm_by_venue, "c2-case-2", index=1, confidential=True)
    assert ref1 is not None and ref2 is not None
    assert ref1.path == "phien-1/manifests/00001-c1-case-1.json"
    assert ref1.seq == 1 and ref1.prev == GENESIS and ref1.kid == ring.active_signing.kid
    stored = list_manifests(session_dir, ring)
    assert [m.seq for m in stored] == [1, 2] and all(m.signature_ok for m in stored)
    assert ref2.prev == entry_hash(stored[0].manifest)
    assert ref1.sha256 == hashlib.sha256(stored[0].raw).hexdigest()
    assert load_segment(session_dir, "c1-case-1", ring) == report
    assert [r.segment for _, r in list_segments(session_dir)] == ["c1-case-1", "c2-case-2"]
    doc = stored[0].manifest
    assert doc["kind"] == "segment" and doc["report"]["files"][0]["sha256"] == report.files[0].sha256
    assert doc["report"]["venue_names"]["hn"] == "Hà Nội"
    assert not list((session_dir / "manifests").glob(".*.tmp"))


def test_confidential_file_decrypts_and_decodes_with_pyav(tmp_path: Path, ring: Keyring,
                                                          webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    report, _ = add_segment(session_dir, ring, webm_by_venue, "c9-kin", index=0, confidential=True)
    for item in report.files:
        raw = (session_dir / item.path).read_bytes()
        assert bytes.fromhex("1A45DFA3") not in raw
        with open_decrypted(session_dir / item.path, ring, aad=item.path.encode()) as fh:
            with av.open(fh, mode="r") as container:
                frames = list(container.decode(video=0))
        assert len(frames) == 6
        assert item.kid == ring.active_data.kid


def test_session_manifest_lists_every_manifest_and_links_sessions(tmp_path: Path, ring: Keyring,
                                                                  webm_by_venue: dict[str, bytes]) -> None:
    root = tmp_path / "rec"
    first = build_session(root, ring, webm_by_venue, "phien-1")
    second = build_session(root, ring, webm_by_venue, "phien-2")
    one = list_manifests(first, ring)
    two = list_manifests(second, ring)
    session_one = one[-1]
    assert session_one.kind == "session" and session_one.manifest["previous_session"] is None
    assert [e["sha256"] for e in session_one.manifest["manifests"]] == [m.sha256 for m in one[:-1]]
    assert two[-1].manifest["previous_session"] == {"path": session_one.ref().path, "sha256": session_one.sha256}
    head = json.loads((root / HEAD_NAME).read_text())
    assert head["manifest"]["path"] == two[-1].ref().path


def test_old_manifests_load_after_key_rotation(tmp_path: Path, ring: Keyring,
                                               webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    report, _ = add_segment(session_dir, ring, webm_by_venue, "c1-case-1", index=0, confidential=True)
    old_kid = ring.active_signing.kid
    ring.rotate()
    reloaded = Keyring.load(tmp_path / "keys" / "keyring.json")
    _, ref = add_segment(session_dir, reloaded, webm_by_venue, "c2-case-2", index=1)
    assert ref is not None and ref.kid != old_kid
    assert load_segment(session_dir, "c1-case-1", reloaded) == report
    assert all(m.signature_ok for m in list_manifests(session_dir, reloaded))


@pytest.mark.parametrize("segment", ["../x", "a b", "session", "x" * 81, "", ".hidden", "tên-việt"])
def test_bad_segment_ids_are_refused_and_nothing_is_written(tmp_path: Path, ring: Keyring,
                                                            webm_by_venue: dict[str, bytes], segment: str) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    report, _ = add_segment(session_dir, ring, webm_by_venue, "c1-ok", index=0, write=False)
    with pytest.raises(ManifestError, match="not allowed"):
        write_segment_manifest(session_dir, replace(report, segment=segment), ring)
    assert list_manifests(session_dir) == []


def test_bad_reports_are_refused_with_a_clear_error(tmp_path: Path, ring: Keyring,
                                                    webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    report, _ = add_segment(session_dir, ring, webm_by_venue, "c1-ok", index=0, write=False)
    good = report.files[0]
    cases = {
        "of session": replace(report, session="phien-2"),
        "not under media": replace(report, files=(replace(good, path="../../etc/passwd"),)),
        "does not exist": replace(report, files=(replace(good, path="media/c1-ok/nope-1.webm"),)),
        "the report says": replace(report, files=(replace(good, size=good.size + 1),)),
        "SHA-256": replace(report, files=(replace(good, sha256="xyz"),)),
        "encrypted files": replace(report, files=(replace(good, encrypted=True),)),
        "twice": replace(report, files=(good, good)),
    }
    for message, bad in cases.items():
        with pytest.raises(ManifestError, match=message):
            write_segment_manifest(session_dir, bad, ring)
    assert list_manifests(session_dir) == []
    with pytest.raises(ManifestError):
        write_session_manifest(session_dir, ring, session="phien-2", closed_at=EPOCH)


def test_load_segment_refuses_unknown_and_altered_manifests(tmp_path: Path, ring: Keyring,
                                                            webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    add_segment(session_dir, ring, webm_by_venue, "c1-case-1", index=0)
    with pytest.raises(UnknownSegment):
        load_segment(session_dir, "c7-none", ring)
    path = session_dir / "manifests" / "00001-c1-case-1.json"
    doc = json.loads(path.read_text())
    doc["manifest"]["report"]["case"] = "case-666"
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="does not verify"):
        load_segment(session_dir, "c1-case-1", ring)
    with pytest.raises(ManifestError):
        load_segment(session_dir, "../c1", ring)


def test_concurrent_appends_get_distinct_seqs_and_one_unbroken_chain(tmp_path: Path, ring: Keyring,
                                                                     webm_by_venue: dict[str, bytes]) -> None:
    session_dir = tmp_path / "rec" / "phien-1"
    session_dir.mkdir(parents=True)
    reports = [add_segment(session_dir, ring, webm_by_venue, f"c{i}-x", index=i, write=False)[0] for i in range(6)]
    errors: list[BaseException] = []

    def write(report: SegmentReport) -> None:
        try:
            write_segment_manifest(session_dir, report, ring)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = list_manifests(session_dir, ring)
    assert [m.seq for m in stored] == list(range(1, 7))
    for before, after in zip(stored, stored[1:], strict=False):
        assert after.manifest["prev"] == entry_hash(before.manifest)


def test_pyav_muxes_straight_into_the_encrypting_writer(tmp_path: Path, ring: Keyring) -> None:
    """The recorder's path: packets remuxed (never decoded) into a non-seekable encrypting file."""
    source = io.BytesIO(sample_media()["hn"])
    rel = "media/c1-kin/hn-1.webm.enc"
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    writer = EncryptingWriter(path.open("wb"), ring, aad=rel.encode(), chunk_bytes=1024)
    with av.open(source, mode="r") as src, av.open(writer, mode="w", format="webm") as out:
        in_stream = src.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            out.mux(packet)
            writer.flush()
    writer.close()
    assert bytes.fromhex("1A45DFA3") not in path.read_bytes()
    with open_decrypted(path, ring, aad=rel.encode()) as fh, av.open(fh, mode="r") as container:
        assert len(list(container.decode(video=0))) == 6
