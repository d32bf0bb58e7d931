from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete

from complaints.recordings import record_segment_closed
from complaints.tables import recording_segments
from evidence import Keyring
from recorder.manifest import SESSION_HEAD_NAME, list_segments
from signaling.room.recording import closed_event
from tests.harness import run_coroutine
from tests.recorder.test_manifest import EPOCH, add_segment, build_session, sample_media
from tiepdan.db import make_engine, prepare_database

pytestmark = pytest.mark.system

PLAIN = "phien-1/media/c1-case-1/hn-1.webm"


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TIEPDAN_DATA_DIR": str(data_dir)}
    full_env.pop("TIEPDAN_RECORDING_DIR", None)
    full_env.pop("TIEPDAN_RECORDING_RETENTION_DAYS", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "tiepdan.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    ring = Keyring.generate(dev=True, path=tmp_path / "keys" / "keyring.json")
    build_session(tmp_path / "recordings", ring, sample_media(), "phien-1")
    return tmp_path


def test_verify_exits_0_on_intact_recordings_and_1_naming_each_finding(data_dir: Path) -> None:
    ok = _run(["verify"], data_dir)
    assert ok.returncode == 0, ok.stderr
    assert "toàn vẹn" in ok.stdout and "1 phiên, 4 biên bản ghi hình, 6 tệp" in ok.stdout
    assert "không đối chiếu với cơ sở dữ liệu: không có cơ sở dữ liệu của máy chủ" in ok.stdout  # none here
    media = data_dir / "recordings" / PLAIN
    data = bytearray(media.read_bytes())
    data[100] ^= 0xFF
    media.write_bytes(bytes(data))
    (data_dir / "recordings" / "phien-1" / "manifests" / "00002-b1.json").unlink()
    bad = _run(["verify", str(data_dir / "recordings")], data_dir)
    assert bad.returncode == 1
    assert f"[altered]: {PLAIN}" in bad.stderr
    assert "[manifest_removed]: phien-1/manifests/00002-b1.json" in bad.stderr
    assert "sai lệch" in bad.stderr


def test_verify_exits_2_on_a_bad_path_or_a_missing_keyring(data_dir: Path, tmp_path: Path) -> None:
    missing = _run(["verify", str(tmp_path / "nowhere")], data_dir)
    assert missing.returncode == 2 and "không kiểm tra được" in missing.stderr
    no_keys = _run(["verify", str(data_dir / "recordings")], data_dir,
                   TIEPDAN_KEYRING_PATH=str(tmp_path / "none.json"))
    assert no_keys.returncode == 2
    assert not (tmp_path / "none.json").exists()
    elsewhere = _run(["verify"], data_dir, TIEPDAN_RECORDING_DIR=str(tmp_path / "other-volume"))
    assert elsewhere.returncode == 2 and "other-volume" in elsewhere.stderr


def test_recordings_expire_dry_run_then_for_real_and_verify_still_passes(data_dir: Path) -> None:
    assert EPOCH < 2_000_000_000  # the fixture's segments closed in 2026: long past a 1-day retention
    unset = _run(["recordings", "expire"], data_dir)
    assert unset.returncode == 2 and "TIEPDAN_RECORDING_RETENTION_DAYS" in unset.stderr
    dry = _run(["recordings", "expire", "--dry-run"], data_dir, TIEPDAN_RECORDING_RETENTION_DAYS="1")
    assert dry.returncode == 0, dry.stderr
    assert "phien-1/c2-case-2 (mật): sẽ xóa 2 tệp" in dry.stdout
    assert (data_dir / "recordings" / PLAIN).exists()
    real = _run(["recordings", "expire", "--days", "1", "--by", "cán bộ lưu trữ"], data_dir)
    assert real.returncode == 0, real.stderr
    assert "3 đoạn ghi hình" in real.stdout and not (data_dir / "recordings" / PLAIN).exists()
    after = _run(["verify"], data_dir)
    assert after.returncode == 0, after.stderr
    assert f"[expired]: {PLAIN}" in after.stdout


async def _record_case_segments(url: str, session_dir: Path) -> None:
    """The case store's rows of the session's case segments, as its consumer writes them."""
    engine = make_engine(url)
    try:
        await prepare_database(engine)
        async with engine.begin() as conn:
            for n, (ref, report) in enumerate(list_segments(session_dir), start=1):
                if report.case is not None:
                    await record_segment_closed(conn, closed_event(
                        report, ref, call_seq=n, at=datetime.fromtimestamp(report.closed_at, UTC)))
    finally:
        await engine.dispose()


async def _forget(url: str, segment: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(recording_segments).where(recording_segments.c.segment == segment))
    finally:
        await engine.dispose()


def _live_session(recordings: Path, ring: Keyring) -> tuple[Path, bytes]:
    """An open session (c1-case-21, b1, c2-case-22) and its signed head as it was before c2-case-22 closed."""
    live = recordings / "phien-2"
    live.mkdir()
    add_segment(live, ring, sample_media(), "c1-case-21", index=0, case="case-21")
    add_segment(live, ring, sample_media(), "b1", index=1, case=None)
    head_before_c2 = (live / SESSION_HEAD_NAME).read_bytes()
    add_segment(live, ring, sample_media(), "c2-case-22", index=2, case="case-22")
    return live, head_before_c2


def test_verify_cross_checks_the_database_and_names_an_older_head_put_back(data_dir: Path,
                                                                          database_url: str) -> None:
    recordings = data_dir / "recordings"
    live, head_before_c2 = _live_session(recordings, Keyring.load(data_dir / "keys" / "keyring.json"))
    for session_dir in (recordings / "phien-1", live):
        run_coroutine(_record_case_segments(database_url, session_dir))
    intact = _run(["verify"], data_dir, TIEPDAN_DATABASE_URL=database_url)
    assert intact.returncode == 0, intact.stderr
    assert "đã đối chiếu với cơ sở dữ liệu" in intact.stdout and "toàn vẹn" in intact.stdout

    # the newest manifest of the open session deleted and the head put back as it was before it: the disk
    # alone is consistent (tests/recorder/test_session_head.py), only the database still knows it
    (live / "manifests" / "00003-c2-case-22.json").unlink()
    (live / SESSION_HEAD_NAME).write_bytes(head_before_c2)
    run_coroutine(_forget(database_url, "c1-case-1"))  # and a row of the case store lost
    restored = _run(["verify", str(recordings)], data_dir, TIEPDAN_DATABASE_URL=database_url)
    assert restored.returncode == 1, restored.stdout
    assert "cơ sở dữ liệu có, ổ lưu trữ không có [db_only]: phien-2/manifests/00003-c2-case-22.json" \
        in restored.stderr
    assert "ổ lưu trữ có, cơ sở dữ liệu không có [disk_only]: phien-1/manifests/00001-c1-case-1.json" \
        in restored.stderr
    assert "phát hiện 2 sai lệch" in restored.stderr


def test_verify_names_the_newest_manifest_of_an_open_session_and_needs_a_configured_database(
        data_dir: Path) -> None:
    live, _ = _live_session(data_dir / "recordings", Keyring.load(data_dir / "keys" / "keyring.json"))
    (live / "manifests" / "00003-c2-case-22.json").unlink()
    deleted = _run(["verify", "--no-database"], data_dir)
    assert deleted.returncode == 1 and "(--no-database)" in deleted.stderr
    assert "[manifest_removed]: phien-2/manifests/00003-c2-case-22.json" in deleted.stderr
    unreachable = _run(["verify"], data_dir, TIEPDAN_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert unreachable.returncode == 2 and "--no-database" in unreachable.stderr
