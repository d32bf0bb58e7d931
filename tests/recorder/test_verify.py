from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evidence import Keyring, sign_manifest
from recorder.manifest import list_manifests
from recorder.retention import DAY_S, expire
from recorder.verify import VerifyError, VerifyReport, verify_path
from tests.recorder.test_manifest import EPOCH, add_segment, build_session, sample_media

pytestmark = pytest.mark.media

S = "phien-1"
PLAIN = f"{S}/media/c1-case-1/hn-1.webm"
SECRET = f"{S}/media/c2-case-2/bn-1.webm.enc"


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.generate(dev=False, path=tmp_path / "keys" / "keyring.json")


@pytest.fixture
def webm_by_venue() -> dict[str, bytes]:
    return sample_media()


@pytest.fixture
def root(tmp_path: Path, ring: Keyring, webm_by_venue: dict[str, bytes]) -> Path:
    root = tmp_path / "rec"
    build_session(root, ring, webm_by_venue, S)
    return root


def _kinds(report: VerifyReport) -> set[tuple[str, str]]:
    return {(f.kind, f.path) for f in report.findings}


def test_untouched_recordings_verify_with_no_findings(root: Path, ring: Keyring) -> None:
    for target in (root, root / S, root / S / "manifests" / "00001-c1-case-1.json"):
        report = verify_path(target, ring)
        assert report.ok and report.findings == (), report.findings
    full = verify_path(root, ring)
    assert (full.sessions, full.manifests, full.files) == (1, 4, 6)


@pytest.mark.parametrize("rel", [PLAIN, SECRET])
def test_one_changed_byte_in_a_media_file_is_named(root: Path, ring: Keyring, rel: str) -> None:
    path = root / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    report = verify_path(root, ring)
    assert not report.ok
    assert _kinds(report) == {("altered", rel)}


def test_truncated_files_are_named_and_a_missing_final_chunk_is_said(root: Path, ring: Keyring) -> None:
    for rel in (PLAIN, SECRET):
        path = root / rel
        path.write_bytes(path.read_bytes()[:-40])
    report = verify_path(root, ring)
    assert _kinds(report) == {("truncated", PLAIN), ("truncated", SECRET)}
    secret = next(f for f in report.findings if f.path == SECRET)
    assert "final chunk is missing" in secret.detail


def test_appended_bytes_removed_and_added_files_are_named(root: Path, ring: Keyring) -> None:
    with (root / PLAIN).open("ab") as fh:
        fh.write(b"\x00")
    (root / S / "media" / "b1" / "hn-1.webm").unlink()
    (root / S / "media" / "c1-case-1" / "extra-9.webm").write_bytes(b"forged")
    (root / S / "media" / "c9-forged").mkdir()
    (root / S / "media" / "c9-forged" / "hn-1.webm").write_bytes(b"forged")
    report = verify_path(root / S, ring)
    assert _kinds(report) == {
        ("altered", PLAIN), ("removed", f"{S}/media/b1/hn-1.webm"), ("added", f"{S}/media/c1-case-1/extra-9.webm"),
        ("added", f"{S}/media/c9-forged/hn-1.webm"),
    }


def test_a_changed_manifest_is_named(root: Path, ring: Keyring) -> None:
    path = root / S / "manifests" / "00002-b1.json"
    doc = json.loads(path.read_text())
    doc["manifest"]["report"]["speakers"][0]["venue"] = "bn"
    path.write_text(json.dumps(doc))
    report = verify_path(root, ring)
    assert not report.ok
    kinds = _kinds(report)
    assert ("manifest_altered", f"{S}/manifests/00002-b1.json") in kinds
    assert {k for k, _ in kinds} == {"manifest_altered"}


def test_a_manifest_signed_by_a_foreign_key_is_a_bad_signature(root: Path, ring: Keyring) -> None:
    path = root / S / "manifests" / "00001-c1-case-1.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(sign_manifest(Keyring.generate(dev=False), doc["manifest"])))
    kinds = _kinds(verify_path(root, ring))
    assert ("bad_signature", f"{S}/manifests/00001-c1-case-1.json") in kinds


def test_a_deleted_manifest_is_named(root: Path, ring: Keyring) -> None:
    (root / S / "manifests" / "00002-b1.json").unlink()
    report = verify_path(root, ring)
    assert ("manifest_removed", f"{S}/manifests/00002-b1.json") in _kinds(report)
    # its media are no longer listed anywhere
    assert ("added", f"{S}/media/b1/hn-1.webm") in _kinds(report)


def test_a_deleted_session_manifest_is_named_through_the_roots_head(root: Path, ring: Keyring) -> None:
    (root / S / "manifests" / "00004-session.json").unlink()
    report = verify_path(root, ring)
    assert ("manifest_removed", f"{S}/manifests/00004-session.json") in _kinds(report)
    assert not report.ok


def test_a_deleted_earlier_session_is_named_by_the_next_one(tmp_path: Path, root: Path, ring: Keyring,
                                                            webm_by_venue: dict[str, bytes]) -> None:
    build_session(root, ring, webm_by_venue, "phien-2")
    assert verify_path(root, ring).ok
    shutil.rmtree(root / S)
    assert ("manifest_removed", f"{S}/manifests/00004-session.json") in _kinds(verify_path(root, ring))


def test_a_re_signed_manifest_with_another_prev_breaks_the_chain(root: Path, ring: Keyring) -> None:
    path = root / S / "manifests" / "00003-c2-case-2.json"
    doc = json.loads(path.read_text())
    doc["manifest"]["prev"] = "f" * 64
    path.write_text(json.dumps(sign_manifest(ring, doc["manifest"])))
    kinds = _kinds(verify_path(root / S, ring))
    assert ("chain_broken", f"{S}/manifests/00003-c2-case-2.json") in kinds
    assert ("manifest_altered", f"{S}/manifests/00003-c2-case-2.json") in kinds  # session manifest's hash


def test_manifests_signed_before_a_key_rotation_still_verify(tmp_path: Path, root: Path, ring: Keyring,
                                                             webm_by_venue: dict[str, bytes]) -> None:
    ring.rotate()
    reloaded = Keyring.load(tmp_path / "keys" / "keyring.json")
    build_session(root, reloaded, webm_by_venue, "phien-2")
    kids = {m.envelope["kid"] for s in ("phien-1", "phien-2") for m in list_manifests(root / s)}
    assert len(kids) == 2
    report = verify_path(root, reloaded)
    assert report.ok and report.findings == ()


def test_an_open_session_verifies_what_is_there(tmp_path: Path, ring: Keyring,
                                                webm_by_venue: dict[str, bytes]) -> None:
    root = tmp_path / "rec"
    session_dir = build_session(root, ring, webm_by_venue, "phien-3", close=False)
    add_segment(session_dir, ring, webm_by_venue, "c3-case-3", index=3, write=False)  # being recorded
    report = verify_path(root, ring)
    assert report.ok and report.open_sessions == ("phien-3",)
    assert _kinds(report) == {
        ("open", "phien-3"), ("pending", "phien-3/media/c3-case-3/hn-1.webm"),
        ("pending", "phien-3/media/c3-case-3/bn-1.webm"),
    }
    (session_dir / "media" / "b1" / "bn-1.webm").write_bytes(b"x")
    assert ("truncated", "phien-3/media/b1/bn-1.webm") in _kinds(verify_path(root, ring))


def test_one_manifest_reports_only_its_own_files(root: Path, ring: Keyring) -> None:
    (root / S / "media" / "b1" / "hn-1.webm").unlink()
    manifest = root / S / "manifests" / "00001-c1-case-1.json"
    assert verify_path(manifest, ring).ok
    bad = verify_path(root / S / "manifests" / "00002-b1.json", ring)
    assert _kinds(bad) == {("removed", f"{S}/media/b1/hn-1.webm")}


def test_unverifiable_paths_are_errors(tmp_path: Path, root: Path, ring: Keyring) -> None:
    with pytest.raises(VerifyError, match="does not exist"):
        verify_path(tmp_path / "nowhere", ring)
    with pytest.raises(VerifyError, match="not a manifest"):
        verify_path(root / PLAIN, ring)


def test_garbage_in_the_manifests_folder_is_named(root: Path, ring: Keyring) -> None:
    (root / S / "manifests" / "00005-c9.json").write_text("{not json")
    (root / S / "manifests" / "notes.txt").write_text("hi")
    kinds = _kinds(verify_path(root / S, ring))
    assert ("manifest_altered", f"{S}/manifests/00005-c9.json") in kinds
    assert ("added", f"{S}/manifests/notes.txt") in kinds


def test_expiry_deletes_media_leaves_a_tombstone_and_verify_passes(root: Path, ring: Keyring) -> None:
    late_segment = root / S / "media" / "c2-case-2"
    now = EPOCH + 9.0 + 30 * DAY_S + 15.0  # c1 and b1 closed over 30 days ago, c2 (closed at +29 s) not yet
    planned = expire(root, ring, now=now, retention_days=30, dry_run=True)
    assert [t.segment for t in planned] == ["c1-case-1", "b1"] and all(t.ref is None for t in planned)
    assert (root / PLAIN).exists()
    done = expire(root, ring, now=now, retention_days=30)
    assert [t.segment for t in done] == ["c1-case-1", "b1"] and all(t.ref is not None for t in done)
    assert not (root / S / "media" / "c1-case-1").exists() and late_segment.is_dir()
    report = verify_path(root, ring)
    assert report.ok, report.findings
    assert {k for k, _ in _kinds(report)} == {"expired"}
    assert ("expired", PLAIN) in _kinds(report)
    assert expire(root, ring, now=now, retention_days=30) == []
    later = expire(root, ring, now=now + DAY_S, retention_days=30)
    assert [(t.segment, t.confidential) for t in later] == [("c2-case-2", True)]
    assert verify_path(root, ring).ok
    tombstones = [m for m in list_manifests(root / S, ring) if m.kind == "tombstone"]
    assert len(tombstones) == 3 and tombstones[0].manifest["by"] == "tiepdan recordings expire"


def test_expiry_keeps_altered_files_and_does_not_tombstone_missing_ones(root: Path, ring: Keyring) -> None:
    (root / PLAIN).write_bytes(b"tampered")
    (root / S / "media" / "c1-case-1" / "bn-1.webm").unlink()
    now = EPOCH + 100 * DAY_S
    result = {t.segment: t for t in expire(root, ring, now=now, retention_days=30)}
    assert result["c1-case-1"].kept_altered == ("media/c1-case-1/hn-1.webm",)
    assert result["c1-case-1"].deleted == () and result["c1-case-1"].ref is None
    kinds = _kinds(verify_path(root, ring))
    assert ("truncated", PLAIN) in kinds and ("removed", f"{S}/media/c1-case-1/bn-1.webm") in kinds


def test_expiry_refuses_a_retention_below_one_day(root: Path, ring: Keyring) -> None:
    with pytest.raises(ValueError):
        expire(root, ring, now=EPOCH, retention_days=0)


def test_a_changed_or_deleted_root_head_is_named(root: Path, ring: Keyring) -> None:
    head = root / "sessions-head.json"
    doc = json.loads(head.read_text())
    doc["manifest"]["path"] = "phien-9/manifests/00001-session.json"
    head.write_text(json.dumps(doc))
    assert ("manifest_altered", "sessions-head.json") in _kinds(verify_path(root, ring))
    head.unlink()
    assert _kinds(verify_path(root, ring)) == {("manifest_removed", "sessions-head.json")}


def test_an_unreadable_manifest_mid_chain_is_named_without_noise(root: Path, ring: Keyring) -> None:
    (root / S / "manifests" / "00002-b1.json").write_bytes(b"\x00garbage")
    kinds = _kinds(verify_path(root / S, ring))
    assert ("manifest_altered", f"{S}/manifests/00002-b1.json") in kinds
    assert not any(k == "chain_broken" for k, _ in kinds)
