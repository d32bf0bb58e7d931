"""``tiepdan verify PATH`` and ``tiepdan recordings expire``: check and expire recordings from the shell.

Output follows the other commands: Vietnamese for the operator, with each finding's stable English code
in brackets (for scripts) and its path relative to the recordings root. Exit codes of ``verify``:
0 nothing wrong (informational findings only), 1 findings, 2 the path, the keyring or a configured database
cannot be used.

``verify`` also cross-checks the case store when the server's database is there (``TIEPDAN_DATABASE_URL``,
or the embedded SQLite file of ``TIEPDAN_DATA_DIR``; ``--no-database`` skips it): which segment manifests
the database recorded and the disk lacks (``db_only``), and the reverse (``disk_only``)
(:func:`complaints.recordings.cross_check_recordings`). Without it an older signed session head put back
after the newest manifests were deleted cannot be told from an intact chain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evidence import Keyring, KeyringError

from .settings import Settings

if TYPE_CHECKING:
    from recorder.verify import DiskRecordings

__all__ = ["add_recorder_commands"]

_LABELS = {
    "altered": "tệp ghi hình bị sửa",
    "truncated": "tệp ghi hình bị cắt ngắn",
    "added": "tệp lạ, không có trong biên bản ghi hình",
    "removed": "tệp ghi hình bị xóa",
    "manifest_altered": "biên bản ghi hình bị sửa",
    "manifest_removed": "biên bản ghi hình bị xóa",
    "chain_broken": "chuỗi băm bị đứt",
    "bad_signature": "biên bản ký bằng khóa không có trong kho khóa",
    "expired": "đã hết thời hạn lưu, đã xóa theo quy định",
    "open": "phiên chưa đóng (đang ghi hình hoặc chưa kết thúc)",
    "pending": "đang ghi, chưa vào biên bản ghi hình",
    "db_only": "cơ sở dữ liệu có, ổ lưu trữ không có",
    "disk_only": "ổ lưu trữ có, cơ sở dữ liệu không có",
    "db_pending": "cơ sở dữ liệu chưa ghi nhận xong đoạn ghi hình",
}


class _Shown(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def informational(self) -> bool: ...


def _load_keyring(settings: Settings) -> Keyring:
    """The existing keyring (never a new one: a fresh key verifies nothing)."""
    return Keyring.load(settings.resolved_keyring_path, passphrase=settings.keyring_passphrase)


async def _cross_check(settings: Settings, disk: DiskRecordings) -> tuple[Sequence[_Shown] | None, str]:
    """The case store's differences with the volume, or None (and why) when there is no database to ask.
    A database configured by URL that cannot be reached raises :class:`DatabaseMissing`."""
    from complaints.recordings import cross_check_recordings

    from .cli_database import DatabaseMissing, database_location, open_server_database

    try:
        engine = await open_server_database(settings)
    except DatabaseMissing:
        if settings.database_url:
            raise
        return None, f"không có cơ sở dữ liệu của máy chủ tại {database_location(settings)}"
    try:
        async with engine.connect() as conn:
            found = await cross_check_recordings(conn, scope=disk.scope, sessions=disk.sessions,
                                                 manifests=disk.manifests, segments=disk.segments,
                                                 case_segments=disk.case_segments, only=disk.only)
    finally:
        await engine.dispose()
    return found, database_location(settings)


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from recorder.verify import VerifyError, recordings_on_disk, verify_path

    from .cli_database import DatabaseMissing

    target = Path(args.path) if args.path else settings.recorder_options.root
    try:
        ring = _load_keyring(settings)
        report = verify_path(target, ring)
        disk = None if args.no_database else recordings_on_disk(target, ring)
    except (KeyringError, VerifyError, OSError) as exc:
        print(f"tiepdan verify: không kiểm tra được: {exc}", file=sys.stderr)
        return 2
    findings: list[_Shown] = list(report.findings)
    if disk is None:
        note = "không đối chiếu với cơ sở dữ liệu (--no-database)"
    else:
        try:
            mismatches, where = asyncio.run(_cross_check(settings, disk))
        except DatabaseMissing as exc:
            print(f"tiepdan verify: không đối chiếu được với cơ sở dữ liệu: {exc} (bỏ qua bằng --no-database)",
                  file=sys.stderr)
            return 2
        if mismatches is None:
            note = f"không đối chiếu với cơ sở dữ liệu: {where}"
        else:
            findings += mismatches
            note = f"đã đối chiếu với cơ sở dữ liệu {where}"
    for finding in findings:
        label = _LABELS.get(finding.kind, finding.kind)
        out = sys.stdout if finding.informational else sys.stderr
        print(f"{label} [{finding.kind}]: {finding.path} ({finding.detail})", file=out)
    problems = sum(1 for f in findings if not f.informational)
    summary = (f"đã kiểm tra {report.sessions} phiên, {report.manifests} biên bản ghi hình, "
               f"{report.files} tệp ghi hình; {note}")
    if not problems:
        print(f"{summary}: toàn vẹn, chữ ký và mã băm khớp")
        return 0
    print(f"{summary}: phát hiện {problems} sai lệch", file=sys.stderr)
    return 1


def _cmd_recordings(args: argparse.Namespace, settings: Settings) -> int:
    from recorder.retention import expire

    days = args.days if args.days is not None else settings.recorder_options.retention_days
    if days is None:
        print("tiepdan recordings expire: chưa đặt thời hạn lưu (TIEPDAN_RECORDING_RETENTION_DAYS hoặc --days)",
              file=sys.stderr)
        return 2
    if days < 1:
        print("tiepdan recordings expire: thời hạn lưu phải từ 1 ngày trở lên", file=sys.stderr)
        return 2
    try:
        ring = _load_keyring(settings)
        done = expire(settings.recorder_options.root, ring, now=time.time(), retention_days=days,
                      by=args.by, dry_run=args.dry_run)
    except (KeyringError, OSError) as exc:
        print(f"tiepdan recordings expire: lỗi: {exc}", file=sys.stderr)
        return 2
    verb = "sẽ xóa" if args.dry_run else "đã xóa"
    for item in done:
        kind = " (mật)" if item.confidential else ""
        print(f"{item.session}/{item.segment}{kind}: {verb} {len(item.deleted)} tệp ghi hình")
        for rel in item.kept_altered:
            print(f"{item.session}/{rel}: giữ lại, tệp không khớp biên bản ghi hình (chạy tiepdan verify)",
                  file=sys.stderr)
    print(f"{len(done)} đoạn ghi hình quá thời hạn lưu {days} ngày" + (" (chạy thử, chưa xóa gì)" if args.dry_run
                                                                      else ""))
    return 0


def add_recorder_commands(sub: Any) -> None:
    """Register ``verify`` and ``recordings`` on the ``tiepdan`` parser's subcommands."""
    verify = sub.add_parser(
        "verify", help="Check recordings against their signed, hash-chained manifests and name every altered, "
        "truncated, added or removed file and manifest (exit 0 intact, 1 findings, 2 error).")
    verify.add_argument("path", nargs="?", help="a recordings root, a session directory or one manifest file "
                        "(default: TIEPDAN_RECORDING_DIR)")
    verify.add_argument("--no-database", action="store_true",
                        help="do not cross-check the case store's recording segments (e.g. on a copy of the volume)")
    verify.set_defaults(func=_cmd_verify)

    recordings = sub.add_parser("recordings", help="Maintain the recordings volume.")
    recordings_sub = recordings.add_subparsers(dest="recordings_command", required=True)
    expire = recordings_sub.add_parser(
        "expire", help="Delete media older than the retention period, leaving a signed tombstone in each "
        "session's manifest chain.")
    expire.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    expire.add_argument("--days", type=int, help="retention in days (default: TIEPDAN_RECORDING_RETENTION_DAYS)")
    expire.add_argument("--by", default="tiepdan recordings expire", help="who expires (recorded in the tombstone)")
    recordings.set_defaults(func=_cmd_recordings)
