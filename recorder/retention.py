"""Retention: recorded media older than the retention period is deleted, leaving a signed tombstone.

A segment expires when ``closed_at + retention_days`` has passed (confidential segments alike). For
each expiring segment a tombstone manifest is appended to its session's chain *first* (the files with
their recorded SHA-256 and size, who, when, why), then the files are deleted: a crash between the
two leaves files that ``verify`` reports as expired-but-present and the next run deletes them, never
files that vanished without a record. A file whose bytes no longer match its manifest is *not*
deleted, and a file already missing is *not* tombstoned (either would launder tampering): ``verify``
keeps naming them.

Manifests are never deleted: the chain, the speaker timeline and the hashes stay as the record that
the media existed. Blocking I/O: call from a thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evidence import Keyring, sha256_file

from .manifest import MANIFESTS, MEDIA, ManifestError, StoredManifest, check_file_path, list_manifests, write_tombstone
from .model import ManifestRef, SegmentReport

__all__ = ["Tombstone", "expire", "DAY_S"]

DAY_S = 86400.0


@dataclass(frozen=True)
class Tombstone:
    """One expired segment: the files deleted (or, in a dry run, that would be), and those kept because
    their bytes no longer match the manifest. ``ref`` is None in a dry run or when only leftovers of an
    earlier run were deleted."""

    session: str
    segment: str
    case: str | None
    confidential: bool
    closed_at: float
    deleted: tuple[str, ...]
    kept_altered: tuple[str, ...]
    ref: ManifestRef | None


def _session_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / MANIFESTS).is_dir())


def _remove_empty_dirs(session_dir: Path, segment: str) -> None:
    folder = session_dir / MEDIA / segment
    try:
        folder.rmdir()
    except OSError:
        return  # not empty (a file kept), or already gone
    fd = os.open(session_dir / MEDIA, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def expire(
    root: Path, keyring: Keyring, *, now: float, retention_days: int, by: str = "tiepdan recordings expire",
    dry_run: bool = False,
) -> list[Tombstone]:
    """Delete the media of every segment closed more than ``retention_days`` before ``now``.

    Returns one :class:`Tombstone` per segment acted on (or, with ``dry_run``, that would be).
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = now - retention_days * DAY_S
    reason = f"retention period of {retention_days} days elapsed"
    results: list[Tombstone] = []
    for session_dir in _session_dirs(root):
        manifests = list_manifests(session_dir, keyring)
        tombstoned = {
            str(m.manifest.get("segment")): m for m in manifests if m.kind == "tombstone" and m.signature_ok
        }
        for stored in manifests:
            if stored.kind != "segment" or not stored.signature_ok:
                continue
            try:
                report = SegmentReport.from_json(stored.manifest["report"])
            except (KeyError, TypeError, ValueError):
                continue
            if report.closed_at > cutoff:
                continue
            done = tombstoned.get(report.segment)
            result = _expire_segment(session_dir, keyring, stored, report, done, by=by, reason=reason,
                                     retention_days=retention_days, now=now, dry_run=dry_run)
            if result is not None:
                results.append(result)
    return results


def _expire_segment(
    session_dir: Path, keyring: Keyring, stored: StoredManifest, report: SegmentReport,
    done: StoredManifest | None, *, by: str, reason: str, retention_days: int, now: float, dry_run: bool,
) -> Tombstone | None:
    present: list[str] = []
    altered: list[str] = []
    for item in report.files:
        try:
            path = check_file_path(session_dir, item.path)
        except ManifestError:
            continue
        if not path.is_file():
            continue
        if path.stat().st_size == item.size and sha256_file(path) == item.sha256:
            present.append(item.path)
        else:
            altered.append(item.path)
    if done is not None:
        listed = {str(e.get("path")) for e in done.manifest.get("expired", []) if isinstance(e, dict)}
        present = [p for p in present if p in listed]
        if not present:
            return None
    elif not present and not altered:
        return None
    ref: ManifestRef | None = None
    if not dry_run:
        if done is None and present:
            by_path = {f.path: f for f in report.files}
            expired = [{"path": p, "sha256": by_path[p].sha256, "size": by_path[p].size} for p in present]
            ref = write_tombstone(session_dir, keyring, segment_manifest=stored, expired=expired, by=by,
                                  reason=reason, retention_days=retention_days, expired_at=now)
        for rel in present:
            (session_dir / rel).unlink(missing_ok=True)
        _remove_empty_dirs(session_dir, report.segment)
    return Tombstone(session=report.session, segment=report.segment, case=report.case,
                     confidential=report.confidential, closed_at=report.closed_at, deleted=tuple(present),
                     kept_altered=tuple(altered), ref=ref)
