"""Per-packet egress cost: aiortc's re-packetizing sender path vs. RTP-level header rewrite (sfu.rtp_forward).

Run by hand: ``.venv/bin/python bench/rtp_forward.py`` (a few seconds; ``--rounds``, ``--subscribers``).

In-process, no network. The workload is the textured 720p30 VP8 clip of ``bench/sfu.py`` (its first frame
a keyframe, then delta frames; cached in ``/tmp/tiepdan-bench-clips.pickle``) fanned out to N subscribers
(default 8), each with its own SRTP session (aiortc's preferred profile unless ``--profile``):

- **aiortc path** (what each subscriber slot costs today, from the frame onward): a fresh ``av.Packet``
  per subscriber (``EncodedFrame.to_packet``), ``Vp8Encoder.pack()``, then per payload what
  ``RTCRtpSender._run_rtp`` does: an ``RtpPacket`` with abs-send-time from ``clock.current_ntp_time()`` and
  mid, the 128-entry history, ``serialize()`` with the negotiated ``HeaderExtensionsMap``, SRTP protect,
  the SR bookkeeping (``current_ntp_time()`` again, counters);
- **rewrite path**: for each packet as the publisher sent it (parsed once on ingest, as aiortc's receiver
  does, not timed), one ``time.time()``, then per subscriber ``SlotRewriter.rewrite``,
  ``SendHistory.add`` and SRTP protect.

Both time only Python/libsrtp work before the socket (a UDP ``sendto`` is about 2 µs more on either path).
The garbage collector stays on: the aiortc path's object churn is part of its cost. Printed: µs per
outgoing packet (best and median of the rounds), SRTP alone for reference, and the ratio.
"""

from __future__ import annotations

import argparse
import fractions
import gc
import importlib
import os
import pickle
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# run as a script, bench/ would come first on the path and its queue.py would shadow the standard library's
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import av  # noqa: E402
from aiortc import clock  # noqa: E402
from aiortc.codecs.vpx import Vp8Encoder  # noqa: E402
from aiortc.rtcdtlstransport import SRTP_PROFILES  # noqa: E402
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters  # noqa: E402
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402
from aiortc.utils import uint16_add, uint32_add  # noqa: E402
from pylibsrtp import Policy, Session  # noqa: E402

from sfu.rtp_forward import SendHistory, SlotRewriter  # noqa: E402

CLIP_CACHE = Path("/tmp/tiepdan-bench-clips.pickle")
MID_ID, ABS_ID = 1, 3
PT, RTX_PT = 96, 97
RTP_HISTORY_SIZE = 128  # aiortc.rtcrtpsender's


def clip_frames() -> tuple[list[bytes], list[bool]]:
    """The 720p30 clip of bench/sfu.py: (frames, keyframe flags)."""
    clip: Any = None
    if CLIP_CACHE.exists():
        try:
            clip = pickle.loads(CLIP_CACHE.read_bytes())["high"]  # noqa: S301 - bench/sfu.py's own cache file
        except Exception:
            clip = None
    if clip is None:
        media: Any = importlib.import_module("tiepdan.bots.media")  # the clip maker of bench/sfu.py
        clip = media.textured_vp8_clip(1280, 720, 30, 2.0, 30, 0.07)
    return list(clip.frames), list(clip.keyframes)


def extensions_map() -> HeaderExtensionsMap:
    result = HeaderExtensionsMap()
    result.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=ABS_ID, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    ]))
    return result


def srtp_session(profile: Any) -> Session:
    policy = Policy(key=os.urandom(profile.key_length + profile.salt_length), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=profile.libsrtp_profile)
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return Session(policy)


class AiortcSlot:
    """One subscriber's sender state on aiortc's pack() path (RTCRtpSender._run_rtp, inlined)."""

    def __init__(self, index: int, profile: Any) -> None:
        self.encoder = Vp8Encoder()
        self.map = extensions_map()
        self.srtp = srtp_session(profile)
        self.ssrc = 0x1000 + index
        self.mid = str(index)
        self.seq = index * 1000
        self.origin = index * 77777
        self.history: dict[int, RtpPacket] = {}
        self.ntp = self.rtp_ts = self.octets = self.packets = 0

    def send_frame(self, data: bytes, pts: int) -> int:
        packet = av.Packet(data)  # EncodedFrame.to_packet: one per sink
        packet.pts = packet.dts = pts
        packet.time_base = fractions.Fraction(1, 90000)
        packet.is_keyframe = False
        payloads, timestamp = self.encoder.pack(packet)
        timestamp = uint32_add(self.origin, timestamp)
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(payload_type=PT, sequence_number=self.seq, timestamp=timestamp)
            rtp.ssrc = self.ssrc
            rtp.payload = payload
            rtp.marker = 1 if i == last else 0
            rtp.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
            rtp.extensions.mid = self.mid
            self.history[rtp.sequence_number % RTP_HISTORY_SIZE] = rtp
            self.srtp.protect(rtp.serialize(self.map))
            self.ntp = clock.current_ntp_time()
            self.rtp_ts = rtp.timestamp
            self.octets += len(payload)
            self.packets += 1
            self.seq = uint16_add(self.seq, 1)
        return len(payloads)


def published_packets(frames: list[bytes]) -> list[RtpPacket]:
    """The clip as a publisher sends it, parsed back as aiortc's receiver hands it to the SFU."""
    encoder = Vp8Encoder()
    publisher_map = extensions_map()
    out: list[RtpPacket] = []
    seq = 60_000
    for index, data in enumerate(frames):
        packet = av.Packet(data)
        packet.pts = index * 3000
        packet.time_base = fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.pack(packet)
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(payload_type=PT, sequence_number=seq, timestamp=timestamp, ssrc=0xCAFE, payload=payload)
            rtp.marker = int(i == len(payloads) - 1)
            rtp.extensions.mid = "0"
            rtp.extensions.abs_send_time = 12345
            out.append(RtpPacket.parse(rtp.serialize(publisher_map), publisher_map))
            seq = (seq + 1) & 0xFFFF
    return out


def timed(run: Callable[[], int], rounds: int, prepare: Callable[[], None] | None = None) -> tuple[list[float], int]:
    """µs per outgoing packet of each round (``prepare`` runs before each, untimed), and packets per round."""
    per_packet: list[float] = []
    count = 0
    for _ in range(rounds):
        if prepare is not None:
            prepare()
        start = time.perf_counter_ns()
        count = run()
        per_packet.append((time.perf_counter_ns() - start) / 1000 / count)
    return per_packet, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--profile", choices=[p.openssl_profile.decode() for p in SRTP_PROFILES],
                        default=SRTP_PROFILES[0].openssl_profile.decode())
    args = parser.parse_args()
    profile = next(p for p in SRTP_PROFILES if p.openssl_profile.decode() == args.profile)

    frames, keys = clip_frames()
    ingest = published_packets(frames)
    n: int = args.subscribers

    aiortc_slots = [AiortcSlot(i, profile) for i in range(n)]
    pts = [0]

    def aiortc_round() -> int:
        sent = 0
        base = pts[0]
        for index, data in enumerate(frames):
            for slot in aiortc_slots:
                sent += slot.send_frame(data, base + index * 3000)
        pts[0] = base + len(frames) * 3000
        return sent

    rewriters = [SlotRewriter(ssrc=0x2000 + i, payload_type=PT, clock_rate=90000, codec="VP8", mid=str(i),
                              mid_id=MID_ID, abs_send_time_id=ABS_ID) for i in range(n)]
    histories = [SendHistory(512, rtx_payload_type=RTX_PT, rtx_ssrc=0x3000 + i, abs_send_time_id=ABS_ID)
                 for i in range(n)]
    sessions = [srtp_session(profile) for _ in range(n)]
    lanes = list(zip(rewriters, histories, sessions, strict=True))
    current = [object()]
    for rewriter in rewriters:
        rewriter.set_source(current[0])

    def rewrite_round() -> int:
        sent = 0
        wall = time.time
        source = current[0]
        for packet in ingest:
            now = wall()
            for rewriter, history, session in lanes:
                data = rewriter.rewrite(packet, source, now)
                if data is not None:
                    history.add(data)
                    session.protect(data)
                    sent += 1
        return sent

    def next_pass() -> None:
        """The publisher goes on: the clip's packets again, with the next sequence numbers and timestamps."""
        count = len(ingest)
        for packet in ingest:
            packet.sequence_number = (packet.sequence_number + count) & 0xFFFF
            packet.timestamp = (packet.timestamp + 3000 * len(frames)) & 0xFFFFFFFF

    def switch() -> None:
        """Point every slot at another source (the same clip): VP8 picture ids get mapped from now on."""
        current[0] = object()
        for rewriter in rewriters:
            rewriter.set_source(current[0])

    plain = [RtpPacket.serialize(p, extensions_map()) for p in ingest]
    srtp_only = [srtp_session(profile) for _ in range(n)]

    def srtp_round() -> int:
        for data in plain:
            for session in srtp_only:
                session.protect(data)
        return len(plain) * n

    # warm-up (and the rewriters' anchor on the clip's keyframe)
    aiortc_round()
    next_pass()
    rewrite_round()
    srtp_round()
    gc.collect()
    rows = []
    for name, run, prepare in (
        ("aiortc pack+RtpPacket+serialize+SRTP", aiortc_round, None),
        ("rewrite+history+SRTP, first source", rewrite_round, next_pass),
        ("rewrite+history+SRTP, after a switch", rewrite_round, None),
        ("SRTP protect alone (reference)", srtp_round, None),
    ):
        if name.endswith("after a switch"):
            next_pass()
            switch()
            run()  # anchors on the new source's keyframe (the clip starts with one)
            prepare = next_pass
        samples, count = timed(run, args.rounds, prepare)
        rows.append((name, min(samples), statistics.median(samples), count))
    assert all(r.anchors == 2 and r.dropped_stale == r.dropped_jump == 0 for r in rewriters)

    key_packets = sum(1 for _ in ingest)  # all packets of one pass of the clip
    load = os.getloadavg()
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  nproc {os.cpu_count()}  "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  python {platform.python_version()}  "
          f"SRTP {profile.openssl_profile.decode()}")
    print(f"workload: {len(frames)} frames of 720p30 VP8 ({sum(keys)} keyframe, "
          f"{sum(len(f) for f in frames) // 1024} KiB, {key_packets} packets) x {n} subscribers, "
          f"{args.rounds} rounds, GC on")
    print(f"{'path':40s} {'best µs/pkt':>12s} {'median µs/pkt':>14s} {'packets/round':>14s}")
    for name, best, median, count in rows:
        print(f"{name:40s} {best:12.2f} {median:14.2f} {count:14d}")
    aio, srtp = rows[0], rows[-1]
    for name, best, median, _ in rows[1:-1]:
        print(f"ratio aiortc / {name}: best {aio[1] / best:.1f}x, median {aio[2] / median:.1f}x; "
              f"without SRTP {aio[2] - srtp[2]:.2f} vs {median - srtp[2]:.2f} µs/pkt (median)")

if __name__ == "__main__":
    main()
