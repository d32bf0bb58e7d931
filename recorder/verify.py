"""``tiepdan verify``: check recordings against their signed, hash-chained manifests and name every problem.

:func:`verify_path` takes a recordings root, one session directory, or one manifest file, and returns a
:class:`VerifyReport` whose findings name each file or manifest by its path relative to the recordings
root (``<session>/media/<segment>/<venue>-<n>.webm``):

``altered``           a media file's bytes differ from its manifest (same size, other SHA-256, or longer)
``truncated``         a media file is shorter than its manifest says (for an encrypted file the detail
                      says whether its final chunk is missing)
``added``             a file under ``media/`` (or ``manifests/``) that no manifest lists, in a closed session
``removed``           a file a manifest lists is missing (and no tombstone says it expired)
``manifest_altered``  a manifest whose signature fails, that is unreadable, renamed, or whose bytes differ
                      from what the session manifest (or the root's head) recorded
``manifest_removed``  a hole in a session's chain (missing seq), or a manifest that a session manifest or
                      the root's head names and that is missing
``chain_broken``      a manifest whose ``prev`` is not the hash of the manifest before it
``bad_signature``     a manifest signed by a key this keyring does not hold

A session's signed head (``<session>/chain-head.json``, :mod:`recorder.manifest`) names the newest manifest
of its chain: that manifest missing is ``manifest_removed`` by name (the newest segment manifest of a session
still recording, which nothing else lists yet), the head itself missing or not verifying is
``manifest_removed`` / ``manifest_altered``, and a head more than one manifest behind the chain (an older
head put back) is ``chain_broken``.

Informational findings (``ok`` stays True): ``expired`` (media deleted by retention, tombstoned),
``open`` (a session with no session manifest yet: still recording, or never closed) and ``pending``
(a file of an open session that no manifest lists yet: it is being recorded).

The disk cannot tell an older head put back together with the deletion of the manifests after it: the
case store can (``recording_segments`` recorded each case segment's manifest path and SHA-256). This module
does not read the database; :func:`recordings_on_disk` lists what a cross-check needs, and the cross-check
(``complaints.recordings.cross_check_recordings``) adds ``db_only`` (the case store knows a segment manifest
the disk lacks), ``disk_only`` (the reverse) and the informational ``db_pending`` (a close not recorded yet).

Synchronous and blocking (it hashes every file): call it from a thread in an event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evidence import GENESIS, Keyring, ManifestInvalid, inspect_stream, sha256_file, verify_manifest
from evidence.errors import DecryptionFailed

from .errors import RecorderError
from .manifest import (
    HEAD_NAME,
    MANIFESTS,
    MEDIA,
    SESSION_HEAD_NAME,
    ManifestError,
    StoredManifest,
    check_file_path,
    entry_hash,
    read_manifest,
)

__all__ = ["DiskRecordings", "Finding", "FindingKind", "INFORMATIONAL", "VerifyError", "VerifyReport",
           "recordings_on_disk", "verify_path"]

FindingKind = Literal[
    "altered", "truncated", "added", "removed", "manifest_altered", "manifest_removed", "chain_broken",
    "bad_signature", "expired", "open", "pending", "db_only", "disk_only", "db_pending",
]
INFORMATIONAL: frozenset[str] = frozenset({"expired", "open", "pending", "db_pending"})


class VerifyError(RecorderError):
    """The path cannot be verified at all (it does not exist, or is neither a root, a session nor a manifest)."""


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    path: str
    detail: str

    @property
    def informational(self) -> bool:
        return self.kind in INFORMATIONAL


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` is True when every finding is informational."""

    ok: bool
    findings: tuple[Finding, ...]
    sessions: int = 0
    manifests: int = 0
    files: int = 0
    open_sessions: tuple[str, ...] = field(default=())


class _Findings:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Finding] = {}

    def add(self, kind: FindingKind, path: str, detail: str) -> None:
        self.items.setdefault((kind, path), Finding(kind, path, detail))


@dataclass
class _SessionResult:
    manifests: int = 0
    files: int = 0
    open: bool = False
    session_manifests: list[StoredManifest] = field(default_factory=list)
    relevant: dict[str, set[str]] = field(default_factory=dict)


def _signature_kind(stored: StoredManifest, keyring: Keyring) -> FindingKind:
    kid = stored.envelope.get("kid")
    known = {k.kid for k in keyring.signing_keys()}
    return "manifest_altered" if kid in known else "bad_signature"


def _files_of(stored: StoredManifest) -> list[Mapping[str, Any]]:
    report = stored.manifest.get("report")
    files = report.get("files") if isinstance(report, Mapping) else None
    return [f for f in files if isinstance(f, Mapping)] if isinstance(files, list) else []


def _check_media(session_dir: Path, rel: str, spec: Mapping[str, Any], found: _Findings, name: str) -> None:
    path = session_dir / rel
    try:
        expected_size, expected_sha = int(spec["size"]), str(spec["sha256"])
    except (KeyError, TypeError, ValueError):
        found.add("manifest_altered", name, f"lists {rel} without a valid size and SHA-256")
        return
    shown = f"{session_dir.name}/{rel}"
    if not path.is_file():
        found.add("removed", shown, "listed in the manifest, missing on disk")
        return
    size = path.stat().st_size
    if size < expected_size:
        detail = f"{size} bytes of {expected_size}"
        if spec.get("encrypted"):
            try:
                info = inspect_stream(path)
                if not info.complete:
                    detail += "; the encrypted stream's final chunk is missing"
            except (DecryptionFailed, OSError):
                detail += "; not a valid encrypted stream"
        found.add("truncated", shown, detail)
    elif size > expected_size:
        found.add("altered", shown, f"{size - expected_size} bytes longer than recorded")
    elif sha256_file(path) != expected_sha:
        found.add("altered", shown, "content differs from the recorded SHA-256")


def _media_files(session_dir: Path) -> list[str]:
    media = session_dir / MEDIA
    result: list[str] = []
    for dirpath, dirnames, filenames in os.walk(media, followlinks=False):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            result.append((base / name).relative_to(session_dir).as_posix())
    return sorted(result)


def _verify_session(session_dir: Path, keyring: Keyring, found: _Findings) -> _SessionResult:
    result = _SessionResult()
    prefix = session_dir.name
    folder = session_dir / MANIFESTS
    stored: list[StoredManifest] = []
    unreadable: set[int] = set()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            shown = f"{prefix}/{MANIFESTS}/{path.name}"
            if path.name == ".lock" or (path.name.startswith(".") and path.name.endswith(".tmp")):
                continue  # the chain's lock file, and temporary files of an interrupted atomic write
            try:
                manifest = read_manifest(path, keyring)
            except ManifestError as exc:
                if path.name[:5].isdigit() and path.name.endswith(".json"):
                    unreadable.add(int(path.name[:5]))
                    found.add("manifest_altered", shown, str(exc))
                else:
                    found.add("added", shown, "not a manifest; no manifest lists it")
                continue
            result.relevant[shown] = {shown}
            if not manifest.signature_ok:
                kind = _signature_kind(manifest, keyring)
                detail = ("the signature does not verify: the manifest was changed" if kind == "manifest_altered"
                          else f"signed with key {manifest.envelope.get('kid')!r}, which this keyring lacks")
                found.add(kind, shown, detail)
            elif manifest.manifest.get("seq") != manifest.seq or manifest.manifest.get("session") != prefix:
                found.add("manifest_altered", shown, "its name or directory does not match its signed content")
            stored.append(manifest)
    result.manifests = len(stored) + len(unreadable)
    by_seq: dict[int, StoredManifest] = {}
    for manifest in stored:
        if manifest.seq in by_seq:
            found.add("chain_broken", f"{prefix}/{MANIFESTS}/{manifest.path.name}",
                      f"a second manifest with seq {manifest.seq}")
            continue
        by_seq[manifest.seq] = manifest

    trusted = [m for m in by_seq.values() if m.signature_ok]
    listed_names: dict[int, str] = {}
    for manifest in trusted:
        if manifest.kind == "session":
            for entry in manifest.manifest.get("manifests", []):
                if isinstance(entry, Mapping) and isinstance(entry.get("seq"), int):
                    listed_names[entry["seq"]] = str(entry.get("path", ""))

    # The chain: every seq from 1 to the last, each prev the entry hash of the one before.
    last_seq = max([*by_seq, *unreadable], default=0)
    previous: StoredManifest | None = None
    previous_seq = 0
    for seq in range(1, last_seq + 1):
        if seq in unreadable and seq not in by_seq:
            previous, previous_seq = None, seq
            continue
        current = by_seq.get(seq)
        if current is None:
            name = listed_names.get(seq) or f"{MANIFESTS}/{seq:05d}-*.json"
            found.add("manifest_removed", f"{prefix}/{name}", f"seq {seq} of the chain is missing")
            continue
        shown = f"{prefix}/{MANIFESTS}/{current.path.name}"
        prev = current.manifest.get("prev")
        if seq == 1:
            if prev != GENESIS:
                found.add("chain_broken", shown, "the first manifest does not start the chain")
        elif previous is not None and previous_seq == seq - 1 and previous.signature_ok and current.signature_ok:
            if prev != entry_hash(previous.manifest):
                found.add("chain_broken", shown, f"prev is not the hash of manifest {previous.seq}")
        previous, previous_seq = current, seq

    # Session manifests list every manifest before them with the hash of its bytes.
    for manifest in trusted:
        if manifest.kind != "session":
            continue
        result.session_manifests.append(manifest)
        shown_self = f"{prefix}/{MANIFESTS}/{manifest.path.name}"
        for entry in manifest.manifest.get("manifests", []):
            if not isinstance(entry, Mapping):
                continue
            rel = str(entry.get("path", ""))
            shown = f"{prefix}/{rel}"
            result.relevant[shown_self].add(shown)
            target = session_dir / rel
            if not rel.startswith(f"{MANIFESTS}/") or "/" in rel[len(MANIFESTS) + 1:]:
                continue
            if not target.is_file():
                found.add("manifest_removed", shown, f"listed by {manifest.path.name}, missing")
            elif hashlib.sha256(target.read_bytes()).hexdigest() != entry.get("sha256"):
                found.add("manifest_altered", shown, f"its bytes differ from what {manifest.path.name} recorded")

    _check_session_head(session_dir, keyring, by_seq, unreadable, last_seq, found)

    # Open or closed: a session is closed when its last manifest (tombstones aside) is a session manifest.
    tail = [m for m in sorted(by_seq.values(), key=lambda m: m.seq) if m.kind != "tombstone"]
    result.open = not tail or tail[-1].kind != "session"
    if result.open:
        found.add("open", prefix, "no session manifest yet: the session is still recording, or was not closed")

    expired: dict[str, Mapping[str, Any]] = {}
    for manifest in trusted:
        if manifest.kind == "tombstone":
            for entry in manifest.manifest.get("expired", []):
                if isinstance(entry, Mapping):
                    expired[str(entry.get("path", ""))] = {**entry, "_by": manifest.manifest.get("by", ""),
                                                           "_at": manifest.manifest.get("expired_at")}

    covered: set[str] = set()
    for manifest in by_seq.values():
        if manifest.kind != "segment":
            continue
        name = f"{prefix}/{MANIFESTS}/{manifest.path.name}"
        for spec in _files_of(manifest):
            rel = str(spec.get("path", ""))
            try:
                check_file_path(session_dir, rel)
            except ManifestError as exc:
                found.add("manifest_altered", name, str(exc))
                continue
            covered.add(rel)
            shown = f"{prefix}/{rel}"
            result.relevant[name].add(shown)
            result.files += 1
            if rel in expired:
                entry = expired[rel]
                still = " (the file is still on disk)" if (session_dir / rel).exists() else ""
                found.add("expired", shown, f"deleted by retention ({entry['_by']}){still}")
                continue
            _check_media(session_dir, rel, spec, found, name)

    for rel in _media_files(session_dir):
        if rel in covered:
            continue
        if result.open:
            found.add("pending", f"{prefix}/{rel}", "no manifest lists it yet (the session is open)")
        else:
            found.add("added", f"{prefix}/{rel}", "no manifest lists it")
    return result


def _check_session_head(session_dir: Path, keyring: Keyring, by_seq: Mapping[int, StoredManifest],
                        unreadable: set[int], last_seq: int, found: _Findings) -> None:
    """The session's signed head against its chain (see the module doc)."""
    prefix = session_dir.name
    shown_head = f"{prefix}/{SESSION_HEAD_NAME}"
    path = session_dir / SESSION_HEAD_NAME
    if not path.exists():
        if by_seq or unreadable:
            found.add("manifest_removed", shown_head,
                      "the session's signed head is missing: its newest manifest cannot be confirmed")
        return
    try:
        envelope = _read_json(path)
        if not isinstance(envelope, dict):
            raise ValueError("not a signed document")
    except (OSError, ValueError) as exc:
        found.add("manifest_altered", shown_head, f"the session's head cannot be read: {exc}")
        return
    try:
        head = verify_manifest(keyring, envelope)
    except ManifestInvalid:
        kid = envelope.get("kid")
        if kid in {k.kid for k in keyring.signing_keys()}:
            found.add("manifest_altered", shown_head, "the signature of the session's head does not verify")
        else:
            found.add("bad_signature", shown_head, f"the session's head is signed with key {kid!r}, "
                      "which this keyring lacks")
        return
    try:
        seq, rel, sha = int(head["seq"]), str(head["path"]), str(head["sha256"])
    except (KeyError, TypeError, ValueError):
        found.add("manifest_altered", shown_head, "the session's head does not name a manifest")
        return
    name = rel[len(MANIFESTS) + 1:]
    if head.get("kind") != "session_head" or head.get("session") != prefix or not rel.startswith(f"{MANIFESTS}/") \
            or "/" in name or not name.startswith(f"{seq:05d}-"):
        found.add("manifest_altered", shown_head, "the session's head is not this session's (copied from elsewhere)")
        return
    shown = f"{prefix}/{rel}"
    current = by_seq.get(seq)
    if current is None:
        if seq not in unreadable:  # an unreadable one is named already
            found.add("manifest_removed", shown, f"the newest manifest of the chain (seq {seq}, named by the "
                      "session's signed head), missing")
    elif current.path.name != name or current.sha256 != sha:
        found.add("manifest_altered", shown, "its bytes differ from what the session's signed head recorded")
    if last_seq > seq + 1:
        found.add("chain_broken", shown_head, f"the head names seq {seq} but the chain goes on to seq {last_seq}: "
                  "an older head was put back")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _verify_root_chain(root: Path, keyring: Keyring, sessions: list[_SessionResult], found: _Findings) -> None:
    """The chain of session manifests across the root, and the signed head naming its newest link."""
    all_session_manifests = [m for s in sessions for m in s.session_manifests]
    referenced: set[str] = set()
    for manifest in all_session_manifests:
        previous = manifest.manifest.get("previous_session")
        if not isinstance(previous, Mapping) or not previous.get("path"):
            continue
        rel = str(previous["path"])
        referenced.add(rel)
        target = root / rel
        if ".." in Path(rel).parts or not target.is_file():
            found.add("manifest_removed", rel, f"the session manifest before {manifest.ref().path}, missing")
        elif hashlib.sha256(target.read_bytes()).hexdigest() != previous.get("sha256"):
            found.add("manifest_altered", rel, f"its bytes differ from what {manifest.ref().path} recorded")
    head_path = root / HEAD_NAME
    if not head_path.exists():
        if all_session_manifests:
            found.add("manifest_removed", HEAD_NAME, "session manifests exist but the root's head is missing")
        return
    try:
        head = verify_manifest(keyring, _read_json(head_path))
        target_rel, target_sha = str(head["path"]), str(head["sha256"])
    except (OSError, ValueError, KeyError, ManifestInvalid) as exc:
        found.add("manifest_altered", HEAD_NAME, f"the root's head does not verify: {exc}")
        return
    target = root / target_rel
    if ".." in Path(target_rel).parts or not target.is_file():
        found.add("manifest_removed", target_rel, "the newest session manifest (named by the root's head) is missing")
        return
    if hashlib.sha256(target.read_bytes()).hexdigest() != target_sha:
        found.add("manifest_altered", target_rel, "its bytes differ from what the root's head recorded")
    newest = [m.ref().path for m in all_session_manifests if m.ref().path not in referenced]
    for rel in newest:
        if rel == target_rel:
            continue
        manifest = next(m for m in all_session_manifests if m.ref().path == rel)
        previous = manifest.manifest.get("previous_session")
        if isinstance(previous, Mapping) and previous.get("path") == target_rel:
            continue  # written just before the head moved (a crash between the two writes)
        found.add("chain_broken", rel, "this session manifest is not on the root's chain of session manifests")


def _is_session_dir(path: Path) -> bool:
    return (path / MANIFESTS).is_dir() or (path / MEDIA).is_dir()


def _report(found: _Findings, **counts: Any) -> VerifyReport:
    findings = tuple(found.items.values())
    return VerifyReport(ok=all(f.informational for f in findings), findings=findings, **counts)


def verify_path(path: Path, keyring: Keyring) -> VerifyReport:
    """Verify a recordings root, one session directory or one manifest file (see the module doc)."""
    if not path.exists():
        raise VerifyError(f"{path} does not exist")
    found = _Findings()
    if path.is_file():
        if path.parent.name != MANIFESTS or path.suffix != ".json":
            raise VerifyError(f"{path} is not a manifest (<session>/manifests/NNNNN-*.json)")
        session_dir = path.parent.parent
        everything = _Findings()
        result = _verify_session(session_dir, keyring, everything)
        shown = f"{session_dir.name}/{MANIFESTS}/{path.name}"
        relevant = result.relevant.get(shown, {shown})
        for finding in everything.items.values():
            if finding.path in relevant:
                found.add(finding.kind, finding.path, finding.detail)
        return _report(found, sessions=1, manifests=1, files=len(relevant) - 1)
    if not path.is_dir():
        raise VerifyError(f"{path} is neither a directory nor a file")
    if _is_session_dir(path):
        result = _verify_session(path, keyring, found)
        return _report(found, sessions=1, manifests=result.manifests, files=result.files,
                       open_sessions=(path.name,) if result.open else ())
    sessions: list[_SessionResult] = []
    opened: list[str] = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and _is_session_dir(child):
            session = _verify_session(child, keyring, found)
            sessions.append(session)
            if session.open:
                opened.append(child.name)
    _verify_root_chain(path, keyring, sessions, found)
    return _report(found, sessions=len(sessions), manifests=sum(s.manifests for s in sessions),
                   files=sum(s.files for s in sessions), open_sessions=tuple(opened))


@dataclass(frozen=True)
class DiskRecordings:
    """What the volume holds, for a cross-check against the case store (paths relative to the root).

    ``scope``: the session verified (None: the whole root); ``only``: the one manifest verified, if any.
    ``sessions``: each session directory in scope → True when its chain is closed (a session manifest).
    ``manifests``: every manifest file in scope → the SHA-256 of its bytes (readable or not).
    ``segments``: every segment manifest whose signature verifies → the segment id; ``case_segments``: those
    of them that are a case's segment (the case store must know them; stretches between cases it never sees).
    """

    scope: str | None
    only: str | None
    sessions: Mapping[str, bool]
    manifests: Mapping[str, str]
    segments: Mapping[str, str]
    case_segments: Mapping[str, str]


def _session_on_disk(session_dir: Path, keyring: Keyring, manifests: dict[str, str], segments: dict[str, str],
                     case_segments: dict[str, str]) -> bool:
    folder = session_dir / MANIFESTS
    kinds: list[tuple[int, str]] = []
    if not folder.is_dir():
        return False
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name[:5].isdigit() or not path.name.endswith(".json"):
            continue
        rel = f"{session_dir.name}/{MANIFESTS}/{path.name}"
        try:
            stored = read_manifest(path, keyring)
        except ManifestError:
            with contextlib.suppress(OSError):
                manifests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            continue
        manifests[rel] = stored.sha256
        if not stored.signature_ok:
            continue
        kinds.append((stored.seq, stored.kind))
        report = stored.manifest.get("report")
        if stored.kind == "segment" and isinstance(report, Mapping):
            segments[rel] = str(report.get("segment", stored.name))
            if report.get("case") is not None:
                case_segments[rel] = segments[rel]
    tail = [kind for _, kind in sorted(kinds) if kind != "tombstone"]
    return bool(tail) and tail[-1] == "session"


def recordings_on_disk(path: Path, keyring: Keyring) -> DiskRecordings:
    """The sessions, manifests and case segments under ``path`` (a root, a session or one manifest, as for
    :func:`verify_path`), for ``complaints.recordings.cross_check_recordings``. Blocking."""
    if not path.exists():
        raise VerifyError(f"{path} does not exist")
    manifests: dict[str, str] = {}
    segments: dict[str, str] = {}
    case_segments: dict[str, str] = {}
    sessions: dict[str, bool] = {}
    only: str | None = None
    if path.is_file():
        if path.parent.name != MANIFESTS or path.suffix != ".json":
            raise VerifyError(f"{path} is not a manifest (<session>/manifests/NNNNN-*.json)")
        session_dir = path.parent.parent
        only = f"{session_dir.name}/{MANIFESTS}/{path.name}"
        dirs = [session_dir]
    elif _is_session_dir(path):
        dirs = [path]
    else:
        dirs = [c for c in sorted(path.iterdir()) if c.is_dir() and not c.name.startswith(".") and _is_session_dir(c)]
    for session_dir in dirs:
        sessions[session_dir.name] = _session_on_disk(session_dir, keyring, manifests, segments, case_segments)
    scope = dirs[0].name if path.is_file() or _is_session_dir(path) else None
    return DiskRecordings(scope=scope, only=only, sessions=sessions, manifests=manifests, segments=segments,
                          case_segments=case_segments)
