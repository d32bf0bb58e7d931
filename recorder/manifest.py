"""Signed, hash-chained manifests of a recording: one per segment, one per session, one per expiry.

Theory of operation
-------------------
Each session directory holds its own chain in ``<session>/manifests/``: ``<seq:05d>-<name>.json``,
``seq`` counting from 1. A manifest is a JSON document signed with the keyring's active signing key
(``evidence.sign_manifest``: the envelope records the ``kid``; retired public keys are kept, so a
manifest verifies after any number of ``tiepdan keys rotate``). Every manifest carries ``prev``, the
*entry hash* of the manifest before it (``GENESIS`` for seq 1), where the entry hash of a manifest is
``evidence.chain_hash(prev, manifest)``: removing, reordering or editing a manifest breaks the chain
after it, and editing one also breaks its signature.

Three kinds of manifest enter a session's chain:

``segment``
    written when the recorder closes a segment: every file (path, SHA-256, size, duration, venue,
    kinds, codecs, t0, encrypted, kid), the speaker timeline, link-loss gaps, the case, whether it is
    confidential, the session epoch and the wall-clock times (the ``SegmentReport``).
``session``
    written when the session closes: the list of every manifest before it with the SHA-256 of its
    bytes, so that removing the newest segment manifest is noticed too. Session manifests of all
    sessions under one root also form a chain of their own (``previous_session`` names the session
    manifest written before it, anywhere under the root), whose newest link is recorded, signed, in
    ``<root>/sessions-head.json``: removing a whole session's manifests, or the newest session
    manifest, is noticed when the root is verified.
``tombstone``
    written by retention (``recorder.retention``) *before* it deletes a segment's media: the deleted
    files with their hashes, who deleted them, when and why. Verification then reports those files as
    ``expired`` (informational) instead of ``removed``.

The chain is per session rather than root-wide because sessions record at the same time (one room
each) and a root-wide chain would serialise every segment close of every room on one lock; the
session-manifest chain ties the sessions together at the one moment that is rare (a session close).

Every append also replaces the session's signed *head* (``<session>/chain-head.json``): the seq, file
name and SHA-256 of the newest manifest of the chain. While a session is open no session manifest lists
its manifests yet, so deleting the newest segment manifest would leave a whole chain behind; the head
names it. A crash between a manifest and its head leaves the head one manifest behind, which verification
accepts; an older head put back together with the deletion is caught only outside the volume (``tiepdan
verify`` cross-checks the case store's ``recording_segments``, which recorded each case segment's manifest).

Writes are atomic and never overwrite: the document is written to a temporary file in the same
directory, fsynced, hard-linked to its final name (which fails if the name exists), and the
directory is fsynced. Appends to one chain are serialised by an exclusive ``flock`` on
``manifests/.lock`` (the recorder's thread and a ``tiepdan recordings expire`` run may meet there),
session closes under one root by one on ``<root>/.sessions.lock``.

Blocking I/O throughout: call these functions from a thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from evidence import GENESIS, Keyring, ManifestInvalid, chain_hash, sign_manifest, verify_manifest

from .errors import RecorderError, UnknownSegment
from .model import ManifestRef, SegmentReport

__all__ = [
    "FORMAT",
    "HEAD_NAME",
    "SESSION_HEAD_NAME",
    "ManifestError",
    "ManifestKind",
    "StoredManifest",
    "entry_hash",
    "list_manifests",
    "list_segments",
    "load_segment",
    "check_file_path",
    "read_manifest",
    "validate_name",
    "write_segment_manifest",
    "write_session_manifest",
    "write_tombstone",
]

FORMAT = 1
HEAD_NAME = "sessions-head.json"
#: The signed head of one session's chain, in the session's directory (beside ``manifests/``).
SESSION_HEAD_NAME = "chain-head.json"
MANIFESTS = "manifests"
MEDIA = "media"
ManifestKind = Literal["segment", "session", "tombstone"]

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_FILE_RE = re.compile(r"^(\d{5})-([A-Za-z0-9._-]{1,90})\.json$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_RESERVED = {"session", ".", ".."}

log = logging.getLogger("recorder.manifest")


class ManifestError(RecorderError):
    """A manifest cannot be written as asked (bad ids, paths or sizes), or cannot be read."""


def validate_name(value: str, what: str) -> str:
    """A session or segment id: ``[A-Za-z0-9._-]``, 1 to 80 characters, not reserved."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in _RESERVED or value.startswith("."):
        raise ManifestError(f"{what} id {value!r} is not allowed (use A-Z a-z 0-9 . _ -, at most 80 characters)")
    return value


def entry_hash(manifest: Mapping[str, Any]) -> str:
    """The hash the next manifest of the chain records as its ``prev``."""
    return chain_hash(str(manifest.get("prev", "")), manifest)


@dataclass(frozen=True)
class StoredManifest:
    """A manifest file as found on disk; ``signature_ok`` False when it did not verify (or was not checked)."""

    path: Path
    seq: int
    name: str
    raw: bytes
    envelope: Mapping[str, Any]
    manifest: Mapping[str, Any]
    signature_ok: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    def ref(self) -> ManifestRef:
        session_dir = self.path.parent.parent
        return ManifestRef(
            path=f"{session_dir.name}/{MANIFESTS}/{self.path.name}", sha256=self.sha256, seq=self.seq,
            prev=str(self.manifest.get("prev", "")), kid=str(self.envelope.get("kid", "")),
        )


def read_manifest(path: Path, keyring: Keyring | None) -> StoredManifest:
    """Parse a manifest file; with a keyring its signature is checked (``signature_ok``).

    Raises :class:`ManifestError` when the file name or the JSON is malformed (nothing to trust).
    """
    match = _FILE_RE.match(path.name)
    if match is None:
        raise ManifestError(f"{path.name!r} is not a manifest file name")
    try:
        raw = path.read_bytes()
        envelope = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path.name} cannot be read as JSON: {exc}") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("manifest"), dict):
        raise ManifestError(f"{path.name} is not a signed manifest")
    manifest: Mapping[str, Any] = envelope["manifest"]
    ok = False
    if keyring is not None:
        try:
            verify_manifest(keyring, envelope)
            ok = True
        except ManifestInvalid:
            ok = False
    return StoredManifest(path, int(match.group(1)), match.group(2), raw, envelope, manifest, ok)


def list_manifests(session_dir: Path, keyring: Keyring | None = None) -> list[StoredManifest]:
    """Every readable manifest of the session in seq order (unreadable files are skipped; verify names them)."""
    folder = session_dir / MANIFESTS
    if not folder.is_dir():
        return []
    found: list[StoredManifest] = []
    for path in folder.iterdir():
        if _FILE_RE.match(path.name) and path.is_file():
            try:
                found.append(read_manifest(path, keyring))
            except ManifestError:
                continue
    found.sort(key=lambda m: (m.seq, m.name))
    return found


# -- writing ----------------------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; refuses to replace an existing file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, replacing it (the root's head pointer)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _encode(envelope: Mapping[str, Any]) -> bytes:
    return (json.dumps(envelope, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _append(session_dir: Path, keyring: Keyring, name: str, body: dict[str, Any]) -> StoredManifest:
    """Append one manifest to the session's chain (under its lock) and return it as written."""
    folder = session_dir / MANIFESTS
    with _locked(folder / ".lock"):
        existing = list_manifests(session_dir)
        last = existing[-1] if existing else None
        seq = last.seq + 1 if last else 1
        manifest = {
            "format": FORMAT, "session": session_dir.name, "seq": seq,
            "prev": entry_hash(last.manifest) if last else GENESIS, "written_at": time.time(), **body,
        }
        envelope = sign_manifest(keyring, manifest)
        raw = _encode(envelope)
        path = folder / f"{seq:05d}-{name}.json"
        _write_new(path, raw)
        stored = StoredManifest(path, seq, name, raw, envelope, manifest, True)
        _write_session_head(session_dir, keyring, stored)
    return stored


def _write_session_head(session_dir: Path, keyring: Keyring, newest: StoredManifest) -> None:
    """Point the session's signed head at ``newest`` (under the chain's lock). A failure is logged, not
    raised: the manifest is written, and a head one manifest behind is what a crash leaves too."""
    head = {"format": FORMAT, "kind": "session_head", "session": session_dir.name, "seq": newest.seq,
            "name": newest.name, "path": f"{MANIFESTS}/{newest.path.name}", "sha256": newest.sha256,
            "entry_hash": entry_hash(newest.manifest), "written_at": time.time()}
    try:
        _replace(session_dir / SESSION_HEAD_NAME, _encode(sign_manifest(keyring, head)))
    except OSError:
        log.exception("the head of session %s not moved to manifest %d", session_dir.name, newest.seq)


def check_file_path(session_dir: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts[0] != MEDIA or len(pure.parts) < 3:
        raise ManifestError(f"file path {rel!r} is not under media/<segment>/ of the session")
    for part in pure.parts:
        if not _NAME_RE.match(part):
            raise ManifestError(f"file path {rel!r} has a part outside the safe characters")
    return session_dir.joinpath(*pure.parts)


def write_segment_manifest(session_dir: Path, report: SegmentReport, keyring: Keyring) -> ManifestRef:
    """Write the signed manifest of a closed segment at the end of the session's chain.

    The report's files must exist under ``media/`` with the size the report says (their SHA-256 is
    taken from the report: the recorder hashed them). Raises :class:`ManifestError` otherwise.
    """
    validate_name(report.session, "session")
    validate_name(report.segment, "segment")
    if report.session != session_dir.name:
        raise ManifestError(f"the report is of session {report.session!r}, the directory of {session_dir.name!r}")
    seen: set[str] = set()
    for item in report.files:
        path = check_file_path(session_dir, item.path)
        if item.path in seen:
            raise ManifestError(f"file {item.path} is listed twice")
        seen.add(item.path)
        if not _SHA_RE.match(item.sha256):
            raise ManifestError(f"file {item.path} has no valid SHA-256")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ManifestError(f"file {item.path} does not exist") from None
        if size != item.size:
            raise ManifestError(f"file {item.path} has {size} bytes, the report says {item.size}")
        if item.encrypted != item.path.endswith(".enc") or (item.encrypted and not item.kid):
            raise ManifestError(f"file {item.path}: encrypted files end in .enc and name their key")
    stored = _append(session_dir, keyring, report.segment, {"kind": "segment", "report": report.to_json()})
    return stored.ref()


def write_session_manifest(session_dir: Path, keyring: Keyring, *, session: str, closed_at: float) -> ManifestRef:
    """Close the session's chain: a manifest listing every manifest before it with its SHA-256, linked
    to the newest session manifest under the root (the root's head pointer is then moved to it)."""
    validate_name(session, "session")
    if session != session_dir.name:
        raise ManifestError(f"session {session!r} does not match the directory {session_dir.name!r}")
    root = session_dir.parent
    with _locked(root / ".sessions.lock"):
        previous = _read_head(root, keyring)
        listed = [
            {"seq": m.seq, "path": f"{MANIFESTS}/{m.path.name}", "sha256": m.sha256, "kind": m.kind}
            for m in list_manifests(session_dir)
        ]
        body = {"kind": "session", "closed_at": closed_at, "manifests": listed, "previous_session": previous}
        stored = _append(session_dir, keyring, "session", body)
        ref = stored.ref()
        head = {"format": FORMAT, "kind": "head", "path": ref.path, "sha256": ref.sha256, "written_at": time.time()}
        _replace(root / HEAD_NAME, _encode(sign_manifest(keyring, head)))
    return ref


def _read_head(root: Path, keyring: Keyring) -> dict[str, str] | None:
    """The root's newest session manifest; a head that does not verify is recorded as such (closing a
    session never fails on it: ``verify`` of the root names the problem)."""
    path = root / HEAD_NAME
    if not path.exists():
        return None
    try:
        head = verify_manifest(keyring, json.loads(path.read_bytes()))
        return {"path": str(head["path"]), "sha256": str(head["sha256"])}
    except (OSError, ValueError, KeyError, ManifestInvalid) as exc:
        return {"path": "", "sha256": "", "problem": f"{HEAD_NAME} did not verify: {exc}"}


def write_tombstone(
    session_dir: Path, keyring: Keyring, *, segment_manifest: StoredManifest, expired: Sequence[Mapping[str, Any]],
    by: str, reason: str, retention_days: int | None, expired_at: float,
) -> ManifestRef:
    """Record, before they are deleted, that a segment's media files expire (``expired``: path/sha256/size)."""
    segment = str(segment_manifest.manifest.get("report", {}).get("segment", ""))
    body = {
        "kind": "tombstone", "segment": segment,
        "manifest": {"seq": segment_manifest.seq, "path": f"{MANIFESTS}/{segment_manifest.path.name}",
                     "sha256": segment_manifest.sha256},
        "expired": [dict(item) for item in expired], "by": by, "reason": reason,
        "retention_days": retention_days, "expired_at": expired_at,
    }
    return _append(session_dir, keyring, f"expired-{validate_name(segment, 'segment')}", body).ref()


# -- reading ----------------------------------------------------------------------------------------------


def load_segment(session_dir: Path, segment: str, keyring: Keyring) -> SegmentReport:
    """The report of a segment from its manifest, whose signature must verify.

    Raises :class:`UnknownSegment` when the session has no manifest of that segment and
    :class:`ManifestError` when it does not verify or is malformed.
    """
    validate_name(segment, "segment")
    candidates = [m for m in list_manifests(session_dir) if m.kind == "segment" and m.name == segment]
    if not candidates:
        raise UnknownSegment(f"session {session_dir.name} has no manifest of segment {segment}")
    chosen = read_manifest(candidates[-1].path, keyring)
    if not chosen.signature_ok:
        raise ManifestError(f"the manifest of segment {segment} does not verify (altered, or an unknown key)")
    return _report_of(chosen)


def _report_of(stored: StoredManifest) -> SegmentReport:
    try:
        return SegmentReport.from_json(stored.manifest["report"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{stored.path.name} does not hold a valid segment report") from exc


def list_segments(session_dir: Path) -> list[tuple[ManifestRef, SegmentReport]]:
    """The segments of a session in chain order, from their manifests, *without* checking signatures
    (listing only; :func:`recorder.verify.verify_path` and :func:`load_segment` check them)."""
    result: list[tuple[ManifestRef, SegmentReport]] = []
    for stored in list_manifests(session_dir):
        if stored.kind == "segment":
            try:
                result.append((stored.ref(), _report_of(stored)))
            except ManifestError:
                continue
    return result
