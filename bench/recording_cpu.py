"""Recording CPU per venue track (issue #11): a 9-venue session recorded vs. the same session unrecorded.

Run: ``.venv/bin/python bench/recording_cpu.py`` (about 1.5 minutes; ``--window`` seconds per phase).
``bench/recorder.py`` may call :func:`bench_recording` and print its figures with the compose benchmark.

One process, real time: 9 synthetic venues, each a textured 720p30 VP8 camera (~1.5 Mbit/s) and an Opus
microphone, are fed as RTP into real ``sfu.Publication`` objects (their assemblers and taps, no network)
at their media rate. Phases alternate, ``unrecorded`` (frames assembled, no sink) and ``recorded`` (a
``Recorder`` taps every publication and writes 9 WebM files), twice each. CPU is ``time.process_time()``
(all threads: the event loop and the recorder's writer thread) per second of wall time, in cores; the
recording cost per track is (recorded - unrecorded) / 18 tracks.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ is sys.path[0]: its queue.py would shadow the standard library's queue
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VENUES = 9


async def _phase(venues: list[Any], seconds: float, started: float) -> float:
    """Feed ``venues`` in real time for ``seconds``; CPU cores used meanwhile."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        now = time.monotonic() - started
        for v in venues:
            while v.next_time <= now:
                v.send_next()
        await asyncio.sleep(0.01)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


async def _run(window: float, rounds: int) -> dict[str, Any]:
    from evidence import Keyring
    from recorder import RecorderOptions
    from recorder.model import ManifestRef, RecorderAlarm, SegmentReport
    from recorder.recorder import Recorder
    from tests.recorder._sources import SyntheticVenue
    from tiepdan.bots.media import opus_clip, textured_vp8_clip

    video = textured_vp8_clip(1280, 720, 30, 2.0, 30, 0.07)
    audio = opus_clip(2.0)
    venues = [SyntheticVenue("bench", f"venue-{n}", video, audio) for n in range(VENUES)]
    alarms: list[RecorderAlarm] = []
    reports: list[SegmentReport] = []

    async def closed(report: SegmentReport, ref: ManifestRef) -> None:
        reports.append(report)

    async def alarm(a: RecorderAlarm) -> None:
        alarms.append(a)

    results: dict[str, list[float]] = {"unrecorded": [], "recorded": []}
    bytes_written = 0
    with tempfile.TemporaryDirectory(prefix="tiepdan-bench-rec-") as tmp:
        started = time.monotonic()
        await _phase(venues, 2.0, started)  # warm-up: assemblers, allocations
        for r in range(rounds):
            results["unrecorded"].append(await _phase(venues, window, started))
            rec = Recorder(RecorderOptions(root=Path(tmp), min_free_bytes=64 * 1024 * 1024), Keyring.generate(dev=True),
                           on_segment_closed=closed, on_alarm=alarm)
            await rec.start()
            session = f"bench-{r}"
            await rec.open_session(session, {})
            for v in venues:
                await rec.add_publication(session, v.name, v.video_pub)
                await rec.add_publication(session, v.name, v.audio_pub)
                v.video_pub.request_keyframe = lambda reason="api", v=v: setattr(v, "_restart", True)
            results["recorded"].append(await _phase(venues, window, started))
            bytes_written += rec.status().bytes_written
            dropped = rec.status().frames_dropped
            await rec.close()
            if dropped:
                print(f"warning: the recorder dropped {dropped} frames", file=sys.stderr)
        for v in venues:
            await v.close()
    unrec = sum(results["unrecorded"]) / len(results["unrecorded"])
    recd = sum(results["recorded"]) / len(results["recorded"])
    tracks = 2 * VENUES
    return {
        "venues": VENUES, "tracks": tracks, "window_s": window, "rounds": rounds,
        "unrecorded_cores": round(unrec, 4), "recorded_cores": round(recd, 4),
        "per_track_cores": round((recd - unrec) / tracks, 5),
        "per_venue_cores": round((recd - unrec) / VENUES, 5),
        "phases": {k: [round(x, 4) for x in v] for k, v in results.items()},
        "files": sum(len(r.files) for r in reports), "bytes_written": bytes_written,
        "alarms": [a.code for a in alarms],
    }


def bench_recording(window: float = 15.0, rounds: int = 2) -> dict[str, Any]:
    """Recording CPU of a 9-venue session (see the module docstring); returns the figures."""
    return asyncio.run(_run(window, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    figures = bench_recording(args.window, args.rounds)
    print(json.dumps(figures, indent=1))
    print(f"recording CPU: {100 * figures['per_track_cores']:.2f}% of a core per track "
          f"({100 * figures['per_venue_cores']:.2f}% per venue; {figures['unrecorded_cores']:.3f} -> "
          f"{figures['recorded_cores']:.3f} cores for {VENUES} venues)")


if __name__ == "__main__":
    main()
