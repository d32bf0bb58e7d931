"""The signed head of a session's manifest chain (recorder.manifest, recorder.verify): it follows every
append, and verification names the newest manifest of a session still recording when it is deleted, a head
deleted, altered or taken from another session, and a head put back more than one manifest behind. What the
disk alone cannot tell (an older head put back with the newest manifest deleted) is the case store's part:
tests/complaints/test_recording_cross_check.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evidence import Keyring, sign_manifest
from recorder.manifest import SESSION_HEAD_NAME, list_manifests
from recorder.retention import DAY_S, expire
from recorder.verify import VerifyReport, recordings_on_disk, verify_path
from tests.recorder.test_manifest import EPOCH, add_segment, build_session, sample_media

pytestmark = pytest.mark.media

S = "phien-1"


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.generate(dev=False, path=tmp_path / "keys" / "keyring.json")


@pytest.fixture
def open_session(tmp_path: Path, ring: Keyring) -> Path:
    """A session still recording: c1-case-1, b1, c2-case-2 closed, no session manifest."""
    return build_session(tmp_path / "rec", ring, sample_media(), S, close=False)


def _kinds(report: VerifyReport) -> set[tuple[str, str]]:
    return {(f.kind, f.path) for f in report.findings}


def _head(session_dir: Path) -> dict[str, object]:
    return dict(json.loads((session_dir / SESSION_HEAD_NAME).read_text())["manifest"])


def test_the_head_follows_every_append_and_an_intact_open_session_verifies(open_session: Path,
                                                                           ring: Keyring) -> None:
    newest = list_manifests(open_session)[-1]
    head = _head(open_session)
    assert (head["seq"], head["path"], head["sha256"]) == (3, "manifests/00003-c2-case-2.json", newest.sha256)
    report = verify_path(open_session.parent, ring)
    assert report.ok and _kinds(report) == {("open", S)}
    add_segment(open_session, ring, sample_media(), "c3-case-3", index=3)
    assert _head(open_session)["path"] == "manifests/00004-c3-case-3.json"


def test_the_newest_segment_manifest_deleted_while_the_session_records_is_named(open_session: Path,
                                                                                ring: Keyring) -> None:
    (open_session / "manifests" / "00003-c2-case-2.json").unlink()
    report = verify_path(open_session.parent, ring)
    assert not report.ok
    assert ("manifest_removed", f"{S}/manifests/00003-c2-case-2.json") in _kinds(report)
    removed = next(f for f in report.findings if f.kind == "manifest_removed")
    assert "newest manifest" in removed.detail and "seq 3" in removed.detail
    # its media wait for a manifest like those of a segment being recorded
    assert ("pending", f"{S}/media/c2-case-2/hn-1.webm.enc") in _kinds(report)
    assert not verify_path(open_session, ring).ok  # the session directory alone says so too


def test_a_deleted_altered_or_foreign_head_is_named(tmp_path: Path, open_session: Path, ring: Keyring) -> None:
    head_path = open_session / SESSION_HEAD_NAME
    original = head_path.read_bytes()
    shown = f"{S}/{SESSION_HEAD_NAME}"

    doc = json.loads(original)
    doc["manifest"]["seq"] = 2
    head_path.write_text(json.dumps(doc))
    assert _kinds(verify_path(open_session, ring)) == {("open", S), ("manifest_altered", shown)}

    head_path.write_bytes(b"\x00not json")
    assert ("manifest_altered", shown) in _kinds(verify_path(open_session, ring))

    head_path.write_text(json.dumps(sign_manifest(Keyring.generate(dev=False), json.loads(original)["manifest"])))
    assert ("bad_signature", shown) in _kinds(verify_path(open_session, ring))

    other = build_session(tmp_path / "rec", ring, sample_media(), "phien-2", close=False)
    shutil.copy(other / SESSION_HEAD_NAME, head_path)  # signed, but another session's
    foreign = verify_path(open_session, ring)
    assert ("manifest_altered", shown) in _kinds(foreign)
    assert "copied from elsewhere" in next(f.detail for f in foreign.findings if f.path == shown)

    head_path.unlink()
    report = verify_path(open_session, ring)
    assert _kinds(report) == {("open", S), ("manifest_removed", shown)} and not report.ok


def test_a_head_one_behind_is_a_crash_more_is_an_older_head_put_back(open_session: Path, ring: Keyring) -> None:
    head_path = open_session / SESSION_HEAD_NAME
    b1 = list_manifests(open_session)[1]
    after_b1 = {"format": 1, "kind": "session_head", "session": S, "seq": 2, "name": "b1",
                "path": "manifests/00002-b1.json", "sha256": b1.sha256, "entry_hash": "", "written_at": EPOCH}
    head_path.write_text(json.dumps(sign_manifest(ring, after_b1)))
    assert verify_path(open_session, ring).ok  # one behind: a crash between the manifest and its head

    add_segment(open_session, ring, sample_media(), "c3-case-3", index=3)
    head_path.write_text(json.dumps(sign_manifest(ring, after_b1)))  # seq 2 while the chain is at 4
    report = verify_path(open_session, ring)
    assert ("chain_broken", f"{S}/{SESSION_HEAD_NAME}") in _kinds(report) and not report.ok


def test_an_older_head_put_back_with_the_newest_manifest_deleted_passes_on_the_disk_alone(
        open_session: Path, ring: Keyring) -> None:
    """The reason for the case store's cross-check (see tests/complaints/test_recording_cross_check.py)."""
    older = list_manifests(open_session)[1]
    head = {"format": 1, "kind": "session_head", "session": S, "seq": 2, "name": "b1",
            "path": "manifests/00002-b1.json", "sha256": older.sha256, "entry_hash": "", "written_at": EPOCH}
    (open_session / "manifests" / "00003-c2-case-2.json").unlink()
    (open_session / SESSION_HEAD_NAME).write_text(json.dumps(sign_manifest(ring, head)))
    assert verify_path(open_session, ring).ok
    disk = recordings_on_disk(open_session, ring)
    assert disk.scope == S and disk.sessions == {S: False}
    assert disk.case_segments == {f"{S}/manifests/00001-c1-case-1.json": "c1-case-1"}
    assert set(disk.segments.values()) == {"c1-case-1", "b1"}


def test_closed_and_expired_sessions_keep_a_head_that_verifies(tmp_path: Path, ring: Keyring) -> None:
    root = tmp_path / "rec"
    session_dir = build_session(root, ring, sample_media(), S)
    assert _head(session_dir)["path"] == "manifests/00004-session.json"
    assert recordings_on_disk(root, ring).sessions == {S: True}
    expire(root, ring, now=EPOCH + 40 * DAY_S, retention_days=30)
    assert str(_head(session_dir)["name"]).startswith("expired-")
    report = verify_path(root, ring)
    assert report.ok and {k for k, _ in _kinds(report)} == {"expired"}
