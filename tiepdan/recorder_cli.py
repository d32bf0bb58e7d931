"""``tiepdan verify PATH`` and ``tiepdan recordings expire``: check and expire recordings from the shell.

Output follows the other commands: Vietnamese for the operator, with each finding's stable English code
in brackets (for scripts) and its path relative to the recordings root. Exit codes of ``verify``:
0 nothing wrong (informational findings only), 1 findings, 2 the path or the keyring cannot be used.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from evidence import Keyring, KeyringError

from .settings import Settings

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
}


def _load_keyring(settings: Settings) -> Keyring:
    """The existing keyring (never a new one: a fresh key verifies nothing)."""
    return Keyring.load(settings.resolved_keyring_path, passphrase=settings.keyring_passphrase)


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from recorder.verify import VerifyError, verify_path

    target = Path(args.path) if args.path else settings.recorder_options.root
    try:
        ring = _load_keyring(settings)
        report = verify_path(target, ring)
    except (KeyringError, VerifyError, OSError) as exc:
        print(f"tiepdan verify: không kiểm tra được: {exc}", file=sys.stderr)
        return 2
    for finding in report.findings:
        label = _LABELS.get(finding.kind, finding.kind)
        out = sys.stdout if finding.informational else sys.stderr
        print(f"{label} [{finding.kind}]: {finding.path} ({finding.detail})", file=out)
    problems = sum(1 for f in report.findings if not f.informational)
    summary = (f"đã kiểm tra {report.sessions} phiên, {report.manifests} biên bản ghi hình, "
               f"{report.files} tệp ghi hình")
    if report.ok:
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
