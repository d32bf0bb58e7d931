from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evidence import Keyring
from tests.recorder.test_manifest import EPOCH, build_session, sample_media

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
