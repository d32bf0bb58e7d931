"""Benchmark of the SFU media plane (sfu/): forwarding cost, fps per slot, egress; vs. aiortc MediaRelay.

Run: ``.venv/bin/python bench/sfu.py`` (about 4 minutes; ``--quick`` for a smoke run of about 1.5 minutes).

Three kinds of process talk over loopback UDP (ICE host candidates on 127.0.0.1, no STUN/TURN):

- the **server**: either the SFU (``sfu.Worker``, frame-level forwarding) or, for comparison, a plain
  aiortc server that decodes each publisher and re-encodes per subscriber through ``MediaRelay``;
  it is driven by JSON lines over a loopback TCP socket (standing in for signalling);
- the **publisher bots**: pre-encoded VP8 (textured 720p30 at ~1.5 Mbit/s, 320x180 at 15 fps at
  ~150 kbit/s) and Opus, sent through aiortc's ``pack()`` path, so bots cost little;
- the **subscriber bots**: aiortc peers that count frames per slot below aiortc's jitter buffer
  (they never decode, so their CPU is not mistaken for the server's).

CPU is ``time.process_time()`` of each process (all threads) over the measurement window, in cores.
Results are printed; ``--output FILE`` also writes them (with the raw JSON) to FILE. The figures
recorded for the team live in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import LineClient, clips, rpc_sync, serve_lines  # noqa: E402


def loopback_only() -> None:
    from sfu import hooks

    hooks.announce_host_addresses(("127.0.0.1",))


# --- server process ---------------------------------------------------------------------------------------


def server_main(mode: str, port_q: Any) -> None:
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(asyncio.run, _server(mode, port_q))
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    if os.environ.get("BENCH_LOOP") == "uvloop":
        import uvloop

        uvloop.run(_server(mode, port_q))
        return
    asyncio.run(_server(mode, port_q))


async def _server(mode: str, port_q: Any) -> None:
    loopback_only()
    from aiortc import (
        RTCBundlePolicy,
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
        RTCSessionDescription,
    )
    from aiortc.contrib.media import MediaRelay

    from sfu import Options, Worker

    done = asyncio.Event()
    worker = Worker(Options(connect_timeout=60, audio_level_interval=None, video_slots=8, audio_slots=8))
    await worker.start()
    room = worker.create_room("bench")
    relay = MediaRelay()
    relay_tracks: dict[str, Any] = {}
    relay_pcs: dict[str, Any] = {}

    async def op(req: dict[str, Any]) -> dict[str, Any]:
        kind = req["op"]
        if kind == "cpu":
            return {"cpu": time.process_time(), "wall": time.monotonic()}
        if kind == "quit":
            done.set()
            return {}
        if kind == "stats" and mode == "sfu":
            st = await room.stats()
            return {
                "pubs": {
                    p.publication_id: [p.frames_per_second, p.packets_lost, p.frames_lost]
                    for p in st.publications
                },
                "subs": {
                    x.subscription_id: [x.frames_per_second, x.frames_dropped, x.queued, x.packets_lost]
                    for x in st.subscriptions
                },
                "delays": {
                    x.subscription_id: [x.kind, x.delay_p50_ms, x.delay_p99_ms]
                    for x in st.subscriptions if x.delay_p50_ms is not None
                },
            }
        if mode == "sfu":
            if kind == "publish":
                p = room.join(req["id"])
                return {"sdp": await p.publish_offer(req["sdp"], names=req.get("names"))}
            if kind == "subscribe":
                p = room.join(req["id"])
                return {"sdp": await p.subscriber_offer(req["video"], req["audio"])}
            if kind == "answer":
                await room.participant(req["id"]).apply_answer(req["sdp"])
                return {}
            if kind == "source":
                p = room.participant(req["id"])
                slots = p.video_slots if req["kind"] == "video" else p.audio_slots
                slots[req["slot"]].set_source(room.publication(req["pub"]))
                return {}
        else:  # relay: decode once per publisher, encode per subscriber (aiortc's documented pattern)
            if kind == "publish":
                pc = RTCPeerConnection(
                    RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
                )
                relay_pcs[req["id"]] = pc

                @pc.on("track")
                def on_track(track: Any, pid: str = req["id"]) -> None:
                    relay_tracks.setdefault(f"{pid}/{track.kind}", track)

                await pc.setRemoteDescription(RTCSessionDescription(req["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                return {"sdp": pc.localDescription.sdp}
            if kind == "subscribe":
                pc = RTCPeerConnection(
                    RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
                )
                relay_pcs[req["id"]] = pc
                for k in ["video"] * req["video"] + ["audio"] * req["audio"]:
                    source = relay_tracks[f"{req['source']}/{k}"]
                    t = pc.addTransceiver(relay.subscribe(source), direction="sendonly")
                    caps = RTCRtpSender.getCapabilities(k).codecs
                    t.setCodecPreferences([c for c in caps if c.name in ("VP8", "rtx", "opus")])
                await pc.setLocalDescription(await pc.createOffer())
                return {"sdp": pc.localDescription.sdp}
            if kind == "answer":
                await relay_pcs[req["id"]].setRemoteDescription(RTCSessionDescription(req["sdp"], "answer"))
                return {}
            if kind == "source":
                return {}
        raise ValueError(kind)

    server = await serve_lines(op)
    port_q.put(server.sockets[0].getsockname()[1])
    await done.wait()
    server.close()
    await worker.close()
    for pc in relay_pcs.values():
        await pc.close()


# --- bot processes ----------------------------------------------------------------------------------------


def bots_main(role: str, port: int, plan: dict[str, Any], start: Any, stop: Any, out: Any) -> None:
    asyncio.run(_bots(role, port, plan, start, stop, out))


class CountingSink:
    """Counts frames (video: marker bits; audio: packets) and payload bytes of one received track."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.frames = 0
        self.bytes = 0
        self.packets = 0

    def on_rtp(self, packet: Any, data: bytes) -> None:
        self.packets += 1
        self.bytes += len(packet.payload)
        if self.kind == "audio" or packet.marker:
            self.frames += 1


async def _wait(evt: Any) -> None:
    while not evt.is_set():
        await asyncio.sleep(0.05)


async def _bots(role: str, port: int, plan: dict[str, Any], start: Any, stop: Any, out: Any) -> None:
    loopback_only()
    from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from sfu import hooks
    from tiepdan.bots.media import ClipTrack, PublisherBot

    rpc = LineClient(port)
    pcs: list[Any] = []
    sinks: dict[str, CountingSink] = {}
    bots: list[PublisherBot] = []
    if role == "pub":
        media = clips()
        for venue in plan["publishers"]:
            tracks = [ClipTrack(media[name], name, loop_to=1) for name in plan["tracks"]]
            bot = PublisherBot(tracks)
            bots.append(bot)
            names = {str(i): name for i, name in enumerate(plan["tracks"])}
            answer = await rpc(op="publish", id=venue, sdp=await bot.offer(), names=names)
            await bot.accept(answer["sdp"])
        await asyncio.sleep(1.0)
    else:
        for sub in plan["subscribers"]:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
            pcs.append(pc)
            offer = await rpc(
                op="subscribe",
                id=sub["id"],
                video=len(sub["video"]),
                audio=len(sub["audio"]),
                source=plan.get("source"),
            )
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            kinds = {"video": 0, "audio": 0}
            for t in pc.getTransceivers():
                key = f"{sub['id']}/{t.kind}/{kinds[t.kind]}"
                kinds[t.kind] += 1
                sink = CountingSink(t.kind)
                sinks[key] = sink
                hooks.install_ingest(t.receiver, sink)  # count below the jitter buffer; never decode
            await pc.setLocalDescription(await pc.createAnswer())
            await rpc(op="answer", id=sub["id"], sdp=pc.localDescription.sdp)
            for kind in ("video", "audio"):
                for i, pub in enumerate(sub[kind]):
                    await rpc(op="source", id=sub["id"], kind=kind, slot=i, pub=pub)
    out.put(("ready", role))
    await _wait(start)
    cpu0, t0 = time.process_time(), time.monotonic()
    counts0 = {k: (s.frames, s.bytes, s.packets) for k, s in sinks.items()}
    await _wait(stop)
    cpu1, t1 = time.process_time(), time.monotonic()
    wall = t1 - t0
    result = {
        "role": role,
        "cores": (cpu1 - cpu0) / wall,
        "slots": {
            k: {
                "kind": s.kind,
                "fps": (s.frames - counts0[k][0]) / wall,
                "mbps": 8 * (s.bytes - counts0[k][1]) / wall / 1e6,
                "pps": (s.packets - counts0[k][2]) / wall,
            }
            for k, s in sinks.items()
        },
    }
    out.put(("result", result))
    rpc.close()
    for bot in bots:
        await bot.close()
    for pc in pcs:
        await pc.close()


# --- driver -----------------------------------------------------------------------------------------------


def run(
    mode: str, pub_plan: dict[str, Any], sub_plan: dict[str, Any], warmup: float, window: float,
    loop: str = "asyncio",
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    port_q, out = ctx.Queue(), ctx.Queue()
    start, stop = ctx.Event(), ctx.Event()
    os.environ["BENCH_LOOP"] = loop  # read by the server process (spawned with this environment)
    server = ctx.Process(target=server_main, args=(mode, port_q), daemon=True)
    server.start()
    port = port_q.get(timeout=60)
    pubs = ctx.Process(target=bots_main, args=("pub", port, pub_plan, start, stop, out), daemon=True)
    pubs.start()
    assert out.get(timeout=120) == ("ready", "pub")
    subs = ctx.Process(target=bots_main, args=("sub", port, sub_plan, start, stop, out), daemon=True)
    subs.start()
    assert out.get(timeout=120) == ("ready", "sub")
    time.sleep(warmup)
    c0 = rpc_sync(port, op="cpu")
    start.set()
    time.sleep(window)
    stop.set()
    c1 = rpc_sync(port, op="cpu")
    delays: dict[str, tuple[float, float]] = {}
    if mode == "sfu":
        st = rpc_sync(port, op="stats")
        if os.environ.get("BENCH_DEBUG"):
            print(json.dumps(st)[:3000])
        for kind in ("video", "audio"):
            rows = [(p50, p99) for k, p50, p99 in st.get("delays", {}).values() if k == kind]
            if rows:  # median of the slots' medians, worst slot's p99
                p50s = sorted(r[0] for r in rows)
                delays[kind] = (p50s[len(p50s) // 2], max(r[1] for r in rows))
    results = {}
    for _ in range(2):
        kind, result = out.get(timeout=60)
        results[result["role"]] = result
    rpc_sync(port, op="quit")
    for p in (pubs, subs, server):
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    slots = results["sub"]["slots"]
    return {
        "server_cores": (c1["cpu"] - c0["cpu"]) / (c1["wall"] - c0["wall"]),
        "pub_cores": results["pub"]["cores"],
        "sub_cores": results["sub"]["cores"],
        "slots": slots,
        "egress_mbps": sum(s["mbps"] for s in slots.values()),
        "egress_pps": sum(s["pps"] for s in slots.values()),
        "delays": delays,
    }


def layout_plan(venues: int = 9) -> tuple[dict[str, Any], dict[str, Any]]:
    ids = [f"venue-{i}" for i in range(venues)]
    subs = []
    for i in range(venues):
        others = [ids[(i + k) % venues] for k in range(1, venues)]
        subs.append(
            {
                "id": f"viewer-{i}",
                "video": [f"{o}/high" for o in others[:2]] + [f"{o}/low" for o in others[2:8]],
                "audio": [f"{o}/mic" for o in others[:8]],
            }
        )
    return {"publishers": ids, "tracks": ["high", "low", "mic"]}, {"subscribers": subs}


def mesh_plan(venues: int = 9) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every venue publishes 720p + Opus and receives every other venue's 720p and Opus."""
    ids = [f"venue-{i}" for i in range(venues)]
    subs = [{"id": f"viewer-{i}", "video": [f"{o}/high" for o in ids if o != v],
             "audio": [f"{o}/mic" for o in ids if o != v]} for i, v in enumerate(ids)]
    return {"publishers": ids, "tracks": ["high", "mic"]}, {"subscribers": subs}


def fanout_plan(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    subs = [{"id": f"viewer-{i}", "video": ["venue-0/high"], "audio": ["venue-0/mic"]} for i in range(n)]
    return {"publishers": ["venue-0"], "tracks": ["high", "mic"]}, {"subscribers": subs, "source": "venue-0"}


def layout_kind(key: str, s: dict[str, Any]) -> str:
    """A layout subscriber's slot ``<viewer>/<kind>/<index>``: the first two video slots are high, the rest low."""
    _, kind, index = key.split("/")
    if kind == "audio":
        return "audio"
    return "high" if int(index) < 2 else "low"


def summarize_slots(slots: dict[str, Any], kind_of: Any) -> dict[str, tuple[float, float, int]]:
    groups: dict[str, list[float]] = {}
    for key, s in slots.items():
        groups.setdefault(kind_of(key, s), []).append(s["fps"])
    return {g: (min(v), sum(v) / len(v), len(v)) for g, v in groups.items()}


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiortc
    import av

    return (
        f"{os.cpu_count()} vCPU {model}; {platform.platform()}; Python {platform.python_version()}; "
        f"aiortc {aiortc.__version__}, PyAV {av.__version__}"
    )


def sustained(say: Any, warmup: float, window: float) -> None:
    """The full layout held for ``window`` seconds: every slot's fps, SFU CPU, egress, delays."""
    say(f"## Sustained: the full layout (9 x 9) over {window:g} s")
    say()
    pub_plan, sub_plan = layout_plan()
    r = run("sfu", pub_plan, sub_plan, warmup, window)

    groups = summarize_slots(r["slots"], layout_kind)
    say("| SFU CPU (cores) | publisher bots | subscriber bots | egress Mbit/s | egress packets/s | packets/s per "
        "SFU core | high fps min/mean | low fps min/mean | audio fps min/mean |")
    say("|---|---|---|---|---|---|---|---|---|")
    say(f"| {r['server_cores']:.3f} | {r['pub_cores']:.2f} | {r['sub_cores']:.2f} | {r['egress_mbps']:.1f} | "
        f"{r['egress_pps']:.0f} | {r['egress_pps'] / max(r['server_cores'], 1e-9):.0f} | "
        + " | ".join(f"{groups[g][0]:.1f} / {groups[g][1]:.1f}" for g in ("high", "low", "audio")) + " |")
    for k, (p50, p99) in r["delays"].items():
        say(f"- delay added inside the SFU, {k}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    say()


def compare_loops(say: Any, warmup: float, window: float, rounds: int = 2) -> None:
    """The full layout with the SFU process on asyncio's default loop and on uvloop, alternately."""
    say("## Event loop: the full layout (9 x 9) with the SFU on asyncio's loop vs uvloop")
    say()
    say("| round | loop | SFU CPU (cores) | egress packets/s | packets/s per SFU core | high fps mean | low fps mean |")
    say("|---|---|---|---|---|---|---|")

    totals: dict[str, list[float]] = {"asyncio": [], "uvloop": []}
    for rnd in range(1, rounds + 1):
        for loop in ("asyncio", "uvloop"):
            pub_plan, sub_plan = layout_plan()
            r = run("sfu", pub_plan, sub_plan, warmup, window, loop=loop)
            groups = summarize_slots(r["slots"], layout_kind)
            per_core = r["egress_pps"] / r["server_cores"] if r["server_cores"] else 0.0
            totals[loop].append(r["server_cores"])
            say(f"| {rnd} | {loop} | {r['server_cores']:.3f} | {r['egress_pps']:.0f} | {per_core:.0f} | "
                f"{groups.get('high', (0, 0, 0))[1]:.1f} | {groups.get('low', (0, 0, 0))[1]:.1f} |")
    mean = {k: sum(v) / len(v) for k, v in totals.items()}
    say()
    say(f"SFU CPU uvloop / asyncio: {mean['uvloop'] / mean['asyncio']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    parser.add_argument("--output", type=Path, help="also write the results and raw JSON to this file")
    parser.add_argument("--sustained", type=float, metavar="SECONDS",
                        help="only the full layout (9 x 9), measured over SECONDS (the issue asks for 60)")
    parser.add_argument("--compare-loops", action="store_true",
                        help="only the full layout (9 x 9), the SFU on asyncio's loop vs uvloop, alternately")
    args = parser.parse_args()
    warmup, window = (3.0, 5.0) if args.quick else (5.0, 12.0)
    media = clips()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    say(f"Machine: {machine()}")
    say(f"Date: {started}; warm-up {warmup:g} s, window {window:g} s per run")
    say(
        f"Media: high {media['high'].width}x{media['high'].height}@{media['high'].rate:g} "
        f"{media['high'].bitrate / 1e6:.2f} Mbit/s, low {media['low'].width}x{media['low'].height}@"
        f"{media['low'].rate:g} {media['low'].bitrate / 1e3:.0f} kbit/s, Opus 20 ms "
        f"{media['mic'].bitrate / 1e3:.0f} kbit/s (pre-encoded, VP8)"
    )
    say()

    if args.sustained:
        sustained(say, warmup, args.sustained)
        if args.output:
            args.output.write_text("\n".join(lines) + "\n")
        return
    if args.compare_loops:
        compare_loops(say, warmup, window)
        if args.output:
            args.output.write_text("\n".join(lines) + "\n")
        return

    say("## Layout: 9 publishers x (720p + 180p + Opus); each subscriber gets 2 high + 6 low + 8 audio")
    say()
    say("Subscribers are added in steps (the full case is 9); everything runs on the same box.")
    say()
    say(
        "| subscribers | SFU CPU (cores) | publisher bots CPU | subscriber bots CPU | SFU egress Mbit/s "
        "| egress packets/s | high fps min/mean (of 30) | low fps min/mean (of 15) "
        "| audio fps min/mean (of 50) |"
    )
    say("|---|---|---|---|---|---|---|---|---|")

    layout: dict[int, Any] = {}
    for count in (0, 3, 6, 9):
        pub_plan, sub_plan = layout_plan()
        sub_plan["subscribers"] = sub_plan["subscribers"][:count]
        r = run("sfu", pub_plan, sub_plan, warmup, window)
        layout[count] = r
        groups = summarize_slots(r["slots"], layout_kind)

        def cell(g: str, groups: dict[str, tuple[float, float, int]] = groups) -> str:
            if g not in groups:
                return "-"
            return f"{groups[g][0]:.1f} / {groups[g][1]:.1f}"

        say(
            f"| {count} | {r['server_cores']:.2f} | {r['pub_cores']:.2f} | {r['sub_cores']:.2f} | "
            f"{r['egress_mbps']:.1f} | {r['egress_pps']:.0f} | {cell('high')} | {cell('low')} | "
            f"{cell('audio')} |"
        )
    ingest = layout[0]["server_cores"]
    say()
    say(f"SFU ingest alone (9 x 3 tracks, no subscriber): {ingest:.2f} core.")
    for count in (3, 6, 9):
        r = layout[count]
        per_packet = 1e6 * (r["server_cores"] - ingest) / max(r["egress_pps"], 1)
        say(f"- {count} subscribers: {per_packet:.0f} µs of SFU CPU per forwarded packet (ingest subtracted)")
    full = layout[9]
    say(f"- 9 subscribers: {full['egress_pps'] / max(full['server_cores'], 1e-9):.0f} forwarded packets/s per SFU "
        "core (ingest included)")
    for kind, (p50, p99) in full["delays"].items():
        say(f"- delay added inside the SFU, {kind} (a frame's last packet in → sent on, RTP forwarding), 9 "
            f"subscribers: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    say()
    say("## Full mesh: 9 venues x (720p + Opus), each receiving the 8 others' 720p and Opus")
    say()
    pub_plan, sub_plan = mesh_plan()
    mesh = run("sfu", pub_plan, sub_plan, warmup, window)
    groups = summarize_slots(mesh["slots"], lambda key, s: s["kind"])
    say("| SFU CPU | publisher bots CPU | subscriber bots CPU | egress Mbit/s | egress packets/s "
        "| video fps min/mean (of 30) | audio fps min/mean (of 50) | delay video p50/p99 ms |")
    say("|---|---|---|---|---|---|---|---|")
    vd = mesh["delays"].get("video")
    say(f"| {mesh['server_cores']:.2f} | {mesh['pub_cores']:.2f} | {mesh['sub_cores']:.2f} | "
        f"{mesh['egress_mbps']:.1f} | {mesh['egress_pps']:.0f} | "
        f"{groups['video'][0]:.1f} / {groups['video'][1]:.1f} | {groups['audio'][0]:.1f} / {groups['audio'][1]:.1f} | "
        f"{'-' if vd is None else f'{vd[0]:.2f} / {vd[1]:.2f}'} |")
    say()
    say("## Fan-out: one 720p publisher to N subscribers, SFU forwarding vs aiortc MediaRelay (transcoding)")
    say()
    say(
        "| N | SFU CPU | SFU video fps (min) | SFU egress Mbit/s | relay CPU | relay video fps (min) "
        "| relay egress Mbit/s | CPU ratio relay/SFU |"
    )
    say("|---|---|---|---|---|---|---|---|")
    fanout: dict[int, Any] = {}
    for n in (1, 2, 4, 8):
        pub_plan, sub_plan = fanout_plan(n)
        fw = run("sfu", pub_plan, sub_plan, warmup, window)
        tr = run("relay", pub_plan, sub_plan, warmup, window)
        fanout[n] = (fw, tr)

        def vid(res: dict[str, Any]) -> float:
            return min(s["fps"] for s in res["slots"].values() if s["kind"] == "video")

        say(
            f"| {n} | {fw['server_cores']:.3f} | {vid(fw):.1f} | {fw['egress_mbps']:.1f} | "
            f"{tr['server_cores']:.3f} | {vid(tr):.1f} | {tr['egress_mbps']:.1f} | "
            f"{tr['server_cores'] / max(fw['server_cores'], 1e-6):.1f}x |"
        )
    say()
    say("(bots' CPU of the fan-out runs is in the JSON below)")
    if args.output is not None:
        path = args.output
        body = [
            "# SFU media-plane benchmark (`bench/sfu.py`)",
            "",
            "Produced by `.venv/bin/python bench/sfu.py --output FILE`. Method: see the docstring of",
            "`bench/sfu.py` (SFU in its own process, bots in",
            "two others, loopback UDP, CPU = process time over the window, subscribers count frames",
            "without decoding).",
            "",
            *lines,
            "",
            "Raw figures (JSON):",
            "",
            "```json",
            json.dumps(
                {
                    "layout": {n: {k: v for k, v in r.items() if k != "slots"} for n, r in layout.items()},
                    "fanout": {
                        n: [{k: v for k, v in x.items() if k != "slots"} for x in pair]
                        for n, pair in fanout.items()
                    },
                },
                indent=1,
            ),
            "```",
            "",
        ]
        path.write_text("\n".join(body))
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
