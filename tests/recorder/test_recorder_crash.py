"""SIGKILL of the recording process 30 s into a case: the files play, restart recovers them (issue #11 item 3).

The child process records two synthetic venues through real sfu publications, fed faster than real time on
an injected clock (30 s of media take a few seconds), flushes, says READY and is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evidence import Keyring
from recorder import RecorderOptions
from recorder.manifest import list_segments
from recorder.recorder import STATE_FILE, Recorder
from recorder.verify import verify_path
from tests.fakes.media import opus_clip, vp8_clip
from tests.recorder._checks import MATROSKA_MAGIC, decode, decrypted, ffprobe
from tests.recorder._sources import Calls, MediaClock, SyntheticVenue, feed, install_media_clock, while_feeding

CASE_SECONDS = 30.0
VENUES = {"tien-du": "Tiên Du", "que-vo": "Quế Võ"}


def venues(clock: MediaClock) -> list[SyntheticVenue]:
    return [SyntheticVenue("room1", "tien-du", vp8_clip(colour="red"), opus_clip(), clock=clock),
            SyntheticVenue("room1", "que-vo", vp8_clip(colour="blue"), opus_clip(frequency=660.0), clock=clock)]


async def _child(root: Path, keyring_path: Path, confidential: bool) -> None:
    keyring = Keyring.load(keyring_path)
    clock = MediaClock()
    with install_media_clock(clock):
        calls = Calls()
        rec = Recorder(RecorderOptions(root=root, min_free_bytes=1024), keyring,
                       on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic)
        await rec.start()
        await rec.open_session("s1", VENUES)
        vs = venues(clock)
        for v in vs:
            await rec.add_publication("s1", v.name, v.video_pub)  # type: ignore[arg-type]
            await rec.add_publication("s1", v.name, v.audio_pub)  # type: ignore[arg-type]
        await feed(vs, 2.0, sync=lambda: rec.flush("s1"))
        await while_feeding(rec.open_segment("s1", "c1-case7", "case7", confidential=confidential), vs)
        case_start = min(v.next_time for v in vs)
        await feed(vs, case_start + CASE_SECONDS, sync=lambda: rec.flush("s1"))
        await rec.flush("s1")
        print(json.dumps({"ready": True, "case_start": case_start, "alarms": len(calls.alarms)}), flush=True)
        await asyncio.Event().wait()  # until killed


def run_child_and_kill(root: Path, keyring_path: Path, confidential: bool) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    child = subprocess.Popen([sys.executable, "-m", "tests.recorder.test_recorder_crash", str(root), str(keyring_path),
                              "1" if confidential else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the child prints one line when 30 s of case are on disk
        if not line:
            raise AssertionError(f"the recording child died: {child.stderr.read() if child.stderr else ''}")
        status = json.loads(line)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        return status  # type: ignore[no-any-return]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.media
@pytest.mark.parametrize("confidential", [False, True], ids=["plain", "confidential"])
async def test_sigkill_30s_into_a_case_leaves_playable_files_and_restart_recovers_them(
        tmp_path: Path, clock: MediaClock, confidential: bool) -> None:
    root = tmp_path / "rec"
    keyring_path = tmp_path / "keyring.json"
    keyring = Keyring.generate(dev=True, path=keyring_path)
    status = await asyncio.to_thread(run_child_and_kill, root, keyring_path, confidential)
    assert status["ready"] is True and status["alarms"] == 0
    session_dir = root / "s1"
    assert (session_dir / STATE_FILE).exists()
    killed = sorted((session_dir / "media" / "c1-case7").iterdir())
    assert len(killed) == 2
    for path in killed:  # as the kill left them, before any repair
        if confidential:
            raw = path.read_bytes()
            assert path.name.endswith(".webm.enc") and MATROSKA_MAGIC not in raw
            d = decode(decrypted(path, session_dir, keyring, allow_truncated=True))
        else:
            d = decode(path)
        assert d.errors == 0 and d.length >= CASE_SECONDS - 2.0, (path.name, d)
        assert abs(d.end("video") - d.end("audio")) < 0.1

    # restart: the recorder recovers the unfinished files into a manifest and continues in new files
    calls = Calls()
    rec = Recorder(RecorderOptions(root=root, min_free_bytes=1024), keyring, on_segment_closed=calls.segment_closed,
                   on_alarm=calls.alarm, monotonic=clock.monotonic)
    await rec.start()
    await rec.open_session("s1", VENUES)
    recovered = [r for r, _ in calls.closed if r.segment == "c1-case7"]
    assert len(recovered) == 1
    report = recovered[0]
    assert report.case == "case7" and report.confidential == confidential
    assert len(report.files) == 2 and all(f.recovered for f in report.files)
    assert {g.reason for g in report.gaps} == {"crash"} and {g.venue for g in report.gaps} == set(VENUES)
    assert [a.code for a in calls.alarms] == ["recovered_files"]
    starts = []
    for f in report.files:
        path = session_dir / f.path
        assert f.encrypted == confidential
        if confidential:
            assert MATROSKA_MAGIC not in path.read_bytes()
            d = decode(decrypted(path, session_dir, keyring))  # repaired: a complete stream again
        else:
            assert ffprobe(path)["format"]["format_name"].startswith("matroska")
            d = decode(path)
        assert d.errors == 0 and d.length >= CASE_SECONDS - 2.0 and f.duration >= CASE_SECONDS - 2.0
        assert abs(d.end("video") - d.end("audio")) < 0.1
        starts.append(f.t0)
    assert abs(starts[0] - starts[1]) < 0.1
    # the session goes on in new files, on the same session clock
    vs = venues(clock)
    clock.at(float(status["case_start"]) + CASE_SECONDS + 5.0)  # type: ignore[arg-type]
    for v in vs:
        v.skip(float(status["case_start"]) + CASE_SECONDS + 5.0)  # type: ignore[arg-type]
        await rec.add_publication("s1", v.name, v.video_pub)  # type: ignore[arg-type]
        await rec.add_publication("s1", v.name, v.audio_pub)  # type: ignore[arg-type]
    await feed(vs, vs[0].next_time + 3.0, sync=lambda: rec.flush("s1"))
    await rec.close()
    after = [r for r, _ in calls.closed if r.segment != "c1-case7"]
    assert len(after) == 1 and after[0].case is None and len(after[0].files) == 2
    assert all(not f.recovered and f.t0 > max(starts) + CASE_SECONDS for f in after[0].files)
    for f in after[0].files:
        assert decode(session_dir / f.path).errors == 0
    chain = [r.segment for _, r in list_segments(session_dir)]
    assert chain[:2] == ["b1", "c1-case7"] and chain[2] == after[0].segment
    assert not [a for a in calls.alarms if a.active and a.code != "recovered_files"]
    verified = verify_path(root, keyring)  # the recovered files are in the signed chain like any other
    assert verified.ok and verified.findings == () and verified.files == 6
    for v in vs:
        await v.close()


if __name__ == "__main__":
    asyncio.run(_child(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"))
