"""The recorder's benchmarks: replay composition speed (this file) and recording CPU (``bench/recording_cpu.py``).

Compose (``--part compose``): a case of ``--minutes`` (default 10) with 9 venues, each a VP8 1280×720@30 file at
about 1.5 Mbit/s (a moving test pattern of its own hue) with an Opus tone, is composed by
``recorder.compose.compose_segment`` into one MP4 (H.264 + AAC) with the default options; the speaker changes
every 20 s. Reported: wall time, speed as a multiple of real time (case duration / wall time), CPU seconds of
the compositor and of its venue decoders, and their sum per case-second (the figure that holds on a shared
machine: on 2 idle cores the speed is at most 2 / that). The input is generated once (a loop of ``--loop``
seconds per venue, encoded with libvpx by the ffmpeg command line, then repeated by remuxing with PyAV: every
repetition starts on a keyframe) and cached under ``<tmp>/tiepdan-bench-recorder/``.

Recording (``--part recording``): runs ``bench/recording_cpu.py`` when it is present. ``--part all``: both.

Usage: ``.venv/bin/python bench/recorder.py [--part compose|recording|all] [--minutes 10] [--fps 15]
[--preset veryfast] [--crf 26] [--interpolation AREA] [--nice 0]``. Results are printed (JSON last); the ones
recorded are in ``bench/README.md``.
"""

# ruff: noqa: E402 - the path fix below must come before the first import that loads ``recorder``
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file (bench/recorder.py) would
# shadow the ``recorder`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import tempfile
import time

import av

from evidence import Keyring
from recorder import SegmentReport, SpeakerSpan, TrackFile
from recorder.compose import ComposeOptions, compose_segment

VENUES = 9
EPOCH = 1_796_515_200.0


def _encode_loop(path: Path, hue: int, seconds: int, tone_hz: int) -> None:
    """One venue's loop: testsrc2 turned to its own hue, VP8 720p30 at 1.5 Mbit/s, Opus 48 kHz mono 32 kbit/s.

    Encoded by the ffmpeg command line: through PyAV 18.1 the libvpx encoder ignored every rate setting
    (bit_rate, b, crf, qmax: always ~2.9 Mbit/s on this pattern), which would overstate the decoding load."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=30:d={seconds},hue=h={hue}",
         "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}",
         "-c:v", "libvpx", "-b:v", "1500k", "-deadline", "realtime", "-cpu-used", "8", "-g", "100000",
         "-c:a", "libopus", "-b:a", "32k", "-ac", "1", "-f", "webm", str(path)],
        check=True)


def _repeat(loop: Path, path: Path, seconds: float, loop_s: int) -> None:
    """``seconds`` of media made of the loop's packets, shifted (each repetition starts on its keyframe)."""
    with av.open(str(loop)) as src:
        packets = []
        for packet in src.demux():
            if packet.dts is None or packet.pts is None or not 0 <= packet.pts * packet.time_base < loop_s:
                continue  # Opus's priming and padding would overlap the next repetition
            packets.append((packet.stream.type, bytes(packet), packet.pts, packet.dts, packet.is_keyframe,
                            packet.time_base))
        template_v, template_a = src.streams.video[0], src.streams.audio[0]
        out = av.open(str(path), "w", format="webm")
        video = out.add_stream_from_template(template_v)
        audio = out.add_stream_from_template(template_a)
        repeats = int(seconds // loop_s) + 1
        for r in range(repeats):
            for kind, data, pts, dts, key, tb in packets:
                shift = round(r * loop_s / tb)
                if (pts + shift) * tb >= seconds:
                    continue
                packet = av.Packet(data)
                packet.stream = video if kind == "video" else audio
                packet.time_base = tb
                packet.pts, packet.dts, packet.is_keyframe = pts + shift, dts + shift, key
                out.mux(packet)
        out.close()


def prepare_case(minutes: float, loop_s: int) -> tuple[Path, SegmentReport]:
    cache = Path(tempfile.gettempdir()) / "tiepdan-bench-recorder" / f"m{minutes:g}-l{loop_s}"
    session_dir = cache / "phien"
    media = session_dir / "media" / "c1-bench"
    seconds = minutes * 60.0
    done = cache / "report.json"
    if done.exists():
        return session_dir, SegmentReport.from_json(json.loads(done.read_text()))
    media.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(VENUES):
        venue = f"xa-{n + 1}"
        loop = cache / f"{venue}-loop.webm"
        started = time.monotonic()
        _encode_loop(loop, hue=n * 40, seconds=loop_s, tone_hz=220 + 55 * n)
        rel = f"media/c1-bench/{venue}-0.webm"
        _repeat(loop, session_dir / rel, seconds, loop_s)
        data = (session_dir / rel).read_bytes()
        print(f"input {venue}: {len(data) * 8 / seconds / 1e6:.2f} Mbit/s, made in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        files.append(TrackFile(path=rel, venue=venue, kinds=("video", "audio"), codecs=("vp8", "opus"),
                               sha256=hashlib.sha256(data).hexdigest(), size=len(data), t0=0.0, duration=seconds))
    speakers = tuple(SpeakerSpan(f"xa-{(i % VENUES) + 1}", i * 20.0, min(seconds, (i + 1) * 20.0))
                     for i in range(int(seconds // 20)))
    names = {f"xa-{n + 1}": f"Điểm cầu xã số {n + 1}" for n in range(VENUES)}
    names["xa-1"] = "Trụ sở Tiếp công dân tỉnh"
    report = SegmentReport(session="phien", segment="c1-bench", case="bench", confidential=False,
                           session_epoch=EPOCH, opened_at=EPOCH, closed_at=EPOCH + seconds, media_t0=0.0,
                           media_t1=seconds, files=tuple(files), speakers=speakers, venue_names=names)
    done.write_text(json.dumps(report.to_json()))
    return session_dir, report


def bench_compose(args: argparse.Namespace) -> dict[str, object]:
    session_dir, report = prepare_case(args.minutes, args.loop)
    out = Path(tempfile.mkdtemp(prefix="tiepdan-compose-")) / "c1-bench.mp4"
    options = ComposeOptions(fps=args.fps, preset=args.preset, crf=args.crf, interpolation=args.interpolation)
    marks: list[tuple[float, float]] = []
    load_before = os.getloadavg()
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = compose_segment(session_dir, report.segment, out, keyring=Keyring.generate(dev=True), report=report,
                             options=options, progress=lambda p: marks.append((time.monotonic() - started, p)))
    wall = time.monotonic() - started
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    cpu_kids = (kids_after.ru_utime + kids_after.ru_stime) - (kids_before.ru_utime + kids_before.ru_stime)
    figures: dict[str, object] = {
        "case_s": report.duration, "venues": len(report.files), "fps": args.fps, "preset": args.preset,
        "crf": args.crf, "interpolation": args.interpolation,
        "wall_s": round(wall, 1), "speed_x_realtime": round(report.duration / wall, 2),
        "cpu_compositor_s": round(cpu_self, 1), "cpu_decoders_s": round(cpu_kids, 1),
        "cpu_s_per_case_s": round((cpu_self + cpu_kids) / report.duration, 3),
        "output_mbytes": round(result.size / 1e6, 1), "frames": result.frames,
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    out.unlink()
    out.parent.rmdir()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["compose", "recording", "all"], default="compose")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--loop", type=int, default=6, help="seconds of each venue's encoded loop (default 6)")
    parser.add_argument("--fps", type=int, default=ComposeOptions.fps)
    parser.add_argument("--preset", default=ComposeOptions.preset)
    parser.add_argument("--crf", type=int, default=ComposeOptions.crf)
    parser.add_argument("--interpolation", default=ComposeOptions.interpolation,
                        help="libswscale filter into the tiles (AREA, BILINEAR, FAST_BILINEAR, BICUBIC, POINT)")
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)
    results: dict[str, object] = {"machine": f"{os.cpu_count()} CPU, {platform.platform()}",
                                  "python": platform.python_version(), "pyav": av.__version__}
    code = 0
    if args.part in ("compose", "all"):
        results["compose"] = bench_compose(args)
        print(json.dumps(results["compose"]), file=sys.stderr)
    if args.part in ("recording", "all"):
        script = Path(__file__).resolve().parent / "recording_cpu.py"
        if script.exists():
            code = subprocess.run([sys.executable, str(script)], check=False).returncode
            results["recording_exit"] = code
        else:
            print("bench/recording_cpu.py is not there yet: recording CPU not measured", file=sys.stderr)
    print(json.dumps(results, ensure_ascii=False))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
