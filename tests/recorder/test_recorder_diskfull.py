"""A disk that fills up: recording stops with an alarm, the room goes on, recording resumes when space
returns (issue #11 item 3). Runs on a small tmpfs mounted for the test (root is needed to mount it)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence import Keyring
from recorder import RecorderOptions
from recorder.recorder import Recorder
from tests.fakes.media import opus_clip, vp8_clip
from tests.recorder._checks import decode
from tests.recorder._sources import Calls, MediaClock, SyntheticVenue, feed, while_feeding

VOLUME = 4 * 1024 * 1024


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "vol"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUME}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(volume: Path, leave: int) -> Path:
    """A filler file leaving about ``leave`` bytes free on ``volume``."""
    filler = volume / "filler"
    free = os.statvfs(volume).f_bavail * os.statvfs(volume).f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.media
@pytest.mark.parametrize("enospc", [False, True], ids=["below-minimum", "enospc"])
async def test_full_disk_stops_recording_with_an_alarm_and_resumes_when_space_returns(
        volume: Path, clock: MediaClock, enospc: bool) -> None:
    calls = Calls()
    keyring = Keyring.generate(dev=True)
    minimum = 0 if enospc else 1024 * 1024
    rec = Recorder(RecorderOptions(root=volume / "rec", min_free_bytes=minimum, flush_interval_s=0.2), keyring,
                   on_segment_closed=calls.segment_closed, on_alarm=calls.alarm, monotonic=clock.monotonic)
    await rec.start()
    a = SyntheticVenue("room1", "tien-du", vp8_clip(colour="red", noise=True, bitrate=600_000), opus_clip(),
                       clock=clock)
    await rec.open_session("s1", {"tien-du": "Tiên Du"})
    await rec.add_publication("s1", "tien-du", a.video_pub)  # type: ignore[arg-type]
    await rec.add_publication("s1", "tien-du", a.audio_pub)  # type: ignore[arg-type]
    await while_feeding(rec.open_segment("s1", "c1-x", "x", confidential=False), [a])
    await feed([a], a.next_time + 2.0, sync=lambda: rec.flush("s1"))
    filler = fill(volume, minimum + 64 * 1024)
    limit = a.next_time + 60.0
    while not calls.alarms and a.next_time < limit:  # the room goes on: frames keep flowing, no exception
        await feed([a], a.next_time + 0.5, sync=lambda: rec.flush("s1"))
        await rec.flush("s1")
    assert [(x.code, x.active) for x in calls.alarms] == [("disk_full", True)]
    status = rec.status()
    assert not status.recording and [x.code for x in status.alarms] == ["disk_full"]
    stopped = a.next_time
    await feed([a], a.next_time + 2.0)
    assert a.video_pub is not None and not a.video_pub.closed and a.video_pub.sink_count == 1
    filler.unlink()
    await rec.check_space()
    assert [(x.code, x.active) for x in calls.alarms][-1] == ("disk_full", False)
    assert rec.status().recording and rec.status().alarms == ()
    await feed([a], a.next_time + 3.0, sync=lambda: rec.flush("s1"))
    report = await while_feeding(rec.close_segment("s1", "c1-x"), [a])
    assert report is not None
    gaps = [g for g in report.gaps if g.reason == "disk_full"]
    assert len(gaps) == 1 and gaps[0].end is not None and gaps[0].end - gaps[0].start >= 1.5
    assert gaps[0].start <= stopped + 0.5
    assert len(report.files) == 2, report.files
    before, after = report.files
    assert after.t0 >= gaps[0].end - 0.1  # type: ignore[operator]
    assert before.recovered == enospc  # an ENOSPC leaves the part unfinished: it is repaired like after a crash
    for f in report.files:
        d = decode(volume / "rec" / "s1" / f.path)
        assert d.errors == 0 and d.frames["video"] > 10
    await rec.close()
    await a.close()
